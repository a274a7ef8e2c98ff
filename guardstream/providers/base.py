"""What every wire format offers the moderator: text out of events and bodies, events back.

A codec knows one wire format and nothing about windows or HTTP. Every string an event carries
becomes a `TextPart` (see `payload.py`): moderated text on the channels a client reads, or a
value checked on its own. After moderation the codec writes the released text back: untouched
events leave as the upstream sent them; anything else is re-encoded from the parsed payload.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from guardstream.errors import ProviderError
from guardstream.payload import Channel, TextPart, dumps, get_path, set_text
from guardstream.rules import CLASSIFIER_PACK
from guardstream.sse import Event, encode_event
from guardstream.window import Violation

ReleasedText = Callable[[Channel], str]


@dataclass(slots=True)
class ParsedEvent:
    """What one upstream event means for moderation.

    `is_end`: the stream's own terminator (`[DONE]`, `message_stop`, `response.completed`): every
    window is decided before it leaves, and nothing after it is read. `is_error`: an error the
    upstream reported in the stream (its text is moderated like any answer). `needs_rewrite`:
    the raw bytes must not be relayed even if no text changed (copies that disagree with the
    text, say), so the codec re-encodes the event. `closes`: views whose text is complete with
    this event, each named by the first elements of its key (`("block", 0)`): their windows decide
    what they hold now, as at the end of the stream, instead of holding it, and every event after
    it, until the stream ends; nothing more may come on them (the codec refuses events that would
    add any, and a snapshot that adds to them is checked whole). `ends_rows`: joined views (a
    row of blocks of one type) that a block of another type interrupts: decided now too, and
    text that comes on them later begins a new row.
    """

    parts: list[TextPart] = field(default_factory=list)
    payload: Any = None
    is_end: bool = False
    is_error: bool = False
    needs_rewrite: bool = False
    closes: tuple[tuple[Any, ...], ...] = ()
    ends_rows: tuple[tuple[Any, ...], ...] = ()


class BlockKinds:
    """A stream's blocks (Anthropic content blocks, Responses output items) as parsed: what each
    streams on, which are open, which are finished.

    Views close when a block finishes, and a row of blocks joined on one view ends when a block
    of another type begins: text after that is read without the tail before it. So a block's text
    must be of the kind it began with, nothing may come for a finished block (or, once blocks are
    announced, for one never begun), and a row stays open while a block of its kind is.
    """

    def __init__(self, what: str) -> None:
        self.what = what
        self._started: dict[int, frozenset[str] | None] = {}
        self._open: dict[int, frozenset[str] | None] = {}
        self._finished: set[int] = set()

    def begin(self, index: int, kinds: frozenset[str] | None, endable: frozenset[str]) -> tuple[tuple[str, str], ...]:
        """Block `index` begins, streaming on joined views of `kinds` (None: a type the codec
        does not know, which streams on none); the joined views its beginning ends."""
        self.check(index, None)
        if index in self._started:
            raise ProviderError(f"the upstream began {self.what} it had already begun")
        self._started[index] = self._open[index] = kinds
        if kinds is None:
            return ()
        busy = {kind for open_kinds in self._open.values() if open_kinds for kind in open_kinds}
        return tuple(("flat", kind) for kind in sorted(endable - kinds - busy))

    def check(self, index: int, kind: str | None) -> None:
        """An event adds to block `index` (text on joined views of `kind`, if not None)."""
        if index in self._finished:
            raise ProviderError(f"the upstream sent an event for {self.what} it had finished")
        if index not in self._started:
            if self._started and kind is not None:
                raise ProviderError(f"the upstream sent text for {self.what} it had not begun")
            return
        kinds = self._started[index]
        if kind is not None and (kinds is None or kind not in kinds):
            raise ProviderError(f"the upstream sent text of another type than its {self.what}'s")

    def finish(self, index: int) -> None:
        self.check(index, None)
        self._finished.add(index)
        self._open.pop(index, None)


class StreamCodec(Protocol):
    """Per-stream codec state (ids, sequence numbers, open blocks) for one wire format.

    A codec may also offer `can_repeat(parsed) -> bool`: True when parsing another event that
    differs from this one only in its one text string would change nothing in the codec's state,
    give a payload equal to its data's JSON, and `delivered` would do nothing with it. Such events
    are then read by their shape (see `shapes.py`) instead of being parsed.
    """

    @property
    def provider(self) -> str:
        """The format's name, a metrics label."""
        ...

    @property
    def is_complete(self) -> bool:
        """The upstream has sent what ends its stream properly (so far as the format tells)."""
        ...

    def parse(self, event: Event) -> ParsedEvent:
        """Raise `ProviderError` (or anything) for an event that breaks the format: the stream
        then ends with `failure_event` (fail closed)."""
        ...

    def render(self, event: Event, parsed: ParsedEvent, texts: Sequence[str], *, partial: bool) -> bytes:
        """The event with each part's text replaced by `texts` (the released, redacted text).

        `partial`: this is the released head of the event a block cut through, so it must not
        claim the answer finished (no finish reason, no usage).
        """
        ...

    def violation_event(self, message: str, *, rule: str, category: str) -> bytes:
        """Terminal error in the provider's format: its SDK raises its normal error type."""
        ...

    def delivered(self, parsed: ParsedEvent, *, partial: bool) -> None:
        """`parsed` (or, with `partial`, its released head) went to the client: what the client
        has seen decides how a graceful finish must close the answer (open blocks, items)."""
        ...

    def finish_events(self, released: ReleasedText) -> bytes:
        """Graceful end with the provider's "filtered" reason: the SDK ends cleanly.

        `released(view)` is the text the client got on a tracked view, for formats whose final
        events repeat it.
        """
        ...

    def failure_event(self, message: str) -> bytes:
        """Terminal error for a broken or malformed upstream stream (fail closed)."""
        ...

    def keepalive(self) -> bytes:
        """Bytes that keep the client's connection alive and that its SDK ignores (b"" if none)."""
        ...


