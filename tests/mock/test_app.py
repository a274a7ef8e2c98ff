"""The app around the builders: routes that answer no text, and the request log."""

from __future__ import annotations

from typing import Any

import httpx
import openai
import pytest

from guardstream.mock import DEFAULT_REPLY

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@pytest.mark.parametrize("prefix", ["", "/v1", "/openai/v1", "/api/v1", "/v1beta/openai"])
def test_openai_routes_answer_under_every_base_url_prefix(mock_url: str, prefix: str) -> None:
    with openai.OpenAI(base_url=f"{mock_url}{prefix}", api_key="test", max_retries=0, timeout=5) as client:
        completion = client.chat.completions.create(model="gpt-4o-mini", messages=MESSAGES)
        legacy = client.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
        response = client.responses.create(model="gpt-4o-mini", input="hi")
        models = [model.id for model in client.models.list()]
        model = client.models.retrieve("gpt-4o")
        embedding = client.embeddings.create(model="text-embedding-3-small", input="hi")
    assert completion.choices[0].message.content == DEFAULT_REPLY
    assert legacy.choices[0].text == DEFAULT_REPLY
    assert response.output_text == DEFAULT_REPLY
    assert "gpt-4o-mini" in models
    assert model.id == "gpt-4o"
    assert len(embedding.data[0].embedding) == 8


def test_openai_models_list(openai_client: openai.OpenAI) -> None:
    assert "gpt-4o-mini" in [model.id for model in openai_client.models.list()]


def test_request_log_records_headers_and_body(openai_client: openai.OpenAI, http: httpx.Client) -> None:
    http.delete("/_mock/requests").raise_for_status()
    openai_client.chat.completions.create(
        model="gpt-4o-mini", messages=MESSAGES, extra_headers={"X-Trace": "t1"}, extra_body={"mock": {"reply": "r"}}
    )
    http.post("/v1beta/models/gemini-2.0-flash:streamGenerateContent?alt=sse", json={"contents": []})
    first, second = http.get("/_mock/requests").json()
    assert first["method"] == "POST" and first["path"] == "/v1/chat/completions"
    assert first["headers"]["authorization"] == "Bearer test"
    assert first["headers"]["x-trace"] == "t1"
    assert first["body"]["mock"] == {"reply": "r"}
    assert second["query"] == {"alt": "sse"}
    assert http.delete("/_mock/requests").json() == {"deleted": 2}
    assert http.get("/_mock/requests").json() == []
