"""The event writer: delays, dropped connections, malformed events, holds and client disconnects."""

from __future__ import annotations

import json
import logging
import time
from typing import Any

import anyio
import httpx
import openai
import pytest
from starlette.types import Message, Scope

from guardstream.bench.load import STAMP, stamp_ns
from guardstream.mock import create_mock_app

pytestmark = pytest.mark.anyio

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def test_delays_are_applied(openai_client: openai.OpenAI) -> None:
    started = time.monotonic()
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_body={"mock": {"first_byte_delay_ms": 150}}
    )
    assert time.monotonic() - started >= 0.15
    started = time.monotonic()
    mock = {"reply": "abcdef", "chunk_chars": 2, "delay_ms": 30}
    list(openai_client.chat.completions.create(model="m", messages=MESSAGES, stream=True, extra_body={"mock": mock}))
    assert time.monotonic() - started >= 0.15  # 6 events, 5 gaps


def test_drop_after_makes_openai_raise(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"drop_after": 3}}
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk)
    assert len(received) == 3


def test_malformed_after_makes_openai_raise(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"malformed_after": 2}}
    )
    with pytest.raises(json.JSONDecodeError):
        list(stream)


def test_events_per_chunk_and_stamps(http: httpx.Client) -> None:
    body = {"messages": [], "stream": True, "mock": {"reply": "abcdef", "chunk_chars": 2, "stamp": True}}
    headers = {"x-mock-events-per-chunk": "3"}
    before = time.monotonic_ns()
    with http.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
        chunks = [chunk for chunk in response.iter_raw() if chunk]
    after = time.monotonic_ns()
    # role, 3 pieces, finish, [DONE]: 6 events in chunks of 3, each stamped JSON event readable as before.
    assert [chunk.count(b"\n\n") for chunk in chunks] == [3, 3]
    events = b"".join(chunks).decode().split("\n\n")
    payloads = [json.loads(e[6:]) for e in events[:5]]
    assert all(before <= p["mock_sent_ns"] <= after for p in payloads)
    assert [p["choices"][0]["delta"].get("content") for p in payloads[1:4]] == ["ab", "cd", "ef"]
    assert events[5] == "data: [DONE]"


def test_a_stamp_rides_in_the_pad_of_padded_chunks(http: httpx.Client) -> None:
    # Real OpenAI chunks differ only in text and pad: a stamp anywhere else would make every
    # benchmark event unlike the last, which real streams are not.
    body = {
        "messages": [],
        "stream": True,
        "stream_options": {"include_obfuscation": True},
        "mock": {"reply": "abcdef", "chunk_chars": 2, "stamp": True},
    }
    before = time.monotonic_ns()
    events = http.post("/v1/chat/completions", json=body).text.split("\n\n")
    after = time.monotonic_ns()
    payloads = [json.loads(e[6:]) for e in events[:5]]
    assert all("mock_sent_ns" not in p for p in payloads)
    stamps = [stamp_ns(*STAMP.findall(e.encode())[0]) for e in events[:5]]
    assert all(before <= ns <= after for ns in stamps) and stamps == sorted(stamps)


def test_malformed_after_continues_normally(http: httpx.Client) -> None:
    body = {"messages": [], "stream": True, "mock": {"reply": "abcd", "chunk_chars": 2, "malformed_after": 1}}
    events = http.post("/v1/chat/completions", json=body).text.split("\n\n")
    assert events[1] == 'data: {"broken": '
    assert [json.loads(e[6:])["choices"][0]["delta"].get("content") for e in events[2:4]] == ["ab", "cd"]
    assert events[-2:] == ["data: [DONE]", ""]


async def test_hold_after_delivers_first_events_before_release(mock_url: str) -> None:
    mock = {"reply": "abcdefgh", "chunk_chars": 2, "hold_after": 2, "hold_key": "hold-test"}
    received: list[str] = []
    two_received = anyio.Event()
    async with (
        openai.AsyncOpenAI(base_url=f"{mock_url}/v1", api_key="test", max_retries=0) as client,
        httpx.AsyncClient(base_url=mock_url) as http,
    ):

        async def consume() -> None:
            stream = await client.chat.completions.create(
                model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": mock}
            )
            async for chunk in stream:
                received.append(chunk.choices[0].delta.content or "")
                if len(received) == 2:
                    two_received.set()

        with anyio.fail_after(5):
            async with anyio.create_task_group() as task_group:
                task_group.start_soon(consume)
                await two_received.wait()
                await anyio.sleep(0.1)
                assert received == ["", "ab"]  # still held: nothing after the first two events
                (await http.post("/_mock/release/hold-test")).raise_for_status()
    assert "".join(received) == "abcdefgh"


async def test_client_disconnect_mid_stream_logs_no_error(mock_url: str, caplog: pytest.LogCaptureFixture) -> None:
    mock = {"chunk_chars": 1, "delay_ms": 20}
    body = {"model": "gpt-4o-mini", "messages": [], "stream": True, "mock": mock}
    with anyio.fail_after(5):
        async with httpx.AsyncClient(base_url=mock_url) as http:
            async with http.stream("POST", "/v1/chat/completions", json=body) as response:
                async for _chunk in response.aiter_raw():
                    break
            await anyio.sleep(0.2)  # let the server notice the disconnect
            assert (await http.get("/_mock/requests")).status_code == 200
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]


async def test_disconnect_during_hold_ends_the_response() -> None:
    # Raw ASGI call: the client goes away while the stream waits on a gate nobody releases.
    body = json.dumps({"messages": [], "stream": True, "mock": {"hold_after": 1, "hold_key": "never"}}).encode()
    first_event_sent = anyio.Event()
    sent: list[Message] = []
    requests = [{"type": "http.request", "body": body, "more_body": False}]

    async def receive() -> Message:
        if requests:
            return requests.pop()
        await first_event_sent.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body":
            first_event_sent.set()

    scope: Scope = {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.4"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/chat/completions",
        "raw_path": b"/v1/chat/completions",
        "query_string": b"",
        "root_path": "",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    with anyio.fail_after(1):
        await create_mock_app()(scope, receive, send)
    assert [message["type"] for message in sent] == ["http.response.start", "http.response.body"]
    assert sent[1]["more_body"] is True
