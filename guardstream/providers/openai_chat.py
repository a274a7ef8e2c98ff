"""OpenAI Chat Completions (`POST /v1/chat/completions`, also Azure's deployment path).

Channels: one per choice `index` for `content`, one for `refusal`, and one per tool call
`index` for its `arguments`; a choice's `finish_reason` closes its channels (PROTOCOLS.md §1.3).
"""

from __future__ import annotations

from typing import Any

from guardstream.providers.base import ParsedEvent, Provider, TextPart, dumps, loads_event, set_path
from guardstream.sse import Event, encode_event

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
            index = choice.get("index", i)
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
        return encode_event(dumps(parsed.payload))

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
                channel = (index, "tool", call.get("index", k))
                parts.append(TextPart(channel, arguments, (*base, "tool_calls", k, "function", "arguments")))


def _error(message: str, code: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"message": message, "type": type_, "param": None, "code": code}


def error_body(message: str, code: str) -> bytes:
    return dumps({"error": _error(message, code)}).encode()


def request_texts(body: Any) -> list[tuple[tuple[str | int, ...], str]]:
    """User-supplied text of a request: message contents, string or content-part form."""
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
    return found


def response_parts(body: Any) -> list[TextPart]:
    parts: list[TextPart] = []
    choices = body.get("choices") if isinstance(body, dict) else None
    if not isinstance(choices, list):
        return parts
    for i, choice in enumerate(choices):
        if isinstance(choice, dict) and isinstance(choice.get("message"), dict):
            _delta_parts(parts, choice["message"], choice.get("index", i), ("choices", i, "message"))
    return parts


OPENAI_CHAT = Provider(
    name=PROVIDER,
    stream_codec=OpenAIChatStream,
    request_texts=request_texts,
    response_parts=response_parts,
    error_body=error_body,
)
