"""One moderated stream on the move: upstream chunks in, the moderator's bytes out, silence timed.

The proxy's hot path. The stream's own task reads the upstream. A chunk that comes after a wait
it moderates and writes to the client itself, as a bare pass-through proxy would. When the
upstream is faster than guardstream, a single network read carries a hundred events or more,
which httpx hands over one HTTP chunk at a time without waiting: past the first few, those go to
an inbox, and a task started for it (once, at the first such burst: paced streams never need
one) takes everything there, moderates it as one piece and writes it once. No timer is armed per
read. Everything that happens *between* chunks runs beside it:

- a watchdog timer fires at the next deadline (the upstream silent for `idle` while a read is
  waiting; the client told nothing for `keepalive` while text is held or classifiers are out;
  a shutdown's cut-off) and acts on it: a keep-alive, or the format's terminal event, written by
  a task started then. A timer, not a task that sleeps: a task per stream cost ~5 KiB of memory
  and a task's start-up on every request, for deadlines that nearly never come;
- classifier checks run as tasks of their own; their answers are moderated when they come.

Several tasks may have bytes for the client, so writes go through one outbox: whoever finds no
write in progress writes, and takes along what the others queued meanwhile; the others wait
until it is out. Bytes leave in the order the moderator produced them, and a slow client slows
the upstream read down (back-pressure: the inbox holds at most `MAX_INBOX_BYTES`), as it would
without guardstream.

A read that is cancelled leaves httpx's connection unusable, so silence is never timed by
cancelling the read: the watchdog ends the whole stream instead, which closes the upstream.
"""

from __future__ import annotations

import asyncio
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

