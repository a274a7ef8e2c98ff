"""An application's own SSE format: JSON events of any shape, or plain text `data:` lines.

Apps that stream to a browser pick their own events: `data: {"content": "..."}` ... `data:
{"done": true}`, or `data: {"id": "msg_1", "content": "..."}` ... `data: [DONE]`. Nothing here
assumes a shape. Every string of every event is moderated (default deny), each field path on its
own channel (`content`, `delta.text`, ...); `text_field` names the field that carries the
streamed text, which only matters for telling a benign event from one with text. A `data:` line
that is not JSON is text itself. The app's own end marker (`[DONE]`, `{"done": true}`) needs no
special case: the stream is complete when the app ends its body.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from guardstream.payload import AmbiguousJSON, Channel, TextPart, TextWalker, dumps, loads_strict
from guardstream.providers.base import ParsedEvent, ReleasedText, rewrite_payload
from guardstream.sse import Event, encode_event

JSON_FIELD = "json-field"
TEXT = "text"
# Ids and flags of an app's events are values, not text to join: the rest of every event is text.
STRUCTURAL = frozenset({"id", "type", "event", "role", "index", "done", "status", "object", "created", "model"})
WALKER = TextWalker(STRUCTURAL, known_keys=frozenset({*STRUCTURAL, "content", "text", "delta", "message", "data"}))

ErrorEvent = Callable[[str, str, str], str]


def default_error_event(message: str, rule: str, category: str) -> str:
    """`data: {"error": {...}}`: what a browser client can tell from any other event."""
    return dumps({"error": {"message": message, "type": "content_filter", "code": "content_filter", "rule": rule}})


def _field_views(field: str) -> tuple[Channel, ...]:
    return (("field", field),)


class GenericStream:
    """JSON events of any shape, or plain text ones (decided per event)."""

    provider = JSON_FIELD

    def __init__(self, *, text_field: str | None = None, error_event: ErrorEvent = default_error_event) -> None:
        self.text_field = text_field
        self.error_event = error_event
        self._saw_text = False

    @property
    def is_complete(self) -> bool:
        return True

    def parse(self, event: Event) -> ParsedEvent:
        try:
            payload = loads_strict(event.data)
        except AmbiguousJSON:
            # Plain text data (or JSON only some parsers accept): the whole data is the text, so
            # whatever a client makes of it, every character of it was moderated.
            self.provider = TEXT if not self._saw_text else self.provider
            self._saw_text = True
            return ParsedEvent(parts=[TextPart((("data",),), event.data, ())], payload=None)
        parsed = ParsedEvent(payload=payload)
        WALKER.walk(payload, (), "", _field_views, parsed.parts)
        return parsed

    def render(self, event: Event, parsed: ParsedEvent, texts: Sequence[str], *, partial: bool) -> bytes:
        if parsed.payload is None and parsed.parts and parsed.parts[0].path == ():
            return encode_event(texts[0], event.event)
        rewrite_payload(parsed.payload, parsed.parts, texts)
        return encode_event(dumps(parsed.payload), event.event)

    def violation_event(self, message: str, *, rule: str, category: str) -> bytes:
        return encode_event(self.error_event(message, rule, category))

    def failure_event(self, message: str) -> bytes:
        return encode_event(dumps({"error": {"message": message, "type": "server_error", "code": "stream_error"}}))

    def delivered(self, parsed: ParsedEvent, *, partial: bool) -> None:
        pass

    def finish_events(self, released: ReleasedText) -> bytes:
        return encode_event(dumps({"done": True, "finish_reason": "content_filter"}))

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"
