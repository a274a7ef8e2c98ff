"""OpenAI Responses (`POST /v1/responses`): named events, one channel per output item / content part.

Channels: `output_text`, `refusal` and `reasoning_text` per (output_index, content_index), function
call `arguments` per output_index, reasoning `summary` per (output_index, summary_index); each is
also read in a row across items (`flat`), the way code that prints every `.delta` reads it.

The `*.done` events, `response.content_part.done`, `response.output_item.done` and the final
`response.completed` (or `incomplete`/`failed`) repeat the text: there it is a *copy*, rendered as
exactly what the client got on that channel (redacted, or nothing past a block). Every other
string of every event is moderated (default deny), including event types not listed here.

A violation ends with the `error` event in its hybrid form (flat fields and a nested `error`
object), the one every SDK version raises on; a graceful finish closes the items the client has
seen (`status: "incomplete"`) and ends with `response.incomplete`, reason `content_filter`.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from guardstream.errors import ProviderError
from guardstream.payload import Channel, TextPart, TextWalker, dumps, loads_strict, others, read_as_one, whole
from guardstream.providers.base import (
    BlockKinds,
    ParsedEvent,
    Provider,
    ReleasedText,
    drop_stale_logprobs,
    rewrite_payload,
)
from guardstream.providers.errors import openai_error
from guardstream.sse import Event, encode_event

PROVIDER = "openai-responses"
TERMINAL = frozenset({"response.completed", "response.incomplete", "response.failed", "error"})

STRUCTURAL = frozenset(
    {
        # Logprob alternatives: candidates the model did not pick, each read on its own.
        "token",
        "type",
        "id",
        "item_id",
        "call_id",
        "object",
        "status",
        "role",
        "model",
        "created_at",
        "sequence_number",
        "output_index",
        "content_index",
        "summary_index",
        "annotation_index",
        "tool_choice",
        "truncation",
        "service_tier",
        # Random padding on every delta (`stream_options.include_obfuscation`, on by default): a
        # value of its own in each event. On a channel, the pads would be one endless word whose
        # tail could still become an address, and every event would wait for the pads after it.
        "obfuscation",
        "previous_response_id",
        "include",
        "effort",
        "verbosity",
        "format",
        "url",
        "file_id",
        "container_id",
        "code",
        "param",
        "reason",
        "prompt_cache_key",
        "safety_identifier",
    }
)
KNOWN_KEYS = frozenset(
    {
        *STRUCTURAL,
        "response",
        "item",
        "part",
        "output",
        "content",
        "text",
        "delta",
        "refusal",
        "arguments",
        "name",
        "summary",
        "annotations",
        "annotation",
        "logprobs",
        "token",
        "logprob",
        "bytes",
        "top_logprobs",
        "usage",
        "input_tokens",
        "output_tokens",
        "total_tokens",
        "input_tokens_details",
        "output_tokens_details",
        "cached_tokens",
        "reasoning_tokens",
        "error",
        "message",
        "incomplete_details",
        "instructions",
        "metadata",
        "temperature",
        "top_p",
        "tools",
        "parallel_tool_calls",
        "max_output_tokens",
        "reasoning",
        "store",
        "background",
        "user",
        "input",
        "stream",
        "description",
        "parameters",
        "properties",
        "required",
        "strict",
        "title",
        "start_index",
        "end_index",
        "encrypted_content",
        "output_text",
    }
)
# Binary or encrypted payloads, not text: base64 audio and images, encrypted reasoning.
OPAQUE = frozenset({"encrypted_content", "partial_image_b64", "result.b64"})
OPAQUE_EVENTS = {"response.audio.delta": "delta", "response.image_generation_call.partial_image": "partial_image_b64"}
# Inline images and files (`input_image`, `input_file`): skipped only while the whole value is a
# base64 data URL; audio, base64 by definition, while it is base64.
MEDIA = frozenset({"image_url", "image_url.url", "file_data"})
BASE64 = frozenset({"input_audio.data"})
# A computer or shell call's action is its arguments as a JSON object: its numbers are read too.
ARGUMENTS = frozenset({"item.action", "input.action"})
WALKER = TextWalker(
    STRUCTURAL,
    KNOWN_KEYS,
    frozenset({"encrypted_content", "partial_image_b64"}),
    media=MEDIA,
    base64=BASE64,
    arguments=ARGUMENTS,
)
LOGPROB_KEYS = frozenset({"token", "logprob", "bytes", "top_logprobs"})


def channel_views(output_index: int, sub: int | None, kind: str) -> tuple[Channel, ...]:
    return (("item", output_index, sub, kind), ("flat", kind))


def _is_json_text(views: tuple[Channel, ...]) -> bool:
    """Call arguments are JSON text that the client parses: read with their escapes decoded."""
    return views[-1] == ("flat", "arguments")


def _int(value: Any, name: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ProviderError(f"the upstream sent a {name} that is not an integer")
    return value


# Where an item's texts go (see `Extractor.item` and `.part`), shared with the check that an
# event's texts are of its item's kinds (`_text_kinds`): a content part's text field by the part's
# type (its channel is named for the type); the item types whose `arguments` stream; a reasoning
# item's lists of texts and their channels.
PART_FIELDS = {"output_text": "text", "refusal": "refusal", "reasoning_text": "text"}
ARGUMENT_ITEMS = ("function_call", "custom_tool_call", "mcp_call")
REASONING_LISTS = (("summary", "summary"), ("content", "reasoning_text"))


class Extractor:
    """Every string of one event (or a whole response), as text, copies and values."""

    def __init__(self, out: list[TextPart]) -> None:
        self.out = out

    def text(self, path: tuple[str | int, ...], text: Any, views: tuple[Channel, ...]) -> None:
        if isinstance(text, str) and text:
            self.out.append(TextPart(views, text, path, tracked=True, json_text=_is_json_text(views)))

    def copy(self, path: tuple[str | int, ...], text: Any, views: tuple[Channel, ...]) -> None:
        if isinstance(text, str):
            self.out.append(TextPart(views, text, path, copy_of=views[0], json_text=_is_json_text(views)))

    def rest(
        self, node: Any, path: tuple[str | int, ...], field: str, skip: set[str], *, comes_whole: bool = True
    ) -> None:
        """Default deny for whatever a known shape does not place. In an object that comes whole
        (an item, a part, an annotation, a known event) each string is a value, checked on its
        own, as the SDK keeps it: held on a channel, a function's name or a citation's title
        would wait for the end of the stream, and every later event with it. In an event of a
        type not known here (`comes_whole=False`), which may stream, each field is read in a row."""
        views = whole if comes_whole else _own_views
        if isinstance(node, dict):
            for key, value in node.items():
                if key in skip:
                    continue
                if key not in KNOWN_KEYS:
                    self.out.append(TextPart((), key, (*path, key), is_key=True))
                name = f"{field}.{key}" if field else key
                WALKER.walk(value, (*path, key), name, views, self.out)
        else:
            WALKER.walk(node, path, field, views, self.out)

    def item(self, item: Any, path: tuple[str | int, ...], output_index: int, *, snapshot: bool) -> None:
        """An output item: its texts are copies of their channels when `snapshot`, else new text."""
        if not isinstance(item, dict):
            self.rest(item, path, "item", set())
            return
        place = self.copy if snapshot else self.text
        skip: set[str] = set()
        kind = item.get("type")
        if kind == "message" and isinstance(item.get("content"), list):
            skip.add("content")
            for ci, part in enumerate(item["content"]):
                self.part(part, (*path, "content", ci), output_index, ci, snapshot=snapshot)
        elif kind in ARGUMENT_ITEMS and isinstance(item.get("arguments"), str):
            skip.add("arguments")
            place((*path, "arguments"), item["arguments"], channel_views(output_index, None, "arguments"))
        elif kind == "reasoning":
            for key, sub_kind in REASONING_LISTS:
                entries = item.get(key)
                if isinstance(entries, list):
                    skip.add(key)
                    for si, entry in enumerate(entries):
                        text = entry.get("text") if isinstance(entry, dict) else None
                        place((*path, key, si, "text"), text, channel_views(output_index, si, sub_kind))
                        if isinstance(entry, dict):
                            self.rest(others(entry, "text"), (*path, key, si), key, set())
        self.rest(item, path, "item", skip)

    def part(self, part: Any, path: tuple[str | int, ...], output_index: int, ci: int, *, snapshot: bool) -> None:
        if not isinstance(part, dict):
            self.rest(part, path, "part", set())
            return
        place = self.copy if snapshot else self.text
        kind = part.get("type")
        field = PART_FIELDS.get(str(kind))
        if field is None:
            self.rest(part, path, "part", set())
            return
        place((*path, field), part.get(field), channel_views(output_index, ci, str(kind)))
        self.rest(others(part, field), path, "part", set())

    def response(self, response: Any, path: tuple[str | int, ...]) -> None:
        """A response object: its output is a snapshot of every item; the rest is text."""
        if not isinstance(response, dict):
            self.rest(response, path, "response", set())
            return
        output = response.get("output")
        if isinstance(output, list):
            for oi, item in enumerate(output):
                self.item(item, (*path, "output", oi), oi, snapshot=True)
        self.rest(response, path, "response", {"output", "output_text"})


def _own_views(field: str) -> tuple[Channel, ...]:
    return (("field", field),)


def _is_whole_event(kind: str) -> bool:
    """Event types whose fields come whole: the known ones, and (by OpenAI's naming) any
    `response.*` event that is not a `.delta` (progress events such as `*.searching`)."""
    return (
        kind in STREAMED
        or kind in ADDS_TO_ITEM
        or kind in ENVELOPES
        or (kind.startswith("response.") and not kind.endswith(".delta"))
    )


# Events that stream or repeat one channel's text: (the key holding it, the channel's kind,
# the key of its index within the item, whether it repeats the channel).
STREAMED = {
    "response.output_text.delta": ("delta", "output_text", "content_index", False),
    "response.output_text.done": ("text", "output_text", "content_index", True),
    "response.refusal.delta": ("delta", "refusal", "content_index", False),
    "response.refusal.done": ("refusal", "refusal", "content_index", True),
    "response.reasoning_text.delta": ("delta", "reasoning_text", "content_index", False),
    "response.reasoning_text.done": ("text", "reasoning_text", "content_index", True),
    "response.function_call_arguments.delta": ("delta", "arguments", None, False),
    "response.function_call_arguments.done": ("arguments", "arguments", None, True),
    "response.mcp_call_arguments.delta": ("delta", "arguments", None, False),
    "response.mcp_call_arguments.done": ("arguments", "arguments", None, True),
    "response.reasoning_summary_text.delta": ("delta", "summary", "summary_index", False),
    "response.reasoning_summary_text.done": ("text", "summary", "summary_index", True),
}
ENVELOPES = frozenset({"response.created", "response.in_progress", "response.queued", *TERMINAL})
# The joined views (`("flat", kind)`) an output item of each type streams on. An item of another
# known type ends the row of reasoning or of call arguments (the answer after a reasoning
# summary): they decide their tail then, not at `response.completed`, which would hold every
# event in between back with it. Rows of answer text are never ended (code that prints every
# `.delta` shows them as one). An item's own views are complete at its `output_item.done`.
ITEM_KINDS = {
    "message": frozenset({"output_text", "refusal"}),
    "reasoning": frozenset({"summary", "reasoning_text"}),
    **{item_type: frozenset({"arguments"}) for item_type in ARGUMENT_ITEMS},
}
ENDABLE_ROWS = frozenset(kind for _, kind, _, _ in STREAMED.values()) - ITEM_KINDS["message"]
# Events that add to an item: none may come once the item is done.
ADDS_TO_ITEM = frozenset(
    {
        *STREAMED,
        "response.output_item.added",
        "response.content_part.added",
        "response.content_part.done",
        "response.reasoning_summary_part.added",
        "response.reasoning_summary_part.done",
        "response.output_item.done",
    }
)


def _text_kinds(kind: str, payload: dict[str, Any]) -> set[str]:
    """The channels an event that adds to an item puts text on (as `extract_event` places it)."""
    streamed = STREAMED.get(kind)
    if streamed is not None:
        return {streamed[1]}
    if kind.startswith("response.reasoning_summary_part."):
        return {"summary"}
    if kind.startswith("response.content_part."):
        part = payload.get("part")
        part_type = part.get("type") if isinstance(part, dict) else None
        return {part_type} if part_type in PART_FIELDS else set()
    item = payload.get("item")
    if not isinstance(item, dict):
        return set()
    kinds: set[str] = set()
    item_type = item.get("type")
    if item_type == "message" and isinstance(item.get("content"), list):
        kinds |= {p["type"] for p in item["content"] if isinstance(p, dict) and p.get("type") in PART_FIELDS}
    elif item_type in ARGUMENT_ITEMS and "arguments" in item:
        kinds.add("arguments")
    elif item_type == "reasoning":
        kinds |= {sub_kind for key, sub_kind in REASONING_LISTS if isinstance(item.get(key), list)}
    return kinds


def extract_event(payload: dict[str, Any], out: list[TextPart]) -> bool:
    """Append the event's parts; True when its raw bytes must not be relayed (logprobs dropped)."""
    kind = payload.get("type")
    rewrite = False
    ex = Extractor(out)
    done: set[str] = set()
    streamed = STREAMED.get(str(kind))
    if streamed is not None:
        key, channel, sub_key, is_copy = streamed
        oi = _int(payload.get("output_index"), "output_index")
        sub = _int(payload.get(sub_key), sub_key) if sub_key else None
        (ex.copy if is_copy else ex.text)((key,), payload.get(key), channel_views(oi, sub, channel))
        # A text slot that holds something else than a string is read with the rest.
        done = {key, "logprobs"} if isinstance(payload.get(key), str) else {"logprobs"}
        rewrite = _logprobs(payload, key, ex)
    elif kind in ("response.content_part.added", "response.content_part.done"):
        oi, ci = _int(payload.get("output_index"), "output_index"), _int(payload.get("content_index"), "content_index")
        ex.part(payload.get("part"), ("part",), oi, ci, snapshot=kind.endswith("done"))
        done = {"part"}
    elif kind in ("response.reasoning_summary_part.added", "response.reasoning_summary_part.done"):
        oi, si = _int(payload.get("output_index"), "output_index"), _int(payload.get("summary_index"), "summary_index")
        part = payload.get("part")
        text = part.get("text") if isinstance(part, dict) else None
        (ex.copy if kind.endswith("done") else ex.text)(("part", "text"), text, channel_views(oi, si, "summary"))
        if isinstance(part, dict):
            ex.rest(others(part, "text"), ("part",), "part", set())
        done = {"part"}
    elif kind in ("response.output_item.added", "response.output_item.done"):
        oi = _int(payload.get("output_index"), "output_index")
        ex.item(payload.get("item"), ("item",), oi, snapshot=kind.endswith("done"))
        done = {"item"}
    elif kind in ENVELOPES and "response" in payload:
        ex.response(payload["response"], ("response",))
        done = {"response"}
    opaque = OPAQUE_EVENTS.get(str(kind))
    if opaque is not None:
        done.add(opaque)
    ex.rest(
        payload, (), str(kind or "event"), done | {"type"}, comes_whole=isinstance(kind, str) and _is_whole_event(kind)
    )
    # The event type names what the SDK does with the event: a value, checked whole.
    if isinstance(kind, str):
        out.append(TextPart((), kind, ("type",)))
    return rewrite


def _logprobs(payload: dict[str, Any], text_key: str, ex: Extractor) -> bool:
    """Logprobs repeat the text: keep them only while their tokens spell it exactly (then the
    alternatives in `top_logprobs` are text of their own). True if they were dropped."""
    logprobs = payload.get("logprobs")
    if not logprobs:
        return False
    text = payload.get(text_key)
    ok = isinstance(logprobs, list) and isinstance(text, str)
    tokens = []
    for entry in logprobs if isinstance(logprobs, list) else []:
        if not isinstance(entry, dict) or not entry.keys() <= LOGPROB_KEYS or not isinstance(entry.get("token"), str):
            ok = False
            break
        raw = entry.get("bytes")
        if raw is not None and raw != list(entry["token"].encode("utf-8", "surrogatepass")):
            ok = False
            break
        tokens.append(entry["token"])
    if not ok or "".join(tokens) != text:
        payload["logprobs"] = []
        return True
    for i, entry in enumerate(logprobs):
        if entry.get("top_logprobs") is not None:
            ex.rest({"top_logprobs": entry["top_logprobs"]}, ("logprobs", i), "logprobs", set())
    return False


class OpenAIResponsesStream:
    provider = PROVIDER

    def __init__(self) -> None:
        self._done = False
        self._sequence = -1
        self._envelope: dict[str, Any] | None = None
        # What the client has seen: items by output_index, and which are still open.
        self._items: dict[int, dict[str, Any]] = {}
        # Output items as parsed (`delivered` sees them only once they are sent).
        self._items_parsed = BlockKinds("an output item")
        self._open_items: set[int] = set()
        self._open_parts: dict[int, set[int]] = {}
        # How many output items, and parts of each list of an item, have been added (as parsed).
        self._added: dict[tuple[int, str] | None, int] = {}

    @property
    def is_complete(self) -> bool:
        return self._done

    def parse(self, event: Event) -> ParsedEvent:
        payload = loads_strict(event.data)
        if not isinstance(payload, dict):
            raise ProviderError("the upstream sent a Responses event that is not a JSON object")
        kind = payload.get("type")
        if event.event is not None and event.event != kind:
            raise ProviderError("the upstream sent an event whose name is not its type")
        parsed = ParsedEvent(payload=payload)
        parsed.needs_rewrite = extract_event(payload, parsed.parts)
        oi = payload.get("output_index")
        self._check_order(str(kind), payload)
        if isinstance(oi, int) and not isinstance(oi, bool) and kind in ADDS_TO_ITEM:
            items = self._items_parsed
            item = payload.get("item")
            if kind == "response.output_item.added" and isinstance(item, dict):
                # (An added event without an item, as some compatible servers send, begins nothing.)
                parsed.ends_rows = items.begin(oi, ITEM_KINDS.get(str(item.get("type"))), ENDABLE_ROWS)
            # Every text it carries must be of a kind its item streams on.
            items.check(oi, None)
            for text_kind in sorted(_text_kinds(str(kind), payload)):
                items.check(oi, text_kind)
            if kind == "response.output_item.done":
                items.finish(oi)
                parsed.closes = (("item", oi),)
        if kind in TERMINAL:
            parsed.is_end = True
            parsed.is_error = kind in ("error", "response.failed")
            self._done = True
        return parsed

    def _check_order(self, kind: str, payload: dict[str, Any]) -> None:
        """Items, content parts and summary parts must be added in the order of their indices:
        the SDK appends each as it comes and finds a delta's by its index, so out of order a
        delta would extend another item or part than the one read here."""
        where: tuple[int, str] | None
        if kind == "response.output_item.added":
            if not isinstance(payload.get("item"), dict):
                return  # a null item, as some compatible servers announce first, begins nothing
            where, key = None, "output_index"
        elif kind == "response.content_part.added":
            where, key = (_int(payload.get("output_index"), "output_index"), "content"), "content_index"
        elif kind == "response.reasoning_summary_part.added":
            where, key = (_int(payload.get("output_index"), "output_index"), "summary"), "summary_index"
        else:
            return
        if _int(payload.get(key), key) != self._added.get(where, 0):
            raise ProviderError(f"the upstream sent a {key} out of order")
        self._added[where] = self._added.get(where, 0) + 1

    def render(self, event: Event, parsed: ParsedEvent, texts: Sequence[str], *, partial: bool) -> bytes:
        payload = parsed.payload
        rewrite_payload(payload, parsed.parts, texts)
        if "logprobs" in payload and any(t != p.text for p, t in zip(parsed.parts, texts, strict=True)):
            payload["logprobs"] = []
        return encode_event(dumps(payload), payload.get("type"))

    def delivered(self, parsed: ParsedEvent, *, partial: bool) -> None:
        payload = parsed.payload
        if not isinstance(payload, dict):
            return
        sequence = payload.get("sequence_number")
        if isinstance(sequence, int) and not isinstance(sequence, bool):
            self._sequence = max(self._sequence, sequence)
        kind = payload.get("type")
        oi = payload.get("output_index")
        if kind in ("response.created", "response.in_progress") and isinstance(payload.get("response"), dict):
            self._envelope = copy.deepcopy(payload["response"])
        elif kind == "response.output_item.added" and isinstance(oi, int) and isinstance(payload.get("item"), dict):
            self._items[oi] = copy.deepcopy(payload["item"])
            self._open_items.add(oi)
        elif kind == "response.output_item.done" and isinstance(oi, int):
            self._open_items.discard(oi)
            if isinstance(payload.get("item"), dict):
                self._items[oi] = copy.deepcopy(payload["item"])
        elif kind == "response.content_part.added" and isinstance(oi, int):
            self._open_parts.setdefault(oi, set()).add(payload.get("content_index", 0))
        elif kind == "response.content_part.done" and isinstance(oi, int):
            self._open_parts.get(oi, set()).discard(payload.get("content_index", 0))

    def _event(self, kind: str, **fields: Any) -> bytes:
        self._sequence += 1
        return encode_event(dumps({"type": kind, "sequence_number": self._sequence, **fields}), kind)

    def violation_event(self, message: str, *, rule: str, category: str) -> bytes:
        error = {"type": "invalid_request_error", "code": "content_filter", "message": message, "param": None}
        self._sequence += 1
        payload = {"type": "error", "sequence_number": self._sequence, "code": "content_filter", "message": message}
        payload.update({"param": None, "error": error})
        return encode_event(dumps(payload), "error")

    def failure_event(self, message: str) -> bytes:
        error = {"type": "server_error", "code": "upstream_error", "message": message, "param": None}
        self._sequence += 1
        payload = {"type": "error", "sequence_number": self._sequence, "code": "upstream_error", "message": message}
        payload.update({"param": None, "error": error})
        return encode_event(dumps(payload), "error")

    def finish_events(self, released: ReleasedText) -> bytes:
        out: list[bytes] = []
        for oi in sorted(self._open_items):
            item = self._items[oi]
            item_id = item.get("id")
            if item.get("type") == "message":
                parts = []
                for ci in sorted(self._open_parts.get(oi, ())):
                    text = released(("item", oi, ci, "output_text"))
                    base = {"item_id": item_id, "output_index": oi, "content_index": ci}
                    out.append(self._event("response.output_text.done", **base, text=text, logprobs=[]))
                    part = {"type": "output_text", "text": text, "annotations": []}
                    out.append(self._event("response.content_part.done", **base, part=part))
                    parts.append(part)
                item = {**item, "content": parts}
            elif item.get("type") in ("function_call", "mcp_call"):
                arguments = released(("item", oi, None, "arguments"))
                fields = {"item_id": item_id, "output_index": oi, "arguments": arguments}
                out.append(self._event(f"response.{item['type']}_arguments.done", **fields))
                item = {**item, "arguments": arguments}
            item = {**item, "status": "incomplete"}
            self._items[oi] = item
            out.append(self._event("response.output_item.done", output_index=oi, item=item))
        response = dict(self._envelope or {"id": "resp_guardstream", "object": "response", "model": ""})
        response.update(
            status="incomplete",
            incomplete_details={"reason": "content_filter"},
            output=[self._items[oi] for oi in sorted(self._items)],
        )
        out.append(self._event("response.incomplete", response=response))
        return b"".join(out)

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"


class OpenAIResponsesPayload:
    """Responses request bodies and whole (non-streaming) response objects."""

    def request_parts(self, body: Any) -> list[TextPart]:
        return read_as_one(WALKER, body, ("request",))

    def response_parts(self, body: Any) -> list[TextPart]:
        parts: list[TextPart] = []
        ex = Extractor(parts)
        if isinstance(body, dict) and isinstance(body.get("output"), list):
            for oi, item in enumerate(body["output"]):
                ex.item(item, ("output", oi), oi, snapshot=False)
            ex.rest(body, (), "response", {"output", "output_text"})
        else:
            ex.rest(body, (), "response", set())
        return parts

    def error_body(self, message: str, code: str, *, status: int) -> bytes:
        return openai_error(message, code, status=status)

    def finish_body(self, body: Any, parts: Sequence[TextPart], texts: Sequence[str]) -> Any:
        rewrite_payload(body, parts, texts)
        drop_stale_logprobs(body, parts, texts)
        if isinstance(body, dict):
            body["status"] = "incomplete"
            body["incomplete_details"] = {"reason": "content_filter"}
        return body


OPENAI_RESPONSES = Provider(name=PROVIDER, stream_codec=OpenAIResponsesStream, payload=OpenAIResponsesPayload())
