"""OpenAI Responses codec: reasoning, summaries and logprobs are moderated like the answer (#6)."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from guardstream.packs import load_rules
from guardstream.providers.openai_responses import OpenAIResponsesStream
from guardstream.sse import SSEDecoder
from guardstream.stream import MALFORMED_MESSAGE, StreamModerator

RULES = load_rules(["secrets", "pii"]).for_direction("output")
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"


def event(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def completed(output: list[dict[str, Any]]) -> bytes:
    return event("response.completed", response={"id": "resp_1", "object": "response", "output": output})


def run(*chunks: bytes) -> bytes:
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    return b"".join(moderator.feed(c) for c in chunks) + moderator.finish()


def payloads(out: bytes) -> list[dict[str, Any]]:
    return [json.loads(e.data) for e in SSEDecoder().decode(out) if e.has_data]


def blocked(out: bytes) -> bool:
    last = payloads(out)[-1]
    return last["type"] in ("error", "response.failed")


def reasoning_item(summary: str, content: str = "") -> dict[str, Any]:
    item: dict[str, Any] = {"type": "reasoning", "id": "rs_1", "summary": [{"type": "summary_text", "text": summary}]}
    if content:
        item["content"] = [{"type": "reasoning_text", "text": content}]
    return item


def summary_part(kind: str, text: str) -> bytes:
    part = {"type": "summary_text", "text": text}
    return event(f"response.reasoning_summary_part.{kind}", output_index=0, summary_index=0, item_id="rs_1", part=part)


def summary_delta(text: str) -> bytes:
    return event("response.reasoning_summary_text.delta", output_index=0, summary_index=0, item_id="rs_1", delta=text)


@pytest.mark.parametrize(
    "chunks",
    [
        [summary_part("added", ""), summary_delta(f"the key is {SECRET}")],
        [event("response.output_item.added", output_index=0, item=reasoning_item(f"key {SECRET}"))],
        [event("response.output_item.added", output_index=0, item=reasoning_item("fine", f"key {SECRET}"))],
        [summary_part("done", f"key {SECRET}")],
    ],
)
def test_reasoning_and_its_summary_are_moderated(chunks: list[bytes]) -> None:
    out = run(*chunks, completed([]))
    assert SECRET.encode() not in out
    assert blocked(out)


def test_a_clean_reasoning_summary_passes_byte_for_byte() -> None:
    chunks = [
        summary_part("added", ""),
        summary_delta("Thinking about the question."),
        summary_part("done", "Thinking about the question."),
        event("response.output_item.done", output_index=0, item=reasoning_item("Thinking about the question.")),
        completed([reasoning_item("Thinking about the question.")]),
    ]
    assert run(*chunks) == b"".join(chunks)


def text_delta(delta: str, logprobs: list[dict[str, Any]]) -> bytes:
    return event(
        "response.output_text.delta", output_index=0, content_index=0, item_id="msg_1", delta=delta, logprobs=logprobs
    )


def test_logprobs_that_spell_the_delta_are_kept() -> None:
    chunk = text_delta("Hi there", [{"token": "Hi", "logprob": -0.1}, {"token": " there", "logprob": -0.2}])
    (first, _) = payloads(run(chunk, completed([])))
    assert [entry["token"] for entry in first["logprobs"]] == ["Hi", " there"]


@pytest.mark.parametrize(
    "logprobs",
    [
        [{"token": SECRET, "logprob": -0.1}],  # tokens that disagree with the text: a side channel
        [{"token": "Hi", "logprob": -0.1, "bytes": [1, 2]}],  # bytes that are not the token
        [{"token": "Hi", "logprob": -0.1, "smuggled": SECRET}],  # a key logprobs do not have
        "not a list",
    ],
)
def test_logprobs_that_disagree_with_the_text_are_dropped(logprobs: Any) -> None:
    out = run(text_delta("Hi", logprobs), completed([]))
    assert SECRET.encode() not in out
    assert payloads(out)[0]["logprobs"] == []


def test_alternatives_in_top_logprobs_are_moderated() -> None:
    entry = {"token": "Hi", "logprob": -0.1, "top_logprobs": [{"token": SECRET, "logprob": -3.0}]}
    out = run(text_delta("Hi", [entry]), completed([]))
    assert SECRET.encode() not in out
    assert blocked(out)


def message_events(output_index: int, text: str) -> list[bytes]:
    item = {"id": "msg_1", "type": "message", "status": "in_progress", "role": "assistant", "content": []}
    where = {"item_id": "msg_1", "output_index": output_index, "content_index": 0}
    done = {**item, "status": "completed", "content": [{"type": "output_text", "text": text, "annotations": []}]}
    return [
        event("response.output_item.added", output_index=output_index, item=item),
        event("response.content_part.added", **where, part={"type": "output_text", "text": "", "annotations": []}),
        *[event("response.output_text.delta", **where, delta=word) for word in re.findall(r"\S+\s*", text)],
        event("response.output_text.done", **where, text=text),
        event("response.output_item.done", output_index=output_index, item=done),
    ]


def test_the_answer_after_a_reasoning_summary_streams_before_the_response_completes() -> None:
    # The summary ends inside a word that could still become an address: once the message item
    # begins, the summary can grow no more, and the answer must not wait for response.completed.
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
    chunks = [
        event("response.created", response={"id": "resp_1", "object": "response", "output": []}),
        event("response.output_item.added", output_index=0, item=reasoning),
        summary_part("added", ""),
        summary_delta("Checking the weather."),
        event("response.output_item.done", output_index=0, item=reasoning_item("Checking the weather.")),
        *message_events(1, "Sunny today. Warm. "),
    ]
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    out = b"".join(moderator.feed(c) for c in chunks)
    deltas = [p["delta"] for p in payloads(out) if p["type"] == "response.output_text.delta"]
    assert "".join(deltas).startswith("Sunny today. ")
    assert any(p["type"] == "response.reasoning_summary_text.delta" for p in payloads(out))


def test_a_message_before_a_function_call_waits_on_the_row_of_answer_text() -> None:
    # Code that prints every `.delta` shows the answer text of all messages as one: that row is
    # not ended by an item of another type, so a key split around a call is still one key.
    call = {"id": "fc_1", "type": "function_call", "call_id": "c1", "name": "lookup", "arguments": ""}
    chunks = [
        event("response.created", response={"id": "resp_1", "object": "response", "output": []}),
        *message_events(0, f"key {SECRET[:10]}"),
        event("response.output_item.added", output_index=1, item=call),
        event("response.output_item.done", output_index=1, item={**call, "arguments": "{}"}),
        *[c.replace(b'"msg_1"', b'"msg_2"') for c in message_events(2, f"{SECRET[10:]} ok")],
    ]
    out = run(*chunks)
    deltas = "".join(p.get("delta", "") for p in payloads(out) if p["type"] == "response.output_text.delta")
    assert SECRET[:4] not in deltas and blocked(out)


def test_an_event_for_a_finished_item_ends_the_stream_as_malformed() -> None:
    chunks = [
        event("response.created", response={"id": "resp_1", "object": "response", "output": []}),
        *message_events(0, f"key {SECRET[:10]}"),
        event("response.output_text.delta", item_id="msg_1", output_index=0, content_index=0, delta=SECRET[10:]),
    ]
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    out = b"".join(moderator.feed(c) for c in chunks) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET not in out.decode()


def test_a_snapshot_that_says_more_than_was_streamed_ends_the_stream_as_malformed() -> None:
    call = {"id": "fc_1", "type": "function_call", "call_id": "c1", "name": "lookup", "arguments": ""}
    content = [{"type": "output_text", "text": f"key {SECRET}", "annotations": []}]
    message: dict[str, Any] = {"id": "msg_1", "type": "message", "role": "assistant", "content": content}
    chunks = [
        event("response.created", response={"id": "resp_1", "object": "response", "output": []}),
        *message_events(0, f"key {SECRET[:10]}"),
        event("response.output_item.added", output_index=1, item=call),
        completed([message, {**call, "arguments": "{}"}]),
    ]
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    out = b"".join(moderator.feed(c) for c in chunks) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET not in out.decode()


def test_text_of_another_type_than_its_item_ends_the_stream_as_malformed() -> None:
    # A summary delta on a message item would go on the row of summaries the message just ended.
    delta = event(
        "response.reasoning_summary_text.delta", output_index=1, summary_index=0, item_id="msg_1", delta=SECRET[10:]
    )
    assert_malformed_after_a_summary_and_a_message_begins(delta)


def test_a_summary_part_on_a_message_item_ends_the_stream_as_malformed() -> None:
    part = {"type": "summary_text", "text": SECRET[10:]}
    added = event("response.reasoning_summary_part.added", output_index=1, summary_index=0, item_id="msg_1", part=part)
    assert_malformed_after_a_summary_and_a_message_begins(added)


def assert_malformed_after_a_summary_and_a_message_begins(wrong: bytes) -> None:
    """A key's head in a reasoning summary, a message begins (ending the row of summaries), then
    `wrong` adds the key's tail: the stream must end as malformed, the key nowhere in it."""
    reasoning = {"id": "rs_1", "type": "reasoning", "summary": []}
    chunks = [
        event("response.created", response={"id": "resp_1", "object": "response", "output": []}),
        event("response.output_item.added", output_index=0, item=reasoning),
        summary_delta(f"x {SECRET[:10]}"),
        event("response.output_item.done", output_index=0, item=reasoning_item(f"x {SECRET[:10]}")),
        *message_events(1, "ok ")[:2],
        wrong,
    ]
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    out = b"".join(moderator.feed(c) for c in chunks) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET not in out.decode()


