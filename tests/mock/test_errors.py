"""Scripted HTTP errors and invalid scripts arrive in each provider's native error shape."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx
import openai
import pytest
from google import genai
from google.genai import errors as genai_errors, types as genai_types

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


def test_status_429_gives_openai_rate_limit_error(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.RateLimitError) as caught:
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_body={"mock": {"status": 429, "error_message": "Slow down."}}
        )
    assert caught.value.code == "rate_limit_exceeded"
    assert "Slow down." in caught.value.message


def test_status_errors_in_native_shapes(anthropic_client: anthropic.Anthropic, genai_client: genai.Client) -> None:
    with pytest.raises(anthropic.OverloadedError):
        anthropic_client.messages.create(
            model="claude-sonnet-4-6", max_tokens=10, messages=MESSAGES, extra_body={"mock": {"status": 529}}
        )
    config = genai_types.GenerateContentConfig(
        http_options=genai_types.HttpOptions(extra_body={"mock": {"status": 503}})
    )
    with pytest.raises(genai_errors.ServerError) as caught:
        genai_client.models.generate_content(model="gemini-2.0-flash", contents="hi", config=config)
    assert caught.value.status == "UNAVAILABLE"


def test_invalid_script_is_a_native_400(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="chunk_chars"):
        openai_client.chat.completions.create(
            model="gpt-4o-mini", messages=MESSAGES, extra_body={"mock": {"chunk_chars": 0}}
        )


@pytest.mark.parametrize(
    ("path", "body", "named"),
    [
        ("/v1/chat/completions", {"messages": [], "n": 0}, "'n'"),
        ("/v1/chat/completions", {"messages": [], "mock": "reply"}, "'mock' key"),
        ("/v1/embeddings", {"input": "x", "dimensions": 0}, "'dimensions'"),
        ("/v1/embeddings", {"input": "x", "encoding_format": "int8"}, "'encoding_format'"),
        (
            "/v1beta/models/gemini-2.0-flash:generateContent",
            {"contents": [], "mock": {"tool_calls": [{"name": "f", "arguments": "[1]"}]}},
            "Tool call 'f'",
        ),
    ],
)
def test_invalid_request_fields_are_native_400s(
    http: httpx.Client, path: str, body: dict[str, Any], named: str
) -> None:
    response = http.post(path, json=body)
    assert response.status_code == 400
    assert named in response.text
