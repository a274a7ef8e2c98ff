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
event). A stream whose events never repeat a shape (a field that changes in every event) stops
trying after a few shapes, so the lesson costs little where it does not pay.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from guardstream.payload import BINARY_DATA_URLS, TextPart, get_path, loads_strict, set_text
from guardstream.sse import Event

# Characters that stand for themselves inside a JSON string: no quote, no escape, no control.
_PLAIN = re.compile(r'[^"\\\x00-\x1f]+')
_PROBE = "guardstream.shape.probe"
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

    def part_with(self, text: str) -> TextPart:
        part = self.parts[self.slot]
        return TextPart(part.views, text, part.path)


class Shapes:
    """The shapes one stream has taught so far."""

    def __init__(self) -> None:
        self._known: list[Shape] = []
        self._fruitless = 0

    @property
    def is_learning(self) -> bool:
        return self._fruitless < MAX_FRUITLESS

    def match(self, event: Event) -> tuple[Shape, str] | None:
        """The shape `event` repeats, and its text; None when it must be parsed."""
        data = event.data
        for shape in self._known:
            if shape.name == event.event and data.startswith(shape.head) and data.endswith(shape.tail):
                end = len(data) - len(shape.tail)
                if end <= len(shape.head):
                    continue
                text = data[len(shape.head) : end]
                if _PLAIN.fullmatch(text) is None or text.startswith(BINARY_DATA_URLS):
                    continue
                shape.hits += 1
                return shape, text
        return None

    def learn(
        self, event: Event, payload: Any, parts: list[TextPart], states: list[Any], *, others_unchanged: bool
    ) -> None:
        """Remember the shape of an event just parsed, if it has one text part written plainly."""
        slots = [i for i, part in enumerate(parts) if part.views]
        if len(slots) != 1:
            return
        slot = slots[0]
        part = parts[slot]
        if part.tracked or part.copy_of is not None or part.is_key or _PLAIN.fullmatch(part.text) is None:
            return
        data = event.data
        literal = f'"{part.text}"'
        at = data.find(literal)
        if at < 0 or data.find(literal, at + 1) >= 0:
            return  # not written plainly, or written twice: which one is the text is not certain
        head, tail = data[: at + 1], data[at + 1 + len(part.text) :]
        try:
            probe = loads_strict(head + _PROBE + tail)
            if get_path(probe, part.path) != _PROBE:
                return
            set_text(probe, part, part.text)
        except Exception:
            return
        if probe != payload:
            return
        if len(self._known) >= MAX_SHAPES:
            evicted = self._known.pop(0)
            if not evicted.hits:
                self._fruitless += 1
        self._known.append(Shape(event.event, head, tail, list(parts), slot, list(states), others_unchanged))
