"""Record the SSE transcripts under tests/fixtures/transcripts/ from the built-in mock model.

`python -m tests.record_transcripts` rewrites them. Each format's wire shapes follow the real
APIs (the mock's own tests pin them); the files let provider tests run without a server.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import httpx

from guardstream.mock import create_mock_app
from guardstream.servers import serve_in_thread

HERE = Path(__file__).parent / "fixtures" / "transcripts"
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
SCRIPTS: dict[str, dict[str, Any]] = {
    "benign": {"reply": "A calm answer, with nothing in it to hide.", "chunk_chars": 5},
    "secret": {"reply": f"Here is the deploy key: {SECRET}. Keep it safe.", "chunk_chars": 3},
    "email": {"reply": "Write to jane.doe@example.com about it.", "chunk_chars": 4},
    "tool": {
        "reply": "Calling the tool.",
        "tool_calls": [{"name": "deploy", "arguments": json.dumps({"key": SECRET})}],
        "chunk_chars": 6,
    },
}
REQUESTS: dict[str, tuple[str, dict[str, Any]]] = {
    "openai-chat": ("/v1/chat/completions", {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}),
    "openai-completions": ("/v1/completions", {"model": "gpt-3.5-turbo-instruct", "prompt": "hi"}),
    "openai-responses": ("/v1/responses", {"model": "gpt-4o-mini", "input": "hi"}),
    "anthropic": (
        "/v1/messages",
        {"model": "claude-sonnet-4-6", "max_tokens": 64, "messages": [{"role": "user", "content": "hi"}]},
    ),
    "gemini": (
        "/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse",
        {"contents": [{"parts": [{"text": "hi"}]}]},
    ),
}


def headers(script: dict[str, Any]) -> dict[str, str]:
    out = {}
    for name, value in script.items():
        header = "x-mock-" + name.replace("_", "-")
        out[header] = (
            "b64:" + base64.b64encode(value.encode()).decode() if isinstance(value, str) else json.dumps(value)
        )
    return out


def main() -> None:
    HERE.mkdir(parents=True, exist_ok=True)
    with serve_in_thread(create_mock_app()) as url:
        for provider, (path, body) in REQUESTS.items():
            for name, script in SCRIPTS.items():
                if name == "tool" and provider in ("openai-completions",):
                    continue
                answer = httpx.post(url + path, json={**body, "stream": True}, headers=headers(script))
                answer.raise_for_status()
                (HERE / f"{provider}.{name}.sse").write_bytes(answer.content)


if __name__ == "__main__":
    main()