def test_a_repeat_other_than_what_was_streamed_ends_the_stream_as_malformed() -> None:
    # Each repeat alone passes, but the SDK's `output_text` joins them: the repeats must be
    # exactly what the client's deltas carried.
    first, second = message_events(0, "Hello. "), message_events(1, "Bye. ")
    content = [{"type": "output_text", "text": f"key {SECRET[:10]}", "annotations": []}]
    message = {"id": "msg_1", "type": "message", "role": "assistant", "content": content}
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    out = b"".join(moderator.feed(c) for c in [*first[:3], *second[:3], completed([message])]) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET[:10] not in out.decode()


def test_an_added_event_without_an_item_begins_nothing() -> None:
    # Some compatible servers announce an item as null, then send it at the same index.
    chunks = [
        event("response.created", response={"id": "resp_1", "object": "response", "output": []}),
        event("response.output_item.added", output_index=0, item=None),
        *message_events(0, "Fine. "),
    ]
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    for chunk in chunks:
        moderator.feed(chunk)
    assert moderator.failure is None


def padded_delta(text: str, pad: str) -> bytes:
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    return event("response.output_text.delta", **where, delta=text, obfuscation=pad)


def test_a_delta_with_an_obfuscation_pad_leaves_as_soon_as_its_text_is_decided() -> None:
    # OpenAI pads every delta with random letters and digits by default. Read as one text, the
    # pads would be a word that never ends, and each event would wait for the pads of the next.
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    for chunk in message_events(0, "")[:2]:
        moderator.feed(chunk)
    pads = ["Zq8fK2", "m4PxR7tY", "b3", "Hw9LcVn0Qe", "u6Td"]
    for word, pad in zip(["Sunny ", "and ", "warm ", "all ", "day. "], pads, strict=True):
        out = moderator.feed(padded_delta(word, pad))
        assert [p["delta"] for p in payloads(out)] == [word]


