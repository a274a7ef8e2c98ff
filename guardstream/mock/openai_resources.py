"""OpenAI endpoints that generate no chat answer: models, embeddings, files and batches, plus an echo route.

They give the proxy's pass-through routes a real upstream. Most carry no generated text; two do on
purpose: a file's content is the script's `reply`, and `POST /v1/assistants/echo`, a route no real API
has, echoes it, so a test can check that the proxy refuses text it cannot moderate.
"""

from __future__ import annotations

import base64
import struct

from starlette.requests import Request

from guardstream.mock import gemini_resources
from guardstream.mock.embedding import dimensions_of, embedding_vector
from guardstream.mock.framing import (
    OPENAI_SSE,
    Answer,
    Event,
    JSONObject,
    buffered_json,
    dumps,
    json_answer,
    raw_framing,
    utf8,
)
from guardstream.mock.script import MockScript, MockScriptError
from guardstream.mock.turn import CREATED, count_tokens, pieces

MODEL_IDS = ("gpt-4o-mini", "gpt-4o", "claude-sonnet-4-6", "gemini-2.0-flash")
FILE_IDS = ("file-mock-input", "file-mock-output")
BATCH_ID = "batch_mock"
FILE_CONTENT = raw_framing("application/octet-stream")


def _model(model_id: str) -> JSONObject:
    return {"id": model_id, "object": "model", "created": CREATED, "owned_by": "guardstream-mock"}


def _is_gemini_client(request: Request) -> bool:
    # Gemini's v1 API shares /v1/models with OpenAI's; google-genai always sends its key in this header.
    return "x-goog-api-key" in request.headers


def models(request: Request, body: JSONObject, script: MockScript) -> Answer:
    if _is_gemini_client(request):
        return gemini_resources.models(request, body, script)
    return buffered_json({"object": "list", "data": [_model(model_id) for model_id in MODEL_IDS]})


def model(request: Request, body: JSONObject, script: MockScript) -> Answer:
    if _is_gemini_client(request):
        return gemini_resources.model(request, body, script)
    # Any id is served: a test names the model it needs rather than the mock keeping a catalogue.
    return buffered_json(_model(str(request.path_params["model"])))


def _embedding_inputs(value: object) -> list[str | list[int]]:
    """The request's `input` as a list of texts or token arrays, the four forms the API takes."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, int) for item in value):
        return [value]
    if isinstance(value, list) and value and all(isinstance(item, str | list) for item in value):
        return list(value)
    raise MockScriptError(
        f"Request field 'input' has value {value!r}. It must be a string, a list of strings or token arrays."
    )


def embeddings(request: Request, body: JSONObject, script: MockScript) -> Answer:
    inputs = _embedding_inputs(body.get("input"))
    model_id = str(body.get("model") or "text-embedding-3-small")
    dimensions = dimensions_of("dimensions", body.get("dimensions"))
    encoding_format = body.get("encoding_format") or "float"
    if encoding_format not in ("float", "base64"):
        raise MockScriptError(f"Request field 'encoding_format' has value {encoding_format!r}. Use float or base64.")
    data = []
    tokens = 0
    for index, item in enumerate(inputs):
        text = item if isinstance(item, str) else dumps(item)
        tokens += count_tokens(item) if isinstance(item, str) else len(item)
        vector = embedding_vector(text, model_id, dimensions)
        # The openai SDK asks for base64 by default: little-endian float32, as the real API sends it.
        embedding: object = (
            base64.b64encode(struct.pack(f"<{dimensions}f", *vector)).decode("ascii")
            if encoding_format == "base64"
            else vector
        )
        data.append({"object": "embedding", "index": index, "embedding": embedding})
    usage = {"prompt_tokens": tokens, "total_tokens": tokens}
    return buffered_json({"object": "list", "data": data, "model": model_id, "usage": usage})


def _file(file_id: str, script: MockScript) -> JSONObject:
    purpose = "batch_output" if file_id.endswith("output") else "batch"
    return {
        "id": file_id,
        "object": "file",
        "bytes": len(utf8(script.reply)),
        "created_at": CREATED,
        "expires_at": None,
        "filename": f"{file_id}.jsonl",
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
    }


def files(request: Request, body: JSONObject, script: MockScript) -> Answer:
    data = [_file(file_id, script) for file_id in FILE_IDS]
    return buffered_json(
        {"object": "list", "data": data, "first_id": FILE_IDS[0], "last_id": FILE_IDS[-1], "has_more": False}
    )


def file(request: Request, body: JSONObject, script: MockScript) -> Answer:
    return buffered_json(_file(str(request.path_params["file_id"]), script))


def file_content(request: Request, body: JSONObject, script: MockScript) -> Answer:
    """The file's bytes: the script's `reply`, text the proxy cannot moderate as a chat answer."""
    return Answer([Event(script.reply)], FILE_CONTENT)


def batches(request: Request, body: JSONObject, script: MockScript) -> Answer:
    data = [_batch(BATCH_ID)]
    return buffered_json({"object": "list", "data": data, "first_id": BATCH_ID, "last_id": BATCH_ID, "has_more": False})


def batch(request: Request, body: JSONObject, script: MockScript) -> Answer:
    return buffered_json(_batch(str(request.path_params["batch_id"])))


def _batch(batch_id: str) -> JSONObject:
    return {
        "id": batch_id,
        "object": "batch",
        "endpoint": "/v1/chat/completions",
        "errors": None,
        "input_file_id": FILE_IDS[0],
        "completion_window": "24h",
        "status": "completed",
        "output_file_id": FILE_IDS[1],
        "error_file_id": None,
        "created_at": CREATED,
        "in_progress_at": CREATED + 1,
        "expires_at": CREATED + 86_400,
        "finalizing_at": CREATED + 2,
        "completed_at": CREATED + 3,
        "failed_at": None,
        "expired_at": None,
        "cancelling_at": None,
        "cancelled_at": None,
        "request_counts": {"total": 1, "completed": 1, "failed": 0},
        "metadata": {},
    }


def echo(request: Request, body: JSONObject, script: MockScript) -> Answer:
    """The script's `reply` on a route no real API has: `{"text": ...}`, or `data: {"delta": ...}` events."""
    if body.get("stream"):
        events = [
            Event(dumps({"object": "echo.delta", "delta": piece})) for piece in pieces(script.reply, script.chunk_chars)
        ]
        return Answer([*events, Event("[DONE]")], OPENAI_SSE)
    return json_answer({"object": "echo", "text": script.reply})
