"""The built-in scripted model server: a real upstream for tests, the demo and benchmarks.

It speaks OpenAI Chat Completions (also on the Azure deployment path), OpenAI Responses, Anthropic
Messages and Gemini `generateContent` / `streamGenerateContent`, streamed and not, in the shapes the
official SDKs parse (PROTOCOLS.md). The *request* chooses the answer: a `"mock"` object in the JSON
body, or `x-mock-<field>` headers, fill in a `MockScript`.

```python
uvicorn.run(create_mock_app(), port=8081)

client = OpenAI(base_url="http://127.0.0.1:8081/v1", api_key="test")
client.chat.completions.create(
    model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True,
    extra_body={"mock": {"reply": "Hi there", "chunk_chars": 2, "delay_ms": 20, "drop_after": 3}},
)
```

Ids come from a digest of the request and timestamps are fixed, so identical requests get
byte-identical answers: tests compare a proxied answer with a direct one byte for byte.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import math
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import anyio
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

__all__ = ["MockScript", "MockScriptError", "MockToolCall", "create_mock_app"]

CREATED = 1_700_000_000
DEFAULT_REPLY = "Hello! I am the guardstream mock model."
HOLD_TIMEOUT_SECONDS = 30.0
MOCK_HEADER_PREFIX = "x-mock-"
MALFORMED_DATA = '{"broken": '
SYSTEM_FINGERPRINT = "fp_guardstream_mock"
THINKING_SIGNATURE = "bW9jay1zaWduYXR1cmU="
MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-6", "gemini-2.0-flash")

JSONObject = dict[str, Any]
ErrorBody = Callable[[int, str], JSONObject]


class MockScriptError(ValueError):
    """The mock script of a request is invalid. The mock answers HTTP 400 in the provider's error shape."""


@dataclass(frozen=True)
class MockToolCall:
    """One function call the mock model makes after its text."""

    name: str
    arguments: str


@dataclass(frozen=True)
class MockScript:
    """What the mock answers, and how: text, chunking, timing and injected faults.

    Every field can be set in the request body's `"mock"` object or with an `x-mock-<field-with-dashes>`
    header (body wins). Header values are JSON for non-text fields (`x-mock-chunk-chars: 2`); text fields
    are taken as-is, or base64 after a `b64:` prefix so non-latin-1 text fits in a header.
    Fault positions (`drop_after`, `malformed_after`, `hold_after`) count events written, from 0.
    """

    reply: str = DEFAULT_REPLY
    replies: tuple[str, ...] = ()
    chunk_chars: int = 4
    delay_ms: float = 0.0
    first_byte_delay_ms: float = 0.0
    tool_calls: tuple[MockToolCall, ...] = ()
    refusal: str | None = None
    thinking: str | None = None
    drop_after: int | None = None
    malformed_after: int | None = None
    hold_after: int | None = None
    hold_key: str | None = None
    status: int | None = None
    error_message: str | None = None

    def __post_init__(self) -> None:
        if self.chunk_chars < 1:
            raise MockScriptError(f"Mock field 'chunk_chars' has value {self.chunk_chars!r}. It must be at least 1.")
        if (self.hold_after is None) != (self.hold_key is None):
            raise MockScriptError("Mock fields 'hold_after' and 'hold_key' go together. Set both or neither.")

    @classmethod
    def from_request(cls, body: Mapping[str, Any], headers: Mapping[str, str]) -> MockScript:
        """Read the script from `body["mock"]` and `x-mock-*` headers; raise `MockScriptError` if invalid."""
        raw: dict[str, Any] = {}
        for header, value in headers.items():
            header = header.lower()
            if header.startswith(MOCK_HEADER_PREFIX):
                name = header.removeprefix(MOCK_HEADER_PREFIX).replace("-", "_")
                _check_field_name(name)
                raw[name] = _decode_header(name, value)
        mock = body.get("mock", {})
        if not isinstance(mock, Mapping):
            raise MockScriptError(f"The request's 'mock' key has value {mock!r}. It must be a JSON object.")
        for name, value in mock.items():
            _check_field_name(name)
            raw[name] = value
        return cls(**{name: _FIELD_VALIDATORS[name](name, value) for name, value in raw.items()})

    def reply_for(self, index: int) -> str:
        """The text of choice `index`: its entry in `replies`, else `reply`."""
        return self.replies[index] if index < len(self.replies) else self.reply

    def answer_for(self, index: int) -> str:
        """The text the model streams for choice `index`: the refusal when there is one."""
        return self.refusal if self.refusal is not None else self.reply_for(index)


