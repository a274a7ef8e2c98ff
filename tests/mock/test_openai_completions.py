"""Legacy OpenAI Completions (`/v1/completions`) from the mock, as the `openai` SDK reads them."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from guardstream.mock import DEFAULT_REPLY


def test_completions_stream_text_equals_reply(openai_client: openai.OpenAI) -> None:
    stream = openai_client.completions.create(
        model="gpt-3.5-turbo-instruct", prompt="Say", stream=True, extra_body={"mock": {"reply": "Legacy text."}}
    )
    chunks = list(stream)
    assert all(chunk.object == "text_completion" and chunk.id.startswith("cmpl-") for chunk in chunks)
    assert "".join(chunk.choices[0].text for chunk in chunks) == "Legacy text."
    assert [chunk.choices[0].finish_reason for chunk in chunks] == [None] * (len(chunks) - 1) + ["stop"]


def test_completions_stream_chunk_shape_and_done(http: httpx.Client) -> None:
    body = {"model": "m", "prompt": "p", "stream": True, "mock": {"reply": "abc", "chunk_chars": 2}}
    events = http.post("/v1/completions", json=body).text.split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    first, second, last = (json.loads(event.removeprefix("data: ")) for event in events[:3])
    assert list(first) == ["id", "object", "created", "model", "choices"]
    assert first["choices"] == [{"text": "ab", "index": 0, "logprobs": None, "finish_reason": None}]
    assert second["choices"][0]["text"] == "c"
    assert last["choices"] == [{"text": "", "index": 0, "logprobs": None, "finish_reason": "stop"}]


def test_completions_stream_with_n_gives_one_reply_per_choice(openai_client: openai.OpenAI) -> None:
    mock = {"replies": ["first", "second"]}
    stream = openai_client.completions.create(model="m", prompt="p", n=2, stream=True, extra_body={"mock": mock})
    texts = ["", ""]
    for chunk in stream:
        texts[chunk.choices[0].index] += chunk.choices[0].text
    assert texts == ["first", "second"]


def test_completions_stream_include_usage_sends_final_usage_chunk(openai_client: openai.OpenAI) -> None:
    stream = openai_client.completions.create(
        model="m", prompt="p", stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_completions_non_streaming(openai_client: openai.OpenAI) -> None:
    completion = openai_client.completions.create(model="gpt-3.5-turbo-instruct", prompt="Say")
    assert completion.object == "text_completion"
    assert completion.choices[0].text == DEFAULT_REPLY
    assert completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_completions_drop_after_cuts_the_stream(openai_client: openai.OpenAI) -> None:
    stream = openai_client.completions.create(
        model="m", prompt="p", stream=True, extra_body={"mock": {"reply": "abcdefgh", "drop_after": 2}}
    )
    received = []
    with pytest.raises(openai.APIConnectionError):
        for chunk in stream:
            received.append(chunk.choices[0].text)
    assert received == ["abcd", "efgh"]


def test_completions_refuse_tool_calls(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="tool_calls"):
        openai_client.completions.create(
            model="m", prompt="p", extra_body={"mock": {"tool_calls": [{"name": "f", "arguments": "{}"}]}}
        )
