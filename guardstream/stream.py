"""StreamModerator: SSE bytes in, moderated SSE bytes out. The one streaming moderation path.

Sans-I/O: the proxy, the middleware and the Python API feed it bytes and send what it returns.

```
 bytes ─► SSEDecoder ─► codec.parse ─► TextParts ─► TextChannels (a window per view) ─► verdicts
                              │                                                          │
                              └──────────► release queue (event order) ◄────────────────┘
                                            │ an event leaves when all its text is released:
                                            │ raw bytes if untouched and plain, re-encoded otherwise
                                            ▼
                   bytes out; on a block: the released head, then one terminal event, then nothing
```

Events that repeat a shape already parsed skip `codec.parse` (`shapes.py`); several of them in a
row in one read skip the decoder too and go through as one run: one text part, their bytes sent
as they came as far as their text is released (`_read`, `_release_run`).

Fail closed on anything it cannot read: a block without data (comments, ids) is never relayed
(a keep-alive of our own stands in for it where the format allows one); a malformed event, or a
stream that ends without the format's terminator, ends with the terminal error event and drops
whatever text was still held; nothing after the terminator is read.
"""

from __future__ import annotations

import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import accumulate
from typing import Literal, Protocol

from guardstream.channels import ChannelObserver, PartState, TextChannels
from guardstream.checks import CheckPlan, CheckRequest, FailureLike, VerdictLike
from guardstream.errors import ProviderError
from guardstream.payload import TextPart, loads_strict
from guardstream.providers.base import ParsedEvent, StreamCodec, block_message
from guardstream.rules import Rule
from guardstream.shapes import Run, Shape, Shapes
from guardstream.sse import Event, SSEDecoder, field_lines, with_fields
from guardstream.window import DEFAULT_CONTEXT_CHARS, DEFAULT_MAX_HOLDBACK_CHARS, RuleBudget, Violation

OnViolation = Literal["error", "finish"]
MALFORMED_MESSAGE = "guardstream stopped the response: the upstream sent a malformed event"
UNTERMINATED_MESSAGE = "guardstream stopped the response: the upstream ended the stream without finishing it"


class StreamObserver(ChannelObserver, Protocol):
    """Where a stream reports what it did as it goes (metrics implement this)."""

    def on_release(self, chars: int, delays_seconds: Sequence[float]) -> None:
        """Events left: `chars` characters of text in all, each event `delays_seconds[i]` after it
        arrived. One call per batch written (a counter update per event cost ~2 µs)."""

    def on_scan(self, seconds: float) -> None: ...


@dataclass(slots=True)
class _Pending:
    event: Event
    parsed: ParsedEvent
    received_at: float
    parts: list[PartState]
    # Read by its shape (see shapes.py): until the event must be rewritten (`_materialise`), its
    # `parsed` and `parts` are placeholders and its one text part is `open[0]`.
    shape: Shape | None
    # The parts still to be released (text), and whether the others (values, decided at once)
    # left as they came: an event is re-rendered and re-checked only through its open parts.
    open: list[PartState]
    settled_unchanged: bool
    # An event read by a shape with a pad: the pad's state (a value, decided at once).
    pad: PartState | None = None
    # With `keep_fields`: the block's `event`, `id`, `retry` and comment lines, and the state of
    # each one's value (None for `retry`, digits only), decided at once like any value.
    fields: list[tuple[str, str, PartState | None]] | None = None

    def fields_unchanged(self) -> bool:
        return self.fields is None or all(state is None or state.is_unchanged() for _, _, state in self.fields)

    @classmethod
    def parsed_from(cls, event: Event, parsed: ParsedEvent, received_at: float, parts: list[PartState]) -> _Pending:
        settled = [p for p in parts if p.is_released]
        still_open = [p for p in parts if not p.is_released]
        unchanged = all(p.is_unchanged() for p in settled)
        return cls(event, parsed, received_at, parts, None, still_open, unchanged)

    def is_released(self) -> bool:
        open_parts = self.open
        if len(open_parts) == 1:  # nearly every event: one text part
            return open_parts[0].is_released
        return all(p.is_released for p in open_parts)


