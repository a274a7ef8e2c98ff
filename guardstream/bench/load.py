"""The benchmark's client: streams through a path and times every event, at little cost of its own.

It runs beside the servers it measures, on the same cores, so it does as little as it can: one
`asyncio.Protocol` per stream that de-chunks the HTTP/1.1 body by hand and, per batch of complete
SSE events, counts them and reads the time the mock model wrote each one (the mock's `stamp`
field: in each delta's `obfuscation` pad, as real OpenAI events vary only there). Latency is then
receive time minus write time on one clock, CLOCK_MONOTONIC, which every process on a Linux
machine shares.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

# The mock's stamp: a leading field, or (in an event with a pad) the start of the pad,
# hexadecimal in the letters g-v (the rest of the pad has none of them).
STAMP = re.compile(rb'"mock_sent_ns":(\d+)|"obfuscation":"([g-v]+)')
_PAD_TO_HEX = bytes.maketrans(b"ghijklmnopqrstuv", b"0123456789abcdef")
# An event carrying answer text (a chat delta with non-empty content): the first token.
TEXT = re.compile(rb'"content":"[^"]')
HEAD_END = b"\r\n\r\n"


def stamp_ns(field: bytes, pad: bytes) -> int:
    """The time the mock wrote an event, from either place its stamp can be."""
    return int(field) if field else int(pad.translate(_PAD_TO_HEX), 16)


@dataclass
class StreamResult:
    """What one stream delivered and when (nanoseconds, CLOCK_MONOTONIC)."""

    status: int = 0
    events: int = 0
    is_complete: bool = False  # a 200 that ended with `data: [DONE]` and a clean end of body
    ttfb_ns: int | None = None  # request written -> first byte of the body
    ttft_ns: int | None = None  # request written -> first event carrying answer text
    latencies_ns: list[int] = field(default_factory=list)  # per stamped event: mock wrote it -> we read it


class _StreamProtocol(asyncio.Protocol):
    """One request, one response, read with as little work per chunk as HTTP/1.1 allows."""

    def __init__(self, request: bytes, done: asyncio.Future[StreamResult]) -> None:
        self.request = request
        self.done = done
        self.result = StreamResult()
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()  # raw bytes not parsed yet
        self.pending = bytearray()  # body bytes of an SSE event not complete yet
        self.in_head = True
        self.chunk_left = -1  # bytes of the current chunk still to come (-1: a size line is next)
        self.sent_ns = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.sent_ns = time.monotonic_ns()
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.monotonic_ns()
        self.buffer += data
        if self.in_head:
            end = self.buffer.find(HEAD_END)
            if end < 0:
                return
            head = bytes(self.buffer[:end]).decode("latin-1").lower()
            del self.buffer[: end + len(HEAD_END)]
            self.in_head = False
            self.result.status = int(head.split(" ", 2)[1])
            if self.result.status != 200 or "transfer-encoding: chunked" not in head:
                self._finish()
                return
        body: list[bytes] = []
        buffer = self.buffer
        pos, size_total = 0, len(buffer)
        # Walk the buffer with an offset and cut it once: deleting from the front per chunk is quadratic.
        while pos < size_total:
            if self.chunk_left < 0:
                line_end = buffer.find(b"\r\n", pos)
                if line_end < 0:
                    break
                size = int(bytes(buffer[pos:line_end]).split(b";", 1)[0], 16)
                pos = line_end + 2
                if size == 0:
                    self._body(body, now)
                    self._finish()
                    return
                self.chunk_left = size + 2  # the data, then its CRLF
            data_left = self.chunk_left - 2
            take = min(self.chunk_left, size_total - pos)
            if data_left > 0:
                body.append(bytes(buffer[pos : pos + min(take, data_left)]))
            pos += take
            self.chunk_left -= take
            if self.chunk_left == 0:
                self.chunk_left = -1
        del buffer[:pos]
        self._body(body, now)

    def _body(self, pieces: list[bytes], now: int) -> None:
        if not pieces:
            return
        result = self.result
        if result.ttfb_ns is None:
            result.ttfb_ns = now - self.sent_ns
        pending = self.pending
        for piece in pieces:
            pending += piece
        end = pending.rfind(b"\n\n")
        if end < 0:
            return
        complete = bytes(pending[: end + 2])
        del pending[: end + 2]
        result.events += complete.count(b"\n\n")
        if result.ttft_ns is None and TEXT.search(complete) is not None:
            result.ttft_ns = now - self.sent_ns
        result.latencies_ns.extend(now - stamp_ns(*found) for found in STAMP.findall(complete))
        if b"data: [DONE]" in complete:
            result.is_complete = True

    def _finish(self) -> None:
        if self.transport is not None:
            self.transport.close()
        if not self.done.done():
            self.done.set_result(self.result)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.done.done():
            # The body ended without its last chunk: the stream broke off.
            self.result.is_complete = False
            self.done.set_result(self.result)


def build_request(host: str, port: int, path: str, body: bytes, headers: Sequence[tuple[str, str]]) -> bytes:
    lines = [
        f"POST {path} HTTP/1.1",
        f"host: {host}:{port}",
        "content-type: application/json",
        f"content-length: {len(body)}",
        "connection: close",
        *(f"{name}: {value}" for name, value in headers),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


async def stream_once(host: str, port: int, request: bytes, *, timeout: float = 600.0) -> StreamResult:
    loop = asyncio.get_running_loop()
    done: asyncio.Future[StreamResult] = loop.create_future()
    transport, _ = await loop.create_connection(lambda: _StreamProtocol(request, done), host, port)
    try:
        return await asyncio.wait_for(done, timeout)
    finally:
        transport.close()


async def run_streams(
    host: str,
    port: int,
    request: bytes,
    *,
    streams: int,
    concurrency: int,
    stagger_seconds: float = 0.0,
    on_stream: Callable[[StreamResult], None] | None = None,
) -> list[StreamResult]:
    """`streams` streams, `concurrency` at a time; the first `concurrency` start `stagger_seconds`
    apart, so paced streams do not all wake on the same tick."""
    results: list[StreamResult] = []
    remaining = streams

    async def worker(index: int) -> None:
        nonlocal remaining
        await asyncio.sleep(index * stagger_seconds)
        while remaining > 0:
            remaining -= 1
            result = await stream_once(host, port, request)
            results.append(result)
            if on_stream is not None:
                on_stream(result)

    await asyncio.gather(*(worker(i) for i in range(min(concurrency, streams))))
    return results


def drive(
    host: str,
    port: int,
    request: bytes,
    *,
    streams: int,
    concurrency: int,
    stagger_seconds: float = 0.0,
    on_stream: Callable[[StreamResult], None] | None = None,
) -> tuple[list[StreamResult], float]:
    """Run the streams on a fresh event loop; returns their results and the wall time they took."""
    started = time.perf_counter()
    results = asyncio.run(
        run_streams(
            host,
            port,
            request,
            streams=streams,
            concurrency=concurrency,
            stagger_seconds=stagger_seconds,
            on_stream=on_stream,
        )
    )
    return results, time.perf_counter() - started
