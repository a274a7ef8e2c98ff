"""Gemini endpoints that generate no answer: the model list, one model, token counts and embeddings."""

from __future__ import annotations

from starlette.requests import Request

from guardstream.mock import gemini
from guardstream.mock.embedding import dimensions_of, embedding_vector
from guardstream.mock.framing import Answer, JSONObject, buffered_json, dumps
from guardstream.mock.script import MockScript, MockScriptError
from guardstream.mock.turn import count_tokens

MODEL_IDS = ("gemini-2.0-flash", "gemini-2.5-flash", "text-embedding-004")


def _model(model_id: str) -> JSONObject:
    return {
        "name": f"models/{model_id}",
        "version": "001",
        "displayName": model_id,
        "description": "A model of the guardstream mock.",
        "inputTokenLimit": 1_048_576,
        "outputTokenLimit": 8_192,
        "supportedGenerationMethods": ["generateContent", "countTokens", "embedContent"],
    }


def models(request: Request, body: JSONObject, script: MockScript) -> Answer:
    return buffered_json({"models": [_model(model_id) for model_id in MODEL_IDS]})


def model(request: Request, body: JSONObject, script: MockScript) -> Answer:
    # Any id is served, as for OpenAI's models.
    return buffered_json(_model(str(request.path_params["model"]).removeprefix("models/")))


def count_tokens_answer(request: Request, body: JSONObject, script: MockScript) -> Answer:
    """`countTokens`: the prompt tokens a generation would report for this body."""
    return buffered_json({"totalTokens": count_tokens(dumps(gemini.prompt_of(body)))})


def _embedding(model_id: str, request: JSONObject) -> JSONObject:
    content = request.get("content")
    if not isinstance(content, dict):
        raise MockScriptError(f"Request field 'content' has value {content!r}. It must be a Content object.")
    dimensions = dimensions_of("outputDimensionality", request.get("outputDimensionality"))
    return {"values": embedding_vector(dumps(content), model_id, dimensions)}


def embed_answer(request: Request, body: JSONObject, model_id: str) -> Answer:
    """`embedContent`: one vector for the body's `content`."""
    return buffered_json({"embedding": _embedding(model_id, body)})


def batch_embed_answer(request: Request, body: JSONObject, model_id: str) -> Answer:
    """`batchEmbedContents` (what google-genai's `embed_content` calls): one vector per request."""
    requests = body.get("requests")
    if not isinstance(requests, list) or not all(isinstance(item, dict) for item in requests):
        raise MockScriptError(f"Request field 'requests' has value {requests!r}. It must be a list of objects.")
    return buffered_json({"embeddings": [_embedding(model_id, item) for item in requests]})