def _check_field_name(name: str) -> None:
    if name not in _FIELD_VALIDATORS:
        known = ", ".join(_FIELD_VALIDATORS)
        raise MockScriptError(f"Unknown mock field '{name}'. Known fields: {known}.")


def _decode_header(name: str, value: str) -> object:
    if name in _TEXT_FIELDS:
        if not value.startswith("b64:"):
            return value
        try:
            return base64.b64decode(value[4:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise MockScriptError(f"Header 'x-mock-{name}' is not valid base64 of UTF-8 text after 'b64:'.") from exc
    try:
        return json.loads(value)
    except ValueError as exc:
        raise MockScriptError(f"Header 'x-mock-{name}' has value {value!r}. Not valid JSON.") from exc


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a string.")
    return value


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a non-negative integer.")
    return value


def _milliseconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a non-negative number.")
    return float(value)


def _error_status(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not an HTTP error status (400-599).")
    return value


def _replies(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a list of strings.")
    return tuple(_text(name, item) for item in value)


def _tool_calls(name: str, value: object) -> tuple[MockToolCall, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise MockScriptError(f'Mock field \'{name}\' must be a list of {{"name": ..., "arguments": ...}} objects.')
    calls = []
    for item in value:
        arguments = item.get("arguments", "")
        # An object is accepted as a convenience; the wire always carries the JSON text.
        if isinstance(arguments, dict):
            arguments = _dumps(arguments)
        calls.append(MockToolCall(name=_text(f"{name}.name", item.get("name")), arguments=_text(name, arguments)))
    return tuple(calls)


_TEXT_FIELDS = frozenset({"reply", "refusal", "thinking", "hold_key", "error_message"})
_FIELD_VALIDATORS: dict[str, Callable[[str, object], Any]] = {
    "reply": _text,
    "replies": _replies,
    "chunk_chars": _count,
    "delay_ms": _milliseconds,
    "first_byte_delay_ms": _milliseconds,
    "tool_calls": _tool_calls,
    "refusal": _text,
    "thinking": _text,
    "drop_after": _count,
    "malformed_after": _count,
    "hold_after": _count,
    "hold_key": _text,
    "status": _error_status,
    "error_message": _text,
}


# --- Wire encoding -----------------------------------------------------------------------------------------------


def _dumps(value: object) -> str:
    # Compact and non-ASCII like the real APIs, but U+2028/U+2029/U+0085 are escaped: splitlines()-based SSE
    # parsers (httpx-sse <= 0.4.1, google-genai <= 1.30) would otherwise cut the JSON in half.
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\u2028", "\\u2028").replace("\u2029", "\\u2029").replace("\u0085", "\\u0085")


def _utf8(text: str) -> bytes:
    # A lone surrogate (from a "\ud800" escape in the request) becomes the JSON escape text again, not bad UTF-8.
    return text.encode("utf-8", "backslashreplace")


@dataclass(frozen=True)
class _Event:
    data: str
    name: str | None = None


def _encode_data_only(event: _Event) -> bytes:
    return _utf8(f"data: {event.data}\n\n")


def _encode_named(event: _Event) -> bytes:
    return _utf8(f"event: {event.name}\ndata: {event.data}\n\n")


def _encode_crlf(event: _Event) -> bytes:
    return _utf8(f"data: {event.data}\r\n\r\n")


def _encode_raw(event: _Event) -> bytes:
    return _utf8(event.data)


@dataclass(frozen=True)
class _Framing:
    """How one response format turns events into bytes."""

    media_type: str
    encode: Callable[[_Event], bytes]
    prefix: bytes = b""
    separator: bytes = b""
    suffix: bytes = b""


_OPENAI_SSE = _Framing("text/event-stream", _encode_data_only)
_NAMED_SSE = _Framing("text/event-stream", _encode_named)
_GEMINI_SSE = _Framing("text/event-stream", _encode_crlf)
_JSON_BODY = _Framing("application/json", _encode_raw)
_JSON_ARRAY = _Framing("application/json", _encode_raw, prefix=b"[", separator=b",\r\n", suffix=b"]")


async def _sleep_ms(milliseconds: float) -> None:
    if milliseconds > 0:
        await anyio.sleep(milliseconds / 1000)


class _Holds:
    """Named gates that `hold_after` streams wait on until `POST /_mock/release/{key}`."""

    def __init__(self) -> None:
        self._events: dict[str, anyio.Event] = {}

    def _event(self, key: str) -> anyio.Event:
        if key not in self._events:
            self._events[key] = anyio.Event()
        return self._events[key]

    def release(self, key: str) -> None:
        # A release may arrive before the stream reaches its hold; the set event then lets it straight through.
        self._event(key).set()

    async def wait(self, key: str) -> None:
        event = self._event(key)
        with anyio.move_on_after(HOLD_TIMEOUT_SECONDS):
            await event.wait()
        # Consume the release so a later test reusing the key holds again.
        if event.is_set() and self._events.get(key) is event:
            del self._events[key]


class _EventStream(Response):
    """Writes scripted events one at a time, applying the script's timing and injected faults.

    JSON answers go through here too, as a one-event stream, so every fault works on them as well.
    """

    def __init__(
        self, events: list[_Event], framing: _Framing, script: MockScript, holds: _Holds, headers: Mapping[str, str]
    ) -> None:
        self.events = events
        self.framing = framing
        self.script = script
        self.holds = holds
        self.status_code = 200
        self.media_type = framing.media_type
        self.background = None
        extra = {"cache-control": "no-cache"} if framing.media_type == "text/event-stream" else {}
        self.init_headers({**headers, **extra})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        # uvicorn silently drops writes after a disconnect, so watch for it ourselves: a client that goes away
        # mid-stream (or mid-hold) ends the response quietly instead of leaving it sleeping.
        async with anyio.create_task_group() as task_group:

            async def send_then_stop() -> None:
                await self._send_events(send)
                task_group.cancel_scope.cancel()

            task_group.start_soon(send_then_stop)
            await _wait_for_disconnect(receive)
            task_group.cancel_scope.cancel()

    async def _send_events(self, send: Send) -> None:
        script = self.script
        await _sleep_ms(script.first_byte_delay_ms)
        await send({"type": "http.response.start", "status": self.status_code, "headers": self.raw_headers})
        pending = deque(self.events)
        sent = 0
        while True:
            if sent == script.hold_after and script.hold_key is not None:
                await self.holds.wait(script.hold_key)
            if sent == script.drop_after:
                # Return without the final body message: uvicorn then closes the socket mid-body, and the client
                # sees an incomplete chunked body, as from a crashed upstream.
                return
            if not pending:
                break
            if sent == script.malformed_after:
                event = _Event(MALFORMED_DATA, pending[0].name)
            else:
                event = pending.popleft()
            if sent:
                await _sleep_ms(script.delay_ms)
            glue = self.framing.separator if sent else self.framing.prefix
            await send({"type": "http.response.body", "body": glue + self.framing.encode(event), "more_body": True})
            sent += 1
        await send({"type": "http.response.body", "body": self.framing.suffix, "more_body": False})


async def _wait_for_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _json_response(status: int, body: JSONObject) -> Response:
    return Response(_utf8(_dumps(body)), status_code=status, media_type="application/json")


# --- Native error bodies -----------------------------------------------------------------------------------------

_OPENAI_ERROR_KINDS = {
    401: ("invalid_request_error", "invalid_api_key"),
    403: ("invalid_request_error", "unsupported_country_region_territory"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
}
_ANTHROPIC_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    402: "billing_error",
    403: "permission_error",
    404: "not_found_error",
    413: "request_too_large",
    429: "rate_limit_error",
    504: "timeout_error",
    529: "overloaded_error",
}
_GOOGLE_STATUSES = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    409: "ABORTED",
    429: "RESOURCE_EXHAUSTED",
    499: "CANCELLED",
    501: "NOT_IMPLEMENTED",
    503: "UNAVAILABLE",
    504: "DEADLINE_EXCEEDED",
}


def _openai_error(status: int, message: str) -> JSONObject:
    default = ("server_error", None) if status >= 500 else ("invalid_request_error", None)
    type_, code = _OPENAI_ERROR_KINDS.get(status, default)
    return {"error": {"message": message, "type": type_, "param": None, "code": code}}


def _anthropic_error(status: int, message: str) -> JSONObject:
    type_ = _ANTHROPIC_ERROR_TYPES.get(status, "api_error" if status >= 500 else "invalid_request_error")
    return {"type": "error", "error": {"type": type_, "message": message}, "request_id": "req_mock_error"}


def _gemini_error(status: int, message: str) -> JSONObject:
    default = "INTERNAL" if status >= 500 else "FAILED_PRECONDITION"
    return {"error": {"code": status, "message": message, "status": _GOOGLE_STATUSES.get(status, default)}}


# --- Answers, one builder per format (pure: request in, events or JSON out) -------------------------------------


def _count_tokens(text: str) -> int:
    return math.ceil(len(text) / 4)


def _pieces(text: str, size: int) -> list[str]:
    return [text[start : start + size] for start in range(0, len(text), size)]


def _arguments_object(call: MockToolCall) -> JSONObject:
    try:
        value = json.loads(call.arguments) if call.arguments else {}
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise MockScriptError(
            f"Tool call '{call.name}' has arguments {call.arguments!r}. This format needs a JSON object there."
        )
    return value


@dataclass(frozen=True)
class _Turn:
    """One answer to produce: the script plus what the request fixes (model, ids, prompt size)."""

    script: MockScript
    model: str
    digest: str
    prompt_tokens: int

    def output_tokens(self, text: str) -> int:
        return _count_tokens(text) + sum(_count_tokens(call.arguments) for call in self.script.tool_calls)

    def call_id(self, position: int, choice: int = 0) -> str:
        return f"call_mock_{self.digest}_{choice}_{position}"


def _make_turn(request: Request, body: JSONObject, script: MockScript, model: str, prompt: object) -> _Turn:
    # The digest covers everything that shapes the answer, so identical requests get identical ids.
    seed = json.dumps([request.url.path, body, repr(script)], sort_keys=True, ensure_ascii=True)
    digest = hashlib.sha256(seed.encode("ascii")).hexdigest()[:16]
    return _Turn(script, model, digest, _count_tokens(_dumps(prompt)))


def _chat_usage(prompt_tokens: int, completion_tokens: int) -> JSONObject:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {
            "reasoning_tokens": 0,
            "audio_tokens": 0,
            "accepted_prediction_tokens": 0,
            "rejected_prediction_tokens": 0,
        },
    }


def _chat_chunks(turn: _Turn, n: int, include_usage: bool) -> list[_Event]:
    script = turn.script
    envelope: JSONObject = {
        "id": f"chatcmpl-mock-{turn.digest}",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": turn.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }

    def chunk(index: int, delta: JSONObject, finish_reason: str | None = None) -> _Event:
        choice = {"index": index, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        # With include_usage the real API puts "usage": null on every chunk but the last.
        usage = {"usage": None} if include_usage else {}
        return _Event(_dumps({**envelope, "choices": [choice], **usage}))

    is_refusal = script.refusal is not None
    channel = "refusal" if is_refusal else "content"
    per_choice: list[list[_Event]] = []
    completion_tokens = 0
    for index in range(n):
        text = script.answer_for(index)
        completion_tokens += turn.output_tokens(text)
        first = {"role": "assistant", "content": None if is_refusal else "", "refusal": "" if is_refusal else None}
        events = [chunk(index, first)]
        events += [chunk(index, {channel: piece}) for piece in _pieces(text, script.chunk_chars)]
        for position, call in enumerate(script.tool_calls):
            opening = {"index": position, "id": turn.call_id(position, index), "type": "function"}
            events.append(chunk(index, {"tool_calls": [{**opening, "function": {"name": call.name, "arguments": ""}}]}))
            events += [
                chunk(index, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
                for piece in _pieces(call.arguments, script.chunk_chars)
            ]
        events.append(chunk(index, {}, "tool_calls" if script.tool_calls else "stop"))
        per_choice.append(events)
    # Choices interleave on the wire, one choice per chunk, as the real API sends them for n > 1.
    merged = [events[step] for step in range(max(map(len, per_choice))) for events in per_choice if step < len(events)]
    if include_usage:
        usage = _chat_usage(turn.prompt_tokens, completion_tokens)
        merged.append(_Event(_dumps({**envelope, "choices": [], "usage": usage})))
    merged.append(_Event("[DONE]"))
    return merged


def _chat_completion(turn: _Turn, n: int) -> JSONObject:
    script = turn.script
    choices = []
    completion_tokens = 0
    for index in range(n):
        text = script.answer_for(index)
        completion_tokens += turn.output_tokens(text)
        content = None if script.refusal is not None or (not text and script.tool_calls) else text
        message: JSONObject = {"role": "assistant", "content": content, "refusal": script.refusal, "annotations": []}
        if script.tool_calls:
            message["tool_calls"] = [
                {
                    "id": turn.call_id(position, index),
                    "type": "function",
                    "function": {"name": call.name, "arguments": call.arguments},
                }
                for position, call in enumerate(script.tool_calls)
            ]
        finish_reason = "tool_calls" if script.tool_calls else "stop"
        choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": finish_reason})
    return {
        "id": f"chatcmpl-mock-{turn.digest}",
        "object": "chat.completion",
        "created": CREATED,
        "model": turn.model,
        "choices": choices,
        "usage": _chat_usage(turn.prompt_tokens, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }


def _response_object(turn: _Turn, status: str, output: list[JSONObject], usage: JSONObject | None) -> JSONObject:
    return {
        "id": f"resp_mock_{turn.digest}",
        "object": "response",
        "created_at": CREATED,
        "status": status,
        "background": False,
        "error": None,
        "incomplete_details": None,
        "instructions": None,
        "max_output_tokens": None,
        "model": turn.model,
        "output": output,
        "parallel_tool_calls": True,
        "previous_response_id": None,
        "reasoning": {"effort": None, "summary": None},
        "store": True,
        "temperature": 1.0,
        "text": {"format": {"type": "text"}},
        "tool_choice": "auto",
        "tools": [],
        "top_p": 1.0,
        "truncation": "disabled",
        "usage": usage,
        "user": None,
        "metadata": {},
    }


def _responses_events(turn: _Turn) -> list[_Event]:
    """The whole Responses stream; its last event (`response.completed`) also holds the non-streaming answer."""
    script = turn.script
    payloads: list[JSONObject] = []

    def emit(type_: str, **fields: object) -> None:
        payloads.append({"type": type_, "sequence_number": len(payloads), **fields})

    in_progress = _response_object(turn, "in_progress", [], None)
    emit("response.created", response=in_progress)
    emit("response.in_progress", response=in_progress)
    output: list[JSONObject] = []
    text = script.answer_for(0)
    if text or not script.tool_calls:
        item_id = f"msg_mock_{turn.digest}"
        where = {"item_id": item_id, "output_index": 0, "content_index": 0}
        message: JSONObject = {
            "id": item_id,
            "type": "message",
            "status": "in_progress",
            "content": [],
            "role": "assistant",
        }
        emit("response.output_item.added", output_index=0, item=message)
        if script.refusal is not None:
            emit("response.content_part.added", **where, part={"type": "refusal", "refusal": ""})
            for piece in _pieces(text, script.chunk_chars):
                emit("response.refusal.delta", **where, delta=piece)
            emit("response.refusal.done", **where, refusal=text)
            part: JSONObject = {"type": "refusal", "refusal": text}
        else:
            emit("response.content_part.added", **where, part={"type": "output_text", "annotations": [], "text": ""})
            for piece in _pieces(text, script.chunk_chars):
                emit("response.output_text.delta", **where, delta=piece, logprobs=[])
            emit("response.output_text.done", **where, text=text, logprobs=[])
            part = {"type": "output_text", "annotations": [], "logprobs": [], "text": text}
        emit("response.content_part.done", **where, part=part)
        message = {**message, "status": "completed", "content": [part]}
        emit("response.output_item.done", output_index=0, item=message)
        output.append(message)
    for position, call in enumerate(script.tool_calls):
        output_index = len(output)
        item_id = f"fc_mock_{turn.digest}_{position}"
        item = {
            "id": item_id,
            "type": "function_call",
            "status": "in_progress",
            "arguments": "",
            "call_id": turn.call_id(position),
            "name": call.name,
        }
        emit("response.output_item.added", output_index=output_index, item=item)
        for piece in _pieces(call.arguments, script.chunk_chars):
            emit("response.function_call_arguments.delta", item_id=item_id, output_index=output_index, delta=piece)
        emit(
            "response.function_call_arguments.done",
            item_id=item_id,
            output_index=output_index,
            arguments=call.arguments,
        )
        item = {**item, "status": "completed", "arguments": call.arguments}
        emit("response.output_item.done", output_index=output_index, item=item)
        output.append(item)
    output_tokens = turn.output_tokens(text)
    usage = {
        "input_tokens": turn.prompt_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": turn.prompt_tokens + output_tokens,
    }
    emit("response.completed", response=_response_object(turn, "completed", output, usage))
    return [_Event(_dumps(payload), name=payload["type"]) for payload in payloads]


@dataclass(frozen=True)
class _Block:
    """One Anthropic content block: how it opens on the wire, its deltas, and its final form."""

    start: JSONObject
    deltas: list[JSONObject]
    final: JSONObject


def _anthropic_blocks(turn: _Turn, *, is_streaming: bool) -> list[_Block]:
    script = turn.script
    size = script.chunk_chars
    blocks: list[_Block] = []
    if script.thinking is not None:
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in _pieces(script.thinking, size)]
        deltas.append({"type": "signature_delta", "signature": THINKING_SIGNATURE})
        final: JSONObject = {"type": "thinking", "thinking": script.thinking, "signature": THINKING_SIGNATURE}
        blocks.append(_Block({"type": "thinking", "thinking": "", "signature": ""}, deltas, final))
    text = script.answer_for(0)
    if text or not script.tool_calls:
        deltas = [{"type": "text_delta", "text": piece} for piece in _pieces(text, size)]
        blocks.append(_Block({"type": "text", "text": ""}, deltas, {"type": "text", "text": text}))
    for position, call in enumerate(script.tool_calls):
        opening = {"type": "tool_use", "id": f"toolu_mock_{turn.digest}_{position}", "name": call.name}
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in _pieces(call.arguments, size)]
        # Only the non-streaming form needs parsed input; a stream may carry deliberately broken JSON.
        final = {**opening, "input": {} if is_streaming else _arguments_object(call)}
        blocks.append(_Block({**opening, "input": {}}, deltas, final))
    return blocks


def _anthropic_stop_reason(script: MockScript) -> str:
    if script.refusal is not None:
        return "refusal"
    return "tool_use" if script.tool_calls else "end_turn"


def _anthropic_output_tokens(turn: _Turn) -> int:
    return turn.output_tokens(turn.script.answer_for(0)) + _count_tokens(turn.script.thinking or "")


def _anthropic_events(turn: _Turn) -> list[_Event]:
    payloads: list[JSONObject] = []
    message = _anthropic_message(turn, content=[], stop_reason=None, output_tokens=1)
    payloads.append({"type": "message_start", "message": message})
    for index, block in enumerate(_anthropic_blocks(turn, is_streaming=True)):
        payloads.append({"type": "content_block_start", "index": index, "content_block": block.start})
        if index == 0:
            payloads.append({"type": "ping"})
        payloads += [{"type": "content_block_delta", "index": index, "delta": delta} for delta in block.deltas]
        payloads.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": _anthropic_stop_reason(turn.script), "stop_sequence": None}
    # usage is required here: the SDK's stream helper crashes without it (PROTOCOLS.md 2.1).
    payloads.append(
        {"type": "message_delta", "delta": delta, "usage": {"output_tokens": _anthropic_output_tokens(turn)}}
    )
    payloads.append({"type": "message_stop"})
    return [_Event(_dumps(payload), name=payload["type"]) for payload in payloads]


def _anthropic_message(
    turn: _Turn, content: list[JSONObject], stop_reason: str | None, output_tokens: int
) -> JSONObject:
    return {
        "id": f"msg_mock_{turn.digest}",
        "type": "message",
        "role": "assistant",
        "model": turn.model,
        "content": content,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": {
            "input_tokens": turn.prompt_tokens,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": 0,
            "output_tokens": output_tokens,
        },
    }


def _gemini_chunks(turn: _Turn) -> list[JSONObject]:
    """The stream's chunks; the non-streaming answer is the same content in one chunk (`_gemini_response`)."""
    script = turn.script
    parts: list[list[JSONObject]] = [[{"text": piece}] for piece in _pieces(script.answer_for(0), script.chunk_chars)]
    if script.tool_calls:
        # Gemini does not stream arguments: all calls arrive parsed, in one chunk.
        parts.append(
            [{"functionCall": {"name": call.name, "args": _arguments_object(call)}} for call in script.tool_calls]
        )
    if not parts:
        parts.append([{"text": ""}])
    chunks = []
    candidates_tokens = 0
    for step, chunk_parts in enumerate(parts):
        candidates_tokens += sum(_count_tokens(part.get("text", "")) for part in chunk_parts)
        if step == len(parts) - 1:
            candidates_tokens = turn.output_tokens(script.answer_for(0))
        chunks.append(_gemini_response(turn, chunk_parts, is_last=step == len(parts) - 1, tokens=candidates_tokens))
    return chunks


def _gemini_response(turn: _Turn, parts: list[JSONObject], *, is_last: bool, tokens: int) -> JSONObject:
    candidate: JSONObject = {"content": {"parts": parts, "role": "model"}}
    if is_last:
        candidate["finishReason"] = "SAFETY" if turn.script.refusal is not None else "STOP"
    candidate["index"] = 0
    usage = {"promptTokenCount": turn.prompt_tokens, "candidatesTokenCount": tokens}
    return {
        "candidates": [candidate],
        "usageMetadata": {**usage, "totalTokenCount": turn.prompt_tokens + tokens},
        "modelVersion": turn.model,
        "responseId": f"mock-{turn.digest}",
    }


# --- The app ------------------------------------------------------------------------------------------------------

_Builder = Callable[[Request, JSONObject, MockScript], Response]


class _MockServer:
    """The app's state (request log, hold gates) and its endpoints."""

    def __init__(self) -> None:
        self.requests: list[JSONObject] = []
        self.holds = _Holds()

    async def _record(self, request: Request) -> object:
        raw = await request.body()
        try:
            body: object = json.loads(raw) if raw else None
        except ValueError:
            body = None
        self.requests.append(
            {
                "method": request.method,
                "path": request.url.path,
                "query": dict(request.query_params),
                "headers": dict(request.headers),
                "body": body,
            }
        )
        return body

    async def _answer(self, request: Request, error_body: ErrorBody, build: _Builder) -> Response:
        body = await self._record(request)
        try:
            if not isinstance(body, dict):
                raise MockScriptError("The request body must be a JSON object.")
            script = MockScript.from_request(body, request.headers)
            if script.status is None:
                return build(request, body, script)
        except MockScriptError as exc:
            return _json_response(400, error_body(400, str(exc)))
        await _sleep_ms(script.first_byte_delay_ms)
        status = script.status or 500
        message = script.error_message or f"The mock script asked for HTTP {status}."
        return _json_response(status, error_body(status, message))

    def _stream(
        self, events: list[_Event], framing: _Framing, script: MockScript, headers: Mapping[str, str]
    ) -> Response:
        return _EventStream(events, framing, script, self.holds, headers)

    async def chat_completions(self, request: Request) -> Response:
        return await self._answer(request, _openai_error, self._chat)

    def _chat(self, request: Request, body: JSONObject, script: MockScript) -> Response:
        n = body.get("n")
        n = 1 if n is None else n
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 128:
            raise MockScriptError(f"Request field 'n' has value {n!r}. It must be an integer from 1 to 128.")
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and options.get("include_usage") is True
        model = body.get("model") or request.path_params.get("deployment") or "gpt-4o-mini"
        turn = _make_turn(request, body, script, str(model), body.get("messages"))
        headers = {"x-request-id": f"req_mock_{turn.digest}"}
        if body.get("stream"):
            return self._stream(_chat_chunks(turn, n, include_usage), _OPENAI_SSE, script, headers)
        return self._stream([_Event(_dumps(_chat_completion(turn, n)))], _JSON_BODY, script, headers)

    async def responses(self, request: Request) -> Response:
        return await self._answer(request, _openai_error, self._responses)

    def _responses(self, request: Request, body: JSONObject, script: MockScript) -> Response:
        model = str(body.get("model") or "gpt-4o-mini")
        turn = _make_turn(request, body, script, model, [body.get("instructions"), body.get("input")])
        headers = {"x-request-id": f"req_mock_{turn.digest}"}
        events = _responses_events(turn)
        if body.get("stream"):
            return self._stream(events, _NAMED_SSE, script, headers)
        final = json.loads(events[-1].data)["response"]
        return self._stream([_Event(_dumps(final))], _JSON_BODY, script, headers)

    async def messages(self, request: Request) -> Response:
        return await self._answer(request, _anthropic_error, self._messages)

    def _messages(self, request: Request, body: JSONObject, script: MockScript) -> Response:
        model = str(body.get("model") or "claude-sonnet-4-6")
        turn = _make_turn(request, body, script, model, [body.get("system"), body.get("messages")])
        headers = {"request-id": f"req_mock_{turn.digest}"}
        if body.get("stream"):
            return self._stream(_anthropic_events(turn), _NAMED_SSE, script, headers)
        content = [block.final for block in _anthropic_blocks(turn, is_streaming=False)]
        stop_reason = _anthropic_stop_reason(script)
        message = _anthropic_message(turn, content, stop_reason, _anthropic_output_tokens(turn))
        return self._stream([_Event(_dumps(message))], _JSON_BODY, script, headers)

    async def gemini(self, request: Request) -> Response:
        return await self._answer(request, _gemini_error, self._gemini)

    def _gemini(self, request: Request, body: JSONObject, script: MockScript) -> Response:
        model, _, method = str(request.path_params["rest"]).rpartition(":")
        if not model or method not in ("generateContent", "streamGenerateContent"):
            message = f"Method '{method}' is not served by the mock. Use generateContent or streamGenerateContent."
            return _json_response(404, _gemini_error(404, message))
        turn = _make_turn(request, body, script, model, [body.get("systemInstruction"), body.get("contents")])
        chunks = _gemini_chunks(turn)
        if method == "generateContent":
            parts = [part for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]
            text = "".join(part.get("text", "") for part in parts)
            merged = [{"text": text}] if text or not script.tool_calls else []
            merged += [part for part in parts if "functionCall" in part]
            answer = _gemini_response(turn, merged, is_last=True, tokens=turn.output_tokens(text))
            return self._stream([_Event(_dumps(answer))], _JSON_BODY, script, {})
        # Without alt=sse the real API streams one JSON array, element by element.
        framing = _GEMINI_SSE if request.query_params.get("alt") == "sse" else _JSON_ARRAY
        return self._stream([_Event(_dumps(chunk)) for chunk in chunks], framing, script, {})

    async def models(self, request: Request) -> Response:
        await self._record(request)
        data = [
            {"id": model, "object": "model", "created": CREATED, "owned_by": "guardstream-mock"} for model in MODEL_IDS
        ]
        return _json_response(200, {"object": "list", "data": data})

    async def list_requests(self, request: Request) -> Response:
        return Response(_utf8(_dumps(self.requests)), media_type="application/json")

    async def clear_requests(self, request: Request) -> Response:
        count = len(self.requests)
        self.requests.clear()
        return _json_response(200, {"deleted": count})

    async def release(self, request: Request) -> Response:
        key = str(request.path_params["key"])
        self.holds.release(key)
        return _json_response(200, {"released": key})


def create_mock_app() -> Starlette:
    """Build the scripted mock model server as an ASGI app.

    All state (the request log, hold gates) lives on this app instance, at `app.state.mock`.

    ```python
    uvicorn.run(create_mock_app(), host="127.0.0.1", port=8081)
    ```
    """
    server = _MockServer()
    routes = [
        Route("/v1/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/openai/deployments/{deployment}/chat/completions", server.chat_completions, methods=["POST"]),
        Route("/v1/responses", server.responses, methods=["POST"]),
        Route("/v1/messages", server.messages, methods=["POST"]),
        Route("/v1/models", server.models, methods=["GET"]),
        # Gemini puts the method after a colon in the last segment (models/gemini-2.0-flash:generateContent).
        Route("/{version}/models/{rest}", server.gemini, methods=["POST"]),
        Route("/_mock/requests", server.list_requests, methods=["GET"]),
        Route("/_mock/requests", server.clear_requests, methods=["DELETE"]),
        Route("/_mock/release/{key}", server.release, methods=["POST"]),
    ]
    app = Starlette(routes=routes)
    app.state.mock = server
    return app
