"""Gemini endpoints without a generated answer, as google-genai reads them."""

from __future__ import annotations

import httpx
from google import genai
from google.genai import types as genai_types


def test_gemini_models_list_and_get(genai_client: genai.Client) -> None:
    names = [model.name for model in genai_client.models.list()]
    assert "models/gemini-2.0-flash" in names
    assert genai_client.models.get(model="gemini-9-experimental").name == "models/gemini-9-experimental"


def test_gemini_models_on_v1_answer_google_clients_in_gemini_shape(mock_url: str) -> None:
    # /v1/models is OpenAI's path too; the google-genai key header picks Gemini's shape.
    options = genai_types.HttpOptions(base_url=mock_url, api_version="v1", timeout=5000)
    with genai.Client(api_key="test", http_options=options) as client:
        assert client.models.get(model="gemini-2.0-flash").name == "models/gemini-2.0-flash"


def test_gemini_embed_content_gives_one_vector_per_content(genai_client: genai.Client) -> None:
    config = genai_types.EmbedContentConfig(output_dimensionality=16)
    response = genai_client.models.embed_content(model="text-embedding-004", contents=["a", "b", "a"], config=config)
    assert response.embeddings is not None
    first, second, third = (embedding.values for embedding in response.embeddings)
    assert first is not None and len(first) == 16
    assert first == third != second


def test_gemini_single_embed_content(http: httpx.Client) -> None:
    body = {"content": {"parts": [{"text": "a"}]}}
    answer = http.post("/v1beta/models/text-embedding-004:embedContent", json=body).json()
    assert len(answer["embedding"]["values"]) == 8


def test_gemini_batch_embed_refuses_requests_that_are_not_a_list(http: httpx.Client) -> None:
    response = http.post("/v1beta/models/text-embedding-004:batchEmbedContents", json={"requests": {}})
    assert response.status_code == 400
    assert "'requests'" in response.json()["error"]["message"]


def test_gemini_embed_refuses_a_missing_content(http: httpx.Client) -> None:
    response = http.post("/v1beta/models/text-embedding-004:embedContent", json={})
    assert response.status_code == 400
    assert "'content'" in response.json()["error"]["message"]


def test_gemini_count_tokens_equals_the_prompt_tokens(genai_client: genai.Client) -> None:
    counted = genai_client.models.count_tokens(model="gemini-2.0-flash", contents="count these words")
    response = genai_client.models.generate_content(model="gemini-2.0-flash", contents="count these words")
    assert response.usage_metadata is not None
    assert counted.total_tokens == response.usage_metadata.prompt_token_count
