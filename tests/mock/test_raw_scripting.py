"""Raw scripting for adversarial tests: bodies, media types, headers and error bodies exactly as scripted."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.mock.conftest import AsgiCall

pytestmark = pytest.mark.anyio

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
RAW_EVENTS = [
    ": a comment\n\n",
    'id: 7\ndata: {"choices":[],"choices":[{"delta":{"content":"dup"}}]}\n\n',
    "data: [DONE]\n\n",
    "data: text after done, and no blank line",
]


async def test_raw_events_are_written_one_chunk_per_entry(call_asgi: AsgiCall) -> None:
    sent = await call_asgi("/v1/chat/completions", {**CHAT, "stream": True, "mock": {"raw_events": RAW_EVENTS}})
    chunks = [message["body"] for message in sent[1:] if message["body"]]
    assert chunks == [event.encode() for event in RAW_EVENTS]


def test_raw_events_keep_the_format_media_type(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={**CHAT, "stream": True, "mock": {"raw_events": RAW_EVENTS}})
    assert response.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert response.content == "".join(RAW_EVENTS).encode()


def test_raw_events_replace_a_gemini_json_array_whole(http: httpx.Client) -> None:
    mock = {"raw_events": ['[{"a":', "1}"]}
    response = http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent", json={"contents": [], "mock": mock})
    assert response.headers["content-type"] == "application/json"
    assert response.content == b'[{"a":1}'


def test_raw_events_may_be_empty(http: httpx.Client) -> None:
    response = http.post("/v1/messages", json={"messages": [], "stream": True, "mock": {"raw_events": []}})
    assert response.status_code == 200 and response.content == b""


def test_raw_events_from_a_header(http: httpx.Client) -> None:
    headers = {"x-mock-raw-events": json.dumps(["data: one\n\n", "data: two\n\n"])}
    response = http.post("/v1/chat/completions", json={**CHAT, "stream": True}, headers=headers)
    assert response.text == "data: one\n\ndata: two\n\n"


async def test_faults_apply_per_raw_event(call_asgi: AsgiCall) -> None:
    mock = {"raw_events": RAW_EVENTS, "drop_after": 2}
    sent = await call_asgi("/v1/chat/completions", {**CHAT, "stream": True, "mock": mock})
    assert [message["body"] for message in sent[1:]] == [event.encode() for event in RAW_EVENTS[:2]]
    assert sent[-1]["more_body"] is True


def test_raw_body_replaces_a_json_answer(http: httpx.Client) -> None:
    raw = '{"choices":[{"message":{"content":"first"}}],"choices":[{"message":{"content":"é second"}}]}'
    response = http.post("/v1/chat/completions", json={**CHAT, "mock": {"raw_body": raw}})
    assert response.headers["content-type"] == "application/json"
    assert response.content == raw.encode()


def test_raw_body_replaces_a_buffered_answer(http: httpx.Client) -> None:
    response = http.get("/v1/models", headers={"x-mock-raw-body": "not json at all"})
    assert response.content == b"not json at all"
    assert response.headers["content-length"] == "15"


def test_content_type_labels_a_json_answer_as_an_event_stream(http: httpx.Client) -> None:
    response = http.post("/v1/chat/completions", json={**CHAT, "mock": {"content_type": "text/event-stream"}})
    assert response.headers["content-type"] == "text/event-stream"
    assert response.json()["object"] == "chat.completion"


def test_headers_are_added_and_replace_defaults(http: httpx.Client) -> None:
    mock = {"headers": {"X-Extra": "yes", "x-request-id": "req_scripted"}}
    response = http.post("/v1/chat/completions", json={**CHAT, "stream": True, "mock": mock})
    assert response.headers["x-extra"] == "yes"
    assert response.headers.get_list("x-request-id") == ["req_scripted"]
    assert response.headers["cache-control"] == "no-cache"


def test_error_body_is_sent_as_scripted_with_the_status(http: httpx.Client) -> None:
    mock = {"status": 502, "error_body": "upstream said: sk-live-0123456789abcdef", "headers": {"x-why": "test"}}
    response = http.post("/v1/chat/completions", json={**CHAT, "stream": True, "mock": mock})
    assert response.status_code == 502
    assert response.text == "upstream said: sk-live-0123456789abcdef"
    assert response.headers["content-type"] == "application/json"
    assert response.headers["x-why"] == "test"


def test_error_body_takes_the_scripted_content_type(http: httpx.Client) -> None:
    mock = {"status": 500, "error_body": "<html>oops</html>", "content_type": "text/html"}
    response = http.post("/v1/messages", json={"messages": [], "mock": mock})
    assert response.headers["content-type"] == "text/html"
    assert response.text == "<html>oops</html>"


async def test_raw_events_stream_even_a_buffered_answer(call_asgi: AsgiCall) -> None:
    sent = await call_asgi("/v1/messages/count_tokens", {"messages": [], "mock": {"raw_events": ["{", "}"]}})
    assert [message["body"] for message in sent[1:] if message["body"]] == [b"{", b"}"]
    assert (b"content-type", b"application/json") in sent[0]["headers"]
