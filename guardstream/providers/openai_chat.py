"""OpenAI Chat Completions (`/v1/chat/completions` under any base URL, and Azure's deployment path).

Every string of a chunk is moderated (default deny); the structural keys below are checked value
by value. Text under `choices[]` streams on three views at once, because clients read it in all
three ways: by the choice's `index` (the SDK's own accumulator), by its position in the list
(`chunk.choices[0].delta.content`, the way most application code reads it), and every choice in
wire order (code that prints each choice it gets). While they agree (one choice) they share one
window. Tool calls add the tool call's index or position.

`logprobs` repeat the text: `content[].token` (and its `bytes`) must spell exactly the text of the
same event, or they are dropped; they are dropped too whenever the event's text is rewritten.
The alternatives in `top_logprobs` are values, each checked on its own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guardstream.errors import ProviderError
from guardstream.payload import Channel, TextPart, TextWalker, dumps, loads_strict, read_as_one
from guardstream.providers.base import ParsedEvent, Provider, ReleasedText, drop_stale_logprobs, rewrite_payload
from guardstream.providers.errors import openai_error
from guardstream.sse import Event, encode_event

PROVIDER = "openai-chat"
EVENT_NAMES = frozenset({None, "message", "error"})

STRUCTURAL = frozenset(
    {
        # Logprob alternatives: candidates the model did not pick, each read on its own.
        "token",
        "id",
        "object",
        "created",
        "model",
        "system_fingerprint",
        "service_tier",
        "index",
        "finish_reason",
        "role",
        "type",
        "obfuscation",
        "tool_call_id",
        "tool_choice",
        "expires_at",
        "format",
        "voice",
        "url",
        "modalities",
        "reasoning_effort",
        "stop",
    }
)
KNOWN_KEYS = frozenset(
    {
        *STRUCTURAL,
        "choices",
        "delta",
        "message",
        "content",
        "refusal",
        "tool_calls",
        "function",
        "name",
        "arguments",
        "function_call",
        "logprobs",
        "token",
        "logprob",
        "bytes",
        "top_logprobs",
        "usage",
        "prompt_tokens",
        "completion_tokens",
        "total_tokens",
        "prompt_tokens_details",
        "completion_tokens_details",
        "cached_tokens",
        "audio_tokens",
        "reasoning_tokens",
        "accepted_prediction_tokens",
        "rejected_prediction_tokens",
        "audio",
        "data",
        "transcript",
        "annotations",
        "url_citation",
        "url",
        "title",
        "start_index",
        "end_index",
        "text",
        "reasoning",
        "reasoning_content",
        "error",
        "param",
        "code",
        "messages",
        "tools",
        "description",
        "parameters",
        "properties",
        "required",
        "stream",
        "stream_options",
        "include_usage",
        "temperature",
        "top_p",
        "n",
        "max_tokens",
        "max_completion_tokens",
        "seed",
        "user",
        "metadata",
        "response_format",
        "json_schema",
        "schema",
        "strict",
        "prediction",
        "image_url",
        "detail",
        "input_audio",
        "file",
        "file_id",
        "file_data",
        "filename",
        "functions",
        "presence_penalty",
        "frequency_penalty",
        "logit_bias",
        "parallel_tool_calls",
        "store",
        "enum",
        "items",
        "additionalProperties",
    }
)
# Streamed audio: base64 chunks of samples, not text.
OPAQUE = frozenset({"delta.audio.data"})
# Inline images and files: skipped only while the whole value is a base64 data URL.
MEDIA = frozenset({"image_url.url", "file.file_data"})
# Audio, base64 by definition: skipped only while the whole value is base64.
BASE64 = frozenset({"input_audio.data", "message.audio.data", "messages.audio.data"})
LOGPROB_KEYS = frozenset({"token", "logprob", "bytes", "top_logprobs"})
ALTERNATIVE_KEYS = frozenset({"token", "logprob", "bytes"})
ALIASES = {"delta.content.text": "delta.content", "message.content.text": "message.content"}
WALKER = TextWalker(STRUCTURAL, KNOWN_KEYS, OPAQUE, ALIASES, media=MEDIA, base64=BASE64)


def _top_views(field: str) -> tuple[Channel, ...]:
    return (("top", field),)


def _index(item: dict[str, Any], default: int) -> int:
    """A choice's or tool call's `index`: a channel key, so it must be a plain int (fail closed)."""
    index = item.get("index", default)
    if not isinstance(index, int) or isinstance(index, bool):
        raise ProviderError(f"the upstream sent an index that is not an integer: {type(index).__name__}")
    if index < 0:
        # The SDK's accumulator indexes a list with it: -1 is the last choice or tool call, so
        # the text would join one that guardstream reads apart.
        raise ProviderError("the upstream sent a negative index")
    return index


def extract(payload: Any, out: list[TextPart]) -> None:
    """Every string of a chunk or a whole completion, with its views."""
    if not isinstance(payload, dict):
        WALKER.walk(payload, (), "", _top_views, out)
        return
    for key, value in payload.items():
        if key not in KNOWN_KEYS:
            out.append(TextPart((), key, (key,), is_key=True))
        if key == "choices" and isinstance(value, list):
            for pos, choice in enumerate(value):
                if isinstance(choice, dict):
                    _extract_choice(choice, pos, out)
                else:
                    WALKER.walk(choice, ("choices", pos), "choices", _top_views, out)
        else:
            WALKER.walk(value, (key,), key, _top_views, out)


def _extract_choice(choice: dict[str, Any], pos: int, out: list[TextPart]) -> None:
    idx = _index(choice, pos)

    def views(field: str) -> tuple[Channel, ...]:
        return (("i", idx, field), ("p", pos, field), ("a", field))

    base = ("choices", pos)
    for key, value in choice.items():
        if key not in KNOWN_KEYS:
            out.append(TextPart((), key, (*base, key), is_key=True))
        if key in ("delta", "message") and isinstance(value, dict):
            for field, item in value.items():
                if field not in KNOWN_KEYS:
                    out.append(TextPart((), field, (*base, key, field), is_key=True))
                if field == "tool_calls" and isinstance(item, list):
                    _extract_tool_calls(item, idx, pos, (*base, key, field), out)
                else:
                    first = len(out)
                    WALKER.walk(item, (*base, key, field), f"{key}.{field}", views, out)
                    if field == "function_call":  # the deprecated single call
                        _mark_arguments(out, first)
        elif key == "logprobs":
            WALKER.walk(_top_logprobs_only(value), (*base, key), key, views, out)
        else:
            WALKER.walk(value, (*base, key), key, views, out)


def _extract_tool_calls(calls: list[Any], idx: int, pos: int, base: tuple[str | int, ...], out: list[TextPart]) -> None:
    for tool_pos, call in enumerate(calls):
        tool_idx = _index(call, tool_pos) if isinstance(call, dict) else tool_pos

        def views(field: str, tool_idx: int = tool_idx, tool_pos: int = tool_pos) -> tuple[Channel, ...]:
            return (("i", idx, "tool", tool_idx, field), ("p", pos, "tool", tool_pos, field), ("a", "tool", field))

        first = len(out)
        WALKER.walk(call, (*base, tool_pos), "", views, out)
        _mark_arguments(out, first)


def _mark_arguments(parts: list[TextPart], first: int) -> None:
    """A function's `arguments` (from `parts[first]` on) are JSON text that the client parses:
    the rules read them with their escapes decoded, or one `\\u0041` would hide a key."""
    for part in parts[first:]:
        if part.views and part.path[-2:] in (("function", "arguments"), ("function_call", "arguments")):
            part.json_text = True


def _delta_tool_calls(choice: Any) -> list[Any] | None:
    """The `tool_calls` list of a streamed choice's delta, if it has one."""
    delta = choice.get("delta") if isinstance(choice, dict) else None
    calls = delta.get("tool_calls") if isinstance(delta, dict) else None
    return calls if isinstance(calls, list) else None