@dataclass(slots=True)
class _Run:
    """Events in a row of one shape, read together from one read (`Shapes.run`) and pushed as
    one text part: they leave as the bytes they came as, each once its text is released, as long
    as nothing in them must be rewritten; then they go on as events of their own (`_explode`)."""

    raw: bytes
    shape: Shape
    # All their texts, pushed as one part of the shape's views.
    state: PartState
    texts: list[str]
    # Their pads (all released as they came), if the shape has pads.
    pads: list[str] | None
    # Where each event's text ends in the part, and its bytes in `raw`.
    text_ends: list[int]
    byte_ends: list[int]
    received_at: float
    # Events already sent.
    done: int = 0


class StreamModerator:
    """Moderates one streamed response.

    ```python
    moderator = StreamModerator(OpenAIChatStream(), rules)
    async for chunk in upstream.aiter_bytes():
        await send(moderator.feed(chunk))
        if moderator.is_done:      # the terminator or a terminal event went out: close both sides
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
        normalize: bool = True,
        observer: StreamObserver | None = None,
        clock: Callable[[], float] = time.monotonic,
        rule_budget_seconds: float | None = None,
        plans: Sequence[CheckPlan] = (),
        keep_fields: bool = False,
    ) -> None:
        self.codec = codec
        # Relay `id:`, `retry:` and comment lines (each value moderated on its own path, as is the
        # `event:` name) instead of dropping them: for an app's own stream, whose client may be an
        # EventSource that reconnects with Last-Event-ID. The proxy drops them (they are its own
        # business with the upstream, not the client's).
        self.keep_fields = keep_fields
        self._flushing = False
        self.rules = tuple(rules)
        self.on_violation = on_violation
        self.observer = observer
        self.clock = clock
        self.decoder = SSEDecoder()
        self.channels = TextChannels(
            rules,
            max_holdback_chars=max_holdback_chars,
            context_chars=context_chars,
            normalize=normalize,
            observer=observer,
            budget=RuleBudget(rule_budget_seconds) if rule_budget_seconds is not None else None,
            plans=plans,
        )
        self.failure: str | None = None
        self.is_done = False
        self.is_upstream_error = False
        # The client has the whole answer (its terminator left), even if the upstream has not closed.
        self.has_delivered_end = False
        # When text was first received, and first released (time to first token, and our part of it).
        self.first_text_at: float | None = None
        self.first_release_at: float | None = None
        self._ended = False
        self._upstream_closed = False
        self._keepalive = False
        self._queue: deque[_Pending | _Run] = deque()
        # Codecs that say which events repeat a shape get their text deltas read without parsing.
        can_repeat = getattr(codec, "can_repeat", None)
        self._can_repeat: Callable[[ParsedEvent], bool] | None = can_repeat
        self._shapes = Shapes() if can_repeat is not None else None
        # Fields whose value differs in every event and means nothing (OpenAI's `obfuscation`):
        # a shape cuts them out like the text, so such events are still read by their shape.
        self._pads: frozenset[str] = getattr(codec, "pad_fields", frozenset())

    @property
    def violations(self) -> list[Violation]:
        return self.channels.violations

    @property
    def blocked(self) -> Violation | None:
        return self.channels.blocked

    @property
    def is_redacted(self) -> bool:
        return self.channels.is_redacted

    @property
    def held_chars(self) -> int:
        return self.channels.held_chars

    @property
    def is_holding(self) -> bool:
        """Events are waiting for their text to be decided (the client hears nothing meanwhile)."""
        return bool(self._queue)

    def feed(self, chunk: bytes) -> bytes:
        if self.is_done:
            return b""
        if self._shapes is not None and self._shapes.has_runs:
            self._read(chunk)
        else:
            for event in self.decoder.decode(chunk):
                self._accept(event)
                if self._is_stopped():
                    break
        self._settle()
        return self._emit()

    def _read(self, chunk: bytes) -> None:
        """`feed` for a stream with shapes to read runs by: runs of like events are taken
        straight from the bytes; whatever else comes is decoded block by block (the decoder reads
        any split of the bytes alike, so where the pieces end only decides when runs are tried)."""
        shapes = self._shapes
        assert shapes is not None
        decoder = self.decoder
        pos, size = 0, len(chunk)
        while pos < size:
            if decoder.is_between_blocks:
                run = shapes.run(chunk, pos)
                if run is not None:
                    taken = self._accept_run(chunk, pos, run)
                    if taken:
                        pos += taken
                        continue
            if decoder.is_at_line_start and not decoder.is_between_blocks and chunk.startswith(b"\n", pos):
                end = pos + 1
            else:
                end = chunk.find(b"\n\n", pos)
                end = size if end < 0 else end + 2
            for event in decoder.decode(chunk[pos:end]):
                self._accept(event)
                if self._is_stopped():
                    return
            pos = end

    def _accept_run(self, chunk: bytes, pos: int, run: Run) -> int:
        """Take in the events of `run` whose pads are clean (the others are read one by one, so
        a pad to rewrite gets its event rewritten); the bytes taken."""
        count = len(run.texts)
        if run.pads is not None:
            count = self.channels.clean_pads(run.pads)
            if not count:
                return 0
        texts = run.texts if count == len(run.texts) else run.texts[:count]
        pads = run.pads if run.pads is None or count == len(run.pads) else run.pads[:count]
        byte_ends = list(accumulate(run.sizes[:count]))
        now = self.clock()
        shape = run.shape
        state = self.channels.add_text(shape.part_with("".join(texts)))
        taken = byte_ends[-1]
        raw = chunk[pos : pos + taken] if pos or taken != len(chunk) else chunk
        self._queue.append(_Run(raw, shape, state, texts, pads, list(accumulate(map(len, texts))), byte_ends, now))
        if self.first_text_at is None:
            self.first_text_at = now
        return taken

    def finish(self) -> bytes:
        """The upstream closed the body: decide what is left, or fail if it never finished.

        With classifier checks still out, the last events wait for them: `is_done` turns true
        once they are answered (`check_done`).
        """
        if self.is_done:
            return b""
        if not self._ended:
            # A block the upstream never ended is re-encoded, never relayed with its fields as if whole.
            self._flushing = True
            for event in self.decoder.flush(dispatch_unterminated=True):
                self._accept(event)
                if self._is_stopped():
                    break
        if not self._is_stopped():
            if self.codec.is_complete:
                self.channels.flush()
                self._ended = True
            else:
                # Held text may be the start of a match that the rest would have completed.
                self.failure = UNTERMINATED_MESSAGE
        self._settle()
        self._upstream_closed = True
        return self._emit()

    @property
    def is_checking(self) -> bool:
        """Classifier checks are out: the adapter must wait for them before it may close."""
        return self.channels.is_checking

    def take_checks(self) -> list[CheckRequest]:
        """Checks to run now (each returned once); answer each with `check_done`."""
        return self.channels.take_checks()

    def check_done(self, request: CheckRequest, results: Sequence[VerdictLike | FailureLike]) -> bytes:
        """A classifier answered: what it cleared may leave; what it flagged ends the stream."""
        if self.is_done:
            return b""
        self.channels.resolve(request, results)
        return self._emit()

    def fail(self, message: str) -> bytes:
        """The upstream broke off: held text is dropped (fail closed) and the client gets a clear error."""
        if self.is_done:
            return b""
        self.failure = message
        return self._emit()

    def cut_short(self, message: str) -> bytes:
        """Bytes given out earlier never reached the client (the adapter ran out of time while
        writing): whatever was decided, the stream ends with the failure event."""
        self.failure = message
        self.has_delivered_end = False
        self.is_done = True
        self._queue.clear()
        return self._mirror(self.codec.failure_event(message))

    def keepalive(self) -> bytes:
        """Something for the client to read while text is held (b"" where the format allows none)."""
        if self.is_done:
            return b""
        return self._mirror(self.codec.keepalive())

    def _is_stopped(self) -> bool:
        return self.channels.blocked is not None or self.failure is not None or self._ended

    def _accept(self, event: Event) -> None:
        fields = self._fields(event) if self.keep_fields and not self._flushing else None
        if not event.has_data:
            if fields is not None:
                # A comment, an id or a retry on its own: it leaves as it came once its values are clear.
                self._queue.append(_Pending(event, ParsedEvent(), self.clock(), [], None, [], True, None, fields))
                return
            # Comments, ids, data-less blocks: never relayed as they came.
            self._keepalive = True
            return
        now = self.clock()
        shapes = self._shapes
        if shapes is not None and event.is_plain and fields is None:
            known = shapes.match(event)
            if known is not None:
                shape, text, pad = known
                state = self.channels.add_text(shape.part_with(text))
                if self.first_text_at is None:
                    self.first_text_at = now
                self._queue.append(self._shaped(event, shape, state, pad, now))
                return
        try:
            parsed = self.codec.parse(event)
        except Exception:  # ProviderError or any other codec failure: a terminal event, never a cut
            self.failure = MALFORMED_MESSAGE
            return
        if parsed.is_error:
            self.is_upstream_error = True
        try:
            states = [self.channels.add(part) for part in parsed.parts]
        except ProviderError:  # a repeat that says other than was streamed
            self.failure = MALFORMED_MESSAGE
            return
        pending = _Pending.parsed_from(event, parsed, now, states)
        pending.fields = fields
        if parsed.is_end and self.channels.blocked is None:
            self._settle()
            self.channels.flush()
            self._ended = True
        elif (parsed.closes or parsed.ends_rows) and self.channels.blocked is None:
            self._settle()
            if parsed.closes:
                self.channels.close(parsed.closes)
                if self._shapes is not None:
                    # A shape may name a closed view: events that repeat it must reach the codec
                    # again, which refuses text for a view that is complete.
                    self._shapes.forget()
            if parsed.ends_rows:
                self.channels.close(parsed.ends_rows, sealed=False)
        if self.first_text_at is None and any(not p.part.is_value for p in pending.parts):
            self.first_text_at = now
        self._queue.append(pending)
        if (
            shapes is not None
            and shapes.is_learning
            and event.is_plain
            and self.channels.blocked is None
            and self._can_repeat is not None
            and self._can_repeat(parsed)
        ):
            shapes.learn(
                event,
                parsed.payload,
                parsed.parts,
                pending.parts,
                unchanged=[not p.is_released or p.is_unchanged() for p in pending.parts],
                pads=self._pads,
            )

    def _fields(self, event: Event) -> list[tuple[str, str, PartState | None]] | None:
        """The block's field lines with each value decided (`keep_fields`), or None when it needs no
        field handling (nothing but data, or only clear event names, which the codec carries over)
        or holds something it cannot be relayed with (see `field_lines`)."""
        if event.is_plain and event.event is None and event.has_data:
            return None  # nothing but data lines: nearly every event
        lines = field_lines(event)
        if lines is None or (event.has_data and not lines):
            return None
        fields = [
            (name, value, None if name == "retry" else self.channels.add(_field_part(name, value)))
            for name, value in lines
        ]
        if (
            event.has_data
            and event.is_plain
            and all(state is not None and state.is_unchanged() for _, _, state in fields)
        ):
            return None  # event names a rule leaves alone (a block is the channels' to end the stream)
        return fields

    def _settle(self) -> None:
        """Decide the text of the events taken in since the last time: one scan per window."""
        started = time.perf_counter()
        self.channels.settle()
        if self.observer is not None:
            self.observer.on_scan(time.perf_counter() - started)

    def _emit(self) -> bytes:
        out: list[bytes] = []
        if self._keepalive:
            self._keepalive = False
            out.append(self._mirror(self.codec.keepalive()))
        channels = self.channels
        queue = self._queue
        for pending in queue:
            if isinstance(pending, _Run):
                continue  # released in the loop below, event by event
            for part in pending.open:
                if not part.is_released:
                    channels.render(part)
        now = self.clock()
        released_chars = 0
        delays: list[float] = []
        try:
            while queue:
                head = queue[0]
                if isinstance(head, _Run):
                    sent = self._release_run(head, out)
                    if sent is None:
                        continue  # now events of their own: the head is the first of them
                    chars, events = sent
                    if events:
                        released_chars += chars
                        delays += [now - head.received_at] * events
                    if head.done < len(head.text_ends):
                        break
                    queue.popleft()
                    continue
                if not head.is_released():
                    break
                if head.parsed.is_end and (channels.is_checking or channels.blocked is not None):
                    # An async classifier may still flag what already went out: the end waits for
                    # it, so the stream can still end with the error instead of the terminator;
                    # and once a verdict has blocked, the terminator never leaves.
                    break
                pending = head
                queue.popleft()
                out.append(self._encode(pending))
                if pending.fields is not None and not pending.event.has_data:
                    continue  # a comment, id or retry of its own: nothing the codec tracks
                if pending.shape is not None:
                    # One text part and settled values; `delivered` does nothing with it.
                    released_chars += len(pending.open[0].rendered())
                    delays.append(now - pending.received_at)
                    continue
                self.codec.delivered(pending.parsed, partial=False)
                if pending.parts:
                    # A snapshot (`*.done`, `response.completed`) repeats text already counted where it streamed.
                    released_chars += sum(
                        len(p.rendered()) for p in pending.parts if not p.part.is_value and p.copies is None
                    )
                    delays.append(now - pending.received_at)
                if pending.parsed.is_end:
                    self.has_delivered_end = True
                    self.is_done = True
                    queue.clear()
                    return b"".join(out)
        finally:
            if delays:
                if self.first_release_at is None and released_chars:
                    self.first_release_at = now
                if self.observer is not None:
                    self.observer.on_release(released_chars, delays)
        if channels.blocked is not None:
            out.append(self._end_blocked(channels.blocked))
        elif self.failure is not None:
            self._queue.clear()
            out.append(self._mirror(self.codec.failure_event(self.failure)))
            self.is_done = True
        elif self._upstream_closed and not self._queue and not channels.is_checking:
            self.is_done = True
        return b"".join(out)

    def _shaped(self, event: Event, shape: Shape, state: PartState, pad: str | None, received_at: float) -> _Pending:
        """An event read by its shape, its text part taken in as `state`: its pad (if the shape
        has one) is decided now, and it may leave as it came if that and the others are unchanged."""
        unchanged = shape.others_unchanged
        pad_state = None
        if pad is not None:
            pad_state = self.channels.add_pad(shape.pad_with(pad))
            unchanged = unchanged and pad_state.is_unchanged()
        return _Pending(event, _SHAPED, received_at, [], shape, [state], unchanged, pad_state)

    def _release_run(self, run: _Run, out: list[bytes]) -> tuple[int, int] | None:
        """Send the events of `run` whose text is released, as they came: (characters, events).
        None if one of them must be rewritten: the run is then events of their own."""
        state = run.state
        if len(state.spans) != 1:
            self._explode(run)  # a fork: its parts must be rendered on two windows
            return None
        window, start, end = state.spans[0]
        done = run.done
        ends = run.text_ends
        upto = bisect_right(ends, min(window.released, end) - start, done)
        if upto == done:
            return 0, 0
        lo, hi = state.rendered_to, ends[upto - 1]
        if not self.channels.pass_through(state, hi):
            self._explode(run)
            return None
        byte_ends = run.byte_ends
        out.append(run.raw[byte_ends[done - 1] if done else 0 : byte_ends[upto - 1]])
        run.done = upto
        return hi - lo, upto - done

    def _explode(self, run: _Run) -> None:
        """The run's unsent events as events read by their shape one by one (what `_accept`
        makes of them), in its place at the head of the queue, rendered as far as released."""
        shape = run.shape
        channels = self.channels
        done = run.done
        states = channels.split(run.state, [shape.part_with(text) for text in run.texts[done:]])
        pendings: list[_Pending | _Run] = []
        start = run.byte_ends[done - 1] if done else 0
        for index, state in enumerate(states, done):
            end = run.byte_ends[index]
            raw = run.raw[start:end]
            event = Event(raw, raw[shape.data_at : -2].decode(), shape.name, None, None, True, True)
            start = end
            pad = run.pads[index] if run.pads is not None else None
            channels.render(state)
            pendings.append(self._shaped(event, shape, state, pad, run.received_at))
        queue = self._queue
        assert queue[0] is run
        queue.popleft()
        queue.extendleft(reversed(pendings))

    def _encode(self, pending: _Pending) -> bytes:
        parsed = pending.parsed
        open_parts = pending.open
        fields = pending.fields
        data_unchanged = (
            not parsed.needs_rewrite
            and pending.settled_unchanged
            and (
                (open_parts[0].is_unchanged() if len(open_parts) == 1 else all(p.is_unchanged() for p in open_parts))
                if open_parts
                else True
            )
        )
        if data_unchanged and (pending.event.is_plain or fields is not None) and pending.fields_unchanged():
            return pending.event.raw
        if fields is not None and data_unchanged:
            body = pending.event.raw
        elif fields is not None and not pending.event.has_data:  # pragma: no cover - no data, nothing to render
            body = b"\n"
        else:
            _parse_payload(pending)
            body = self._mirror(
                self.codec.render(pending.event, pending.parsed, [p.rendered() for p in pending.parts], partial=False)
            )
        if fields is None:
            return body
        moderated = [(name, value if state is None else state.rendered()) for name, value, state in fields]
        return with_fields(body, moderated, line_ending=self.decoder.line_ending)

    def _mirror(self, data: bytes) -> bytes:
        """Events made here end their lines the way the upstream does (Gemini uses CRLF). Our
        encodings use LF only as line ends (JSON escapes newlines), so the swap is exact."""
        ending = self.decoder.line_ending
        return data if ending == "\n" else data.replace(b"\n", ending.encode())

    def _end_blocked(self, violation: Violation) -> bytes:
        out: list[bytes] = []
        # Everything before the match that is itself clear still reaches the client, even when it
        # shares an event with the match.
        if self._queue and isinstance(self._queue[0], _Run):
            self._explode(self._queue[0])
        if self._queue:
            head = self._queue[0]
            assert isinstance(head, _Pending)
            _materialise(head)
            # An event with field lines of its own (`keep_fields`) is not cut: a fresh rendering
            # would carry its event name as it came, and the match may be in one of its fields.
            if head.fields is None and any(p.pieces and not p.part.is_value for p in head.parts):
                _parse_payload(head)
                texts = [p.rendered() for p in head.parts]
                out.append(self.codec.render(head.event, head.parsed, texts, partial=True))
                self.codec.delivered(head.parsed, partial=True)
        self._queue.clear()
        if self.on_violation == "finish":
            out.append(self.codec.finish_events(self.channels.released_text))
        else:
            rule = violation.rule
            out.append(self.codec.violation_event(block_message(violation), rule=rule.id, category=rule.category))
        self.is_done = True
        return self._mirror(b"".join(out))


# What an event read by its shape has for `parsed` until it is materialised: never written to.
_SHAPED = ParsedEvent()


def _field_part(name: str, value: str) -> TextPart:
    """A field line's value as a value part of its own path (`sse.event`, `sse.id`, `sse.comment`)."""
    return TextPart((), value, ("sse", name or "comment"))


def _materialise(pending: _Pending) -> None:
    """An event read by its shape gets its parts (the shape's, with its own text part) when it
    must be rewritten or cut: most leave as they came and never need them."""
    shape = pending.shape
    if shape is None or pending.parsed is not _SHAPED:
        return
    state = pending.open[0]
    parts = list(shape.parts)
    parts[shape.slot] = state.part
    states = list(shape.states)
    states[shape.slot] = state
    if shape.pad_slot is not None:
        assert pending.pad is not None
        parts[shape.pad_slot] = pending.pad.part
        states[shape.pad_slot] = pending.pad
    pending.parsed = ParsedEvent(parts)
    pending.parts = states


def _parse_payload(pending: _Pending) -> None:
    """An event read by its shape gets its payload when it must be rewritten: its data, which the
    shape proved is the payload the codec would have parsed (it changes none that can repeat)."""
    if pending.shape is not None:
        _materialise(pending)
        if pending.parsed.payload is None:
            pending.parsed.payload = loads_strict(pending.event.data)
