"""Events that repeat a shape already read: recognised by their bytes, not parsed again.

A streamed answer is hundreds of events that differ only in the few characters of text each
carries: `{"id":"chatcmpl-1",…,"delta":{"content":"<text>"},…}`. Parsing each one as JSON and
walking every field for strings costs more than moderating its text. So once an event has been
parsed the slow way, its data is cut around the text's string literal into a head and a tail;
a later event with the same name, head and tail, and plain characters in between (no quote,
backslash or control character: the middle stays one JSON string and means itself), *is* the
same payload with another text, and yields the same parts with that text.

Why this is exact: the head is verified once, by parsing head + probe + tail and finding the
probe as the whole string at the text's path and everything else equal. A JSON lexer then
reads head + any plain middle + tail the same way: the head's last quote opens the string, the
plain middle keeps it open, the tail's first quote closes it. Everything that decides how an
event is moderated (event name, ids, keys, structure, other strings) is in the head and tail.

A codec opts in per event (`can_repeat`): only where parsing a like event would change nothing
in its state and `delivered` does nothing with it (a text delta, not a stream's first or last
event). It may also name pad fields (`pad_fields`): OpenAI puts random characters under
`obfuscation` in every delta event, so the shape is cut around that value too (checked the same
way, with a probe in each place), and each event's pad is moderated as a value of its own.
A stream whose events never repeat a shape (another field that changes in every event) stops
trying after a few shapes, so the lesson costs little where it does not pay.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from guardstream.payload import BINARY_DATA_URLS, TextPart, get_path, loads_strict, set_text
from guardstream.sse import Event

# Characters that stand for themselves inside a JSON string: no quote, no escape, no control.
_PLAIN = re.compile(r'[^"\\\x00-\x1f]+')
_PROBE = "guardstream.shape.probe"
_PAD_PROBE = "guardstream.shape.pad"
# Shapes kept per stream, and shapes learned without a single repeat before learning stops.
MAX_SHAPES = 4
MAX_FRUITLESS = 4


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

    def part_with(self, text: str) -> TextPart:
        part = self.parts[self.slot]
        return TextPart(part.views, text, part.path)

    def pad_with(self, pad: str) -> TextPart:
        assert self.pad_slot is not None
        part = self.parts[self.pad_slot]
        return TextPart(part.views, pad, part.path)


class Shapes:
    """The shapes one stream has taught so far."""

    def __init__(self) -> None:
        self._known: list[Shape] = []
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
                    text = middle
                else:
                    # Both strings are plain: the first quote closes the first of them.
                    quote = middle.find('"')
                    if quote <= 0 or not middle.startswith(shape.mid, quote):
                        continue
                    first, second = middle[:quote], middle[quote + len(shape.mid) :]
                    text, pad = (second, first) if shape.pad_first else (first, second)
                    if not _is_plain(pad):
                        continue
                if not _is_plain(text):
                    continue
                shape.hits += 1
                return shape, text, pad
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
    """A string a shape may read between its cuts: it means itself as JSON, and is not binary data."""
    return _PLAIN.fullmatch(text) is not None and not text.startswith(BINARY_DATA_URLS)
