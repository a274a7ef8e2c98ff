"""openai-moderation against the mock's `/v1/moderations` over real sockets, and against odd answers."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import anyio
import httpx
import pytest

from guardstream.classifiers import ClassifierError, ClassifierFailure, Verdict, load_classifiers, run_with_policy
from guardstream.classifiers.openai_moderation import OPENAI_CATEGORIES, OpenAIModeration
from guardstream.errors import ConfigError
from tests.classifiers.conftest import settings
from tests.conftest import MockModel

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def moderation(mock: MockModel, client: httpx.AsyncClient, **table: Any) -> OpenAIModeration:
    return OpenAIModeration(settings("openai-moderation", url=f"{mock.url}/v1/moderations", **table), client)


async def test_windows_are_batched_into_one_call(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    classifier = moderation(mock_model, client)
    verdicts = await classifier.classify(["hello", "MOCKFLAG-violence here", "bye"])
    assert [v.flagged for v in verdicts] == [False, True, False]
    assert verdicts[1].categories == ("violence",)
    assert verdicts[1].scores["violence"] == 0.99 and verdicts[0].scores["violence"] < 0.01
    (request,) = mock_model.requests()
    assert request["body"] == {"model": "omni-moderation-latest", "input": ["hello", "MOCKFLAG-violence here", "bye"]}


async def test_max_batch_splits_and_batch_false_sends_one_text_a_call(
    mock_model: MockModel, client: httpx.AsyncClient
) -> None:
    texts = ["a", "b", "MOCKFLAG-hate c"]
    split = await moderation(mock_model, client, max_batch=2).classify(texts)
    assert [r["body"]["input"] for r in mock_model.requests()] == [["a", "b"], ["MOCKFLAG-hate c"]]
    mock_model.clear()
    single = await moderation(mock_model, client, batch=False).classify(texts)
    assert [r["body"]["input"] for r in mock_model.requests()] == [["a"], ["b"], ["MOCKFLAG-hate c"]]
    assert split == single and single[2].categories == ("hate",)


async def test_thresholds_decide_instead_of_the_endpoint(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    text = ["MOCKFLAG-violence and MOCKFLAG-hate"]
    assert (await moderation(mock_model, client).classify(text))[0].categories == ("hate", "violence")
    # Above the score: not flagged, although the endpoint says flagged.
    (strict,) = await moderation(mock_model, client, thresholds={"violence": 0.995, "hate": 0.995}).classify(text)
    assert not strict.flagged
    # Only the thresholded categories count...
    (one,) = await moderation(mock_model, client, thresholds={"hate": 0.5}).classify(text)
    assert one.categories == ("hate",)
    # ...unless "*" sets a threshold for the rest; a low threshold flags a clean text's small scores.
    (every,) = await moderation(mock_model, client, thresholds={"*": 0.9}).classify(text)
    assert every.categories == ("hate", "violence")
    (low,) = await moderation(mock_model, client, thresholds={"*": 0.0}).classify(["clean"])
    assert low.flagged and set(low.categories) == set(OPENAI_CATEGORIES)


async def test_categories_outside_the_closed_set_are_other(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    text = ["MOCKFLAG-prompt-injection"]
    (unknown,) = await moderation(mock_model, client).classify(text)
    assert unknown == Verdict(True, ("other",), unknown.scores) and "prompt-injection" not in unknown.scores
    (named,) = await moderation(mock_model, client, categories=["prompt-injection"]).classify(text)
    assert named.categories == ("prompt-injection",) and named.scores["prompt-injection"] == 0.99


async def test_headers_and_the_api_key_are_sent(
    mock_model: MockModel, client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MODERATION_KEY", "sk-test")
    classifier = moderation(mock_model, client, api_key_env="MODERATION_KEY", headers={"X-Team": "a"}, model="m-1")
    await classifier.classify(["hi"])
    (request,) = mock_model.requests()
    assert request["headers"]["authorization"] == "Bearer sk-test"
    assert request["headers"]["x-team"] == "a" and request["body"]["model"] == "m-1"


def test_a_missing_api_key_variable_stops_start_up(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_SUCH_KEY", raising=False)
    table = settings("openai-moderation", name="omni", url="http://h/", api_key_env="NO_SUCH_KEY")
    with pytest.raises(ConfigError, match="classifier 'omni': api_key_env names 'NO_SUCH_KEY', which is not set"):
        load_classifiers([table], client=None)


async def test_a_failing_endpoint_follows_the_policy(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    limiter = anyio.CapacityLimiter(1)
    down = moderation(mock_model, client, headers={"x-mock-status": "503"})
    assert await run_with_policy(down, ["a"], limiter) == [
        ClassifierFailure("error", "the endpoint answered HTTP 503.")
    ]
    slow = moderation(mock_model, client, headers={"x-mock-delay-ms": "2000"}, timeout_ms=100)
    assert (await run_with_policy(slow, ["a"], limiter))[0] == ClassifierFailure("timeout", "no verdict within 100 ms")
    gone = moderation(MockModel("http://127.0.0.1:9"), client)
    assert (await run_with_policy(gone, ["a"], limiter))[0] == ClassifierFailure(
        "error", "request failed (ConnectError)."
    )


ODD_ANSWERS: list[tuple[httpx.Response, str]] = [
    (httpx.Response(200, content=b"<html>"), "the endpoint's answer is not JSON."),
    (httpx.Response(200, json={"data": []}), "the endpoint's answer has no 'results'."),
    (httpx.Response(200, json={"results": []}), "the endpoint's answer does not have 1 results."),
    (httpx.Response(200, json={"results": [{"flagged": True}]}), "the endpoint's answer has no 'category_scores'."),
    (
        httpx.Response(200, json={"results": [{"flagged": True, "category_scores": {"hate": "high"}}]}),
        "the endpoint's category_scores are not numbers.",
    ),
    (
        httpx.Response(200, json={"results": [{"flagged": True, "categories": [], "category_scores": {}}]}),
        "the endpoint's categories are not an object.",
    ),
]


@pytest.mark.parametrize(("response", "reason"), ODD_ANSWERS)
async def test_an_answer_that_cannot_be_read_is_an_error(response: httpx.Response, reason: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda request: response)) as client:
        classifier = OpenAIModeration(settings("openai-moderation", url="http://h/v1/moderations"), client)
        with pytest.raises(ClassifierError) as caught:
            await classifier.classify(["text that must not appear"])
    assert caught.value.reason == reason
    assert "must not appear" not in str(caught.value)
    assert repr(caught.value) == f"ClassifierError(classifier='test', reason={reason!r})"


async def test_flagged_without_a_category_is_other() -> None:
    answer = {"results": [{"flagged": True, "categories": {"hate": False}, "category_scores": {"hate": 0.2}}]}
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=answer))) as client:
        classifier = OpenAIModeration(settings("openai-moderation", url="http://h/"), client)
        assert await classifier.classify(["x"]) == [Verdict(True, ("other",), {"hate": 0.2})]
