"""Legacy OpenAI Completions answers (`/v1/completions`): `text_completion` chunks ending in `[DONE]`, or one JSON."""

from __future__ import annotations

from starlette.requests import Request

from guardstream.mock.framing import OPENAI_SSE, Answer, Event, JSONObject, dumps, json_answer
from guardstream.mock.script import MockScript, MockScriptError
from guardstream.mock.turn import CREATED, Turn, choice_count, interleave, make_turn, pieces, wants_usage_chunk


def answer(request: Request, body: JSONObject, script: MockScript) -> Answer:
    if script.tool_calls or script.refusal is not None:
        raise MockScriptError(
            "Mock fields 'tool_calls' and 'refusal' have no form in a legacy completion. Use /v1/chat/completions."
        )
    n = choice_count(body)
    model = str(body.get("model") or "gpt-3.5-turbo-instruct")
    turn = make_turn(request, body, script, model, body.get("prompt"))
    headers = {"x-request-id": f"req_mock_{turn.digest}"}
    if body.get("stream"):
        return Answer(completion_chunks(turn, n, wants_usage_chunk(body)), OPENAI_SSE, headers)
    return json_answer(completion(turn, n), headers)


def _usage(turn: Turn, completion_tokens: int) -> JSONObject:
    prompt_tokens = turn.prompt_tokens
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def _envelope(turn: Turn) -> JSONObject:
    return {"id": f"cmpl-mock-{turn.digest}", "object": "text_completion", "created": CREATED, "model": turn.model}


def completion_chunks(turn: Turn, n: int, include_usage: bool) -> list[Event]:
    script = turn.script
    envelope = _envelope(turn)
    # With include_usage every chunk but the last carries "usage": null, as in Chat Completions.
    usage_field = {"usage": None} if include_usage else {}

    def chunk(index: int, text: str, finish_reason: str | None = None) -> Event:
        choice = {"text": text, "index": index, "logprobs": None, "finish_reason": finish_reason}
        return Event(dumps({**envelope, "choices": [choice], **usage_field}))

    per_choice = []
    completion_tokens = 0
    for index in range(n):
        text = script.reply_for(index)
        completion_tokens += turn.output_tokens(text)
        events = [chunk(index, piece) for piece in pieces(text, script.chunk_chars)]
        events.append(chunk(index, "", "stop"))
        per_choice.append(events)
    merged = interleave(per_choice)
    if include_usage:
        merged.append(Event(dumps({**envelope, "choices": [], "usage": _usage(turn, completion_tokens)})))
    merged.append(Event("[DONE]"))
    return merged


def completion(turn: Turn, n: int) -> JSONObject:
    script = turn.script
    texts = [script.reply_for(index) for index in range(n)]
    choices = [
        {"text": text, "index": index, "logprobs": None, "finish_reason": "stop"} for index, text in enumerate(texts)
    ]
    completion_tokens = sum(turn.output_tokens(text) for text in texts)
    return {**_envelope(turn), "choices": choices, "usage": _usage(turn, completion_tokens)}