def _names_a_tool_call(choice: dict[str, Any]) -> bool:
    """Whether a choice's delta gives a tool call an id or a name: such an event changes what the
    codec knows of the call (`_name_tool_calls`), so it is always parsed, never read by shape."""
    calls = _delta_tool_calls(choice)
    return calls is not None and any(
        isinstance(call, dict)
        and ("id" in call or (isinstance(call.get("function"), dict) and "name" in call["function"]))
        for call in calls
    )


def _top_logprobs_only(logprobs: Any) -> Any:
    """The strings of `logprobs` that are text of their own: the alternatives in `top_logprobs`
    (the chosen `token`s are copies of the content, checked by `_logprobs_agree`)."""
    if not isinstance(logprobs, dict):
        return logprobs
    found: dict[str, Any] = {}
    for key, entries in logprobs.items():
        if key in ("content", "refusal") and isinstance(entries, list):
            found[key] = [
                {"top_logprobs": entry.get("top_logprobs")} if isinstance(entry, dict) else entry for entry in entries
            ]
        else:
            found[key] = entries
    return found


def _logprobs_agree(choice: dict[str, Any]) -> bool:
    """Do the chosen tokens spell exactly the event's text, and each `bytes` its token?"""
    logprobs = choice.get("logprobs")
    if logprobs is None:
        return True
    if not isinstance(logprobs, dict):
        return False
    delta = choice.get("delta") or choice.get("message") or {}
    if not isinstance(delta, dict):
        return False
    for key, entries in logprobs.items():
        if entries is None:
            continue
        if key not in ("content", "refusal") or not isinstance(entries, list):
            return False
        tokens = []
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("token"), str) or not _bytes_agree(entry):
                return False
            if not entry.keys() <= LOGPROB_KEYS:
                return False
            alternatives = entry.get("top_logprobs") or []
            if not isinstance(alternatives, list):
                return False
            for alternative in alternatives:
                if not isinstance(alternative, dict) or not alternative.keys() <= ALTERNATIVE_KEYS:
                    return False
                if not _bytes_agree(alternative):
                    return False
            tokens.append(entry["token"])
        text = delta.get(key)
        if "".join(tokens) != (text if isinstance(text, str) else ""):
            return False
    return True


