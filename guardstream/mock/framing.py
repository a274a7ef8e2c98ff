"""How the mock's answers become bytes: JSON text, SSE framing per format, and the answer a builder hands back."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

JSONObject = dict[str, Any]


def dumps(value: object) -> str:
    """Compact JSON with non-ASCII kept, as the real APIs send it.

    U+2028/U+2029/U+0085 are escaped: splitlines()-based SSE parsers (httpx-sse <= 0.4.1,
    google-genai <= 1.30) would otherwise cut the JSON in half.
    """
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\u0085", "\\u0085")


def utf8(text: str) -> bytes:
    """UTF-8 bytes of `text`; a lone surrogate (from a "\\ud800" escape in the request) becomes escape text again."""
    return text.encode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class Event:
    """One unit the writer sends as one HTTP chunk: an SSE event's data (and name), or a piece of JSON."""

    data: str
    name: str | None = None


def _encode_data_only(event: Event) -> bytes:
    return utf8(f"data: {event.data}\n\n")


def _encode_named(event: Event) -> bytes:
    return utf8(f"event: {event.name}\ndata: {event.data}\n\n")


def _encode_crlf(event: Event) -> bytes:
    return utf8(f"data: {event.data}\r\n\r\n")


def _encode_raw(event: Event) -> bytes:
    return utf8(event.data)


@dataclass(frozen=True)
class Framing:
    """How one response format turns events into bytes."""

    media_type: str
    encode: Callable[[Event], bytes]
    prefix: bytes = b""
    separator: bytes = b""
    suffix: bytes = b""


OPENAI_SSE = Framing("text/event-stream", _encode_data_only)
NAMED_SSE = Framing("text/event-stream", _encode_named)
GEMINI_SSE = Framing("text/event-stream", _encode_crlf)
JSON_BODY = Framing("application/json", _encode_raw)
JSON_ARRAY = Framing("application/json", _encode_raw, prefix=b"[", separator=b",\r\n", suffix=b"]")


def raw_framing(media_type: str) -> Framing:
    """Events written exactly as given, nothing around them."""
    return Framing(media_type, _encode_raw)


@dataclass(frozen=True)
class Answer:
    """A successful answer, as a builder describes it: what to write and how it is framed.

    The app writes it event by event, applying the script's timing and faults; a buffered answer
    (small metadata JSON) is sent whole, with a Content-Length, as the real APIs send those.
    """

    events: list[Event]
    framing: Framing
    headers: Mapping[str, str] = field(default_factory=dict)
    is_buffered: bool = False
    # A pause before the answer starts. A classifier's verdict is one event, so the script's
    # `delay_ms` (between events) is spent here instead: the classifier answers slowly.
    wait_ms: float = 0.0
    # A gate to wait on before answering (POST /_mock/release/{key} opens it).
    hold_key: str | None = None

    def body(self) -> bytes:
        """Every event framed, as one body."""
        encoded = [self.framing.encode(event) for event in self.events]
        return self.framing.prefix + self.framing.separator.join(encoded) + self.framing.suffix


def json_answer(value: object, headers: Mapping[str, str] | None = None) -> Answer:
    """A non-streaming answer: the whole JSON document as one event."""
    return Answer([Event(dumps(value))], JSON_BODY, headers or {})


def buffered_json(value: object) -> Answer:
    """A small JSON document sent whole (models, token counts, file metadata)."""
    return Answer([Event(dumps(value))], JSON_BODY, is_buffered=True)
