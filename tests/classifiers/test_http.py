"""The http kind against a classifier service of its own, served on 127.0.0.1, and the answers it reads."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from guardstream.classifiers import ClassifierError, Verdict, load_classifiers
from guardstream.classifiers.http import AnswerReader, HTTPClassifier
from guardstream.servers import serve_in_thread
from tests.classifiers.conftest import settings

pytestmark = pytest.mark.anyio


def answer(text: str) -> dict[str, Any]:
    return {"flagged": "bad" in text, "categories": {"abuse": "bad" in text, "spam": 0.2}}


@pytest.fixture(scope="module")
def service() -> Iterator[tuple[str, list[object]]]:
    """A classifier service: one text at /check, a batch at /batch; every body it received, in order."""
    received: list[object] = []

    async def check(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        received.append(body)
        return JSONResponse(answer(body["text"]))

    async def batch(request: Request) -> JSONResponse:
        body = json.loads(await request.body())
        received.append(body)
        return JSONResponse({"results": [answer(text) for text in body["texts"]]})

    app = Starlette(routes=[Route("/check", check, methods=["POST"]), Route("/batch", batch, methods=["POST"])])
    with serve_in_thread(app) as url:
        yield url, received


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


async def test_one_text_a_call(service: tuple[str, list[object]], client: httpx.AsyncClient) -> None:
    url, received = service
    received.clear()
    classifier = HTTPClassifier(settings("http", url=f"{url}/check", categories=["abuse"]), client)
    verdicts = await classifier.classify(["fine", "bad"])
    assert verdicts == [
        Verdict(False, scores={"other": 0.2}),
        Verdict(True, ("abuse",), {"other": 0.2}),
    ]
    assert sorted(received, key=str) == [{"text": "bad"}, {"text": "fine"}]


async def test_a_batch_a_call(service: tuple[str, list[object]], client: httpx.AsyncClient) -> None:
    url, received = service
    received.clear()
    classifier = HTTPClassifier(settings("http", url=f"{url}/batch", batch=True, max_batch=2), client)
    verdicts = await classifier.classify(["bad", "fine", "bad too"])
    assert [v.flagged for v in verdicts] == [True, False, True]
    assert verdicts[0].categories == ("other",)  # "abuse" is not in this classifier's categories
    assert received == [{"texts": ["bad", "fine"]}, {"texts": ["bad too"]}]


async def test_load_classifiers_makes_a_client_and_closes_it(service: tuple[str, list[object]]) -> None:
    url, _ = service
    classifiers = load_classifiers([settings("http", url=f"{url}/check")], client=None)
    assert classifiers.owned_client is not None
    assert (await classifiers[0].classify(["bad"]))[0].flagged
    await classifiers.aclose()
    assert classifiers.owned_client.is_closed


async def test_a_passed_client_is_left_open(client: httpx.AsyncClient) -> None:
    classifiers = load_classifiers([settings("http", url="http://h/")], client=client)
    await classifiers.aclose()
    assert classifiers.owned_client is None and not client.is_closed


async def test_a_bad_batch_answer_is_an_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json=[{"flagged": False}])

    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        classifier = HTTPClassifier(settings("http", url="http://h/", batch=True), client)
        assert await classifier.classify(["a"]) == [Verdict(False)]  # a bare list is read too
        with pytest.raises(ClassifierError, match="the answer does not have 2 results"):
            await classifier.classify(["a", "b"])


READER = AnswerReader(settings("http", url="http://h/", categories=["abuse", "hate"], threshold=0.7))


@pytest.mark.parametrize(
    ("answer", "verdict"),
    [
        (True, Verdict(True, ("flagged",))),
        (False, Verdict(False)),
        ({"flagged": False}, Verdict(False)),
        ({"flagged": True}, Verdict(True, ("flagged",))),
        ({"flagged": True, "categories": ["hate", "made-up"]}, Verdict(True, ("hate", "other"))),
        ({"flagged": False, "categories": {"abuse": True}}, Verdict(True, ("abuse",))),  # fail closed
        ({"flagged": False, "categories": {"abuse": 0.8}}, Verdict(True, ("abuse",), {"abuse": 0.8})),
        ({"flagged": False, "categories": {"abuse": 0.6}}, Verdict(False, scores={"abuse": 0.6})),
        ({"flagged": False, "scores": {"hate": 0.9}}, Verdict(False, scores={"hate": 0.9})),
        (Verdict(True, ("hate", "secret-name"), {"x": 1}), Verdict(True, ("hate", "other"), {"other": 1.0})),
        (Verdict(True), Verdict(True, ("flagged",))),
    ],
)
def test_answers_become_verdicts_in_the_closed_set(answer: object, verdict: Verdict) -> None:
    assert READER.verdict(answer) == verdict


@pytest.mark.parametrize(
    "answer",
    [
        "flagged",
        {"flagged": "yes"},
        {"categories": {}},
        {"flagged": True, "categories": "hate"},
        {"flagged": True, "categories": {"hate": "high"}},
        {"flagged": True, "scores": [0.5]},
        {"flagged": True, "scores": {"hate": "high"}},
    ],
)
def test_answers_that_cannot_be_read_are_errors(answer: object) -> None:
    with pytest.raises(ClassifierError):
        READER.verdict(answer)


def test_a_configured_category_names_a_bare_flag() -> None:
    reader = AnswerReader(settings("http", url="http://h/", category="abuse"))
    assert reader.verdict(True) == Verdict(True, ("abuse",))