# What the upstream may run ahead of the moderator (and so of a slow client): one network read.
MAX_INBOX_BYTES = 64 * 1024
# After the format's end event, what the reader is given to see the end of the body (and the
# proxy to read it), so that httpx can pool the connection: an upstream sends it at once.
REST_SECONDS = 0.5
# Chunks of one burst the reader moderates itself before it hands the rest over: a short burst
# (a server catching up) costs no hand-over, a long one (a fast upstream) is moderated at once.
INLINE_PER_BURST = 4

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
        # The watchdog's timer, and whether it was planned with a keep-alive in view.
        self._timer: asyncio.TimerHandle | None = None
        # The task that starts what the timer found due (kept: the loop holds tasks only weakly).
        self._handover: asyncio.Task[None] | None = None
        self._nap_minds_client = False
        self._outbox: list[bytes] = []
        self._writing = False
        self._written: anyio.Event | None = None
        # Chunks read and not yet moderated; the events that wake the moderating task when they
        # come, and the reader when they are taken; how the upstream body ended ("end",
        # "timeout", "dropped"; None while it is being read).
        self._inbox: list[bytes] = []
        self._inbox_bytes = 0
        self._inbox_filled: anyio.Event | None = None
        self._inbox_taken: anyio.Event | None = None
        self._upstream_end: str | None = None
        # Chunks the reader has moderated itself since the event loop last went round.
        self._burst = 0
        self._reader_done = anyio.Event()
        # Set once the task that moderates the inbox has started, and when it has finished.
        self._moderating: anyio.Event | None = None

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
        try:
            async with anyio.create_task_group() as task_group:
                self._task_group = task_group
                self._wake_watchdog()
                for task in beside:
                    task_group.start_soon(task, task_group.cancel_scope)
                await self._pull(chunks)
                if self._moderating is None:
                    await self._moderate()  # the end of the body, or of the stream
                else:
                    await self._moderating.wait()
                if not self.moderator.is_done:
                    # Classifier answers are still due: their tasks (or the watchdog) end the stream.
                    await anyio.sleep_forever()
                await self._deliver(b"")  # what another task is still writing goes out first
                task_group.cancel_scope.cancel()
        finally:
            # No deadline outlives the stream (a timer would otherwise start tasks in a closed group).
            self._task_group = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    async def _pull(self, chunks: AsyncIterator[bytes]) -> None:
        """Read the upstream body until it ends (or the stream is over).

        A chunk that comes with nothing else pending is moderated and written here and now, as a
        bare proxy would: events that come one at a time cost no hand-over. Chunks that keep
        coming before this task next waits are a burst (httpx handing over what one network read
        brought): past its first `INLINE_PER_BURST` they go to the inbox, and the inbox's task
        takes them all at once. (Handing over every chunk after the first cost a server catching
        up on bursts of two or three more than it saved: paced streams, +90 ms latency.)
        """
        clock = self._clock
        inbox = self._inbox
        moderator = self.moderator
        loop = asyncio.get_running_loop()
        try:
            self._reading_since = clock()
            async for chunk in chunks:
                self._reading_since = None
                # Nothing read is left to moderate: no inbox task, or one waiting on an empty inbox.
                idle = self._moderating is None or self._inbox_filled is not None
                if idle and not inbox and self._burst < INLINE_PER_BURST:
                    if not self._burst:
                        loop.call_soon(self._burst_over)
                    self._burst += 1
                    if await self._take(chunk):
                        return
                else:
                    inbox.append(chunk)
                    self._inbox_bytes += len(chunk)
                    if self._moderating is None:
                        self._moderating = anyio.Event()
                        assert self._task_group is not None
                        self._task_group.start_soon(self._moderate_inbox)
                    self._wake_moderator()
                    if self._inbox_bytes >= MAX_INBOX_BYTES:
                        self._inbox_taken = taken = anyio.Event()
                        await taken.wait()
                    if moderator.is_done:
                        return
                self._reading_since = clock()
            self._upstream_end = "end"
        except httpx.HTTPError as exc:
            # A read that timed out waited at least `idle`: the same silence the watchdog reports
            # when it wins the race against the reader's own timeout.
            self._upstream_end = "timeout" if isinstance(exc, httpx.TimeoutException) else "dropped"
        finally:
            self._reading_since = None
            self._reader_done.set()
            self._wake_moderator()

    def _burst_over(self) -> None:
        # Runs once the reader has waited (the event loop went round): the next chunk starts anew.
        self._burst = 0

    def _wake_moderator(self) -> None:
        filled = self._inbox_filled
        if filled is not None:
            self._inbox_filled = None
            filled.set()

    async def _take(self, data: bytes) -> bool:
        """Moderate `data` and deliver the result; True once the stream is done."""
        moderator = self.moderator
        await self._deliver(moderator.feed(data))
        if moderator.is_done:
            return True
        self._start_checks()
        if moderator.is_holding and not self._nap_minds_client:
            self._wake_watchdog()  # text is held now: the keep-alive clock matters
        return False

    async def _moderate_inbox(self) -> None:
        """The inbox's task: `_moderate` beside the reader, which may still be reading when it ends."""
        assert self._moderating is not None
        try:
            await self._moderate()
            if self.moderator.is_done and not self._reader_done.is_set():
                await self._deliver(b"")  # what another task is still writing goes out first
                if self.moderator.has_delivered_end:
                    # The end event came in a burst, from the inbox, and the reader waits for the end
                    # of the body: cancelling that read would close a connection httpx could pool.
                    with anyio.move_on_after(REST_SECONDS):
                        await self._reader_done.wait()
                if not self._reader_done.is_set():
                    self._stop()
        finally:
            self._moderating.set()

    async def _moderate(self) -> None:
        """Moderate and deliver what the reader left in the inbox, all of it at once, until the
        body ends (or the reader ended the stream)."""
        moderator = self.moderator
        inbox = self._inbox
        while not moderator.is_done:
            if inbox:
                data = inbox[0] if len(inbox) == 1 else b"".join(inbox)
                inbox.clear()
                self._inbox_bytes = 0
                taken = self._inbox_taken
                if taken is not None:
                    self._inbox_taken = None
                    taken.set()
                if await self._take(data):
                    return
                continue
            end = self._upstream_end
            if end is not None:
                break
            self._inbox_filled = filled = anyio.Event()
            await filled.wait()
        else:
            return
        if end == "end":
            self._upstream_closed = True
            await self._deliver(moderator.finish())
            self._start_checks()
            self._wake_watchdog()
            return
        self._on_upstream_failure(end)
        message = UPSTREAM_IDLE.format(seconds=self.idle) if end == "timeout" else UPSTREAM_DROPPED
        await self._deliver(moderator.fail(message))

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

    def _wake_watchdog(self) -> None:
        """Plan the watchdog's next look at the deadlines anew (something changed what is due)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task_group is None or self.moderator.is_done:
            return
        now = self._clock()
        reading = self._reading_since
        minds_client = self._minds_client
        wait = self.keepalive - (now - self._last_client) if minds_client else self.keepalive
        # No read waiting now (the reader is writing): one may begin at any moment.
        wait = min(wait, self.idle if reading is None else self.idle - (now - reading))
        if self.deadline is not None:
            wait = min(wait, self.deadline - now)
        self._nap_minds_client = minds_client
        self._timer = asyncio.get_running_loop().call_later(max(0.0, wait), self._watch)

    def _watch(self) -> None:
        """The watchdog's timer fired: act on what is due, or plan the next look."""
        self._timer = None
        moderator = self.moderator
        if self._task_group is None or moderator.is_done:
            return
        now = self._clock()
        # What the moderator gives out is decided here, at once, as a chunk's bytes are when it
        # is read; a task writes them (in order, behind whatever is being written).
        if self.deadline is not None and now >= self.deadline:
            self._act(self._end, moderator.fail(SHUTTING_DOWN))
            return
        reading = self._reading_since
        if reading is not None and now - reading >= self.idle:
            self._on_upstream_failure("timeout")
            self._act(self._end, moderator.fail(UPSTREAM_IDLE.format(seconds=self.idle)))
            return
        if self._minds_client and now - self._last_client >= self.keepalive:
            self._act(self._keep_alive, moderator.keepalive())
            return
        self._wake_watchdog()

    @property
    def _minds_client(self) -> bool:
        """The client hears from us (keep-alives) while it waits on held text or on classifiers."""
        return self.moderator.is_holding or self._upstream_closed

    def _act(self, action: Callable[[bytes], Coroutine[Any, Any, None]], data: bytes) -> None:
        """Have `action(data)` run as a task of the stream's group (its failures end the stream, its
        write is cut off with the stream). anyio starts tasks only from a task, and a timer's
        callback is none: a task of asyncio's own hands it over."""
        self._handover = asyncio.get_running_loop().create_task(self._hand_over(action, data))

    async def _hand_over(self, action: Callable[[bytes], Coroutine[Any, Any, None]], data: bytes) -> None:
        self._handover = None
        if self._task_group is not None:  # else the stream ended meanwhile
            self._task_group.start_soon(action, data)

    async def _end(self, data: bytes) -> None:
        await self._deliver(data)
        self._stop()

    async def _keep_alive(self, data: bytes) -> None:
        await self._deliver(data)
        self._last_client = self._clock()
        self._wake_watchdog()

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
