"""Events that repeat a shape already read: recognised by their bytes, not parsed again.

A streamed answer is hundreds of events that differ only in the few characters of text each
carries: `{"id":"chatcmpl-1",…,"delta":{"content":"<text>"},…}`. Parsing each one as JSON and
walking every field for strings costs more than moderating its text. So once an event has been
parsed the slow way, its data is cut around the text's string literal into a head and a tail;
a later event with the same name, head and tail, and the inside of one JSON string literal in
between (characters other than a quote, backslash or control character, and JSON escapes such
as `\n` or `\"`), *is* the same payload with another text, and yields the same parts with the
text that literal stands for (read by `json`, as the full parse would read it).

Why this is exact: the head is verified once, by parsing head + probe + tail and finding the
probe as the whole string at the text's path and everything else equal. A JSON lexer then
reads head + any such middle + tail the same way: the head's last quote opens the string, the
middle has no unescaped quote so it keeps it open, the tail's first quote closes it. Everything
that decides how an event is moderated (event name, ids, keys, structure, other strings) is in
the head and tail.

Runs: a network read of a fast stream holds several events. When an event's bytes are its lines
written plainly around its one data line, the shape keeps those bytes too, and `Shapes.run`
reads the events that repeat it straight from a read, a few byte comparisons each, without the
SSE decoder; the moderator pushes their texts as one part and lets them go as the bytes they
came as (see `StreamModerator`).

A codec opts in per event (`can_repeat`): only where parsing a like event would change nothing
in its state and `delivered` does nothing with it (a text delta, not a stream's first or last
event). It may also name pad fields (`pad_fields`): OpenAI puts random characters under
`obfuscation` in every delta event, so the shape is cut around that value too (checked the same
way, with a probe in each place), and each event's pad is moderated as a value of its own.
A stream whose events never repeat a shape (another field that changes in every event) stops
trying after a few shapes, so the lesson costs little where it does not pay.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guardstream.payload import SURROGATE, TextPart, get_path, loads_strict, set_text
from guardstream.sse import Event

# Characters that stand for themselves inside a JSON string: no quote, no escape, no control.
_PLAIN = re.compile(r'[^"\\\x00-\x1f]+')
# The inside of a JSON string literal: plain characters and escapes, up to its closing quote.
_STRING = re.compile(r'(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+')
_STRING_BYTES = re.compile(rb'(?:[^"\\\x00-\x1f]++|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*+')
_PROBE = "guardstream.shape.probe"
_PAD_PROBE = "guardstream.shape.pad"
# Shapes kept per stream, and shapes learned without a single repeat before learning stops.
MAX_SHAPES = 4
MAX_FRUITLESS = 4
# Events read into one run at most. An event that cannot join a run (an event of another shape, bytes that are
# not UTF-8, a pad a rule finds something in) is found only after the run is read, and the next
# run is read from the event after it: without a bound, a read of such events every other event
# would be read again and again to its end (2,000 events took 3 s).
MAX_RUN = 32


@dataclass(slots=True)
class Shape:
    """An event cut around the string of its one text part."""

    name: str | None
    head: str
    tail: str
    # The event's parts; `slot` is the text part's position among them.
    parts: list[TextPart]
    slot: int
    # Whatever the adapter keeps per part (the moderator: their decided states), by position.
    states: list[Any]
    # Whether the parts other than the text leave as they came (values, decided once).
    others_unchanged: bool
    hits: int = 0
    # A pad: a value that differs in every event (OpenAI's `obfuscation`), cut out like the text
    # and checked on its own each time. `mid` lies between the two strings; `pad_first` says
    # which comes first.
    pad_slot: int | None = None
    mid: str = ""
    pad_first: bool = False
    # The shape as bytes, for reading a run of its events straight from a read (`Shapes.run`):
    # what comes before the first string (the event's lines up to its data, and the head), between
    # the strings, and after the last one (the tail and the blank line). None when the event's
    # bytes are not its lines written plainly around its one data line.
    lead: bytes | None = None
    mid_bytes: bytes = b""
    close: bytes = b""
    # Where the data begins in an event's bytes (after its `event:` and `data:` fields' names).
    data_at: int = 0

    def part_with(self, text: str) -> TextPart:
        part = self.parts[self.slot]
        return TextPart(part.views, text, part.path, json_text=part.json_text)

    def pad_with(self, pad: str) -> TextPart:
        assert self.pad_slot is not None
        part = self.parts[self.pad_slot]
        return TextPart(part.views, pad, part.path)


@dataclass(slots=True)
class Run:
    """Events in a row that repeat one shape, read from the bytes of a read without decoding
    them one by one: each one's text and pad, and its size in bytes."""

    shape: Shape
    texts: list[str]
    pads: list[str] | None
    sizes: list[int]