def test_a_key_in_an_obfuscation_pad_is_caught() -> None:
    out = run(*message_events(0, "")[:2], padded_delta("Hello ", SECRET), padded_delta("there ", "k2"))
    assert SECRET not in out.decode() and blocked(out)


def function_call_events(
    arguments: list[str], name: str = "get_weather", item_type: str = "function_call"
) -> list[bytes]:
    call = {"id": "fc_1", "type": item_type, "call_id": "c1", "name": name, "arguments": ""}
    where = {"item_id": "fc_1", "output_index": 0}
    return [
        event("response.created", response={"id": "resp_1", "object": "response", "output": []}),
        event("response.output_item.added", output_index=0, item=call),
        *[event(f"response.{item_type}_arguments.delta", **where, delta=piece) for piece in arguments],
        event(f"response.{item_type}_arguments.done", **where, arguments="".join(arguments)),
        event("response.output_item.done", output_index=0, item={**call, "arguments": "".join(arguments)}),
    ]


def test_a_function_calls_arguments_stream_before_its_item_is_done() -> None:
    # The call's name comes whole in output_item.added: a value, not the start of a text that
    # could grow, so the arguments after it must not wait for output_item.done.
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    chunks = function_call_events(['{"city": ', '"Paris", ', '"unit": "c"}'])
    out = b"".join(moderator.feed(c) for c in chunks[:-2])
    deltas = [p["delta"] for p in payloads(out) if p["type"] == "response.function_call_arguments.delta"]
    assert "".join(deltas).startswith('{"city": "Paris", ')


