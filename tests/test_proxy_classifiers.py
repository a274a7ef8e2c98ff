"""Classifier checks in the window (#9), end to end: the `openai` SDK -> guardstream -> the mock model,
with the mock's own `/v1/moderations` endpoint as the classifier (it flags `MOCKFLAG-<category>`)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import openai
import pytest
from prometheus_client import CollectorRegistry

from guardstream.classifiers import parse_classifiers
from guardstream.config import Config, ModerationSettings, Upstreams
from guardstream.proxy import create_app
from guardstream.servers import serve_in_thread
from tests.conftest import MockModel, RunningProxy, mock_headers

FLAG = "MOCKFLAG-violence"
BEFORE = "This part of the answer is perfectly fine and calm. "
FLAGGED = f"{BEFORE}Then comes the passage {FLAG} that the classifier flags. And more after it."
BENIGN = "A calm answer that no classifier would ever flag, in a few sentences. It goes on. The end."
MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]


@contextmanager
def proxy_with(mock: MockModel, *, rule_budget_ms: int = 1000, **table: Any) -> Iterator[RunningProxy]:
    settings = {"name": "omni", "kind": "openai-moderation", "url": f"{mock.url}/v1/moderations", **table}
    classifiers = parse_classifiers([settings], "test")
    config = Config(
        upstreams=Upstreams(mock.url, mock.url, mock.url),
        moderation=ModerationSettings(packs=("secrets",), rule_budget_ms=rule_budget_ms),
        classifiers=classifiers,
    )
    registry = CollectorRegistry()
    with serve_in_thread(create_app(config, registry=registry)) as url:
        yield RunningProxy(url, registry)


def stream(proxy: RunningProxy, script: dict[str, Any]) -> tuple[str, BaseException | None]:
    text: list[str] = []
    with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0) as client:
        try:
            for chunk in client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, extra_headers=mock_headers(script)
            ):
                if chunk.choices:
                    text.append(chunk.choices[0].delta.content or "")
        except openai.APIError as exc:
            return "".join(text), exc
    return "".join(text), None


@pytest.mark.parametrize("chunk_chars", range(1, 9))
def test_strict_mode_blocks_a_flagged_passage_with_nothing_of_it_delivered(
    mock_model: MockModel, chunk_chars: int
) -> None:
    with proxy_with(mock_model, every_chars=40, overlap_chars=20) as proxy:
        text, error = stream(proxy, {"reply": FLAGGED, "chunk_chars": chunk_chars})
        violations = proxy.metric(
            "guardstream_violations_total", rule="omni", category="violence", action="block", direction="output"
        )
    # What went out was cleared by a check; nothing of the flagged passage did.
    assert FLAGGED.startswith(text) and len(text) <= FLAGGED.index(FLAG)
    assert isinstance(error, openai.APIError) and error.code == "content_filter"
    assert "classifier omni (violence)" in error.message and "MOCKFLAG" not in error.message
    assert violations == 1


def test_strict_mode_lets_benign_text_through_identical(mock_model: MockModel) -> None:
    with proxy_with(mock_model, every_chars=30) as proxy:
        text, error = stream(proxy, {"reply": BENIGN, "chunk_chars": 3})
        checks = proxy.metric("guardstream_classifier_checks_total", classifier="omni", verdict="clear")
    assert (text, error) == (BENIGN, None)
    assert checks >= 2  # checked as it went, not only at the end


def test_async_mode_cuts_the_stream_within_its_bound(mock_model: MockModel) -> None:
    every, overlap = 40, 20
    with proxy_with(mock_model, mode="async", every_chars=every, overlap_chars=overlap) as proxy:
        text, error = stream(proxy, {"reply": FLAGGED + " Tail. " * 30, "chunk_chars": 4, "delay_ms": 10})
    assert isinstance(error, openai.APIError) and "classifier omni (violence)" in error.message
    flag_end = FLAGGED.index(FLAG) + len(FLAG)
    # The documented bound: what was released while the check that flags it was in flight, at most
    # the larger of every_chars and what streams during one round trip, plus one more round trip.
    assert len(text) < flag_end + every + 200


def test_async_mode_classifies_what_streams_while_a_check_is_out(mock_model: MockModel) -> None:
    # The first check is held at the classifier (MOCKHOLD) while the rest of a long answer streams,
    # is released and leaves the window's context: the next check must still read it, so a flag in
    # the middle of it ends the stream once the held check comes back (it used to be skipped, and
    # the answer ended normally).
    filler = " ".join(f"w{i:04d}" for i in range(1200))  # about 6,000 characters, no sentence end
    reply = f"MOCKHOLD-gap {filler[:1500]} {FLAG} {filler[1500:]}"
    script = {"reply": reply, "chunk_chars": 40, "delay_ms": 2}
    got: list[str] = []
    error: openai.APIError | None = None
    with proxy_with(mock_model, mode="async", timeout_ms=30_000) as proxy:
        with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0) as client:
            try:
                for chunk in client.chat.completions.create(
                    model="m", messages=MESSAGES, stream=True, extra_headers=mock_headers(script)
                ):
                    if chunk.choices and chunk.choices[0].delta.content:
                        got.append(chunk.choices[0].delta.content)
                        if len("".join(got)) == len(reply):
                            mock_model.release("gap")  # all of it went out; the end waits for its checks
            except openai.APIError as exc:
                error = exc
        asked = [t for r in mock_model.requests() if r["path"].endswith("/moderations") for t in r["body"]["input"]]
    assert "".join(got) == reply  # async: the text flowed while the first check was out
    assert isinstance(error, openai.APIError) and "classifier omni (violence)" in error.message
    assert any(FLAG in text for text in asked)


@pytest.mark.parametrize("chunk_chars", [1, 2, 4, 8])
def test_async_mode_ends_with_the_error_when_the_last_check_flags(mock_model: MockModel, chunk_chars: int) -> None:
    # The whole answer arrives before the verdict: the end of the stream waits for it, and the
    # stream ends with the error, never as a complete answer.
    with proxy_with(mock_model, mode="async") as proxy:
        text, error = stream(proxy, {"reply": "Short and then MOCKFLAG-violence at end.", "chunk_chars": chunk_chars})
    assert isinstance(error, openai.APIError) and "classifier omni (violence)" in error.message


@pytest.mark.parametrize(("on_error", "blocked"), [("block", True), ("allow", False)])
def test_a_classifier_that_is_down_follows_on_error(mock_model: MockModel, on_error: str, blocked: bool) -> None:
    with proxy_with(mock_model, on_error=on_error, headers={"x-mock-status": "503"}) as proxy:
        text, error = stream(proxy, {"reply": BENIGN, "chunk_chars": 5})
        errors = proxy.metric("guardstream_classifier_errors_total", classifier="omni", reason="error")
    assert errors >= 1
    if blocked:
        assert text == "" and isinstance(error, openai.APIError) and "could not check it (error)" in error.message
    else:
        assert (text, error) == (BENIGN, None)


@pytest.mark.parametrize(("on_error", "blocked"), [("block", True), ("allow", False)])
def test_a_classifier_slower_than_its_timeout_follows_on_error(
    mock_model: MockModel, on_error: str, blocked: bool
) -> None:
    table: dict[str, Any] = {"on_error": on_error, "timeout_ms": 200, "headers": {"x-mock-delay-ms": "1500"}}
    with proxy_with(mock_model, **table) as proxy:
        started = time.monotonic()
        text, error = stream(proxy, {"reply": BENIGN, "chunk_chars": 5})
        elapsed = time.monotonic() - started
        timeouts = proxy.metric("guardstream_classifier_errors_total", classifier="omni", reason="timeout")
    assert timeouts >= 1 and elapsed < 5
    if blocked:
        assert text == "" and isinstance(error, openai.APIError) and "could not check it (timeout)" in error.message
    else:
        assert (text, error) == (BENIGN, None)


def test_a_flagged_prompt_is_a_400_and_never_reaches_the_model(mock_model: MockModel) -> None:
    with proxy_with(mock_model, direction="both") as proxy:
        with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(model="m", messages=[{"role": "user", "content": f"say {FLAG}"}])
        chat_requests = [r for r in mock_model.requests() if r["path"].endswith("/chat/completions")]
    assert caught.value.code == "content_filter" and "classifier omni (violence)" in caught.value.message
    assert chat_requests == []


def test_a_prompt_whose_classifier_is_down_is_a_503_the_sdk_may_retry(mock_model: MockModel) -> None:
    table: dict[str, Any] = {"direction": "input", "headers": {"x-mock-status": "503"}}
    with proxy_with(mock_model, **table) as proxy:
        with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0) as client:
            with pytest.raises(openai.InternalServerError) as caught:
                client.chat.completions.create(model="m", messages=MESSAGES)
        chat_requests = [r for r in mock_model.requests() if r["path"].endswith("/chat/completions")]
    assert caught.value.status_code == 503 and "could not check it (error)" in caught.value.message
    assert chat_requests == []


def test_a_whole_json_answer_is_classified_too(mock_model: MockModel) -> None:
    with proxy_with(mock_model) as proxy:
        with openai.OpenAI(base_url=f"{proxy.url}/v1", api_key="sk-test", max_retries=0) as client:
            with pytest.raises(openai.BadRequestError) as caught:
                client.chat.completions.create(
                    model="m", messages=MESSAGES, extra_headers=mock_headers({"reply": FLAGGED})
                )
    assert "classifier omni (violence)" in caught.value.message


def test_a_stuck_classifier_call_never_stalls_other_streams(mock_model: MockModel) -> None:
    # One stream's check is held at the classifier (MOCKHOLD) while fifty other streams, checked
    # by the same classifier in the same process, go through; then the held one finishes too.
    # Fifty client threads share the proxy's process here: time a scan spends waiting for the GIL
    # counts against the wall-clock rule budget, so it is set out of the way (not what is tested).
    with proxy_with(mock_model, timeout_ms=30_000, rule_budget_ms=600_000) as proxy:
        held: list[tuple[str, BaseException | None]] = []
        stuck = threading.Thread(target=lambda: held.append(stream(proxy, {"reply": "Wait MOCKHOLD-stuck here."})))
        stuck.start()
        time.sleep(0.5)
        others: list[tuple[str, BaseException | None]] = []

        def one() -> None:
            others.append(stream(proxy, {"reply": BENIGN, "chunk_chars": 30}))

        threads = [threading.Thread(target=one) for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert held == []  # still held at the classifier while the fifty went through
        assert httpx.get(f"{proxy.url}/healthz").status_code == 200
        mock_model.release("stuck")
        stuck.join(timeout=30)
    assert others == [(BENIGN, None)] * 50
    assert held == [("Wait MOCKHOLD-stuck here.", None)]


def test_metrics_name_the_classifier_and_never_the_text(mock_model: MockModel) -> None:
    with proxy_with(mock_model) as proxy:
        stream(proxy, {"reply": FLAGGED, "chunk_chars": 5})
        exposition = httpx.get(f"{proxy.url}/metrics").text
    assert 'guardstream_classifier_checks_total{classifier="omni",verdict="flagged"}' in exposition
    assert "MOCKFLAG" not in exposition and "passage" not in exposition


def test_classifiers_with_a_finish_policy_end_gracefully(mock_model: MockModel) -> None:
    settings = {"name": "omni", "kind": "openai-moderation", "url": f"{mock_model.url}/v1/moderations"}
    config = Config(
        upstreams=Upstreams(mock_model.url, mock_model.url, mock_model.url),
        moderation=replace(ModerationSettings(packs=("secrets",)), on_violation="finish"),
        classifiers=parse_classifiers([settings], "test"),
    )
    with serve_in_thread(create_app(config)) as url:
        text, error = stream(RunningProxy(url, CollectorRegistry()), {"reply": FLAGGED, "chunk_chars": 5})
    assert error is None and "MOCKFLAG" not in text
