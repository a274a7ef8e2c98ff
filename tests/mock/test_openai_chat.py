"""OpenAI Chat Completions from the mock, as the `openai` SDK reads them."""

from __future__ import annotations

from typing import Any

import openai

from guardstream.mock import DEFAULT_REPLY

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def test_openai_chat_stream_text_equals_reply(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"reply": "Streams are fun."}}
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[0].choices[0].delta.content == ""
    assert "".join(c.choices[0].delta.content or "" for c in chunks) == "Streams are fun."
    assert [c.choices[0].finish_reason for c in chunks][-1] == "stop"
    assert all(c.usage is None for c in chunks)


def test_openai_chat_stream_tool_call_arguments_reassemble(openai_client: openai.OpenAI) -> None:
    calls = [{"name": "get_weather", "arguments": '{"city": "Paris"}'}, {"name": "get_time", "arguments": "{}"}]
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"reply": "", "tool_calls": calls}}
    )
    names: dict[int, str] = {}
    arguments: dict[int, str] = {}
    finish = None
    for chunk in stream:
        for call in chunk.choices[0].delta.tool_calls or []:
            assert call.function is not None
            names[call.index] = names.get(call.index, "") + (call.function.name or "")
            arguments[call.index] = arguments.get(call.index, "") + (call.function.arguments or "")
        finish = chunk.choices[0].finish_reason or finish
    assert names == {0: "get_weather", 1: "get_time"}
    assert arguments == {0: '{"city": "Paris"}', 1: "{}"}
    assert finish == "tool_calls"


def test_openai_chat_stream_helper_with_n_2_gives_one_reply_per_choice(openai_client: openai.OpenAI) -> None:
    with openai_client.chat.completions.stream(
        model="gpt-4o-mini", messages=MESSAGES, n=2, extra_body={"mock": {"replies": ["first one", "second one"]}}
    ) as stream:
        completion = stream.get_final_completion()
    assert [choice.message.content for choice in completion.choices] == ["first one", "second one"]


def test_openai_chat_stream_include_usage_sends_final_usage_chunk(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = list(stream)
    assert chunks[-1].choices == []
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0
    assert all(chunk.usage is None for chunk in chunks[:-1])


def test_openai_chat_stream_refusal(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, stream=True, extra_body={"mock": {"refusal": "I can't help."}}
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.refusal or "" for c in chunks) == "I can't help."
    assert all(not c.choices[0].delta.content for c in chunks)


def test_openai_chat_non_streaming(openai_client: openai.OpenAI) -> None:
    completion = openai_client.chat.completions.create(
        model="gpt-4o-mini",
        messages=MESSAGES,
        extra_body={"mock": {"reply": "Plain JSON.", "tool_calls": [{"name": "f", "arguments": "{}"}]}},
    )
    message = completion.choices[0].message
    assert completion.object == "chat.completion"
    assert message.content == "Plain JSON."
    assert message.tool_calls is not None and message.tool_calls[0].type == "function"
    assert message.tool_calls[0].function.name == "f"
    assert completion.choices[0].finish_reason == "tool_calls"
    assert completion.usage is not None and completion.usage.total_tokens > 0


def test_openai_chat_azure_deployment_path(mock_url: str) -> None:
    with openai.AzureOpenAI(
        azure_endpoint=mock_url, azure_deployment="my-gpt", api_key="test", api_version="2024-10-21", max_retries=0
    ) as client:
        completion = client.chat.completions.create(model="my-gpt", messages=MESSAGES)
    assert completion.choices[0].message.content == DEFAULT_REPLY
