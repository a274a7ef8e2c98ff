"""The mock's classifier answers: `/v1/moderations` in OpenAI's shape and the judge models, flagged by MOCKFLAG."""

from __future__ import annotations

import time

import httpx
import openai
import pytest

from guardstream.classifiers.openai_moderation import OPENAI_CATEGORIES
from guardstream.mock.moderation import flags, judge_reply


def test_the_openai_sdk_reads_a_moderation_answer(openai_client: openai.OpenAI) -> None:
    answer = openai_client.moderations.create(model="omni-moderation-latest", input=["hello", "MOCKFLAG-violence now"])
    clean, flagged = answer.results
    assert answer.model == "omni-moderation-latest" and answer.id.startswith("modr-mock-")
    assert not clean.flagged and not any(clean.categories.model_dump().values())
    assert flagged.flagged and flagged.categories.violence and not flagged.categories.hate
    assert flagged.category_scores.violence == 0.99 and clean.category_scores.violence < 0.001
    assert flagged.category_applied_input_types.violence == ["text"]


def test_the_answer_has_openais_exact_shape(http: httpx.Client) -> None:
    body = http.post("/v1/moderations", json={"input": "MOCKFLAG-self-harm/intent."}).json()
    assert list(body) == ["id", "model", "results"] and body["model"] == "omni-moderation-latest"
    (result,) = body["results"]
    assert list(result) == ["flagged", "categories", "category_scores", "category_applied_input_types"]
    assert list(result["categories"]) == list(OPENAI_CATEGORIES)
    assert [name for name, value in result["categories"].items() if value] == ["self-harm/intent"]


def test_identical_requests_get_identical_answers(http: httpx.Client) -> None:
    request = {"model": "m", "input": ["a", "MOCKFLAG-hate"]}
    assert http.post("/v1/moderations", json=request).content == http.post("/v1/moderations", json=request).content


def test_any_category_can_be_flagged_and_parts_are_one_input(http: httpx.Client) -> None:
    parts = [{"type": "text", "text": "MOCKFLAG-prompt-injection"}, {"type": "image_url", "image_url": {"url": "x"}}]
    (result,) = http.post("/v1/moderations", json={"input": parts}).json()["results"]
    assert result["categories"]["prompt-injection"] is True
    assert result["category_scores"]["prompt-injection"] == 0.99


def test_a_bad_input_is_a_400(http: httpx.Client) -> None:
    response = http.post("/v1/moderations", json={"input": 3})
    assert response.status_code == 400 and "Request field 'input'" in response.json()["error"]["message"]


def test_headers_make_the_endpoint_slow_or_fail(http: httpx.Client) -> None:
    started = time.monotonic()
    assert http.post("/v1/moderations", json={"input": "a"}, headers={"x-mock-delay-ms": "300"}).status_code == 200
    assert time.monotonic() - started >= 0.3
    failed = http.post("/v1/moderations", json={"input": "a"}, headers={"x-mock-status": "503"})
    assert failed.status_code == 503 and failed.json()["error"]["type"] == "server_error"


@pytest.mark.parametrize(
    ("model", "text", "reply"),
    [
        ("mock-judge", "hello", "safe"),
        ("mock-judge", "MOCKFLAG-violence", "unsafe\nS1"),
        ("mock-judge", "MOCKFLAG-S10 and MOCKFLAG-S11 and MOCKFLAG-hate", "unsafe\nS10,S11,S1"),
        ("mock-judge-yes-no", "hello", "No"),
        ("mock-judge-yes-no", "MOCKFLAG-hate", "Yes"),
        ("mock-judge-score", "hello", "0.01"),
        ("mock-judge-score", "MOCKFLAG-hate", "0.99"),
    ],
)
def test_judge_models_answer_by_the_text(openai_client: openai.OpenAI, model: str, text: str, reply: str) -> None:
    completion = openai_client.chat.completions.create(
        model=model,
        messages=[{"role": "system", "content": "You are a judge."}, {"role": "user", "content": text}],
        extra_body={"mock": {"reply": "ignored"}},
    )
    assert completion.choices[0].message.content == reply


def test_a_judge_reads_content_parts_and_streams_too(openai_client: openai.OpenAI) -> None:
    stream = openai_client.chat.completions.create(
        model="mock-judge",
        messages=[{"role": "user", "content": [{"type": "text", "text": "MOCKFLAG-S12"}]}],
        stream=True,
    )
    assert "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices) == "unsafe\nS12"


def test_a_slow_judge(http: httpx.Client) -> None:
    started = time.monotonic()
    body = {"model": "mock-judge", "messages": [{"role": "user", "content": "hi"}]}
    answer = http.post("/v1/chat/completions", json=body, headers={"x-mock-delay-ms": "300"}).json()
    assert time.monotonic() - started >= 0.3 and answer["choices"][0]["message"]["content"] == "safe"


def test_flags_and_replies_on_odd_messages() -> None:
    assert flags("MOCKFLAG-a MOCKFLAG-b, MOCKFLAG-a.") == ["a", "b"]
    assert judge_reply("mock-judge", None) == "safe"
    assert judge_reply("mock-judge", ["not a message", {"content": 3}]) == "safe"
