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
        ({"unknown": 1}, {}),
        ({}, {"x-mock-drop-after": "soon"}),
        ({}, {"x-mock-reply": "b64:!!"}),
        ({}, {"x-mock-nonsense": "1"}),
    ],
)
def test_script_rejects_invalid_fields(mock: dict[str, Any], headers: dict[str, str]) -> None:
    with pytest.raises(MockScriptError):
        MockScript.from_request({"mock": mock}, headers)
