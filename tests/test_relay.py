"""StreamRelay: what the moderator gives out reaches the client, in order, and silence is timed."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
import pytest

from guardstream.checks import CheckPlan, CheckRequest
from guardstream.classifiers import ClassifierFailure, Verdict
from guardstream.packs import load_rules
from guardstream.providers.openai_chat import OpenAIChatStream
from guardstream.relay import INLINE_PER_BURST, MAX_INBOX_BYTES, StreamRelay
from guardstream.rules import Rule
from guardstream.stream import StreamModerator

pytestmark = pytest.mark.anyio


def chunk(text: str) -> bytes:
    payload: dict[str, Any] = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    payload["choices"] = [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}]
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


async def no_checks(request: CheckRequest) -> list[Verdict | ClassifierFailure]:
    raise AssertionError("no classifier is configured")


def relay_of(send: Any, *, idle: float, keepalive: float, rules: tuple[Rule, ...] = ()) -> StreamRelay:
    """A relay of a Chat stream with `rules`, no classifier, and upstream failures printed."""
    moderator = StreamModerator(OpenAIChatStream(), rules)
    return StreamRelay(moderator, send, idle=idle, keepalive=keepalive, run_check=no_checks, on_upstream_failure=print)


async def test_bytes_queued_behind_a_slow_write_reach_the_client_before_the_stream_ends() -> None:
    # A keep-alive is being written slowly when the classifier clears the text and [DONE] is due.
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)  # handed to the transport at once, then drained slowly
        await anyio.sleep(0.3)

    async def chunks() -> AsyncIterator[bytes]:
        yield chunk("Hello there") + b"data: [DONE]\n\n"
        await anyio.sleep(0.35)

    async def strict_check(request: CheckRequest) -> list[Verdict | ClassifierFailure]:
        await anyio.sleep(0.3)
        return [Verdict(False) for _ in request.texts]

    moderator = StreamModerator(OpenAIChatStream(), [], plans=[CheckPlan("c", mode="strict")])
    relay = StreamRelay(moderator, send, idle=5, keepalive=0.1, run_check=strict_check, on_upstream_failure=print)
    with anyio.fail_after(5):
        await relay.run(chunks())
    assert moderator.is_done and not relay.unsent
    assert b"".join(sent).endswith(b"data: [DONE]\n\n")


async def test_a_silent_upstream_is_timed_out_after_idle_even_right_after_a_slow_write() -> None:
    failed_at: list[float] = []
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)
        await anyio.sleep(0.5)  # a slow client

    async def chunks() -> AsyncIterator[bytes]:
        yield chunk("hello ")
        await anyio.sleep(30)  # then the upstream falls silent

    started = anyio.current_time()
    relay = StreamRelay(
        StreamModerator(OpenAIChatStream(), []),
        send,
        idle=0.2,
        keepalive=3.0,
        run_check=no_checks,
        on_upstream_failure=lambda why: failed_at.append(anyio.current_time() - started),
    )
    with anyio.fail_after(10):
        await relay.run(chunks())
    assert failed_at and failed_at[0] < 1.2
    assert b"sent nothing for 0.2 s" in b"".join(sent)


async def test_a_relay_cut_short_while_bytes_wait_says_so() -> None:
    async def send(data: bytes) -> None:
        await anyio.sleep(1.0)  # a client that has stopped reading

    async def chunks() -> AsyncIterator[bytes]:
        yield chunk("write to jane")  # held: it may become an address; a keep-alive is written
        await anyio.sleep(0.1)
        yield chunk(" today. ")  # released while the keep-alive is still being written
        await anyio.sleep(30)

    moderator = StreamModerator(OpenAIChatStream(), load_rules(["pii"]).for_direction("output"))
    relay = StreamRelay(moderator, send, idle=30, keepalive=0.05, run_check=no_checks, on_upstream_failure=print)
    with anyio.move_on_after(0.3):
        await relay.run(chunks())
    assert relay.unsent


async def test_chunks_that_arrive_together_are_moderated_and_written_as_one() -> None:
    # One network read can carry a hundred events; httpx hands them over without waiting.
    async def burst() -> AsyncIterator[bytes]:
        for i in range(100):
            yield chunk(f"word{i} ")
        yield b"data: [DONE]\n\n"

    async def one_at_a_time() -> AsyncIterator[bytes]:
        async for piece in burst():
            yield piece
            await anyio.sleep(0)

    async def relay_all(chunks: AsyncIterator[bytes]) -> list[bytes]:
        sent: list[bytes] = []

        async def send(data: bytes) -> None:
            sent.append(data)

        moderator = StreamModerator(OpenAIChatStream(), load_rules(["pii"]).for_direction("output"))
        relay = StreamRelay(moderator, send, idle=5, keepalive=5, run_check=no_checks, on_upstream_failure=print)
        with anyio.fail_after(5):
            await relay.run(chunks)
        return sent

    outputs = [await relay_all(burst()), await relay_all(one_at_a_time())]
    together, apart = outputs
    assert b"".join(together) == b"".join(apart)
    assert len(together) <= INLINE_PER_BURST + 2 < 100 <= len(apart)


async def test_a_client_that_does_not_read_holds_the_upstream_back() -> None:
    pulled = 0
    piece = chunk("x" * 1000 + " ")

    async def send(data: bytes) -> None:
        await anyio.sleep(30)  # the client stopped reading

    async def chunks() -> AsyncIterator[bytes]:
        nonlocal pulled
        for _ in range(1000):
            pulled += 1
            yield piece

    relay = relay_of(send, idle=60, keepalive=60)
    with anyio.move_on_after(0.5):
        await relay.run(chunks())
    # One read's worth is moderated and stuck in the write; one more waits in the inbox.
    assert pulled * len(piece) <= 2 * MAX_INBOX_BYTES + 2 * len(piece)


def test_the_watchdog_acts_on_a_plain_asyncio_loop_as_uvicorn_runs_it() -> None:
    # The watchdog is a timer: what it finds due runs as a task it starts from the timer's
    # callback. Under uvicorn the stream's task is asyncio's own, not one anyio started.
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    async def chunks() -> AsyncIterator[bytes]:
        yield chunk("write to jane")  # held (it may become an address): a keep-alive is due
        await asyncio.sleep(30)  # then the upstream falls silent

    async def stream() -> None:
        relay = relay_of(send, idle=0.4, keepalive=0.1, rules=load_rules(["pii"]).for_direction("output"))
        await asyncio.wait_for(relay.run(chunks()), 5)

    asyncio.run(stream())
    assert b": keep-alive\n\n" in sent
    assert sent[-1].startswith(b'data: {"error"') and b"sent nothing for 0.4 s" in sent[-1]


async def test_chunks_that_come_one_at_a_time_start_no_task_for_the_inbox() -> None:
    # Paced streams (an event every few tens of milliseconds) are read and moderated by the
    # stream's own task; the inbox's task, and its memory, come with the first burst.
    sent: list[bytes] = []

    async def send(data: bytes) -> None:
        sent.append(data)

    async def chunks() -> AsyncIterator[bytes]:
        for word in ("one ", "two ", "three "):
            yield chunk(word)
            await anyio.sleep(0.01)
        yield b"data: [DONE]\n\n"

    relay = relay_of(send, idle=5, keepalive=5)
    with anyio.fail_after(5):
        await relay.run(chunks())
    assert relay._moderating is None
    assert len(sent) == 4 and sent[-1] == b"data: [DONE]\n\n"
