"""Upstream connections: a finished stream hands its connection to the next request, as any
HTTP client would; a stream guardstream ends early closes it, so the model stops generating.

The mock logs each request's peer (address and port): two requests with one peer came on one
connection.
"""

from __future__ import annotations

import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from typing import Any

import anthropic
import httpx
import openai
import pytest

from tests.conftest import MockModel, ProxyFactory, RunningProxy, mock_headers
from tests.test_proxy_leaks import DONE, chunk

MESSAGES: list[Any] = [{"role": "user", "content": "Tell me something."}]
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
# Events a few milliseconds apart, as a model writes them: the end of the body then comes in a
# read of its own, after the end event.
ANSWER = {"reply": "A calm, harmless answer.", "delay_ms": 10}


@pytest.fixture
def sdk(proxy: RunningProxy) -> Iterator[openai.OpenAI]:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
    yield client
    client.close()


def chat_stream(sdk: openai.OpenAI, script: dict[str, Any]) -> str:
    stream = sdk.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_headers=mock_headers(script)
    )
    return "".join(c.choices[0].delta.content or "" for c in stream if c.choices)


def peers(mock_model: MockModel) -> list[str]:
    return [request["peer"] for request in mock_model.requests()]


def finished(proxy: RunningProxy, provider: str, count: int) -> None:
    """Wait until guardstream has finished `count` streams. The SDKs stop reading at the end
    event, so the next request can come while guardstream still reads the end of the body."""
    deadline = time.monotonic() + 5
    labels = {"provider": provider, "outcome": "passed"}
    while (proxy.registry.get_sample_value("guardstream_requests_total", labels) or 0) < count:
        if time.monotonic() > deadline:
            raise AssertionError(f"guardstream did not finish {count} streams")
        time.sleep(0.005)


def test_streams_one_after_another_share_one_upstream_connection(
    sdk: openai.OpenAI, proxy: RunningProxy, mock_model: MockModel
) -> None:
    for done in range(1, 4):
        assert chat_stream(sdk, ANSWER) == "A calm, harmless answer."
        finished(proxy, "openai-chat", done)
    first, *rest = peers(mock_model)
    assert rest == [first, first]


def test_claude_streams_one_after_another_share_one_upstream_connection(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    with anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0) as client:
        for done in range(1, 3):
            with client.messages.stream(
                model="claude-sonnet-4-5",
                max_tokens=64,
                messages=MESSAGES,
                extra_headers=mock_headers(ANSWER),
            ) as stream:
                assert "".join(stream.text_stream) == "A calm, harmless answer."
            finished(proxy, "anthropic", done)
    first, second = peers(mock_model)
    assert second == first


def test_a_blocked_stream_closes_its_upstream_connection(sdk: openai.OpenAI, mock_model: MockModel) -> None:
    with pytest.raises(openai.APIError):
        chat_stream(sdk, {"reply": f"The key is {SECRET} and then a long tail. " * 20, "chunk_chars": 8})
    chat_stream(sdk, ANSWER)
    blocked, after = peers(mock_model)
    assert after != blocked


def test_an_upstream_that_goes_on_after_the_end_is_cut_off_without_the_client_waiting(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    events = [chunk({"role": "assistant", "content": "Done."}), DONE, DONE]
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    script = {"raw_events": events, "hold_after": 2, "hold_key": "after-the-end"}
    started = time.monotonic()
    with httpx.stream("POST", f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers(script)) as answer:
        received = answer.read().decode()
    took = time.monotonic() - started
    time.sleep(1.0)  # guardstream gives up on the rest by now (after half a second)
    mock_model.release("after-the-end")
    assert received.count("[DONE]") == 1
    assert took < 10.0  # the mock holds the rest for 30 s: the client waited half a second, not that
    with httpx.Client() as client:
        client.post(f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers({"reply": "Hi."}))
    held, after = peers(mock_model)
    assert after != held


class ResettingUpstream:
    """An upstream that answers the first request on each connection with a short stream and
    resets the connection when a second request comes on it: a server closing an idle connection
    at the moment it is reused, made certain."""

    BODY = (chunk({"content": "Fresh answer."}) + DONE).encode()

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            for answered in (False, True):
                data = b""
                while b"\r\n\r\n" not in data:
                    piece = conn.recv(65536)
                    if not piece:
                        return
                    data += piece
                head, _, body = data.partition(b"\r\n\r\n")
                length = int(re.search(rb"(?i)content-length: *(\d+)", head).group(1))  # type: ignore[union-attr]
                while len(body) < length:
                    body += conn.recv(65536)
                if answered:
                    conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return  # closed with a reset
                conn.sendall(
                    b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\n"
                    + f"content-length: {len(self.BODY)}\r\n\r\n".encode()
                    + self.BODY
                )

    def close(self) -> None:
        self.listener.close()


def test_a_pooled_connection_the_upstream_resets_is_retried_on_a_new_one(start_proxy: ProxyFactory) -> None:
    upstream = ResettingUpstream()
    try:
        with start_proxy(upstream=upstream.url) as proxy:
            client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)
            with client:
                first = chat_stream(client, {})
                second = chat_stream(client, {})
    finally:
        upstream.close()
    assert first == second == "Fresh answer."
    assert upstream.connections == 2


def test_a_stream_whose_end_event_comes_in_a_burst_still_leaves_its_connection(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    events = [chunk({"content": f"w{i} "}) for i in range(12)] + [DONE]
    body = {"model": "m", "messages": MESSAGES, "stream": True}
    with httpx.Client() as client:
        for done in range(1, 3):
            # The events come at once (the end event among them, taken from the relay's inbox);
            # the end of the body comes a moment later, in a read of its own.
            script = {"raw_events": events, "hold_after": len(events), "hold_key": f"burst-{done}"}
            threading.Timer(0.1, mock_model.release, [f"burst-{done}"]).start()
            answer = client.post(f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers(script))
            assert answer.text.count("[DONE]") == 1
            finished(proxy, "openai-chat", done)
    first, second = peers(mock_model)
    assert second == first
