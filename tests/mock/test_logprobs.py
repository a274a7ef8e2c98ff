"""Token logprobs in OpenAI Chat and Responses answers, when the request asks for them."""

from __future__ import annotations

from typing import Any

import openai
import pytest

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"


def test_chat_stream_carries_one_logprob_entry_per_piece(openai_client: openai.OpenAI) -> None:
    mock = {"reply": "Hello world", "chunk_chars": 4, "logprobs": [SECRET]}
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, logprobs=True, top_logprobs=3, extra_body={"mock": mock}
    )
    pieces = []
    for chunk in stream:
        choice = chunk.choices[0]
        if not choice.delta.content:
            assert choice.logprobs is None
            continue
        assert choice.logprobs is not None and choice.logprobs.content is not None
        (entry,) = choice.logprobs.content
        assert entry.token == choice.delta.content
        assert entry.bytes == list(entry.token.encode())
        assert [top.token for top in entry.top_logprobs] == [entry.token, SECRET, " the"]
        assert [top.logprob for top in entry.top_logprobs] == sorted(
            (top.logprob for top in entry.top_logprobs), reverse=True
        )
        pieces.append(entry.token)
    assert pieces == ["Hell", "o wo", "rld"]


def test_chat_stream_without_logprobs_request_has_none(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"logprobs": [SECRET]}}
    )
    assert all(chunk.choices[0].logprobs is None for chunk in stream)


def test_chat_json_logprobs_cover_the_whole_text(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, logprobs=True, extra_body={"mock": {"reply": "née 🌍 ok"}}
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is not None and logprobs.refusal is None
    assert "".join(entry.token for entry in logprobs.content) == "née 🌍 ok"
    assert b"".join(bytes(entry.bytes or []) for entry in logprobs.content) == "née 🌍 ok".encode()
    assert all(entry.top_logprobs == [] for entry in logprobs.content)


def test_chat_refusal_logprobs_are_under_refusal(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, logprobs=True, extra_body={"mock": {"refusal": "No."}}
    )
    logprobs = completion.choices[0].logprobs
    assert logprobs is not None and logprobs.content is None
    assert [entry.token for entry in logprobs.refusal or []] == ["No."]


def test_chat_refuses_too_many_top_logprobs(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="top_logprobs"):
        openai_client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES, logprobs=True, top_logprobs=21)


def test_responses_stream_deltas_carry_logprobs_when_included(openai_client: openai.OpenAI) -> None:
    mock = {"reply": "abcdef", "chunk_chars": 3, "logprobs": [SECRET]}
    stream = openai_client.responses.create(
        model="gpt-4o-mini",
        input="hi",
        stream=True,
        include=["message.output_text.logprobs"],
        top_logprobs=2,
        extra_body={"mock": mock},
    )
    events = list(stream)
    deltas = [event for event in events if event.type == "response.output_text.delta"]
    assert [[entry.token for entry in event.logprobs] for event in deltas] == [["abc"], ["def"]]
    assert [top.token for top in deltas[0].logprobs[0].top_logprobs or []] == ["abc", SECRET]
    (done,) = [event for event in events if event.type == "response.output_text.done"]
    assert [entry.token for entry in done.logprobs] == ["abc", "def"]


def test_responses_json_logprobs_from_top_logprobs_alone(openai_client: openai.OpenAI) -> None:
    response = openai_client.responses.create(
        model="gpt-4o-mini", input="hi", top_logprobs=1, extra_body={"mock": {"reply": "abcdef", "chunk_chars": 3}}
    )
    item = response.output[0]
    assert item.type == "message" and item.content[0].type == "output_text"
    assert [entry.token for entry in item.content[0].logprobs or []] == ["abc", "def"]


def test_responses_without_logprobs_request_have_empty_lists(openai_client: openai.OpenAI) -> None:
    events = list(openai_client.responses.create(model="gpt-4o-mini", input="hi", stream=True))
    assert all(event.logprobs == [] for event in events if event.type == "response.output_text.delta")
