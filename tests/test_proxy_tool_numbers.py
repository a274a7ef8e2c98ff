"""Numbers in tool calls end to end: the official SDKs -> guardstream -> the mock model.

A card number the model writes as a JSON number (not a string) in a tool call's arguments is
moderated like the same number as a string: in an arguments object (Gemini `functionCall.args`,
Anthropic `tool_use.input`) it becomes the replacement as a JSON string; in arguments streamed as
JSON text (Anthropic `partial_json`, Chat `function.arguments`, Responses' argument deltas) the
redaction keeps the text JSON, so the SDK parses the arguments. The rules read streamed
arguments with their JSON escapes decoded; a redaction is still judged and written on the raw
text the SDK parses.
"""

from __future__ import annotations

import json
from typing import Any

import anthropic
import openai
import pytest
from google import genai
from google.genai import types as genai_types

from tests.conftest import MockModel, RunningProxy, mock_headers

CARD = 4539578763621486  # Luhn-valid: the pii pack redacts it
REDACTED = {"card": "[REDACTED:card]", "amount": 12}
CALL = {"name": "pay", "arguments": {"card": CARD, "amount": 12}}


def _gemini(proxy: RunningProxy) -> genai.Client:
    return genai.Client(api_key="test", http_options=genai_types.HttpOptions(base_url=proxy.url))


def _gemini_config(script: dict[str, Any]) -> genai_types.GenerateContentConfig:
    return genai_types.GenerateContentConfig(http_options=genai_types.HttpOptions(headers=mock_headers(script)))


def _anthropic(proxy: RunningProxy) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=proxy.url, api_key="sk-ant-test", max_retries=0)


def _openai(proxy: RunningProxy) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0)


def test_a_card_as_a_number_in_streamed_gemini_args_is_redacted(proxy: RunningProxy, mock_model: MockModel) -> None:
    client = _gemini(proxy)
    try:
        chunks = list(
            client.models.generate_content_stream(
                model="gemini-2.0-flash", contents="hi", config=_gemini_config({"reply": "", "tool_calls": [CALL]})
            )
        )
    finally:
        client.close()
    calls = [call for chunk in chunks for call in chunk.function_calls or []]
    assert [call.args for call in calls] == [REDACTED]


def test_a_card_as_a_number_in_whole_gemini_args_is_redacted(proxy: RunningProxy, mock_model: MockModel) -> None:
    client = _gemini(proxy)
    try:
        answer = client.models.generate_content(
            model="gemini-2.0-flash", contents="hi", config=_gemini_config({"reply": "", "tool_calls": [CALL]})
        )
    finally:
        client.close()
    assert answer.function_calls is not None
    assert [call.args for call in answer.function_calls] == [REDACTED]


