"""OpenAI Chat Completions (`POST /v1/chat/completions`, also Azure's deployment path).

Channels: one per choice `index` for `content`, one for `refusal`, and one per tool call
`index` for its `arguments`; a choice's `finish_reason` closes its channels (PROTOCOLS.md §1.3).
"""

from __future__ import annotations

from typing import Any

from guardstream.errors import ProviderError
from guardstream.providers.base import ParsedEvent, Provider, TextPart, dumps, loads_event, set_path
from guardstream.sse import Event, encode_event, replace_data

PROVIDER = "openai-chat"


class OpenAIChatStream:
    provider = PROVIDER

    def __init__(self) -> None:
        self._template: dict[str, Any] = {}
        self._open_choices: set[int] = set()

    def parse(self, event: Event) -> ParsedEvent:
        if event.data.startswith("[DONE]"):
            return ParsedEvent(closes_all=True)
        payload = loads_event(event)
        if not isinstance(payload, dict):
            return ParsedEvent(payload=payload)
        if payload.get("error"):
            return ParsedEvent(payload=payload, closes_all=True)
        parsed = ParsedEvent(payload=payload)
        for key in ("id", "object", "created", "model", "system_fingerprint"):
            if key in payload:
                self._template[key] = payload[key]
        choices = payload.get("choices")
        if not isinstance(choices, list):
            return parsed
        for i, choice in enumerate(choices):
            if not isinstance(choice, dict):
                continue
            index = _index(choice, i)
            self._open_choices.add(index)
            delta = choice.get("delta")
            if isinstance(delta, dict):
                _delta_parts(parsed.parts, delta, index, ("choices", i, "delta"))
            if choice.get("finish_reason") is not None:
                parsed.closes.append((index,))
                self._open_choices.discard(index)
        return parsed

    def rewrite(self, event: Event, parsed: ParsedEvent, texts: list[str]) -> bytes:
        for part, text in zip(parsed.parts, texts, strict=True):
            set_path(parsed.payload, part.path, text)
        return replace_data(event, dumps(parsed.payload))

    def rewrite_partial(self, event: Event, parsed: ParsedEvent, texts: list[str]) -> bytes:
        """The released start of the event a block cut through: no finish_reason and no usage,
        since the stream does not end the way this event said."""
        for choice in parsed.payload.get("choices") or []:
            if isinstance(choice, dict):
                choice["finish_reason"] = None
        parsed.payload.pop("usage", None)
        return self.rewrite(event, parsed, texts)

    def reopen(self, parsed: ParsedEvent) -> None:
        """An event that never reached the client: the choices it finished are still open."""
        payload = parsed.payload
        choices = payload.get("choices") if isinstance(payload, dict) else None
        for i, choice in enumerate(choices or []):
            if isinstance(choice, dict) and choice.get("finish_reason") is not None:
                self._open_choices.add(_index(choice, i))

    def violation_event(self, message: str) -> bytes:
        return encode_event(dumps({"error": _error(message, "content_filter")}))

    def failure_event(self, message: str) -> bytes:
        return encode_event(dumps({"error": _error(message, "upstream_error", "server_error")}))

    def finish_events(self) -> bytes:
        template = {"id": "chatcmpl-guardstream", "object": "chat.completion.chunk", "created": 0, "model": ""}
        template.update(self._template)
        out = []
        for index in sorted(self._open_choices) or [0]:
            chunk = dict(template)
            chunk["choices"] = [{"index": index, "delta": {}, "logprobs": None, "finish_reason": "content_filter"}]
            out.append(encode_event(dumps(chunk)))
        out.append(encode_event("[DONE]"))
        return b"".join(out)


def _index(item: dict[str, Any], default: int) -> int:
    """A choice's or tool call's `index`: a channel key, so it must be a plain int (fail closed)."""
    index = item.get("index", default)
    if not isinstance(index, int) or isinstance(index, bool):
        raise ProviderError(f"the upstream sent an index that is not an integer: {type(index).__name__}")
    return index


def _delta_parts(parts: list[TextPart], delta: dict[str, Any], index: int, base: tuple[str | int, ...]) -> None:
    for field in ("content", "refusal"):
        text = delta.get(field)
        if isinstance(text, str) and text:
            parts.append(TextPart((index, field), text, (*base, field)))
    tool_calls = delta.get("tool_calls")
    if isinstance(tool_calls, list):
        for k, call in enumerate(tool_calls):
            if not isinstance(call, dict):
                continue
            function = call.get("function")
            arguments = function.get("arguments") if isinstance(function, dict) else None
            if isinstance(arguments, str) and arguments:
                channel = (index, "tool", _index(call, k))
                parts.append(TextPart(channel, arguments, (*base, "tool_calls", k, "function", "arguments")))


def _error(message: str, code: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"message": message, "type": type_, "param": None, "code": code}


def error_body(message: str, code: str) -> bytes:
    return dumps({"error": _error(message, code)}).encode()


def request_texts(body: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """Text a request sends the model: message contents (string or content parts) and the
    arguments of earlier tool calls in the history, where a secret travels just as well."""
    found: list[tuple[tuple[str | int, ...], str]] = []
    messages = body.get("messages") if isinstance(body, dict) else None
    if not isinstance(messages, list):
        return found
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            continue
        content = message.get("content")
        if isinstance(content, str):
            found.append((("messages", i, "content"), content))
        elif isinstance(content, list):
            for j, part in enumerate(content):
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    found.append((("messages", i, "content", j, "text"), part["text"]))
        tool_calls = message.get("tool_calls")
        for k, call in enumerate(tool_calls if isinstance(tool_calls, list) else []):
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                found.append((("messages", i, "tool_calls", k, "function", "arguments"), function["arguments"]))
        function_call = message.get("function_call")
        if isinstance(function_call, dict) and isinstance(function_call.get("arguments"), str):
            found.append((("messages", i, "function_call", "arguments"), function_call["arguments"]))
    return found


def response_parts(body: Any) -> list[TextPart]:
    parts: list[TextPart] = []
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        return parts
    for i, choice in enumerate(choices):
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            _delta_parts(parts, choice["message"], _index(choice, i), ("choices", i, "message"))
    return parts


OPENAI_CHAT = Provider(
    name=PROVIDER,
    stream_codec=OpenAIChatStream,
    request_texts=request_texts,
    response_parts=response_parts,
    error_body=error_body,
)