def _bytes_agree(entry: dict[str, Any]) -> bool:
    raw = entry.get("bytes")
    token = entry.get("token")
    return raw is None or (isinstance(token, str) and raw == list(token.encode("utf-8", "surrogatepass")))


class OpenAIChatStream:
    provider = PROVIDER
    chunk_object = "chat.completion.chunk"

    def __init__(self) -> None:
        self._template: dict[str, Any] = {}
        self._indices: set[int] = set()
        self._done = False
        # Tool calls (choice index, tool index) whose arguments have begun: their id, and the
        # names a repeat may bring (the whole name, and its last piece).
        self._named: dict[tuple[int, int], tuple[Any, frozenset[str]]] = {}
        # The name so far, its last piece, and the id, of each call whose arguments have not begun.
        self._naming: dict[tuple[int, int], tuple[str, str, Any]] = {}

    @property
    def is_complete(self) -> bool:
        return self._done

    def parse(self, event: Event) -> ParsedEvent:
        if event.event not in EVENT_NAMES:
            raise ProviderError("the upstream sent an event name Chat Completions does not use")
        if event.data.startswith("[DONE]"):
            if event.data != "[DONE]":
                raise ProviderError("the upstream sent text after [DONE]")
            self._done = True
            return ParsedEvent(is_end=True)
        payload = loads_strict(event.data)
        if not isinstance(payload, dict):
            raise ProviderError("the upstream sent an event that is not a JSON object")
        parsed = ParsedEvent(payload=payload)
        choices = payload.get("choices")
        if isinstance(choices, list):
            for pos, choice in enumerate(choices):
                if isinstance(choice, dict):
                    self._indices.add(_index(choice, pos))
                    if not self.logprobs_agree(choice):
                        choice["logprobs"] = None
                        parsed.needs_rewrite = True
        extract(payload, parsed.parts)
        if payload.get("error") or event.event == "error":
            parsed.is_error = parsed.is_end = True
            self._done = True
            return parsed
        for key in ("id", "object", "created", "model", "system_fingerprint"):
            if key in payload:
                self._template[key] = payload[key]
        if isinstance(choices, list):
            self._name_tool_calls(choices, parsed)
        return parsed

    def _name_tool_calls(self, choices: list[Any], parsed: ParsedEvent) -> None:
        """A tool call's name is complete once its arguments begin (OpenAI sends it whole, first):
        its rows are decided then, not at `finish_reason`, which would hold the arguments back
        with it until the call is over. Some servers send the name again with every piece of
        the arguments (llama-cpp-python, NIM, older vLLM): a repeat of the same name is checked
        as a value. A new `id` at the same index is a new call (lmdeploy, SGLang): its name
        starts new rows. Any other name after the arguments began ends the stream as malformed."""
        rows: list[Channel] = []
        for pos, choice in enumerate(choices):
            calls = _delta_tool_calls(choice)
            if calls is None:
                continue
            idx = _index(choice, pos)
            for tool_pos, call in enumerate(calls):
                function = call.get("function") if isinstance(call, dict) else None
                if not isinstance(function, dict):
                    continue
                key = (idx, _index(call, tool_pos))
                name, call_id = function.get("name"), call.get("id")
                known = self._named.get(key)
                if known is not None and name:
                    if call_id is not None and call_id != known[0]:
                        del self._named[key]  # a new call at this index
                    elif name in known[1]:
                        path = ("choices", pos, "delta", "tool_calls", tool_pos, "function", "name")
                        for part in parsed.parts:
                            if part.path == path:
                                part.views = ()  # the same name again: checked on its own
                    else:
                        raise ProviderError("the upstream sent another name for a tool call after its arguments")
                if key not in self._named:
                    so_far, last, first_id = self._naming.get(key, ("", "", None))
                    if isinstance(name, str) and name:
                        so_far, last = so_far + name, name
                    self._naming[key] = (so_far, last, first_id if first_id is not None else call_id)
                arguments = function.get("arguments")
                if key not in self._named and isinstance(arguments, str) and arguments:
                    so_far, last, first_id = self._naming.pop(key)
                    self._named[key] = (first_id, frozenset({so_far, last}))
                    rows += [
                        ("i", idx, "tool", key[1], "function.name"),
                        # Views by position join the names of every call at that position.
                        ("p", pos, "tool", tool_pos, "function.name"),
                        ("a", "tool", "function.name"),
                    ]
        parsed.ends_rows = tuple(dict.fromkeys(rows))

    def render(self, event: Event, parsed: ParsedEvent, texts: Sequence[str], *, partial: bool) -> bytes:
        if parsed.payload is None:  # [DONE]
            return encode_event("[DONE]")
        payload = parsed.payload
        rewrite_payload(payload, parsed.parts, texts)
        changed = {p.path[1] for p, text in zip(parsed.parts, texts, strict=True) if text != p.text and _in_choice(p)}
        choices = payload.get("choices")
        if isinstance(choices, list):
            for pos, choice in enumerate(choices):
                if not isinstance(choice, dict):
                    continue
                if (partial or pos in changed) and choice.get("logprobs") is not None:
                    # A copy of text that no longer is what the event says: drop it.
                    choice["logprobs"] = None
                if partial and "finish_reason" in choice:
                    choice["finish_reason"] = None
        if partial:
            payload.pop("usage", None)
        return encode_event(dumps(payload), event.event if event.event != "message" else None)

    def violation_event(self, message: str, *, rule: str, category: str) -> bytes:
        return encode_event(dumps({"error": _error(message, "content_filter")}))

    def failure_event(self, message: str) -> bytes:
        return encode_event(dumps({"error": _error(message, "upstream_error", "server_error")}))

    def delivered(self, parsed: ParsedEvent, *, partial: bool) -> None:
        pass

    # Random padding in every delta event (`stream_options.include_obfuscation`, on by default):
    # shapes cut it out like the text (see shapes.py), and it is checked on its own each time.
    pad_fields = frozenset({"obfuscation"})

    def can_repeat(self, parsed: ParsedEvent) -> bool:
        """A chunk like this one, with another text, changes nothing here: the indices and the
        template it records are in the bytes around the text. Chosen-token logprobs are not:
        they must spell the text, so an event carrying them is always parsed."""
        if parsed.is_end or parsed.needs_rewrite or not isinstance(parsed.payload, dict):
            return False
        choices = parsed.payload.get("choices")
        return isinstance(choices, list) and all(
            isinstance(choice, dict) and choice.get("logprobs") is None and not _names_a_tool_call(choice)
            for choice in choices
        )

    def logprobs_agree(self, choice: dict[str, Any]) -> bool:
        return _logprobs_agree(choice)

    def finish_choice(self, index: int) -> dict[str, Any]:
        return {"index": index, "delta": {}, "logprobs": None, "finish_reason": "content_filter"}

    def finish_events(self, released: ReleasedText) -> bytes:
        template = {"id": "chatcmpl-guardstream", "object": self.chunk_object, "created": 0, "model": ""}
        template.update(self._template)
        out = []
        for index in sorted(self._indices) or [0]:
            chunk = dict(template)
            chunk["choices"] = [self.finish_choice(index)]
            out.append(encode_event(dumps(chunk)))
        out.append(encode_event("[DONE]"))
        return b"".join(out)

    def keepalive(self) -> bytes:
        return b": keep-alive\n\n"