def test_a_card_as_a_number_in_a_whole_anthropic_tool_use_input_is_redacted(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    client = _anthropic(proxy)
    try:
        message = client.messages.create(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=mock_headers({"reply": "", "tool_calls": [CALL]}),
        )
    finally:
        client.close()
    assert [block.input for block in message.content if block.type == "tool_use"] == [REDACTED]


def _anthropic_streamed_input(proxy: RunningProxy, script: dict[str, Any]) -> list[object]:
    """The tool inputs of an Anthropic stream scripted by `script`, as the SDK parses them."""
    client = _anthropic(proxy)
    try:
        with client.messages.stream(
            model="claude-sonnet-4-5",
            max_tokens=50,
            messages=[{"role": "user", "content": "hi"}],
            extra_headers=mock_headers(script),
        ) as stream:
            message = stream.get_final_message()
    finally:
        client.close()
    return [block.input for block in message.content if block.type == "tool_use"]


def test_a_card_as_a_number_in_streamed_anthropic_input_json_stays_json(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    assert _anthropic_streamed_input(proxy, {"reply": "", "tool_calls": [CALL], "chunk_chars": 200}) == [REDACTED]


def test_a_card_as_a_number_split_across_anthropic_input_json_deltas_stays_json(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    assert _anthropic_streamed_input(proxy, {"reply": "", "tool_calls": [CALL], "chunk_chars": 3}) == [REDACTED]


def test_a_card_as_a_number_in_streamed_chat_arguments_stays_json(proxy: RunningProxy, mock_model: MockModel) -> None:
    client = _openai(proxy)
    arguments: list[str] = []
    try:
        stream = client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers=mock_headers({"reply": "", "tool_calls": [CALL], "chunk_chars": 5}),
        )
        for chunk in stream:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                arguments.append(call.function.arguments or "" if call.function else "")
    finally:
        client.close()
    assert json.loads("".join(arguments)) == REDACTED


def test_a_card_as_a_number_in_streamed_responses_arguments_stays_json(
    proxy: RunningProxy, mock_model: MockModel
) -> None:
    client = _openai(proxy)
    try:
        with client.responses.stream(
            model="gpt-4o-mini",
            input="hi",
            extra_headers=mock_headers({"reply": "", "tool_calls": [CALL], "chunk_chars": 4}),
        ) as stream:
            response = stream.get_final_response()
    finally:
        client.close()
    calls = [item for item in response.output if item.type == "function_call"]
    assert [json.loads(call.arguments) for call in calls] == [REDACTED]


# Streamed arguments with JSON escapes: before the number, the raw text is longer than the text
# the rules read; inside a string, an escaped digit is part of the card the client parses.
ESCAPED_BEFORE = '{"note": "\\u00e9\\u00e9\\u00e9", "card": ' + str(CARD) + ', "amount": 12}'
ESCAPED_INSIDE = '{"card": "\\u0034' + str(CARD)[1:] + '", "amount": 12}'


def _streamed_arguments(proxy: RunningProxy, fmt: str, arguments: str, chunk_chars: int) -> Any:
    script = {"reply": "", "tool_calls": [{"name": "pay", "arguments": arguments}], "chunk_chars": chunk_chars}
    if fmt == "anthropic":
        return _anthropic_streamed_input(proxy, script)[0]
    openai_client = _openai(proxy)
    try:
        if fmt == "responses":
            with openai_client.responses.stream(
                model="gpt-4o-mini", input="hi", extra_headers=mock_headers(script)
            ) as responses_stream:
                response = responses_stream.get_final_response()
            calls = [item for item in response.output if item.type == "function_call"]
            return json.loads(calls[0].arguments)
        pieces: list[str] = []
        chunks = openai_client.chat.completions.create(
            model="gpt-4o-mini",
            messages=[{"role": "user", "content": "hi"}],
            stream=True,
            extra_headers=mock_headers(script),
        )
        for chunk in chunks:
            for call in (chunk.choices[0].delta.tool_calls or []) if chunk.choices else []:
                pieces.append(call.function.arguments or "" if call.function else "")
        return json.loads("".join(pieces))
    finally:
        openai_client.close()


@pytest.mark.parametrize("chunk_chars", [3, 7])
@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_a_card_as_a_number_after_escaped_text_in_streamed_arguments_stays_json(
    proxy: RunningProxy, mock_model: MockModel, fmt: str, chunk_chars: int
) -> None:
    expected = {"note": "\u00e9" * 3, "card": "[REDACTED:card]", "amount": 12}
    assert _streamed_arguments(proxy, fmt, ESCAPED_BEFORE, chunk_chars) == expected


@pytest.mark.parametrize("fmt", ["anthropic", "chat", "responses"])
def test_a_card_with_an_escaped_digit_in_a_streamed_argument_string_is_redacted_in_the_string(
    proxy: RunningProxy, mock_model: MockModel, fmt: str
) -> None:
    assert _streamed_arguments(proxy, fmt, ESCAPED_INSIDE, 4) == {"card": "[REDACTED:card]", "amount": 12}
