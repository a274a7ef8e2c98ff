"""Gemini answers: `generateContent` JSON, and `streamGenerateContent` as SSE (`alt=sse`) or as a JSON array."""

from __future__ import annotations

from starlette.requests import Request

from guardstream.mock.framing import (
    GEMINI_SSE,
    JSON_ARRAY,
    Answer,
    Event,
    JSONObject,
    dumps,
    json_answer,
)
from guardstream.mock.script import MockScript
from guardstream.mock.turn import Turn, arguments_object, count_tokens, make_turn, pieces


def answer(request: Request, body: JSONObject, script: MockScript, model: str, method: str) -> Answer:
    """The answer of `generateContent` or `streamGenerateContent` (the route checked `method`)."""
    turn = make_turn(request, body, script, model, prompt_of(body))
    chunks = stream_chunks(turn)
    if method == "generateContent":
        parts = [part for chunk in chunks for part in chunk["candidates"][0]["content"]["parts"]]
        text = "".join(part.get("text", "") for part in parts)
        merged = [{"text": text}] if text or not script.tool_calls else []
        merged += [part for part in parts if "functionCall" in part]
        return json_answer(response_chunk(turn, merged, is_last=True, tokens=turn.output_tokens(text)))
    # Without alt=sse the real API streams one JSON array, element by element.
    framing = GEMINI_SSE if request.query_params.get("alt") == "sse" else JSON_ARRAY
    return Answer([Event(dumps(chunk)) for chunk in chunks], framing)


def prompt_of(body: JSONObject) -> object:
    """What the prompt token count is taken over (the same for generating and for `countTokens`)."""
    return [body.get("systemInstruction"), body.get("contents")]


def stream_chunks(turn: Turn) -> list[JSONObject]:
    """The stream's chunks; the non-streaming answer is the same content in one chunk (`response_chunk`)."""
    script = turn.script
    parts: list[list[JSONObject]] = [[{"text": piece}] for piece in pieces(script.answer_for(0), script.chunk_chars)]
    if script.tool_calls:
        # Gemini does not stream arguments: all calls arrive parsed, in one chunk.
        parts.append(
            [{"functionCall": {"name": call.name, "args": arguments_object(call)}} for call in script.tool_calls]
        )
    if not parts:
        parts.append([{"text": ""}])
    chunks = []
    candidates_tokens = 0
    for step, chunk_parts in enumerate(parts):
        candidates_tokens += sum(count_tokens(part.get("text", "")) for part in chunk_parts)
        if step == len(parts) - 1:
            candidates_tokens = turn.output_tokens(script.answer_for(0))
        chunks.append(response_chunk(turn, chunk_parts, is_last=step == len(parts) - 1, tokens=candidates_tokens))
    return chunks


def response_chunk(turn: Turn, parts: list[JSONObject], *, is_last: bool, tokens: int) -> JSONObject:
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
