"""Anthropic Messages from the mock, as the `anthropic` SDK reads them."""

from __future__ import annotations

from typing import Any

import anthropic

from guardstream.mock import DEFAULT_REPLY

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def test_anthropic_stream_helper_final_message(anthropic_client: anthropic.Anthropic) -> None:
    mock = {"reply": "Hi from Claude.", "thinking": "Let me think."}
    with anthropic_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_body={"mock": mock}
    ) as stream:
        message = stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[0].type == "thinking" and message.content[0].thinking == "Let me think."
    assert message.content[1].type == "text" and message.content[1].text == "Hi from Claude."
    assert message.stop_reason == "end_turn"
    assert message.usage.output_tokens > 0


def test_anthropic_raw_stream(anthropic_client: anthropic.Anthropic) -> None:
    stream = anthropic_client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, stream=True)
    events = list(stream)
    assert events[0].type == "message_start"
    assert events[-1].type == "message_stop"
    text = "".join(
        event.delta.text for event in events if event.type == "content_block_delta" and event.delta.type == "text_delta"
    )
    assert text == DEFAULT_REPLY


def test_anthropic_tool_use_input_parsed(anthropic_client: anthropic.Anthropic) -> None:
    mock = {"reply": "", "tool_calls": [{"name": "get_weather", "arguments": '{"city": "Paris"}'}]}
    with anthropic_client.messages.stream(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_body={"mock": mock}
    ) as stream:
        streamed = stream.get_final_message()
    plain = anthropic_client.messages.create(
        model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES, extra_body={"mock": mock}
    )
    for message in (streamed, plain):
        assert message.stop_reason == "tool_use"
        block = message.content[0]
        assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "Paris"}


def test_anthropic_non_streaming(anthropic_client: anthropic.Anthropic) -> None:
    message = anthropic_client.messages.create(model="claude-sonnet-4-6", max_tokens=100, messages=MESSAGES)
    assert message.content[0].type == "text" and message.content[0].text == DEFAULT_REPLY
    assert message.model == "claude-sonnet-4-6"


def test_anthropic_count_tokens_equals_the_messages_input_tokens(anthropic_client: anthropic.Anthropic) -> None:
    counted = anthropic_client.messages.count_tokens(model="claude-sonnet-4-6", system="Be brief.", messages=MESSAGES)
    message = anthropic_client.messages.create(
        model="claude-sonnet-4-6", max_tokens=10, system="Be brief.", messages=MESSAGES
    )
    assert counted.input_tokens == message.usage.input_tokens > 0
