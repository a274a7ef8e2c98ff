"""Gemini from the mock, as `google-genai` reads it."""

from __future__ import annotations

import base64
from typing import Any

import httpx
from google import genai
from google.genai import types as genai_types

from guardstream.mock import DEFAULT_REPLY


def gemini_config(**mock: Any) -> genai_types.GenerateContentConfig:
    return genai_types.GenerateContentConfig(http_options=genai_types.HttpOptions(extra_body={"mock": mock}))


def test_gemini_stream_text_equals_reply(genai_client: genai.Client) -> None:
    chunks = list(
        genai_client.models.generate_content_stream(
            model="gemini-2.0-flash", contents="hi", config=gemini_config(reply="Gemini streams.", chunk_chars=3)
        )
    )
    assert "".join(chunk.text or "" for chunk in chunks) == "Gemini streams."
    assert chunks[-1].candidates is not None
    assert chunks[-1].candidates[0].finish_reason == genai_types.FinishReason.STOP
    assert chunks[-1].usage_metadata is not None


def test_gemini_script_from_headers(mock_url: str) -> None:
    headers = {"x-mock-reply": "b64:" + base64.b64encode("Grüße 🌍".encode()).decode()}
    with genai.Client(api_key="test", http_options={"base_url": mock_url, "headers": headers}) as client:
        chunks = list(client.models.generate_content_stream(model="gemini-2.0-flash", contents="hi"))
    assert "".join(chunk.text or "" for chunk in chunks) == "Grüße 🌍"


def test_gemini_generate_content_with_function_call(genai_client: genai.Client) -> None:
    config = gemini_config(reply="Calling.", tool_calls=[{"name": "lookup", "arguments": '{"q": "x"}'}])
    response = genai_client.models.generate_content(model="gemini-2.0-flash", contents="hi", config=config)
    assert response.text == "Calling."
    assert response.function_calls is not None
    assert [(call.name, call.args) for call in response.function_calls] == [("lookup", {"q": "x"})]


def test_gemini_stream_without_alt_sse_is_a_json_array(http: httpx.Client) -> None:
    response = http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent", json={"contents": []})
    chunks = response.json()
    assert response.headers["content-type"] == "application/json"
    assert "".join(chunk["candidates"][0]["content"]["parts"][0]["text"] for chunk in chunks) == DEFAULT_REPLY


def test_gemini_empty_reply_streams_one_empty_part(http: httpx.Client) -> None:
    body = {"contents": [], "mock": {"reply": ""}}
    chunks = http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent", json=body).json()
    assert [chunk["candidates"][0]["content"]["parts"] for chunk in chunks] == [[{"text": ""}]]
    assert chunks[0]["candidates"][0]["finishReason"] == "STOP"
