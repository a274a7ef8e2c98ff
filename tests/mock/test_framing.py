"""The bytes on the wire: each format's SSE framing, determinism, and escapes that keep JSON on one line."""

from __future__ import annotations

import json

import httpx


def test_wire_framing_per_provider(http: httpx.Client) -> None:
    chat = http.post("/v1/chat/completions", json={"messages": [], "stream": True})
    assert chat.headers["content-type"].startswith("text/event-stream")
    assert chat.text.startswith("data: {") and chat.text.endswith("\n\ndata: [DONE]\n\n")

    anthropic_events = http.post("/v1/messages", json={"messages": [], "stream": True}).text.split("\n\n")[:-1]
    for event in anthropic_events:
        name, data = event.split("\n")
        assert json.loads(data.removeprefix("data: "))["type"] == name.removeprefix("event: ")

    gemini = http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", json={"contents": []})
    events = gemini.content.split(b"\r\n\r\n")
    assert events[-1] == b"" and all(event.startswith(b"data: {") for event in events[:-1])
    assert json.loads(events[-2][6:])["candidates"][0]["finishReason"] == "STOP"


def test_identical_requests_get_identical_bytes(http: httpx.Client) -> None:
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    first = http.post("/v1/chat/completions", json=body).content
    assert http.post("/v1/chat/completions", json=body).content == first
    other = http.post("/v1/chat/completions", json={**body, "mock": {"reply": "x"}}).content
    assert json.loads(other.split(b"\n")[0][6:])["id"] != json.loads(first.split(b"\n")[0][6:])["id"]


def test_unicode_line_separators_are_escaped(http: httpx.Client) -> None:
    mock = {"reply": "a\u2028b\u2029c é", "chunk_chars": 100}
    body = http.post("/v1/chat/completions", json={"messages": [], "stream": True, "mock": mock}).content
    assert "\u2028".encode() not in body and b"\\u2028" in body
    assert "é".encode() in body


def test_ids_stay_what_they_were_when_new_script_fields_are_added(http: httpx.Client) -> None:
    # The digest behind this id was recorded before the newer (wire-only) script fields existed.
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}], "stream": True, "mock": {}}
    first = http.post("/v1/chat/completions", content=json.dumps(body)).text.split("\n")[0]
    assert json.loads(first.removeprefix("data: "))["id"] == "chatcmpl-mock-11302c1977f58574"
