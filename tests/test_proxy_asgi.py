"""The proxy driven as a plain ASGI app, with the upstream faked by `httpx.MockTransport`.

These cover failure paths a real mock server cannot easily produce on demand.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, MutableMapping, Sequence
from typing import Any

import anyio
import httpx
import pytest
from prometheus_client import CollectorRegistry

from guardstream.config import Config, Timeouts, Upstreams
from guardstream.proxy import GuardstreamProxy, create_app

pytestmark = pytest.mark.anyio

SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
BODY = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
Handler = Callable[[httpx.Request], httpx.Response]


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta = {} if content is None else {"content": content}
    payload = {"id": "c", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


class Body(httpx.AsyncByteStream):
    def __init__(self, parts: Sequence[bytes], error: Exception | None = None) -> None:
        self.parts = parts
        self.error = error

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for part in self.parts:
            await anyio.sleep(0)
            yield part
        if self.error is not None:
            raise self.error


def sse(parts: Sequence[bytes], error: Exception | None = None, content_type: str = "text/event-stream") -> Handler:
    return lambda request: httpx.Response(200, headers={"content-type": content_type}, stream=Body(parts, error))


def make_app(handler: Handler, **config: Any) -> tuple[GuardstreamProxy, CollectorRegistry]:
    registry = CollectorRegistry()
    client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    settings = Config(upstreams=Upstreams("http://up", "http://up", "http://up"), **config)
    return create_app(settings, client=client, registry=registry), registry


async def call(
    app: GuardstreamProxy, *, disconnect_after: bytes | None = None, write_seconds: float = 0.0
) -> tuple[int, bytes, list[Any]]:
    """One request through the app with a recording `send`; optionally the client leaves once it
    has seen `disconnect_after`, as an SDK does after `[DONE]`."""
    sent: list[Any] = []
    seen = anyio.Event()
    body_given = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal body_given
        if not body_given:
            body_given = True
            return {"type": "http.request", "body": BODY, "more_body": False}
        if disconnect_after is not None:
            await seen.wait()
            return {"type": "http.disconnect"}
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)
        if write_seconds and message.get("body"):
            await anyio.sleep(write_seconds)  # a client that reads slowly
        if disconnect_after is not None and disconnect_after in message.get("body", b""):
            seen.set()
            await anyio.sleep(0.01)  # a network write yields, as a real server's does

    scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "method": "POST",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "headers": [(b"content-type", b"application/json"), (b"host", b"x")],
    }
    with anyio.fail_after(5):
        await app(scope, receive, send)
    await app.aclose()
    status = next(m["status"] for m in sent if m["type"] == "http.response.start")
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"), sent


def outcomes(registry: CollectorRegistry) -> dict[str, float]:
    return {
        sample.labels["outcome"]: sample.value
        for metric in registry.collect()
        for sample in metric.samples
        if sample.name == "guardstream_requests_total"
    }


async def test_sdk_closing_right_after_done_counts_as_a_completed_stream() -> None:
    app, registry = make_app(sse([chunk("hello"), chunk(finish="stop"), b"data: [DONE]\n\n"]))
    _, body, _ = await call(app, disconnect_after=b"[DONE]")
    assert b"[DONE]" in body
    assert outcomes(registry) == {"passed": 1.0}


async def test_codec_failure_mid_stream_is_a_terminal_error_event_not_a_cut() -> None:
    bad = b'data: {"choices":[{"index":[0],"delta":{"content":"x"}}]}\n\n'
    app, _ = make_app(sse([chunk("hello "), bad, b"data: [DONE]\n\n"]))
    _, body, sent = await call(app)
    assert b'"code":"upstream_error"' in body
    assert sent[-1].get("more_body") is False


@pytest.mark.parametrize("content_type", ["text/plain", "", "application/octet-stream"])
async def test_moderated_route_never_relays_a_body_it_cannot_read(content_type: str) -> None:
    app, _ = make_app(sse([chunk("key " + SECRET), chunk(finish="stop")], content_type=content_type))
    status, body, _ = await call(app)
    assert status == 502
    assert SECRET.encode() not in body


async def test_event_stream_media_type_is_matched_case_insensitively() -> None:
    app, _ = make_app(
        sse([chunk(f"key {SECRET} "), chunk(finish="stop")], content_type="Text/Event-Stream; charset=utf-8")
    )
    _, body, _ = await call(app)
    assert SECRET.encode() not in body
    assert b"content_filter" in body


async def test_upstream_read_error_mid_stream_ends_with_a_terminal_event() -> None:
    app, registry = make_app(sse([chunk("hello "), chunk("wor")], error=httpx.ReadError("boom")))
    _, body, sent = await call(app)
    assert b"broke off" in body and sent[-1].get("more_body") is False
    assert outcomes(registry) == {"upstream_error": 1.0}


async def test_an_upstream_read_that_times_out_mid_stream_is_reported_as_the_idle_timeout() -> None:
    # The reader's read timeout and the idle timer measure the same silence; whichever fires first,
    # the client is told the upstream went quiet, not that the connection broke off.
    app, registry = make_app(sse([chunk("hello "), chunk("wor")], error=httpx.ReadTimeout("slow")))
    _, body, sent = await call(app)
    assert b"sent nothing for" in body and b"broke off" not in body
    assert sent[-1].get("more_body") is False


async def test_a_client_that_reads_slowly_is_not_taken_for_a_silent_upstream() -> None:
    # Writing to the client takes longer than `idle` each time; the upstream never waits.
    app, registry = make_app(
        sse([chunk("hello "), chunk("there"), chunk(finish="stop"), b"data: [DONE]\n\n"]), timeouts=Timeouts(idle=0.2)
    )
    _, body, _ = await call(app, write_seconds=0.3)
    assert b"sent nothing for" not in body and body.endswith(b"data: [DONE]\n\n")
    assert outcomes(registry) == {"passed": 1.0}


@pytest.mark.parametrize(
    "error",
    [
        httpx.ConnectError("refused"),
        # A disconnect is retried once (the keep-alive race); a second one is a 502 too.
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
    ],
)
async def test_unreachable_upstream_is_a_502_in_openai_format(error: httpx.HTTPError) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise error

    app, _ = make_app(refuse)
    status, body, _ = await call(app)
    assert status == 502
    assert json.loads(body)["error"]["code"] == "upstream_error"


async def test_keep_alive_race_is_retried_once_on_a_fresh_connection() -> None:
    attempts = []

    def flaky(request: httpx.Request) -> httpx.Response:
        attempts.append(request)
        if len(attempts) == 1:
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.")
        return sse([chunk("hello"), chunk(finish="stop"), b"data: [DONE]\n\n"])(request)

    app, _ = make_app(flaky)
    status, body, _ = await call(app)
    assert status == 200 and b"[DONE]" in body
    assert len(attempts) == 2
