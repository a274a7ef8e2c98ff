"""OpenAI Responses answers: the named event stream from `response.created` to `response.completed`."""

from __future__ import annotations

import json

from starlette.requests import Request

from guardstream.mock.framing import NAMED_SSE, Answer, Event, JSONObject, dumps, json_answer
from guardstream.mock.logprobs import responses_top_logprobs, text_logprobs
from guardstream.mock.script import MockScript
from guardstream.mock.turn import CREATED, Turn, make_turn, obfuscation_pads, pieces, wants_obfuscation


def answer(request: Request, body: JSONObject, script: MockScript) -> Answer:
    model = str(body.get("model") or "gpt-4o-mini")
    turn = make_turn(request, body, script, model, [body.get("instructions"), body.get("input")])
    headers = {"x-request-id": f"req_mock_{turn.digest}"}
    events = responses_events(turn, responses_top_logprobs(body), obfuscation=wants_obfuscation(body))
    if body.get("stream"):
        return Answer(events, NAMED_SSE, headers)
    return json_answer(json.loads(events[-1].data)["response"], headers)


def response_object(turn: Turn, status: str, output: list[JSONObject], usage: JSONObject | None) -> JSONObject:
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


def responses_events(turn: Turn, top: int | None = None, *, obfuscation: bool = False) -> list[Event]:
    """The whole Responses stream; its last event (`response.completed`) also holds the non-streaming answer.

    With `top` (logprobs asked), each text delta carries its token's logprob entry, and the finished
    text all of them. With `obfuscation`, every delta event carries a pad of letters and digits
    that differs from event to event, as the real API sends by default.
    """
    script = turn.script
    payloads: list[JSONObject] = []
    pads = iter(obfuscation_pads(turn.digest)) if obfuscation else None

    def emit(type_: str, **fields: object) -> None:
        pad = {"obfuscation": next(pads)} if pads is not None and type_.endswith(".delta") else {}
        payloads.append({"type": type_, "sequence_number": len(payloads), **fields, **pad})

    in_progress = response_object(turn, "in_progress", [], None)
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
            for piece in pieces(text, script.chunk_chars):
                emit("response.refusal.delta", **where, delta=piece)
            emit("response.refusal.done", **where, refusal=text)
            part: JSONObject = {"type": "refusal", "refusal": text}
        else:
            emit("response.content_part.added", **where, part={"type": "output_text", "annotations": [], "text": ""})
            text_pieces = pieces(text, script.chunk_chars)
            entries = [] if top is None else text_logprobs(text, script.chunk_chars, script.logprobs, top)
            for position, piece in enumerate(text_pieces):
                emit("response.output_text.delta", **where, delta=piece, logprobs=entries[position : position + 1])
            emit("response.output_text.done", **where, text=text, logprobs=entries)
            part = {"type": "output_text", "annotations": [], "logprobs": entries, "text": text}
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
        for piece in pieces(call.arguments, script.chunk_chars):
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
    emit("response.completed", response=response_object(turn, "completed", output, usage))
    return [Event(dumps(payload), name=payload["type"]) for payload in payloads]
