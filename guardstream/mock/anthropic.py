"""Anthropic Messages answers: `message_start` … `message_stop` with content blocks, or one `message`."""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request

from guardstream.mock.framing import NAMED_SSE, Answer, Event, JSONObject, buffered_json, dumps, json_answer
from guardstream.mock.script import MockScript
from guardstream.mock.turn import Turn, arguments_object, count_tokens, make_turn, pieces

THINKING_SIGNATURE = "bW9jay1zaWduYXR1cmU="


def answer(request: Request, body: JSONObject, script: MockScript) -> Answer:
    model = str(body.get("model") or "claude-sonnet-4-6")
    turn = make_turn(request, body, script, model, prompt_of(body))
    headers = {"request-id": f"req_mock_{turn.digest}"}
    if body.get("stream"):
        return Answer(message_events(turn), NAMED_SSE, headers)
    content = [block.final for block in content_blocks(turn, is_streaming=False)]
    message = message_object(turn, content, stop_reason_for(script), output_tokens_of(turn))
    return json_answer(message, headers)


def count_answer(request: Request, body: JSONObject, script: MockScript) -> Answer:
    """`POST /v1/messages/count_tokens`: the input tokens `/v1/messages` would report for this body."""
    return buffered_json({"input_tokens": count_tokens(dumps(prompt_of(body)))})


def prompt_of(body: JSONObject) -> object:
    """What the input token count is taken over (the same for `/v1/messages` and its `count_tokens`)."""
    return [body.get("system"), body.get("messages")]


@dataclass(frozen=True)
class Block:
    """One Anthropic content block: how it opens on the wire, its deltas, and its final form."""

    start: JSONObject
    deltas: list[JSONObject]
    final: JSONObject


def content_blocks(turn: Turn, *, is_streaming: bool) -> list[Block]:
    script = turn.script
    size = script.chunk_chars
    blocks: list[Block] = []
    if script.thinking is not None:
        deltas = [{"type": "thinking_delta", "thinking": piece} for piece in pieces(script.thinking, size)]
        deltas.append({"type": "signature_delta", "signature": THINKING_SIGNATURE})
        final: JSONObject = {"type": "thinking", "thinking": script.thinking, "signature": THINKING_SIGNATURE}
        blocks.append(Block({"type": "thinking", "thinking": "", "signature": ""}, deltas, final))
    text = script.answer_for(0)
    if text or not script.tool_calls:
        deltas = [{"type": "text_delta", "text": piece} for piece in pieces(text, size)]
        blocks.append(Block({"type": "text", "text": ""}, deltas, {"type": "text", "text": text}))
    for position, call in enumerate(script.tool_calls):
        opening = {"type": "tool_use", "id": f"toolu_mock_{turn.digest}_{position}", "name": call.name}
        deltas = [{"type": "input_json_delta", "partial_json": piece} for piece in pieces(call.arguments, size)]
        # Only the non-streaming form needs parsed input; a stream may carry deliberately broken JSON.
        final = {**opening, "input": {} if is_streaming else arguments_object(call)}
        blocks.append(Block({**opening, "input": {}}, deltas, final))
    return blocks


def stop_reason_for(script: MockScript) -> str:
    if script.refusal is not None:
        return "refusal"
    return "tool_use" if script.tool_calls else "end_turn"


def output_tokens_of(turn: Turn) -> int:
    return turn.output_tokens(turn.script.answer_for(0)) + count_tokens(turn.script.thinking or "")


def message_events(turn: Turn) -> list[Event]:
    payloads: list[JSONObject] = []
    message = message_object(turn, content=[], stop_reason=None, output_tokens=1)
    payloads.append({"type": "message_start", "message": message})
    for index, block in enumerate(content_blocks(turn, is_streaming=True)):
        payloads.append({"type": "content_block_start", "index": index, "content_block": block.start})
        if index == 0:
            payloads.append({"type": "ping"})
        payloads += [{"type": "content_block_delta", "index": index, "delta": delta} for delta in block.deltas]
        payloads.append({"type": "content_block_stop", "index": index})
    delta = {"stop_reason": stop_reason_for(turn.script), "stop_sequence": None}
    # usage is required here: without it the SDK's stream helper fails with AttributeError.
    payloads.append({"type": "message_delta", "delta": delta, "usage": {"output_tokens": output_tokens_of(turn)}})
    payloads.append({"type": "message_stop"})
    return [Event(dumps(payload), name=payload["type"]) for payload in payloads]


def message_object(turn: Turn, content: list[JSONObject], stop_reason: str | None, output_tokens: int) -> JSONObject:
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
