"""OpenAI Responses codec: reasoning, summaries and logprobs are moderated like the answer (#6)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from guardstream.packs import load_rules
from guardstream.providers.openai_responses import OpenAIResponsesStream
from guardstream.sse import SSEDecoder
from guardstream.stream import StreamModerator

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