def annotation_added(title: str) -> bytes:
    annotation = {
        "type": "url_citation",
        "url": "https://example.com/a",
        "title": title,
        "start_index": 0,
        "end_index": 4,
    }
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0, "annotation_index": 0}
    return event("response.output_text.annotation.added", **where, annotation=annotation)


def test_the_answer_after_an_annotation_streams_before_the_response_completes() -> None:
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    chunks = message_events(0, "Per the docs it works. Really.")
    out = b"".join(moderator.feed(c) for c in [*chunks[:3], annotation_added("Example Domain"), *chunks[3:7]])
    deltas = [p["delta"] for p in payloads(out) if p["type"] == "response.output_text.delta"]
    assert "".join(deltas) == "Per the docs it works. "


@pytest.mark.parametrize("where", ["annotation", "name"])
def test_a_key_in_an_annotation_or_a_functions_name_is_still_caught(where: str) -> None:
    if where == "annotation":
        chunks = message_events(0, "Per the docs. ")
        chunks.insert(3, annotation_added(f"key {SECRET}"))
    else:
        chunks = function_call_events(['{"q": 1}'], name=SECRET)
    out = run(*chunks)
    assert SECRET not in out.decode() and blocked(out)


def test_a_delta_that_is_a_list_is_still_moderated() -> None:
    # Default deny: a text field of the wrong type is not skipped as "not text".
    where = {"item_id": "msg_1", "output_index": 0, "content_index": 0}
    odd = event("response.output_text.delta", **where, delta=[SECRET])
    out = run(*message_events(0, "")[:2], odd)
    assert SECRET not in out.decode()


def test_a_content_part_added_out_of_order_ends_the_stream_as_malformed() -> None:
    # The SDK appends parts as they come and routes a delta by content_index.
    where = {"item_id": "msg_1", "output_index": 0}
    part = {"type": "output_text", "text": "", "annotations": []}
    chunks = [
        *message_events(0, "")[:1],
        event("response.content_part.added", **where, content_index=1, part=part),
        event("response.content_part.added", **where, content_index=0, part=part),
    ]
    moderator = StreamModerator(OpenAIResponsesStream(), RULES)
    for chunk in chunks:
        moderator.feed(chunk)
    moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE


@pytest.mark.parametrize("item_type", ["function_call", "mcp_call"])
def test_a_key_written_with_json_escapes_in_call_arguments_is_blocked(item_type: str) -> None:
    # The arguments are JSON text the client parses: `\\u0041` is `A` there.
    arguments = '{"region": "eu", "key": "\\u0041KIA4HJQ\\u0037XRZ2PLWKD5N"}'
    pieces = [arguments[i : i + 3] for i in range(0, len(arguments), 3)]
    out = run(*function_call_events(pieces, item_type=item_type))
    deltas = [p["delta"] for p in payloads(out) if p["type"] == f"response.{item_type}_arguments.delta"]
    assert '{"region": "eu", "key": "'.startswith("".join(deltas))
    assert "KIA4" not in out.decode() and blocked(out)


def test_a_graceful_finish_closes_an_mcp_call_with_its_own_done_event() -> None:
    arguments = '{"region": "eu", "key": "\\u0041KIA4HJQ7XRZ2PLWKD5N"}'
    pieces = [arguments[i : i + 3] for i in range(0, len(arguments), 3)]
    moderator = StreamModerator(OpenAIResponsesStream(), RULES, on_violation="finish")
    out = b"".join(moderator.feed(c) for c in function_call_events(pieces, item_type="mcp_call")) + moderator.finish()
    done = [p for p in payloads(out) if p["type"] == "response.mcp_call_arguments.done"]
    assert len(done) == 1 and '{"region": "eu", "key": "'.startswith(done[0]["arguments"])
    assert payloads(out)[-1]["type"] == "response.incomplete" and "KIA4" not in out.decode()
