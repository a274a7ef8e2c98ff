"""The app around the builders: routes that answer no text, and the request log."""

from __future__ import annotations

from typing import Any

import httpx
import openai

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def test_openai_models_list(openai_client: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [model.id for model in openai_client.models.list()]


def test_request_log_records_headers_and_body(openai_client: openai.OpenAI, http: httpx.Client) -> None:
    http.delete("/_mock/requests").raise_for_status()
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Trace": "t1"}, extra_body={"mock": {"reply": "r"}}
    )
    http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", json={"contents": []})
    first, second = http.get("/_mock/requests").json()
    assert first["method"] == "POST" and first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer test"
    assert first["headers"]["x-trace"] == "t1"
    assert first["body"]["mock"] == {"reply": "r"}
    assert second["query"] == {"alt": "sse"}
    assert http.delete("/_mock/requests").json() == {"deleted": 2}
    assert http.get("/_mock/requests").json() == []
