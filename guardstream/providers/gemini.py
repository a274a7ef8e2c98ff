"""Google Gemini (`models/{model}:streamGenerateContent?alt=sse` and `:generateContent`).

Channels: each candidate's parts, read in a row (`chunk.text` joins a candidate's text parts),
by the candidate's `index`, by its position, and all candidates in a row. Function call names
and arguments, code and code results are text too; `thoughtSignature`, inline data and file data
are binary and pass untouched. Gemini streams have no terminator of their own: a stream is
complete when every candidate the client saw has a `finishReason` (or the prompt was blocked).

A Gemini stream may carry only `data:` lines (the SDK fails on comments, `event:` and `id:`
lines), so it gets no keep-alive. A violation ends with the error payload the SDK raises on:
`error` as the first key with an integer `code`, plus a `SAFETY` candidate for SDKs too old to
raise; a graceful finish sends the `SAFETY` candidate alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from guardstream.errors import ProviderError
from guardstream.payload import Channel, TextPart, TextWalker, dumps, loads_strict, read_as_one
from guardstream.providers.base import ParsedEvent, Provider, ReleasedText, rewrite_payload
from guardstream.providers.errors import gemini_error
from guardstream.sse import Event, encode_event

PROVIDER = "gemini"

STRUCTURAL = frozenset(
    {
        "role",
        "finishReason",
        "index",
        "modelVersion",
        "responseId",
        "mimeType",
        "category",
        "probability",
        "severity",
        "blockReason",
        "createTime",
        "id",
        "language",
        "outcome",
        "fileUri",
        "uri",
        "modality",
        "trafficType",
        "status",
        "code",
    }
)
KNOWN_KEYS = frozenset(
    {
        *STRUCTURAL,
        "candidates",
        "content",
        "parts",
        "text",
        "thought",
        "thoughtSignature",
        "functionCall",
        "functionResponse",
        "name",
        "args",
        "response",
        "inlineData",
        "fileData",
        "data",
        "executableCode",
        "codeExecutionResult",
        "output",
        "safetyRatings",
        "blocked",
        "usageMetadata",
        "promptTokenCount",
        "candidatesTokenCount",
        "totalTokenCount",
        "thoughtsTokenCount",
        "cachedContentTokenCount",
        "promptTokensDetails",
        "candidatesTokensDetails",
        "tokenCount",
        "promptFeedback",
        "citationMetadata",
        "citations",
        "startIndex",
        "endIndex",
        "title",
        "license",
        "groundingMetadata",
        "avgLogprobs",
        "error",
        "message",
        "details",
        "contents",
        "systemInstruction",
        "generationConfig",
        "safetySettings",
        "threshold",
        "tools",
        "functionDeclarations",
        "description",
        "parameters",
        "properties",
        "required",
        "type",
        "toolConfig",
        "temperature",
        "topP",
        "topK",
        "maxOutputTokens",
        "candidateCount",
        "stopSequences",
        "responseMimeType",
        "responseSchema",
        "thinkingConfig",
        "thinkingBudget",
        "includeThoughts",
    }
)
# Signed, not text: thought signatures.
OPAQUE = frozenset({"thoughtSignature", "thought_signature"})
# Inline images, audio or files, base64 by definition: skipped only while the whole value is base64.
BASE64 = frozenset({"inlineData.data", "inline_data.data"})
# A function call's arguments and a function's result are JSON objects: their numbers are read too.
ARGUMENTS = frozenset(
    {
        "functionCall.args",
        "function_call.args",
        "functionCall.partialArgs",
        "function_call.partial_args",
        "functionResponse.response",
        "function_response.response",
    }
)
GEMINI_WALKER = TextWalker(STRUCTURAL, KNOWN_KEYS, OPAQUE, base64=BASE64, arguments=ARGUMENTS)


def _index(candidate: dict[str, Any], default: int) -> int:
    index = candidate.get("index", default)
    if not isinstance(index, int) or isinstance(index, bool):
        raise ProviderError("the upstream sent a candidate index that is not an integer")
    return index


def extract(payload: Any, out: list[TextPart]) -> None:
    if not isinstance(payload, dict):
        GEMINI_WALKER.walk(payload, (), "", _own_views, out)
        return
    for key, value in payload.items():
        if key not in KNOWN_KEYS:
            out.append(TextPart((), key, (key,), is_key=True))
        if key == "candidates" and isinstance(value, list):
            for pos, candidate in enumerate(value):
                if not isinstance(candidate, dict):
                    GEMINI_WALKER.walk(candidate, ("candidates", pos), "candidates", _own_views, out)
                    continue
                idx = _index(candidate, pos)

                def views(field: str, idx: int = idx, pos: int = pos) -> tuple[Channel, ...]:
                    return (("i", idx, field), ("p", pos, field), ("a", field))

                GEMINI_WALKER.walk(candidate, ("candidates", pos), "", views, out)
        else:
            GEMINI_WALKER.walk(value, (key,), key, _own_views, out)


def _own_views(field: str) -> tuple[Channel, ...]:
    return (("field", field),)


class GeminiStream:
    provider = PROVIDER

    def __init__(self) -> None:
        self._seen: set[int] = set()
        self._finished: set[int] = set()
        self._blocked_prompt = False
        self._error = False
        self._template: dict[str, Any] = {}

    @property
    def is_complete(self) -> bool:
        if self._error or self._blocked_prompt:
            return True
        return bool(self._seen) and self._seen <= self._finished

    def parse(self, event: Event) -> ParsedEvent:
        if event.event is not None:
            raise ProviderError("the upstream sent an event name, which Gemini streams never carry")
        payload = loads_strict(event.data)
        if not isinstance(payload, dict):
            raise ProviderError("the upstream sent a Gemini chunk that is not a JSON object")
        parsed = ParsedEvent(payload=payload)
        extract(payload, parsed.parts)
        if "error" in payload:
            parsed.is_end = parsed.is_error = True
            self._error = True
            return parsed
        feedback = payload.get("promptFeedback")
        if isinstance(feedback, dict) and feedback.get("blockReason"):
            self._blocked_prompt = True
        for key in ("modelVersion", "responseId"):
            if key in payload:
                self._template[key] = payload[key]
        candidates = payload.get("candidates")
        if isinstance(candidates, list):
            for pos, candidate in enumerate(candidates):
                if isinstance(candidate, dict):
                    index = _index(candidate, pos)
                    self._seen.add(index)
                    if candidate.get("finishReason"):
                        self._finished.add(index)
        return parsed

    def render(self, event: Event, parsed: ParsedEvent, texts: Sequence[str], *, partial: bool) -> bytes:
        payload = parsed.payload
        rewrite_payload(payload, parsed.parts, texts)
        if partial:
            for candidate in payload.get("candidates") or []:
                if isinstance(candidate, dict):
                    candidate.pop("finishReason", None)
            payload.pop("usageMetadata", None)
        return encode_event(dumps(payload))

    def delivered(self, parsed: ParsedEvent, *, partial: bool) -> None:
        pass

    def _safety(self, index: int) -> dict[str, Any]:
        return {"content": {"parts": [{"text": ""}], "role": "model"}, "finishReason": "SAFETY", "index": index}

    def violation_event(self, message: str, *, rule: str, category: str) -> bytes:
        # "error" first, an integer code: what google-genai checks before raising ClientError.
        payload = {
            "error": {"code": 400, "message": message, "status": "INVALID_ARGUMENT"},
            "candidates": [self._safety(index) for index in sorted(self._seen) or [0]],
        }
        return encode_event(dumps(payload))

    def failure_event(self, message: str) -> bytes:
        payload = {"error": {"code": 502, "message": message, "status": "UNAVAILABLE"}}
        return encode_event(dumps(payload))

    def finish_events(self, released: ReleasedText) -> bytes:
        open_candidates = sorted(self._seen - self._finished) or [0]
        payload = {"candidates": [self._safety(index) for index in open_candidates], **self._template}
        return encode_event(dumps(payload))

    def keepalive(self) -> bytes:
        return b""


class GeminiPayload:
    """generateContent request bodies and whole answers (one response, or the JSON array a
    stream without `alt=sse` sends)."""

    def request_parts(self, body: Any) -> list[TextPart]:
        return read_as_one(GEMINI_WALKER, body, ("request",))

    def response_parts(self, body: Any) -> list[TextPart]:
        parts: list[TextPart] = []
        if isinstance(body, list):
            # Each element is one chunk of a stream: its candidates' text continues across them.
            for i, element in enumerate(body):
                element_parts: list[TextPart] = []
                extract(element, element_parts)
                for part in element_parts:
                    part.path = (i, *part.path)
                parts += element_parts
        else:
            extract(body, parts)
        return parts

    def error_body(self, message: str, code: str, *, status: int) -> bytes:
        return gemini_error(message, code, status=status)

    def finish_body(self, body: Any, parts: Sequence[TextPart], texts: Sequence[str]) -> Any:
        rewrite_payload(body, parts, texts)
        for element in body if isinstance(body, list) else [body]:
            for candidate in element.get("candidates") or [] if isinstance(element, dict) else []:
                if isinstance(candidate, dict):
                    candidate["finishReason"] = "SAFETY"
        return body


GEMINI = Provider(name=PROVIDER, stream_codec=GeminiStream, payload=GeminiPayload())
