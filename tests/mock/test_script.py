"""Reading a `MockScript` from the request body and `x-mock-*` headers, and refusing invalid ones."""

from __future__ import annotations

import base64
from typing import Any

import pytest

from guardstream.mock import DEFAULT_REPLY, MockScript, MockScriptError, MockToolCall


def test_script_defaults_without_mock_fields() -> None:
    assert MockScript.from_request({}, {}) == MockScript(reply=DEFAULT_REPLY, chunk_chars=4)


def test_script_reads_headers_and_body_wins() -> None:
    headers = {
        "X-Mock-Reply": "b64:" + base64.b64encode("héllo 🌍".encode()).decode(),
        "x-mock-chunk-chars": "3",
        "x-mock-delay-ms": "1.5",
        "x-mock-tool-calls": '[{"name": "f", "arguments": {"a": 1}}]',
    }
    script = MockScript.from_request({"mock": {"chunk_chars": 5}}, headers)
    assert script.reply == "héllo 🌍"
    assert script.chunk_chars == 5
    assert script.delay_ms == 1.5
    assert script.tool_calls == (MockToolCall(name="f", arguments='{"a":1}'),)


@pytest.mark.parametrize(
    ("mock", "headers"),
    [
        ({"chunk_chars": 0}, {}),
        ({"chunk_chars": "4"}, {}),
        ({"delay_ms": -1}, {}),
        ({"status": 200}, {}),
        ({"hold_after": 1}, {}),
        ({"replies": "a"}, {}),
        ({"tool_calls": [{"arguments": "{}"}]}, {}),
        ({"tool_calls": {"name": "f"}}, {}),
        ({"unknown": 1}, {}),
        ({}, {"x-mock-drop-after": "soon"}),
        ({}, {"x-mock-reply": "b64:!!"}),
        ({}, {"x-mock-nonsense": "1"}),
        ({"repeat": 0}, {}),
        ({"events_per_chunk": 0}, {}),
        ({"stamp": 1}, {}),
    ],
)
def test_script_rejects_invalid_fields(mock: dict[str, Any], headers: dict[str, str]) -> None:
    with pytest.raises(MockScriptError):
        MockScript.from_request({"mock": mock}, headers)


def test_script_reads_raw_fields_from_headers() -> None:
    headers = {
        "x-mock-raw-events": '["data: 1\\n\\n", "data: 2"]',
        "x-mock-content-type": "text/plain; charset=latin-1",
        "x-mock-headers": '{"X-Trace": "abc"}',
        "x-mock-status": "500",
        "x-mock-error-body": "b64:" + base64.b64encode("naïve\n".encode()).decode(),
        "x-mock-logprobs": '["alt"]',
    }
    script = MockScript.from_request({}, headers)
    assert script.raw_events == ("data: 1\n\n", "data: 2")
    assert script.content_type == "text/plain; charset=latin-1"
    assert script.headers == (("x-trace", "abc"),)
    assert script.error_body == "naïve\n"
    assert script.logprobs == ("alt",)


@pytest.mark.parametrize(
    ("mock", "message"),
    [
        ({"raw_events": "data: x"}, "Not a list of strings"),
        ({"raw_events": ["a", 1]}, "Not a list of strings"),
        ({"raw_events": [], "raw_body": ""}, "Set one of them"),
        ({"error_body": "x"}, "Set 'status' too"),
        ({"status": 500, "error_body": "x", "error_message": "y"}, "Set one of them"),
        ({"headers": ["x-a", "b"]}, "Not an object of header names"),
        ({"headers": {"bad name": "b"}}, "Not a valid header name"),
        ({"headers": {"Content-Length": "3"}}, "frames the body itself"),
        ({"headers": {"x-a": "line\r\nbreak"}}, "without control characters"),
        ({"headers": {"x-a": 1}}, "Not a string"),
        ({"content_type": "text/plain\n"}, "without control characters"),
        ({"content_type": "text/€"}, "latin-1"),
        ({"logprobs": "alt"}, "Not a list of strings"),
    ],
)
def test_script_rejects_invalid_raw_fields(mock: dict[str, Any], message: str) -> None:
    with pytest.raises(MockScriptError, match=message):
        MockScript.from_request({"mock": mock}, {})


def test_script_ids_ignore_fields_that_only_change_the_wire() -> None:
    plain = MockScript(reply="same")
    wired = MockScript(reply="same", raw_body="{}", headers=(("x-a", "b"),), content_type="text/plain")
    assert wired.fingerprint() == plain.fingerprint() != MockScript(reply="other").fingerprint()


def test_script_repeat_streams_the_text_that_many_times() -> None:
    script = MockScript.from_request({}, {"x-mock-reply": "ab ", "x-mock-repeat": "3"})
    assert script.answer_for(0) == "ab ab ab "
    assert script.fingerprint() != MockScript(reply="ab ").fingerprint()
    assert MockScript(reply="ab ", repeat=1).fingerprint() == MockScript(reply="ab ").fingerprint()
