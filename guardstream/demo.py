"""`guardstream demo`: the built-in mock model, the proxy in front of it, and a streaming client.

It shows in a few seconds what guardstream does to a stream: a clean answer passes untouched,
an e-mail address is redacted in place, an answer that leaks a cloud key is cut with the
provider's own error event before a character of the key is sent, and a passage a moderation
model flags (the mock's own /v1/moderations, in strict mode) is cut before any of it is sent.
"""

from __future__ import annotations

import base64
import json
import logging

import click
import httpx

from guardstream.classifiers import parse_classifiers
from guardstream.config import Config, Upstreams
from guardstream.mock import create_mock_app
from guardstream.proxy import create_app
from guardstream.servers import serve_in_thread
from guardstream.sse import SSEDecoder

SCENARIOS = [
    ("a clean answer", "Streaming moderation checks every chunk before it reaches you."),
    ("an answer with an e-mail address (pii: redacted)", "Sure, write to jane.doe@example.com and she will help."),
    ("an answer that leaks a key (secrets: blocked)", "Here is the deploy key: AKIA4HJQ7XRZ2PLWKD5N. Keep it safe."),
    (
        "an answer a moderation model flags (classifier, strict: blocked)",
        # The mock's moderation endpoint flags text with MOCKFLAG-<category> in it.
        "A calm opening sentence comes first. Then the passage MOCKFLAG-violence goes too far.",
    ),
]


def stream_chat(proxy_url: str, reply: str) -> None:
    body = {"model": "mock-model", "stream": True, "messages": [{"role": "user", "content": "Tell me something."}]}
    # The script rides in headers: guardstream moderates every string of a request body, and this
    # reply plants a secret on purpose.
    headers = {
        "x-mock-reply": "b64:" + base64.b64encode(reply.encode()).decode(),
        "x-mock-chunk-chars": "5",
        "x-mock-delay-ms": "25",
    }
    decoder = SSEDecoder()
    with httpx.stream("POST", f"{proxy_url}/v1/chat/completions", json=body, headers=headers, timeout=30) as response:
        for chunk in response.iter_raw():
            for event in decoder.decode(chunk):
                if not event.has_data or event.data == "[DONE]":
                    continue
                payload = json.loads(event.data)
                if "error" in payload:
                    click.secho(f"\n  ✂ stream cut: {payload['error']['message']}", fg="red")
                    return
                for choice in payload.get("choices", []):
                    click.echo(choice.get("delta", {}).get("content") or "", nl=False)
    click.secho("\n  ✓ stream finished", fg="green")


def run_demo() -> None:
    # The demo's output is the streams themselves; the request log would interleave with them.
    logging.getLogger("guardstream").addHandler(logging.NullHandler())
    with serve_in_thread(create_mock_app()) as mock_url:
        classifier = {"name": "moderation", "kind": "openai-moderation", "url": f"{mock_url}/v1/moderations"}
        config = Config(
            upstreams=Upstreams(mock_url, mock_url, mock_url),
            classifiers=parse_classifiers([{**classifier, "mode": "strict"}], "guardstream demo"),
        )
        with serve_in_thread(create_app(config)) as proxy_url:
            click.echo(
                f"mock model at {mock_url}, guardstream at {proxy_url} "
                "(packs: pii, secrets; classifier: the mock's /v1/moderations, strict)\n"
            )
            for title, reply in SCENARIOS:
                click.secho(f"▶ {title}", bold=True)
                click.echo("  ", nl=False)
                stream_chat(proxy_url, reply)
                click.echo()