def _in_choice(part: TextPart) -> bool:
    return len(part.path) > 1 and part.path[0] == "choices"


def _error(message: str, code: str, type_: str = "invalid_request_error") -> dict[str, Any]:
    return {"message": message, "type": type_, "param": None, "code": code}


class OpenAIChatPayload:
    """Chat Completions request and response bodies."""

    def request_parts(self, body: Any) -> list[TextPart]:
        return read_as_one(WALKER, body, ("request",))

    def response_parts(self, body: Any) -> list[TextPart]:
        parts: list[TextPart] = []
        extract(body, parts)
        return parts

    def error_body(self, message: str, code: str, *, status: int) -> bytes:
        return openai_error(message, code, status=status)

    def finish_body(self, body: Any, parts: Sequence[TextPart], texts: Sequence[str]) -> Any:
        rewrite_payload(body, parts, texts)
        drop_stale_logprobs(body, parts, texts)
        cut = {part.path[1] for part, text in zip(parts, texts, strict=True) if text != part.text and _in_choice(part)}
        for pos, choice in enumerate(body.get("choices") or []):
            if isinstance(choice, dict) and pos in cut:
                choice["finish_reason"] = "content_filter"
                choice["logprobs"] = None
        return body


OPENAI_CHAT = Provider(name=PROVIDER, stream_codec=OpenAIChatStream, payload=OpenAIChatPayload())