class Shapes:
    """The shapes one stream has taught so far."""

    def __init__(self) -> None:
        self._known: list[Shape] = []
        self._fruitless = 0
        # A shape learned so far can be read as a run straight from the bytes (see `run`); asked
        # on every read, so kept rather than computed (a shape evicted since only costs a look).
        self.has_runs = False

    def forget(self) -> None:
        """Drop every shape learned (a view one names may have closed): events are parsed, and
        shapes learned, afresh."""
        self._known.clear()
        self._fruitless = 0

    @property
    def is_learning(self) -> bool:
        return self._fruitless < MAX_FRUITLESS

    def match(self, event: Event) -> tuple[Shape, str, str | None] | None:
        """The shape `event` repeats, its text and its pad (if the shape has one); None when it
        must be parsed."""
        data = event.data
        for shape in self._known:
            if shape.name == event.event and data.startswith(shape.head) and data.endswith(shape.tail):
                end = len(data) - len(shape.tail)
                if end <= len(shape.head):
                    continue
                middle = data[len(shape.head) : end]
                pad: str | None = None
                if shape.pad_slot is None:
                    text = _string(middle)
                else:
                    # The first unescaped quote closes the first of the two strings.
                    quote = _STRING.match(middle).end()  # type: ignore[union-attr]
                    if quote == 0 or not middle.startswith(shape.mid, quote):
                        continue
                    first, second = _string(middle[:quote]), _string(middle[quote + len(shape.mid) :])
                    if first is None or second is None:
                        continue
                    text, pad = (second, first) if shape.pad_first else (first, second)
                if text is None:
                    continue
                shape.hits += 1
                return shape, text, pad
        return None

    def run(self, data: bytes, pos: int) -> Run | None:
        """The events from `pos` on (a block starts there) that repeat a shape already seen
        again, as far as they go; None if the first does not.

        A read of a fast stream holds several events. Each of them would be decoded, matched and
        queued on its own; read here, a run of them costs a few byte comparisons each and is
        moderated and released as one. Exact for the same reason a shape is: the bytes are the
        learned event's own lines with other JSON strings in the same places, so the SSE decoder
        and a JSON parser would read the same event with those strings.
        """
        for shape in self._known:
            lead = shape.lead
            if lead is None or not shape.others_unchanged or not data.startswith(lead, pos):
                continue
            firsts: list[bytes] = []
            seconds: list[bytes] = []
            sizes: list[int] = []
            padded = shape.pad_slot is not None
            mid, close = shape.mid_bytes, shape.close
            skip = len(lead)
            at = pos
            while len(sizes) < MAX_RUN and data.startswith(lead, at):
                begin = at + skip
                end = first_end = _STRING_BYTES.match(data, begin).end()  # type: ignore[union-attr]
                if end == begin:
                    break
                if padded:
                    if not data.startswith(mid, end):
                        break
                    second_at = end + len(mid)
                    end = _STRING_BYTES.match(data, second_at).end()  # type: ignore[union-attr]
                    if end == second_at or not data.startswith(close, end):
                        break
                    seconds.append(data[second_at:end])
                elif not data.startswith(close, end):
                    break
                firsts.append(data[begin:first_end])
                end += len(close)
                sizes.append(end - at)
                at = end
            if not firsts:
                continue
            texts_b, pads_b = (seconds, firsts) if shape.pad_first else (firsts, seconds)
            texts = _strings(texts_b)
            count = len(texts)
            pads = None
            if padded:
                pads = _strings(pads_b)
                count = min(count, len(pads))
                del pads[count:]
            if not count:
                continue
            del texts[count:], sizes[count:]
            shape.hits += count
            return Run(shape, texts, pads, sizes)
        return None

    def learn(
        self,
        event: Event,
        payload: Any,
        parts: list[TextPart],
        states: list[Any],
        *,
        unchanged: Sequence[bool],
        pads: frozenset[str] = frozenset(),
    ) -> None:
        """Remember the shape of an event just parsed, if it has one text part written plainly
        (and, if it has one, one value under a field named in `pads`, written plainly).
        `unchanged[i]`: part i left as it came (or is text still to be decided)."""
        slots = [i for i, part in enumerate(parts) if part.views]
        if len(slots) != 1:
            return
        slot = slots[0]
        part = parts[slot]
        if part.tracked or part.copy_of is not None or part.is_key or _PLAIN.fullmatch(part.text) is None:
            return
        data = event.data
        at = _literal_at(data, part.text)
        if at < 0:
            return  # not written plainly, or written twice: which one is the text is not certain
        head, tail = data[: at + 1], data[at + 1 + len(part.text) :]
        shape = Shape(event.event, head, tail, list(parts), slot, list(states), all(unchanged))
        padded = [i for i, p in enumerate(parts) if p.is_value and not p.is_key and p.path and p.path[-1] in pads]
        if padded:
            if len(padded) > 1 or not _cut_pad(shape, data, at, payload, padded[0]):
                return  # a pad differs in every event: a shape that keeps it would never repeat
            # Whether the pad leaves as it came is asked of each event's own pad.
            shape.others_unchanged = all(u for i, u in enumerate(unchanged) if i != padded[0])
        elif not _fits(head + _PROBE + tail, payload, [(part, _PROBE)]):
            return
        _cut_bytes(shape, event)
        self.has_runs = self.has_runs or shape.lead is not None
        if len(self._known) >= MAX_SHAPES:
            evicted = self._known.pop(0)
            if not evicted.hits:
                self._fruitless += 1
        self._known.append(shape)