class PayloadCodec(Protocol):
    """A wire format's whole JSON bodies: requests, non-streaming answers and error bodies."""

    def request_parts(self, body: Any) -> list[TextPart]:
        """Every string of a request body the model reads, as text, in the order it reads it."""
        ...

    def response_parts(self, body: Any) -> list[TextPart]:
        """Every string of a non-streaming answer."""
        ...

    def error_body(self, message: str, code: str, *, status: int) -> bytes:
        """The provider's native error body, which its SDK turns into its normal error type."""
        ...

    def finish_body(self, body: Any, parts: Sequence[TextPart], texts: Sequence[str]) -> Any:
        """A non-streaming answer cut at a block, with the provider's "filtered" finish reason."""
        ...


@dataclass(frozen=True)
class Provider:
    """Everything the guard needs to know about one API's wire format."""

    name: str
    stream_codec: Callable[[], StreamCodec]
    payload: PayloadCodec


def rewrite_payload(payload: Any, parts: Sequence[TextPart], texts: Sequence[str]) -> None:
    """Write each part's released text back into `payload`, keys last (children use old names)."""
    for part, text in reversed(list(zip(parts, texts, strict=True))):
        if text != part.text:
            set_text(payload, part, text)


def drop_stale_logprobs(payload: Any, parts: Sequence[TextPart], texts: Sequence[str]) -> None:
    """Empty the logprobs of every choice or output whose text was redacted or cut.

    Logprob tokens (and their `bytes`) repeat an answer's text: left as they came, they would
    still spell what was redacted or cut. The `logprobs` of the nearest object above a changed
    part (a Chat choice, a Responses `output_text`) goes (`null`, or `[]` where it was a list),
    as streams already do. The body's own top level is never touched (a request's `logprobs`
    is a setting, not a copy).
    """
    for part, text in zip(parts, texts, strict=True):
        if text == part.text:
            continue
        for depth in range(len(part.path) - 1, 0, -1):
            try:
                owner = get_path(payload, part.path[:depth])
            except (KeyError, IndexError, TypeError):
                break  # under a key renamed or a logprobs already emptied: nothing left to drop
            if isinstance(owner, dict) and "logprobs" in owner:
                owner["logprobs"] = [] if isinstance(owner["logprobs"], list) else None
                break


def encode_like(event: Event, data: str, line_ending: str = "\n") -> bytes:
    """A fresh event with the upstream's event name and new data: nothing else of the raw block
    (comments, ids, unknown fields) is carried over."""
    return encode_event(data, event.event, line_ending=line_ending)


def render_json_event(
    event: Event, parsed: ParsedEvent, texts: Sequence[str], line_ending: str = "\n", event_name: str | None = None
) -> bytes:
    rewrite_payload(parsed.payload, parsed.parts, texts)
    return encode_event(dumps(parsed.payload), event_name or event.event, line_ending=line_ending)


def is_classifier_failure(violation: Violation) -> bool:
    """The violation stands for a classifier that could not answer (`on_error = "block"`)."""
    return violation.rule.pack == CLASSIFIER_PACK and violation.rule.category.startswith("classifier_")


def block_message(violation: Violation, what: str = "the response") -> str:
    """The error text every provider shows for a block (a documented contract).

    A rule whose regex ran out of time is not a match: the text was withheld because it could not be
    decided (fail closed), and the message says so.
    """
    rule = violation.rule
    if rule.pack == CLASSIFIER_PACK:
        if rule.category.startswith("classifier_"):
            failure = rule.category.removeprefix("classifier_")
            # No "withheld" here: in async mode the text before the failed check may have gone out.
            return f"guardstream stopped {what}: classifier {rule.id} could not check it ({failure})"
        return f"guardstream blocked {what}: classifier {rule.id} ({rule.category})"
    if violation.is_timeout:
        return (
            f"guardstream stopped {what}: rule {rule.id} ({rule.category}) took too long to decide "
            "(regex timeout), so the text was withheld"
        )
    return f"guardstream blocked {what}: rule {rule.id} ({rule.category})"
