"""`content_encoding`: gzip and deflate bodies compressed as they are written, so each event decodes on arrival."""

from __future__ import annotations

import zlib
from typing import Any

import httpx
import openai
import pytest

from guardstream.mock import MockScript, MockScriptError
from tests.mock.conftest import AsgiCall

pytestmark = pytest.mark.anyio

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
CHAT = {"model": "gpt-4o-mini", "messages": MESSAGES, "stream": True}


@pytest.mark.parametrize(("coding", "window_bits"), [("gzip", 31), ("deflate", 15)])
async def test_each_compressed_chunk_decodes_to_its_event(call_asgi: AsgiCall, coding: str, window_bits: int) -> None:
    # The coding comes in a header so both requests have the same body, hence the same ids.
    body = {**CHAT, "mock": {"reply": "abcdefgh"}}
    plain = await call_asgi("/v1/chat/completions", body)
    packed = await call_asgi("/v1/chat/completions", body, {"x-mock-content-encoding": coding})
    assert (b"content-encoding", coding.encode()) in packed[0]["headers"]
    decoder = zlib.decompressobj(wbits=window_bits)
    decoded = [decoder.decompress(message["body"]) for message in packed[1:]]
    assert decoded == [message["body"] for message in plain[1:]]
    assert decoder.eof


def test_gzip_stream_reads_normally_through_the_sdk(openai_client: openai.OpenAI) -> None:
    mock = {"reply": "Compressed, yet streamed.", "content_encoding": "gzip"}
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": mock}
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream) == "Compressed, yet streamed."


def test_deflate_json_answer(http: httpx.Client) -> None:
    response = http.post(
        "/v1/responses", json={"input": "hi", "mock": {"reply": "deflated", "content_encoding": "deflate"}}
    )
    assert response.headers["content-encoding"] == "deflate"
    assert response.json()["output"][0]["content"][0]["text"] == "deflated"


def test_gzip_buffered_answer_has_the_compressed_length(http: httpx.Client) -> None:
    with http.stream("GET", "/v1/models", headers={"x-mock-content-encoding": "gzip"}) as response:
        raw = b"".join(response.iter_raw())
    assert int(response.headers["content-length"]) == len(raw)
    assert b"gpt-4o-mini" in zlib.decompress(raw, wbits=31)


def test_gzip_error_body(http: httpx.Client) -> None:
    mock = {"status": 503, "error_body": "overloaded: token=abc", "content_encoding": "gzip"}
    response = http.post("/v1/messages", json={"messages": [], "mock": mock})
    assert response.status_code == 503 and response.text == "overloaded: token=abc"


def test_identity_is_labelled_and_sent_as_is(http: httpx.Client) -> None:
    response = http.post(
        "/v1/chat/completions", json={**CHAT, "mock": {"raw_body": "plain", "content_encoding": "identity"}}
    )
    assert response.headers["content-encoding"] == "identity"
    assert response.content == b"plain"


def test_unknown_content_coding_is_refused() -> None:
    with pytest.raises(MockScriptError, match="Use one of: gzip, deflate, identity"):
        MockScript.from_request({}, {"x-mock-content-encoding": "br"})
