"""StreamModerator: SSE bytes in, moderated SSE bytes out. The one moderation path.

Sans-I/O: the proxy and the middleware feed it upstream bytes and send what it returns.

```
 bytes ─► SSEDecoder ─► codec.parse ─► TextParts ─► Window per channel ─► verdicts
                              │                                              │
                              └────────► release queue (event order) ◄──────┘
                                            │ an event leaves when all its text is released:
                                            │ raw bytes if untouched, codec.rewrite if redacted
                                            ▼
                                   bytes out; on a block: the released prefix, then one
                                   terminal event (codec.violation_event) and `is_done`
```
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from guardstream.providers.base import Channel, ParsedEvent, StreamCodec, block_message
from guardstream.rules import Rule
from guardstream.sse import Event, SSEDecoder
from guardstream.window import DEFAULT_CONTEXT_CHARS, DEFAULT_MAX_HOLDBACK_CHARS, Verdict, Violation, Window

OnViolation = Literal["error", "finish"]
MALFORMED_MESSAGE = "guardstream stopped the response: the upstream sent a malformed event"


class StreamObserver(Protocol):
    """Where a stream reports what it did as it goes (metrics implement this)."""

    def on_violation(self, violation: Violation) -> None: ...

    def on_release(self, chars: int, delay_seconds: float) -> None: ...

    def on_holdback(self, chars: int) -> None: ...

    def on_forced_release(self, chars: int) -> None: ...

    def on_scan(self, seconds: float) -> None: ...


@dataclass(slots=True)
class _Part:
    window: Window
    start: int
    end: int
    text: str
    rendered_to: int
    pieces: list[str] = field(default_factory=list)


@dataclass(slots=True)
class _Pending:
    event: Event
    parsed: ParsedEvent | None
    received_at: float
    parts: list[_Part] = field(default_factory=list)

    def is_released(self) -> bool:
        return all(p.rendered_to >= p.end for p in self.parts)


class StreamModerator:
    """Moderates one streamed response.

    ```python
    moderator = StreamModerator(OpenAIChatStream(), rules)
    async for chunk in upstream.aiter_raw():
        await send(moderator.feed(chunk))
        if moderator.is_done:      # a terminal event was emitted: close both sides
            break
    else:
        await send(moderator.finish())
    ```
    """

    def __init__(
        self,
        codec: StreamCodec,
        rules: Sequence[Rule],
        *,
        max_holdback_chars: int = DEFAULT_MAX_HOLDBACK_CHARS,
        context_chars: int = DEFAULT_CONTEXT_CHARS,
        on_violation: OnViolation = "error",
        observer: StreamObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.codec = codec
        self.rules = tuple(rules)
        self.max_holdback_chars = max_holdback_chars
        self.context_chars = context_chars
        self.on_violation = on_violation
        self.observer = observer
        self.clock = clock
        self.decoder = SSEDecoder()
        self.violations: list[Violation] = []
        self.blocked: Violation | None = None
        self.failure: str | None = None
        self.is_done = False
        self.is_redacted = False
        # The client has the whole answer (its final event left), even if upstream has not closed.
        self.has_delivered_end = False
        self._windows: dict[Channel, Window] = {}
        self._queue: deque[_Pending] = deque()

    def feed(self, chunk: bytes) -> bytes:
        if self.is_done:
            return b""
        out: list[bytes] = []
        for event in self.decoder.decode(chunk):
            self._accept(event)
            if self.blocked is not None or self.failure is not None:
                break
        return self._emit(out)

    def finish(self) -> bytes:
        """The upstream ended cleanly: decide all pending text, then let every event go."""
        if self.is_done:
            return b""
        for event in self.decoder.flush():
            self._accept(event)
        if self.blocked is None and self.failure is None:
            self._flush_windows(lambda channel: True)
        out = self._emit([])
        self.is_done = True
        return out

    def fail(self, message: str) -> bytes:
        """The upstream broke off: held text is dropped (fail closed) and the client gets a clear error."""
        if self.is_done:
            return b""
        self.failure = message
        return self._emit([])

    def _accept(self, event: Event) -> None:
        pending = _Pending(event, None, self.clock())
        if not event.has_data:
            self._queue.append(pending)
            return
        try:
            parsed = self.codec.parse(event)
        except Exception:  # ProviderError or any other codec failure: a terminal event, never a cut
            self.failure = MALFORMED_MESSAGE
            return
        pending.parsed = parsed
        started = time.perf_counter()
        for part in parsed.parts:
            window = self._windows.get(part.channel)
            if window is None:
                window = self._windows[part.channel] = Window(
                    self.rules, max_holdback_chars=self.max_holdback_chars, context_chars=self.context_chars
                )
            start = window.end
            verdict = window.push(part.text)
            pending.parts.append(_Part(window, start, window.end, part.text, start))
            self._note(verdict)
        if self.blocked is None:
            if parsed.closes_all:
                self._flush_windows(lambda channel: True)
            elif parsed.closes:
                closes = parsed.closes
                self._flush_windows(lambda channel: any(channel[: len(p)] == p for p in closes))
        if self.observer is not None:
            self.observer.on_scan(time.perf_counter() - started)
        self._queue.append(pending)

    def _flush_windows(self, selected: Callable[[Channel], bool]) -> None:
        for channel in [c for c in self._windows if selected(c)]:
            self._note(self._windows.pop(channel).flush())

    def _note(self, verdict: Verdict) -> None:
        for violation in verdict.violations:
            self.violations.append(violation)
            if violation.action == "redact":
                self.is_redacted = True
            if self.observer is not None:
                self.observer.on_violation(violation)
        if verdict.blocked is not None and self.blocked is None:
            self.blocked = verdict.blocked
        if self.observer is not None:
            self.observer.on_holdback(verdict.held_chars)
            if verdict.forced_chars:
                self.observer.on_forced_release(verdict.forced_chars)

    def _emit(self, out: list[bytes]) -> bytes:
        self._render()
        now = self.clock()
        while self._queue and self._queue[0].is_released():
            pending = self._queue.popleft()
            out.append(self._encode(pending))
            if pending.parsed is not None and pending.parsed.closes_all:
                self.has_delivered_end = True
            if self.observer is not None and pending.parts:
                chars = sum(len("".join(p.pieces)) for p in pending.parts)
                self.observer.on_release(chars, now - pending.received_at)
        if self.blocked is not None:
            out.append(self._end_blocked(self.blocked))
        elif self.failure is not None:
            self._queue.clear()
            out.append(self.codec.failure_event(self.failure))
            self.is_done = True
        return b"".join(out)

    def _render(self) -> None:
        for pending in self._queue:
            for part in pending.parts:
                released = part.window.released
                if part.rendered_to < part.end and released > part.rendered_to:
                    upto = min(released, part.end)
                    part.pieces.append(part.window.render(part.rendered_to, upto))
                    part.rendered_to = upto

    def _encode(self, pending: _Pending) -> bytes:
        texts = ["".join(p.pieces) for p in pending.parts]
        if pending.parsed is None or all(t == p.text for t, p in zip(texts, pending.parts, strict=True)):
            return pending.event.raw
        return self.codec.rewrite(pending.event, pending.parsed, texts)

    def _end_blocked(self, violation: Violation) -> bytes:
        out: list[bytes] = []
        # Everything before the match that is itself clear still reaches the client, even when it
        # shares an event with the match.
        if self._queue:
            head = self._queue[0]
            if head.parsed is not None and any(p.pieces for p in head.parts):
                texts = ["".join(p.pieces) for p in head.parts]
                out.append(self.codec.rewrite_partial(head.event, head.parsed, texts))
            # Events that never left did not finish anything the client knows of.
            for pending in self._queue:
                if pending.parsed is not None:
                    self.codec.reopen(pending.parsed)
        self._queue.clear()
        if self.on_violation == "finish":
            out.append(self.codec.finish_events())
        else:
            out.append(self.codec.violation_event(block_message(violation.rule.id, violation.rule.category)))
        self.is_done = True
        return b"".join(out)
