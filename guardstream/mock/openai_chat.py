"""OpenAI Chat Completions answers: `chat.completion.chunk` events ending in `[DONE]`, or one `chat.completion`."""

from __future__ import annotations

from dataclasses import replace

from starlette.requests import Request

from guardstream.mock.framing import OPENAI_SSE, Answer, Event, JSONObject, dumps, json_answer
from guardstream.mock.logprobs import chat_top_logprobs, text_logprobs
from guardstream.mock.moderation import JUDGE_MODELS, judge_reply
from guardstream.mock.script import MockScript
from guardstream.mock.turn import (
    CREATED,
    Turn,
    choice_count,
    interleave,
    make_turn,
    obfuscation_pads,
    pieces,
    wants_obfuscation,
    wants_usage_chunk,
)

SYSTEM_FINGERPRINT = "fp_guardstream_mock"


def answer(request: Request, body: JSONObject, script: MockScript) -> Answer:
    n = choice_count(body)
    model = body.get("model") or request.path_params.get("deployment") or "gpt-4o-mini"
    is_judge = model in JUDGE_MODELS
    if is_judge:
        # A safety judge's verdict (see `moderation`): the text decides the reply, not the script.
        script = replace(script, reply=judge_reply(str(model), body.get("messages")))
    turn = make_turn(request, body, script, str(model), body.get("messages"))
    headers = {"x-request-id": f"req_mock_{turn.digest}"}
    top = chat_top_logprobs(body)
    if body.get("stream"):
        chunks = chat_chunks(turn, n, wants_usage_chunk(body), top, obfuscation=wants_obfuscation(body))
        return Answer(chunks, OPENAI_SSE, headers)
    completion = json_answer(chat_completion(turn, n, top), headers)
    # Unstreamed, a verdict is one event: the script's delay_ms delays it whole.
    return replace(completion, wait_ms=script.delay_ms) if is_judge else completion


def _logprobs(channel: str, entries: list[JSONObject]) -> JSONObject:
    return {
        "content": entries if channel == "content" else None,
        "refusal": entries if channel == "refusal" else None,
    }


def chat_usage(prompt_tokens: int, completion_tokens: int) -> JSONObject:
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


def chat_chunks(
    turn: Turn, n: int, include_usage: bool, top: int | None = None, *, obfuscation: bool = False
) -> list[Event]:
    """The stream; with `top` (logprobs asked), each text piece carries its token's logprob entry;
    with `obfuscation`, each chunk with choices carries a pad of letters and digits that differs
    from chunk to chunk (deterministic here, random in the real API)."""
    pads = iter(obfuscation_pads(turn.digest)) if obfuscation else None
    script = turn.script
    envelope: JSONObject = {
        "id": f"chatcmpl-mock-{turn.digest}",
        "object": "chat.completion.chunk",
        "created": CREATED,
        "model": turn.model,
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }

    def chunk(
        index: int, delta: JSONObject, finish_reason: str | None = None, logprobs: JSONObject | None = None
    ) -> Event:
        choice = {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": finish_reason}
        # With include_usage the real API puts "usage": null on every chunk but the last.
        usage = {"usage": None} if include_usage else {}
        pad = {"obfuscation": next(pads)} if pads is not None else {}
        return Event(dumps({**envelope, "choices": [choice], **usage, **pad}))

    is_refusal = script.refusal is not None
    channel = "refusal" if is_refusal else "content"
    per_choice: list[list[Event]] = []
    completion_tokens = 0
    for index in range(n):
        text = script.answer_for(index)
        completion_tokens += turn.output_tokens(text)
        first = {"role": "assistant", "content": None if is_refusal else "", "refusal": "" if is_refusal else None}
        events = [chunk(index, first)]
        text_pieces = pieces(text, script.chunk_chars)
        if top is None:
            events += [chunk(index, {channel: piece}) for piece in text_pieces]
        else:
            entries = text_logprobs(text, script.chunk_chars, script.logprobs, top)
            events += [
                chunk(index, {channel: piece}, logprobs=_logprobs(channel, [entry]))
                for piece, entry in zip(text_pieces, entries, strict=True)
            ]
        for position, call in enumerate(script.tool_calls):
            opening = {"index": position, "id": turn.call_id(position, index), "type": "function"}
            events.append(chunk(index, {"tool_calls": [{**opening, "function": {"name": call.name, "arguments": ""}}]}))
            events += [
                chunk(index, {"tool_calls": [{"index": position, "function": {"arguments": piece}}]})
                for piece in pieces(call.arguments, script.chunk_chars)
            ]
        events.append(chunk(index, {}, "tool_calls" if script.tool_calls else "stop"))
        per_choice.append(events)
    merged = interleave(per_choice)
    if include_usage:
        usage = chat_usage(turn.prompt_tokens, completion_tokens)
        merged.append(Event(dumps({**envelope, "choices": [], "usage": usage})))
    merged.append(Event("[DONE]"))
    return merged


def chat_completion(turn: Turn, n: int, top: int | None = None) -> JSONObject:
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
        logprobs = None
        if top is not None:
            entries = text_logprobs(text, script.chunk_chars, script.logprobs, top)
            logprobs = _logprobs("refusal" if script.refusal is not None else "content", entries)
        choices.append({"index": index, "message": message, "logprobs": logprobs, "finish_reason": finish_reason})
    return {
        "id": f"chatcmpl-mock-{turn.digest}",
        "object": "chat.completion",
        "created": CREATED,
        "model": turn.model,
        "choices": choices,
        "usage": chat_usage(turn.prompt_tokens, completion_tokens),
        "service_tier": "default",
        "system_fingerprint": SYSTEM_FINGERPRINT,
    }
