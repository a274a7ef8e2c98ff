"""OpenAI endpoints without a chat answer (models, embeddings, files, batches) and the echo route."""

from __future__ import annotations

import base64
import json
import math

import httpx
import openai
import pytest


def test_models_retrieve_serves_any_id(openai_client: openai.OpenAI) -> None:
    assert openai_client.models.retrieve("ft:gpt-4o-mini:acme::abc").id == "ft:gpt-4o-mini:acme::abc"


def test_models_retrieve_takes_ids_with_slashes(http: httpx.Client) -> None:
    assert http.get("/api/v1/models/openai/gpt-4o").json()["id"] == "openai/gpt-4o"


def test_embeddings_are_deterministic_unit_vectors(openai_client: openai.OpenAI) -> None:
    # The SDK asks for base64 by default and decodes it; both forms must carry the same vector.
    packed = openai_client.embeddings.create(model="text-embedding-3-small", input=["a", "b", "a"])
    floats = openai_client.embeddings.create(model="text-embedding-3-small", input="a", encoding_format="float")
    first, second, third = (item.embedding for item in packed.data)
    assert len(first) == 8 and first == third and first != second
    assert math.isclose(math.fsum(value * value for value in first), 1.0, rel_tol=1e-5)
    assert floats.data[0].embedding == pytest.approx(first, abs=1e-6)
    assert packed.usage.prompt_tokens == 3


def test_embeddings_honour_dimensions(openai_client: openai.OpenAI) -> None:
    response = openai_client.embeddings.create(model="m", input=[[1, 2, 3], [4]], dimensions=40)
    assert [len(item.embedding) for item in response.data] == [40, 40]
    assert response.usage.prompt_tokens == 4


def test_embeddings_take_a_single_token_array(openai_client: openai.OpenAI) -> None:
    response = openai_client.embeddings.create(model="m", input=[1, 2, 3])
    assert len(response.data) == 1 and response.usage.prompt_tokens == 3


def test_embeddings_refuse_an_invalid_input(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError, match="'input'"):
        openai_client.embeddings.create(model="m", input=[])


def test_files_list_and_retrieve_metadata(openai_client: openai.OpenAI) -> None:
    listed = [file.id for file in openai_client.files.list()]
    retrieved = openai_client.files.retrieve("file-mock-output")
    assert listed == ["file-mock-input", "file-mock-output"]
    assert retrieved.id == "file-mock-output" and retrieved.purpose == "batch_output"


def test_file_content_is_the_scripted_reply(openai_client: openai.OpenAI) -> None:
    reply = "b64:" + base64.b64encode(b"row one\nrow two").decode()  # a header cannot carry a line break
    content = openai_client.files.content("file-mock-output", extra_headers={"x-mock-reply": reply})
    assert content.text == "row one\nrow two"
    assert content.response.headers["content-type"] == "application/octet-stream"


def test_batches_list(openai_client: openai.OpenAI) -> None:
    assert [batch.id for batch in openai_client.batches.list()] == ["batch_mock"]


def test_batches_retrieve_metadata(openai_client: openai.OpenAI) -> None:
    batch = openai_client.batches.retrieve("batch_mock_1")
    assert batch.id == "batch_mock_1" and batch.status == "completed"
    assert batch.output_file_id == "file-mock-output"


def test_get_endpoints_take_their_script_from_headers(openai_client: openai.OpenAI) -> None:
    with pytest.raises(openai.InternalServerError, match="models are down"):
        openai_client.models.list(extra_headers={"x-mock-status": "503", "x-mock-error-message": "models are down"})


def test_echo_route_answers_the_scripted_reply(http: httpx.Client) -> None:
    answer = http.post("/v1/assistants/echo", json={"mock": {"reply": "echoed text"}})
    assert answer.json() == {"object": "echo", "text": "echoed text"}


def test_echo_route_streams_the_scripted_reply(http: httpx.Client) -> None:
    body = {"stream": True, "mock": {"reply": "echoed text", "chunk_chars": 6}}
    events = http.post("/v1/assistants/echo", json=body).text.split("\n\n")
    assert [json.loads(event.removeprefix("data: "))["delta"] for event in events[:2]] == ["echoed", " text"]
    assert events[2:] == ["data: [DONE]", ""]


def test_head_on_a_get_route_answers_without_a_body(http: httpx.Client) -> None:
    response = http.head("/v1/files/file-mock-input")
    assert response.status_code == 200 and response.content == b""
    assert int(response.headers["content-length"]) > 0
