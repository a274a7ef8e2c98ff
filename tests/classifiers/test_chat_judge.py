"""chat-judge: the mock's judge models over real sockets, and each answer convention's parser."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from guardstream.classifiers import ClassifierError, Verdict
from guardstream.classifiers.chat_judge import LLAMA_GUARD_CODES, SHIELDGEMMA_TEMPLATE, ChatJudge
from tests.classifiers.conftest import settings
from tests.conftest import MockModel

pytestmark = pytest.mark.anyio


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


def judge(url: str, client: httpx.AsyncClient, model: str = "mock-judge", **table: Any) -> ChatJudge:
    return ChatJudge(settings("chat-judge", url=f"{url}/v1/chat/completions", model=model, **table), client)


def offline(**table: Any) -> ChatJudge:
    return judge("http://h", httpx.AsyncClient(), **table)


async def test_llama_guard_convention_over_the_mock(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    verdicts = await judge(mock_model.url, client).classify(["hello", "MOCKFLAG-violence", "MOCKFLAG-S10 MOCKFLAG-S1"])
    assert verdicts == [
        Verdict(False),
        Verdict(True, ("violent-crimes",)),
        Verdict(True, ("hate", "violent-crimes")),
    ]
    bodies = sorted((r["body"] for r in mock_model.requests()), key=lambda b: b["messages"][0]["content"])
    assert bodies[0] == {
        "model": "mock-judge",
        "messages": [{"role": "user", "content": "MOCKFLAG-S10 MOCKFLAG-S1"}],
        "temperature": 0,
        "max_tokens": 32,
        "stream": False,
    }


async def test_yes_no_and_score_conventions_over_the_mock(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    yes_no = judge(mock_model.url, client, "mock-judge-yes-no", parser="yes-no")
    assert await yes_no.classify(["fine", "MOCKFLAG-hate"]) == [Verdict(False), Verdict(True, ("unsafe",))]
    prompt = next(r for r in mock_model.requests() if "Text: fine\n" in r["body"]["messages"][0]["content"])
    assert prompt["body"]["messages"][0]["content"] == SHIELDGEMMA_TEMPLATE.replace("{text}", "fine")
    score = judge(mock_model.url, client, "mock-judge-score", parser="score", category="prompt-injection")
    assert await score.classify(["fine", "MOCKFLAG-x"]) == [
        Verdict(False, scores={"prompt-injection": 0.01}),
        Verdict(True, ("prompt-injection",), {"prompt-injection": 0.99}),
    ]


async def test_template_and_system_message(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    classifier = judge(mock_model.url, client, template='Judge {"this"}: {text}', system="Be strict.")
    await classifier.classify(["MOCKFLAG-x"])
    (request,) = mock_model.requests()
    assert request["body"]["messages"] == [
        {"role": "system", "content": "Be strict."},
        {"role": "user", "content": 'Judge {"this"}: MOCKFLAG-x'},
    ]


async def test_a_slow_or_failing_judge_raises(mock_model: MockModel, client: httpx.AsyncClient) -> None:
    with pytest.raises(ClassifierError, match="answered HTTP 500"):
        await judge(mock_model.url, client, headers={"x-mock-status": "500"}).classify(["a", "b"])
    with pytest.raises(httpx.TimeoutException):
        await judge(mock_model.url, client, headers={"x-mock-delay-ms": "1500"}, timeout_ms=10).classify(["a"])


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        ("safe", Verdict(False)),
        ("  safe\n", Verdict(False)),
        ("unsafe\nS1", Verdict(True, ("violent-crimes",))),
        ("unsafe\nS1,S10", Verdict(True, ("violent-crimes", "hate"))),
        ("unsafe\ns11, S12\nextra", Verdict(True, ("self-harm", "sexual-content"))),
        ("unsafe\nS99", Verdict(True, ("other",))),
        ("unsafe", Verdict(True, ("unsafe",))),
    ],
)
def test_safe_unsafe_answers(answer: str, verdict: Verdict) -> None:
    assert offline().parse(answer) == verdict


def test_codes_map_to_configured_names() -> None:
    classifier = offline(codes={"O1": "violence", "O2": "hate"})
    assert classifier.parse("unsafe\nO2") == Verdict(True, ("hate",))
    assert classifier.parse("unsafe\nS10") == Verdict(True, ("other",))
    assert set(offline().categories) == {*LLAMA_GUARD_CODES.values(), "unsafe", "other"}


@pytest.mark.parametrize(
    ("answer", "flagged"),
    [("Yes", True), ("yes, it violates", True), ("**No**", False), ("No.", False), (" YES\nbecause", True)],
)
def test_yes_no_answers(answer: str, flagged: bool) -> None:
    assert offline(parser="yes-no").parse(answer).flagged is flagged


@pytest.mark.parametrize(
    ("answer", "flagged"), [("0.87", True), ("0.5", True), (" .2 probability", False), ("1", True), ("0", False)]
)
def test_score_answers(answer: str, flagged: bool) -> None:
    assert offline(parser="score").parse(answer).flagged is flagged
    assert offline(parser="score", threshold=0.9).parse("0.87").flagged is False


@pytest.mark.parametrize(
    ("parser", "answer", "reason"),
    [
        ("safe-unsafe", "I cannot help with that", "the judge's answer is neither 'safe' nor 'unsafe'."),
        ("yes-no", "Maybe", "the judge's answer does not start with Yes or No."),
        ("score", "high", "the judge's answer is not a score from 0 to 1."),
        ("score", "7", "the judge's answer is not a score from 0 to 1."),
    ],
)
def test_an_answer_that_cannot_be_read_is_an_error(parser: str, answer: str, reason: str) -> None:
    with pytest.raises(ClassifierError) as caught:
        offline(parser=parser).parse(answer)
    assert caught.value.reason == reason


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ({"choices": []}, "the endpoint's answer has no choices."),
        ({"choices": [{"message": {"content": None}}]}, "the judge's answer has no text content."),
        ({"choices": [{"text": "safe"}]}, "the endpoint's answer has no 'message'."),
    ],
)
async def test_a_chat_answer_without_text_is_an_error(body: dict[str, Any], reason: str) -> None:
    async with httpx.AsyncClient(transport=httpx.MockTransport(lambda r: httpx.Response(200, json=body))) as client:
        with pytest.raises(ClassifierError) as caught:
            await judge("http://h", client).classify(["x"])
    assert caught.value.reason == reason
