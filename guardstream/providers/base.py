"""What every provider codec offers the moderator: text out of events, events back with new text.

A codec knows one wire format and nothing about windows or HTTP. Each text-carrying field of
an event becomes a `TextPart` on a *channel* (an independent text stream: a choice, a content
block, a tool call), located by a JSON path so that redaction can rewrite just that field.
"""

from __future__ import annotations

import json
from collections.abc import Hashable
from dataclasses import dataclass, field
from typing import Any, Protocol

from guardstream.errors import ProviderError
from guardstream.sse import Event

Channel = tuple[Hashable, ...]
JsonPath = tuple[str | int, ...]


@dataclass(slots=True)
class TextPart:
    channel: Channel
    text: str
    path: JsonPath


@dataclass(slots=True)
class ParsedEvent:
    """What one upstream event means for moderation.

    `closes` lists channel prefixes that this event ends (their windows are flushed before it
    leaves); `closes_all` marks the end of the answer, so every window is flushed first.
    """

    parts: list[TextPart] = field(default_factory=list)
    payload: Any = None
    closes: list[Channel] = field(default_factory=list)
    closes_all: bool = False


class StreamCodec(Protocol):
    """Per-stream codec state (ids, sequence numbers, open blocks) for one provider format."""

    provider: str

    def parse(self, event: Event) -> ParsedEvent: ...

    def rewrite(self, event: Event, parsed: ParsedEvent, texts: list[str]) -> bytes: ...

    def rewrite_partial(self, event: Event, parsed: ParsedEvent, texts: list[str]) -> bytes:
        """The part of an event released before a block: it must not claim the answer finished."""
        ...

    def reopen(self, parsed: ParsedEvent) -> None:
        """An event dropped at a block never reached the client: undo what it closed."""
        ...

    def violation_event(self, message: str) -> bytes:
        """Terminal error in the provider's format (PROTOCOLS.md §0): the SDK raises."""
        ...

    def finish_events(self) -> bytes:
        """Graceful end with the provider's "filtered" reason (PROTOCOLS.md §0, graceful column)."""
        ...

    def failure_event(self, message: str) -> bytes:
        """Terminal error for a broken or malformed upstream stream (fail closed)."""
        ...


def dumps(payload: Any) -> str:
    # ensure_ascii keeps U+2028/U+2029 escaped: some SDK parsers split lines on them (PROTOCOLS.md §6).
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True)


def loads_event(event: Event) -> Any:
    try:
        return json.loads(event.data)
    except (ValueError, RecursionError) as exc:
        raise ProviderError("the upstream sent an event whose data is not valid JSON") from exc


def set_path(payload: Any, path: JsonPath, value: str) -> None:
    target = payload
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value


def get_path(payload: Any, path: JsonPath) -> Any:
    target = payload
    for key in path:
        target = target[key]
    return target


def block_message(rule_id: str, category: str) -> str:
    """The error text every provider shows for a block (DESIGN.md §3, contract)."""
    return f"guardstream blocked the response: rule {rule_id} ({category})"


@dataclass(frozen=True)
class Provider:
    """Everything the proxy needs to know about one API's wire format."""

    name: str
    stream_codec: Any  # Callable[[], StreamCodec]: fresh per-stream state
    request_texts: Any  # Callable[[Any], list[tuple[JsonPath, str]]]: user-supplied text of a request body
    response_parts: Any  # Callable[[Any], list[TextPart]]: text of a non-streaming response body
    error_body: Any  # Callable[[str, str], bytes]: native error body for (message, code)