def _cut_pad(shape: Shape, data: str, at: int, payload: Any, pad_slot: int) -> bool:
    """Cut `shape` around its pad too (the text's literal starts at `at`), checked by parsing a
    probe in each place; False if the pad is not written plainly."""
    text, pad = shape.parts[shape.slot], shape.parts[pad_slot]
    if not _is_plain(pad.text):
        return False
    pad_at = _literal_at(data, pad.text)
    if pad_at < 0:
        return False
    text_end, pad_end = at + len(text.text) + 2, pad_at + len(pad.text) + 2
    if pad_at >= text_end:
        head, mid, tail = data[: at + 1], data[text_end - 1 : pad_at + 1], data[pad_end - 1 :]
        probed = head + _PROBE + mid + _PAD_PROBE + tail
    elif pad_end <= at:
        head, mid, tail = data[: pad_at + 1], data[pad_end - 1 : at + 1], data[text_end - 1 :]
        probed = head + _PAD_PROBE + mid + _PROBE + tail
    else:
        return False
    if not _fits(probed, payload, [(text, _PROBE), (pad, _PAD_PROBE)]):
        return False
    shape.head, shape.mid, shape.tail = head, mid, tail
    shape.pad_slot, shape.pad_first = pad_slot, pad_at < at
    return True


def _cut_bytes(shape: Shape, event: Event) -> None:
    """Give `shape` its bytes (see `Shape.lead`) if the event is its lines, then its one data line
    (no CR anywhere), then the blank line: exactly what `Shapes.run` may read again."""
    raw, data = event.raw, event.data
    data_bytes = data.encode()
    if "\n" in data or b"\r" in raw or not raw.endswith(data_bytes + b"\n\n"):
        return
    lines = raw[: len(raw) - len(data_bytes) - 2]
    if not lines.endswith((b"data:", b"data: ")):
        return
    shape.data_at = len(lines)
    if shape.pad_slot is None:
        shape.lead, shape.close = lines + shape.head.encode(), shape.tail.encode() + b"\n\n"
    else:
        shape.lead, shape.mid_bytes = lines + shape.head.encode(), shape.mid.encode()
        shape.close = shape.tail.encode() + b"\n\n"


def _strings(literals: list[bytes]) -> list[str]:
    """The strings that JSON string literals stand for (their insides, as `_STRING_BYTES` found
    them), up to the first that is not UTF-8 (the decoder would replace its bytes and call the
    event not plain: it is read the slow way)."""
    joined = literals[0] if len(literals) == 1 else b"".join(literals)
    if joined.isascii() and b"\\" not in joined:
        return [joined.decode("ascii")] if len(literals) == 1 else [literal.decode("ascii") for literal in literals]
    out: list[str] = []
    for literal in literals:
        try:
            text = literal.decode("utf-8")
        except UnicodeDecodeError:
            break
        if "\\" in text:
            text = json.loads('"' + text + '"')
            if SURROGATE.search(text) is not None:
                # An unpaired surrogate escape: the slow way refuses the event as malformed.
                break
        out.append(text)
    return out


def _string(literal: str) -> str | None:
    """The string a JSON string literal's inside stands for (escapes read as JSON reads them);
    None if it is not one (a bare quote or control character, a bad escape, an unpaired surrogate)."""
    if _PLAIN.fullmatch(literal) is not None:
        return literal
    if _STRING.fullmatch(literal) is None or not literal:
        return None
    text: str = json.loads('"' + literal + '"')
    return None if SURROGATE.search(text) is not None else text


def _literal_at(data: str, text: str) -> int:
    """Where `text` is written as a JSON string in `data`, or -1 if it is not, or is twice."""
    literal = f'"{text}"'
    at = data.find(literal)
    return at if at >= 0 and data.find(literal, at + 1) < 0 else -1


def _fits(probed: str, payload: Any, probes: list[tuple[TextPart, str]]) -> bool:
    """Parsing `probed` puts each probe at its part's path, and with the parts' own texts put
    back it is `payload`: so the cut around them is the payload's own structure."""
    try:
        probe = loads_strict(probed)
        if any(get_path(probe, part.path) != marker for part, marker in probes):
            return False
        for part, _ in probes:
            set_text(probe, part, part.text)
    except Exception:
        return False
    return bool(probe == payload)


def _is_plain(text: str) -> bool:
    """A string a shape may read between its cuts: it means itself as JSON."""
    return _PLAIN.fullmatch(text) is not None
