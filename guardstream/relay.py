"""One moderated stream on the move: upstream chunks in, the moderator's bytes out, silence timed.

The proxy's hot path. The task that reads a chunk from the upstream moderates it and writes
the result to the client itself, as a bare pass-through proxy would: no queue, no hand-over to
another task, no timer armed per read. Everything that happens *between* chunks runs beside it:

- a watchdog task sleeps until the next deadline (the upstream silent for `idle` while a read is
  waiting; the client told nothing for `keepalive` while text is held or classifiers are out;
  a shutdown's cut-off) and acts on it: a keep-alive, or the format's terminal event;
- classifier checks run as tasks of their own; their answers are moderated when they come.

Three tasks may have bytes for the client, so writes go through one outbox: whoever finds no
write in progress writes, and takes along what the others queued meanwhile; the others wait
until it is out. Bytes leave in the order the moderator produced them, and a slow client slows
the upstream read down (back-pressure), as it would without guardstream.

A read that is cancelled leaves httpx's connection unusable, so silence is never timed by
cancelling the read: the watchdog ends the whole stream instead, which closes the upstream.
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Sequence
from typing import Any

import anyio
import anyio.abc
import httpx

from guardstream.checks import CheckRequest
from guardstream.classifiers import ClassifierFailure, Verdict
from guardstream.stream import StreamModerator

UPSTREAM_DROPPED = "guardstream stopped the response: the upstream connection broke off mid-stream"
UPSTREAM_IDLE = "guardstream stopped the response: the upstream sent nothing for {seconds:g} s"
SHUTTING_DOWN = "guardstream stopped the response: the server is shutting down"

SendBody = Callable[[bytes], Awaitable[None]]
RunCheck = Callable[[CheckRequest], Awaitable[list[Verdict | ClassifierFailure]]]


class StreamRelay:
    """Runs one stream through `moderator` until it is done, the client is gone, or time is up."""

    def __init__(
        self,
        moderator: StreamModerator,
        send_body: SendBody,
        *,
        idle: float,
        keepalive: float,
        run_check: RunCheck,
        on_upstream_failure: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.moderator = moderator
        self.idle = idle
        self.keepalive = keepalive
        # Set on shutdown: the stream may go on until then, and then ends with the terminal event.
        self.deadline: float | None = None
        self._send_body = send_body
        self._run_check = run_check
        self._on_upstream_failure = on_upstream_failure
        self._clock = clock
        self._task_group: anyio.abc.TaskGroup | None = None
        # When the read now waiting on the upstream began (None while no read is waiting).
        self._reading_since: float | None = None
        self._upstream_closed = False
        self._last_client = clock()
        # The watchdog's sleep, and whether it was planned with a keep-alive in view.
        self._nap: anyio.CancelScope | None = None
        self._nap_minds_client = False
        self._outbox: list[bytes] = []
        self._writing = False
        self._written: anyio.Event | None = None

    def end_by(self, deadline: float) -> None:
        """Shutdown: end the stream with the format's terminal event at `deadline` (monotonic)."""
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)
        self._wake_watchdog()

    async def run(
        self,
        chunks: AsyncIterator[bytes],
        beside: Sequence[Callable[[anyio.CancelScope], Coroutine[Any, Any, None]]] = (),
    ) -> None:
        """Relay `chunks` (the upstream body) until the moderator is done.

        `beside`: tasks that run alongside and may end the stream early by cancelling the scope
        they are given (the proxy's watch for a client that left). Returns early, with the stream
        unfinished, only when cancelled (the client left, the total time ran out).
        """
        async with anyio.create_task_group() as task_group:
            self._task_group = task_group
            task_group.start_soon(self._watch)
            for task in beside:
                task_group.start_soon(task, task_group.cancel_scope)
            await self._read(chunks)
            if not self.moderator.is_done:
                # Classifier answers are still due: their tasks (or the watchdog) end the stream.
                await anyio.sleep_forever()
            await self._deliver(b"")  # what another task is still writing goes out first
            task_group.cancel_scope.cancel()

    async def _read(self, chunks: AsyncIterator[bytes]) -> None:
        moderator = self.moderator
        clock = self._clock
        try:
            self._reading_since = clock()
            async for chunk in chunks:
                self._reading_since = None
                await self._deliver(moderator.feed(chunk))
                if moderator.is_done:
                    return
                self._start_checks()
                if moderator.is_holding and not self._nap_minds_client:
                    self._wake_watchdog()  # text is held now: the keep-alive clock matters
                self._reading_since = clock()
        except httpx.HTTPError as exc:
            self._reading_since = None
            # A read that timed out waited at least `idle`: the same silence the watchdog reports
            # when it wins the race against the reader's own timeout.
            if isinstance(exc, httpx.TimeoutException):
                self._on_upstream_failure("timeout")
                await self._deliver(moderator.fail(UPSTREAM_IDLE.format(seconds=self.idle)))
            else:
                self._on_upstream_failure("dropped")
                await self._deliver(moderator.fail(UPSTREAM_DROPPED))
            return
        self._reading_since = None
        self._upstream_closed = True
        await self._deliver(moderator.finish())
        self._start_checks()
        self._wake_watchdog()

    def _start_checks(self) -> None:
        requests = self.moderator.take_checks()
        if requests:
            assert self._task_group is not None
            for request in requests:
                self._task_group.start_soon(self._check, request)

    async def _check(self, request: CheckRequest) -> None:
        results = await self._run_check(request)
        moderator = self.moderator
        await self._deliver(moderator.check_done(request, results))
        if moderator.is_done:
            self._stop()
            return
        self._start_checks()

    async def _watch(self) -> None:
        """Sleep until the next deadline, act on it, repeat."""
        moderator = self.moderator
        while not moderator.is_done:
            now = self._clock()
            if self.deadline is not None and now >= self.deadline:
                await self._deliver(moderator.fail(SHUTTING_DOWN))
                self._stop()
                return
            reading = self._reading_since
            if reading is not None and now - reading >= self.idle:
                self._on_upstream_failure("timeout")
                await self._deliver(moderator.fail(UPSTREAM_IDLE.format(seconds=self.idle)))
                self._stop()
                return
            # The client hears from us while it waits on held text or on classifiers.
            minds_client = moderator.is_holding or self._upstream_closed
            if minds_client and now - self._last_client >= self.keepalive:
                await self._deliver(moderator.keepalive())
                self._last_client = self._clock()
                continue
            wait = self.keepalive - (now - self._last_client) if minds_client else self.keepalive
            # No read waiting now (the reader is writing): one may begin at any moment.
            wait = min(wait, self.idle if reading is None else self.idle - (now - reading))
            if self.deadline is not None:
                wait = min(wait, self.deadline - now)
            self._nap_minds_client = minds_client
            with anyio.CancelScope(deadline=anyio.current_time() + max(0.0, wait)) as self._nap:
                await anyio.sleep(math.inf)
            self._nap = None

    def _wake_watchdog(self) -> None:
        if self._nap is not None:
            self._nap.cancel()

    @property
    def unsent(self) -> bool:
        """Bytes the moderator gave out are still waiting to be written (the relay was cut short)."""
        return bool(self._outbox)

    def _stop(self) -> None:
        """The stream is over (or must be): stop reading and waiting. Callers have delivered
        their last bytes first, so nothing written or queued is cut off."""
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()

    async def _deliver(self, data: bytes) -> None:
        """Write `data` after everything produced before it, and return once it is written.

        With no data, it only waits for what is being written: a task that ends the stream
        delivers first, so the end never cuts another task's write short.
        """
        if self._writing:
            if data:
                self._outbox.append(data)
            if self._written is None:
                self._written = anyio.Event()
            await self._written.wait()
            return
        if not data:
            return
        self._writing = True
        try:
            await self._send_body(data)
            while self._outbox:
                data = b"".join(self._outbox)
                self._outbox.clear()
                await self._send_body(data)
        finally:
            self._writing = False
            self._last_client = self._clock()
            written, self._written = self._written, None
            if written is not None:
                written.set()
