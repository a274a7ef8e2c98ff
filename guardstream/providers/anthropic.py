"""Anthropic Messages (`POST /v1/messages`): named events, one channel per content block.

Channels: each content block's text (`text_delta`), tool input JSON (`input_json_delta`) and
thinking (`thinking_delta`), by the block's `index`, and each kind also read in a row across
blocks (`text_stream` and code that prints every delta read it that way). `signature_delta`
and redacted thinking are encrypted data and pass untouched; `ping` and event types not listed
here pass after every string in them is moderated (default deny).

A violation ends with `event: error` (the SDK raises `APIStatusError`; the `event:` line is what
makes it raise); a graceful finish closes the blocks the client has seen and ends with
`stop_reason: "refusal"` and the `usage` the SDK's helper needs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from guardstream.errors import ProviderError
from guardstream.payload import Channel, TextPart, TextWalker, dumps, loads_strict, others, read_as_one, whole
from guardstream.providers.base import (
    BlockKinds,
    ParsedEvent,
    Provider,
    ReleasedText,
    rewrite_payload,
)
from guardstream.providers.errors import anthropic_error
from guardstream.sse import Event, encode_event

PROVIDER = "anthropic"

STRUCTURAL = frozenset(
    {
        "type",
        "id",
        "model",
        "role",
        "stop_reason",
        "stop_sequence",
        "index",
        "tool_use_id",
        "service_tier",
        "request_id",
        "media_type",
        "cache_control",
        "tool_choice",
        "container",
        "url",
        "file_id",
        "document_index",
        "start_char_index",
        "end_char_index",
    }
)
KNOWN_KEYS = frozenset(
    {
        *STRUCTURAL,
        "message",
        "content",
        "content_block",
        "delta",
        "text",
        "partial_json",
        "thinking",
        "signature",
        "data",
        "name",
        "input",
        "usage",
        "input_tokens",
        "output_tokens",
        "cache_creation_input_tokens",
        "cache_read_input_tokens",
        "server_tool_use",
        "error",
        "citation",
        "citations",
        "cited_text",
        "document_title",
        "title",
        "stop_details",
        "category",
        "explanation",
        "system",
        "messages",
        "max_tokens",
        "stream",
        "temperature",
        "top_p",
        "top_k",
        "stop_sequences",
        "metadata",
        "user_id",
        "tools",
        "description",
        "input_schema",
        "properties",
        "required",
        "source",
        "is_error",
        "details",
        "error_code",
    }
)
# Encrypted: thinking signatures, redacted thinking.
OPAQUE = frozenset(
    {
        "delta.signature",
        "content_block.signature",
        "content_block.data",
        "content.signature",
        "content.data",
        "messages.content.signature",
        "messages.content.data",
    }
)
# Base64 images and documents (`source.type: "base64"`): skipped only while the whole value is
# base64. A plain-text document (`source.type: "text"`) is text the model reads: moderated.
BASE64 = frozenset({"source.data"})
# A tool call's input as a JSON object (a whole answer, a request's history, a block that starts
# with it): its numbers are read too. Streamed, it is JSON text (`partial_json`).
ARGUMENTS = frozenset({"content.input", "content_block.input"})
WALKER = TextWalker(STRUCTURAL, KNOWN_KEYS, OPAQUE, base64=BASE64, arguments=ARGUMENTS)
# Which string of a delta is the block's streamed text, by delta type.
DELTA_TEXT = {"text_delta": "text", "input_json_delta": "partial_json", "thinking_delta": "thinking"}
# Deltas that carry a whole object (a citation, a thinking block's signature), not a piece of text.
WHOLE_DELTAS = frozenset({"citations_delta", "signature_delta"})
# Where a block's initial text sits in content_block_start, by block type.
BLOCK_TEXT = {"text": "text", "thinking": "thinking"}
# The joined view (`("flat", kind)`) a block of each type streams on: blocks of one type are one
# more view, so text split across them is still one text. A block of another known type ends the
# row of thinking or of tool input (the answer after thinking, a tool call after thinking): the
# joined view decides its tail then, not at the end of the message, which would hold every event
# in between back with it. Text rows are never ended: `text_stream`, and any code that prints
# every text delta, shows the text of all text blocks as one.
FLAT_KIND = {
    "text": "text",
    "thinking": "thinking",
    "tool_use": "partial_json",
    "server_tool_use": "partial_json",
    "mcp_tool_use": "partial_json",
}
ENDABLE_ROWS = frozenset(DELTA_TEXT.values()) - {"text"}
EVENTS = frozenset(
    {
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
        "ping",
        "error",
    }
)


def block_views(index: int, kind: str) -> tuple[Channel, ...]:
    return (("block", index, kind), ("flat", kind))


def _own_views(field: str) -> tuple[Channel, ...]:
    return (("field", field),)


def _block_views(index: int) -> Callable[[str], tuple[Channel, ...]]:
    """A block's other strings (a tool's name and input, citations), each field on its own channel."""
    return lambda field: (("block", index, field),)


def _index(payload: dict[str, Any]) -> int:
    index = payload.get("index")
    if not isinstance(index, int) or isinstance(index, bool):
        raise ProviderError("the upstream sent a content block index that is not an integer")
    return index


def extract_event(payload: dict[str, Any], out: list[TextPart]) -> None:
    kind = payload.get("type")
    skip: set[str] = set()
    if kind == "content_block_delta":
        index = _index(payload)
        delta = payload.get("delta")
        if isinstance(delta, dict):
            key = DELTA_TEXT.get(str(delta.get("type")))
            if key is not None and isinstance(delta.get(key), str) and delta[key]:
                channel = "text" if key == "text" else key
                # Tool input is JSON text the SDK parses: read with its escapes decoded.
                json_text = key == "partial_json"
                out.append(TextPart(block_views(index, channel), delta[key], ("delta", key), json_text=json_text))
            rest = others(delta, key)
            # A citation comes whole in its delta and is kept whole, in a list; a delta type not
            # known here may stream, so its strings are read in a row per block and field.
            views = whole if delta.get("type") in WHOLE_DELTAS else _block_views(index)
            WALKER.walk(rest, ("delta",), "delta", views, out)
            skip.add("delta")
    elif kind == "content_block_start":
        index = _index(payload)
        block = payload.get("content_block")
        if isinstance(block, dict):
            key = BLOCK_TEXT.get(str(block.get("type")))
            if key is not None and isinstance(block.get(key), str) and block[key]:
                out.append(TextPart(block_views(index, key), block[key], ("content_block", key)))
            rest = others(block, key)
            # Everything else a block starts with is whole (a tool's name and id, a search
            # result): held on a channel, it would wait for the block's end, and every later
            # event (the tool's input, the rest of the answer) with it.
            WALKER.walk(rest, ("content_block",), "content_block", whole, out)
            skip.add("content_block")
    # The fields of a known event are whole; an event type not known here may stream, so each
    # of its fields is read in a row across events.
    views = whole if kind in EVENTS else _own_views
    for key, value in payload.items():
        if key in skip:
            continue
        if key not in KNOWN_KEYS:
            out.append(TextPart((), key, (key,), is_key=True))
        WALKER.walk(value, (key,), key, views, out)


class AnthropicStream:
    provider = PROVIDER

    def __init__(self) -> None:
        self._done = False
        self._open_blocks: set[int] = set()
        # Blocks as parsed (`delivered` sees them only once they are sent).
        self._blocks = BlockKinds("a content block")
        self._started = False
        self._output_tokens = 0
        self._blocks_begun = 0

    @property
    def is_complete(self) -> bool:
        return self._done

    def parse(self, event: Event) -> ParsedEvent:
        payload = loads_strict(event.data)
        if not isinstance(payload, dict):
            raise ProviderError("the upstream sent a Messages event that is not a JSON object")
        kind = payload.get("type")
        # The SDK dispatches on the event name (error, ping) and parses by type: they must agree.
        if event.event != kind:
            raise ProviderError("the upstream sent an event whose name is not its type")
        parsed = ParsedEvent(payload=payload)
        extract_event(payload, parsed.parts)
        if kind == "message_start":
            message = payload.get("message")
            if isinstance(message, dict) and message.get("content"):
                # The SDK's snapshot starts from this content and routes deltas by index into
                # it: text there would join a block's deltas unread as one.
                raise ProviderError("the upstream began the message with content already in it")
        elif kind == "content_block_start":
            if _index(payload) != self._blocks_begun:
                # The SDK appends blocks as they begin and finds a delta's block by its index:
                # out of order, a delta would extend another block than the one read here.
                raise ProviderError("the upstream began a content block out of order")
            self._blocks_begun += 1
            block = payload.get("content_block")
            streams_on = FLAT_KIND.get(str(block.get("type"))) if isinstance(block, dict) else None
            kinds = None if streams_on is None else frozenset({streams_on})
            parsed.ends_rows = self._blocks.begin(_index(payload), kinds, ENDABLE_ROWS)
        elif kind == "content_block_delta":
            delta = payload.get("delta")
            self._blocks.check(
                _index(payload), DELTA_TEXT.get(str(delta.get("type"))) if isinstance(delta, dict) else None
            )
        elif kind == "content_block_stop":
            index = _index(payload)
            self._blocks.finish(index)
            parsed.closes = (("block", index),)
        elif kind == "message_stop":
            parsed.is_end = True
            self._done = True
        elif kind == "error":
            parsed.is_end = parsed.is_error = True
            self._done = True
        return parsed

    def render(self, event: Event, parsed: ParsedEvent, texts: Sequence[str], *, partial: bool) -> bytes:
        rewrite_payload(parsed.payload, parsed.parts, texts)
        return encode_event(dumps(parsed.payload), event.event)

    def can_repeat(self, parsed: ParsedEvent) -> bool:
        """Text deltas: parsing one changes nothing here, and `delivered` ignores them."""
        return isinstance(parsed.payload, dict) and parsed.payload.get("type") == "content_block_delta"

    def delivered(self, parsed: ParsedEvent, *, partial: bool) -> None:
        payload = parsed.payload
        kind = payload.get("type")
        if kind == "message_start":
            self._started = True
            usage = payload.get("message", {}).get("usage") if isinstance(payload.get("message"), dict) else None
            if isinstance(usage, dict) and isinstance(usage.get("output_tokens"), int):
                self._output_tokens = usage["output_tokens"]
        elif kind == "content_block_start":
            self._open_blocks.add(payload["index"])
        elif kind == "content_block_stop" and isinstance(payload.get("index"), int):
            self._open_blocks.discard(payload["index"])
        elif kind == "message_delta" and isinstance(payload.get("usage"), dict):
            tokens = payload["usage"].get("output_tokens")
            if isinstance(tokens, int):
                self._output_tokens = tokens

    def violation_event(self, message: str, *, rule: str, category: str) -> bytes:
        error = {"type": "invalid_request_error", "message": message}
        return encode_event(dumps({"type": "error", "error": error, "request_id": "req_guardstream"}), "error")

    def failure_event(self, message: str) -> bytes:
        error = {"type": "api_error", "message": message}
        return encode_event(dumps({"type": "error", "error": error, "request_id": "req_guardstream"}), "error")

    def finish_events(self, released: ReleasedText) -> bytes:
        out = []
        if not self._started:
            # Nothing reached the client yet: the helper needs a message to finish.
            message: dict[str, Any] = {"id": "msg_guardstream", "type": "message", "role": "assistant"}
            message.update(content=[], model="", stop_reason=None, stop_sequence=None)
            message["usage"] = {"input_tokens": 0, "output_tokens": 0}
            out.append(encode_event(dumps({"type": "message_start", "message": message}), "message_start"))
        for index in sorted(self._open_blocks):
            out.append(encode_event(dumps({"type": "content_block_stop", "index": index}), "content_block_stop"))
        delta = {"stop_reason": "refusal", "stop_sequence": None}
        usage = {"output_tokens": self._output_tokens}
        out.append(encode_event(dumps({"type": "message_delta", "delta": delta, "usage": usage}), "message_delta"))
        out.append(encode_event(dumps({"type": "message_stop"}), "message_stop"))
        return b"".join(out)

    def keepalive(self) -> bytes:
        # Anthropic's own keep-alive; the SDK skips it.
        return encode_event('{"type":"ping"}', "ping")


class AnthropicPayload:
    """Messages request bodies and whole (non-streaming) messages."""

    def request_parts(self, body: Any) -> list[TextPart]:
        return read_as_one(WALKER, body, ("request",))

    def response_parts(self, body: Any) -> list[TextPart]:
        parts: list[TextPart] = []
        content = body.get("content") if isinstance(body, dict) else None
        if isinstance(content, list):
            for index, block in enumerate(content):
                if not isinstance(block, dict):
                    continue
                key = {"text": "text", "thinking": "thinking"}.get(str(block.get("type")))
                if key is not None and isinstance(block.get(key), str) and block[key]:
                    parts.append(TextPart(block_views(index, key), block[key], ("content", index, key)))
                rest = {k: v for k, v in block.items() if k != key}
                WALKER.walk(rest, ("content", index), "content", _block_views(index), parts)
        if isinstance(body, dict):
            for key, value in body.items():
                if key == "content" and isinstance(content, list):
                    continue
                if key not in KNOWN_KEYS:
                    parts.append(TextPart((), key, (key,), is_key=True))
                WALKER.walk(value, (key,), key, _own_views, parts)
        else:
            WALKER.walk(body, (), "", _own_views, parts)
        return parts

    def error_body(self, message: str, code: str, *, status: int) -> bytes:
        return anthropic_error(message, code, status=status)

    def finish_body(self, body: Any, parts: Sequence[TextPart], texts: Sequence[str]) -> Any:
        rewrite_payload(body, parts, texts)
        if isinstance(body, dict):
            body["stop_reason"] = "refusal"
            body["stop_sequence"] = None
        return body


ANTHROPIC = Provider(name=PROVIDER, stream_codec=AnthropicStream, payload=AnthropicPayload())
