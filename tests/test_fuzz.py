"""Fuzzing (#11): arbitrary bytes into the decoder, every codec and the request path.

No exception escapes, every byte is accounted for, and a moderated route fails closed: an
answer that cannot be read ends with the format's terminal event, a request that cannot be read
is a 400, never a 500 and never forwarded.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import httpx
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from guardstream.config import Config, Upstreams
from guardstream.packs import load_rules
from guardstream.providers.registry import PROVIDERS
from guardstream.proxy import create_app
from guardstream.sse import SSEDecoder
from guardstream.stream import StreamModerator

RULES = load_rules(["pii", "secrets"]).for_direction("output")
FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Bytes that look enough like SSE and JSON to reach deep into the parsers.
PIECES = [
    b"data: ",
    b"data:",
    b"event: ",
    b"id: 1",
    b": c",
    b"\n",
    b"\r\n",
    b"\r",
    b"\n\n",
    b"[DONE]",
    b"{",
    b"}",
    b"[",
    b"]",
    b'"',
    b",",
    b":",
    b'"choices":[{"index":0,"delta":{"content":"x"}}]',
    b'"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}',
    b'"type":"response.output_text.delta","output_index":0,"content_index":0,"delta":"x"',
    b'"candidates":[{"content":{"parts":[{"text":"hi"}]},"index":0}]',
    b'"error":{"message":"m"}',
    b"message_start",
    b"\xff",
    b"\xef\xbb\xbf",
    b"\x00",
    "é".encode(),
    b"NaN",
    b"1e999",
    b"AKIA4HJQ7XRZ2PLWKD5N",
]
noisy_bytes = st.one_of(st.binary(max_size=300), st.lists(st.sampled_from(PIECES), max_size=40).map(b"".join))


@FUZZ
@given(data=noisy_bytes, cuts=st.lists(st.integers(0, 400), max_size=10))
def test_the_decoder_accounts_for_every_byte_whatever_it_is_fed(data: bytes, cuts: list[int]) -> None:
    decoder = SSEDecoder()
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    events = [e for a, b in zip(points, points[1:], strict=False) for e in decoder.decode(data[a:b])]
    events += decoder.flush()
    assert b"".join(e.raw for e in events) + decoder.discarded == data


@FUZZ
@given(provider=st.sampled_from(sorted(PROVIDERS)), data=noisy_bytes, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_no_codec_lets_an_exception_escape_and_unreadable_streams_fail_closed(
    provider: str, data: bytes, cuts: list[int]
) -> None:
    moderator = StreamModerator(PROVIDERS[provider].stream_codec(), RULES)
    points = sorted({c % (len(data) + 1) for c in cuts} | {0, len(data)})
    out = b"".join(moderator.feed(data[a:b]) for a, b in zip(points, points[1:], strict=False))
    out += moderator.finish()
    assert moderator.is_done
    assert b"AKIA4HJQ7XRZ2PLWKD5N" not in out
    # Whatever went out is well-formed SSE the client can parse.
    decoder = SSEDecoder()
    events = [e for e in decoder.decode(out) + decoder.flush() if e.has_data]
    for event in events:
        if event.data != "[DONE]":
            json.loads(event.data)
    if moderator.failure is not None:
        assert "error" in json.loads(events[-1].data)


def proxy_app() -> Any:
    # An upstream nobody listens on: a request that got through the checks would be a 502.
    upstream = "http://127.0.0.1:9"
    return create_app(Config(upstreams=Upstreams(upstream, upstream, upstream)))


APP = proxy_app()
ROUTES = [
    "/v1/chat/completions",
    "/v1/responses",
    "/v1/messages",
    "/v1beta/models/g:generateContent",
    "/v1/completions",
]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    path=st.sampled_from(ROUTES),
    body=st.one_of(
        noisy_bytes,
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(),
            lambda c: st.lists(c) | st.dictionaries(st.text(), c),
            max_leaves=20,
        ).map(lambda v: json.dumps(v).encode()),
    ),
    encoding=st.sampled_from([None, "gzip", "br", "identity"]),
)
def test_a_request_body_that_cannot_be_read_is_a_400_never_a_500(path: str, body: bytes, encoding: str | None) -> None:
    headers = {"content-type": "application/json"}
    if encoding:
        headers["content-encoding"] = encoding

    async def send() -> httpx.Response:
        transport = httpx.ASGITransport(app=APP)
        async with httpx.AsyncClient(transport=transport, base_url="http://gs") as client:
            return await client.post(path, content=body, headers=headers)

    answer = anyio.run(send)
    # 400: unreadable or not an object; 502: read, checked and forwarded to the (absent) upstream.
    assert answer.status_code in (400, 502), answer.text
    if answer.status_code == 400:
        assert answer.json()  # the provider's own error body
    else:
        try:
            parsed = json.loads(body)
        except ValueError:
            pytest.fail("an unreadable body was forwarded")
        assert isinstance(parsed, dict)
