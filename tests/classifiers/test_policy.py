"""run_with_policy: timeouts, failures and the per-classifier concurrency limit, never a raise."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence

import anyio
import pytest
from prometheus_client import CollectorRegistry

from guardstream.classifiers import (
    ClassifierError,
    ClassifierFailure,
    ClassifierSettings,
    Verdict,
    load_classifiers,
    make_limiters,
    run_with_policy,
)
from guardstream.metrics import Metrics
from tests.classifiers.conftest import settings

pytestmark = pytest.mark.anyio


class Scripted:
    """A classifier that sleeps, then flags texts containing "bad" (or raises what it is given)."""

    def __init__(self, name: str = "scripted", *, delay: float = 0.0, error: Exception | None = None, **table: object):
        self.name = name
        self.settings: ClassifierSettings = settings("local-offensive", name=name, **table)
        self.categories: tuple[str, ...] = ("abuse", "other")
        self.delay = delay
        self.error = error
        self.in_flight = 0
        self.most_in_flight = 0
        self.calls: list[list[str]] = []

    async def classify(self, texts: Sequence[str]) -> list[Verdict]:
        self.calls.append(list(texts))
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await anyio.sleep(self.delay)
            if self.error is not None:
                raise self.error
            return [Verdict("bad" in t, ("abuse",) if "bad" in t else ()) for t in texts]
        finally:
            self.in_flight -= 1


def sample(registry: CollectorRegistry, name: str, **labels: str) -> float:
    return registry.get_sample_value(name, {"classifier": "scripted", **labels}) or 0.0


async def test_one_verdict_per_text_in_one_call() -> None:
    classifier = Scripted()
    results = await run_with_policy(classifier, ["fine", "bad words"], anyio.CapacityLimiter(1))
    assert results == [Verdict(False), Verdict(True, ("abuse",))]
    assert classifier.calls == [["fine", "bad words"]]
    assert await run_with_policy(classifier, [], anyio.CapacityLimiter(1)) == []


async def test_a_slow_classifier_times_out_as_a_typed_failure() -> None:
    classifier = Scripted(delay=5, timeout_ms=50)
    started = time.perf_counter()
    results = await run_with_policy(classifier, ["a", "b"], anyio.CapacityLimiter(1))
    assert time.perf_counter() - started < 1
    assert results == [ClassifierFailure("timeout", "no verdict within 50 ms")] * 2


async def test_a_timeout_is_logged_like_any_failure_naming_no_text(caplog: pytest.LogCaptureFixture) -> None:
    # Under on_error = "allow" the stream goes on; the log line is all an operator would see.
    with caplog.at_level(logging.WARNING, logger="guardstream"):
        await run_with_policy(Scripted(delay=5, timeout_ms=50), ["private words"], anyio.CapacityLimiter(1))
    assert "classifier scripted failed: no verdict within 50 ms" in caplog.text
    assert "private words" not in caplog.text


async def test_a_failing_classifier_is_an_error_naming_the_exception_type_not_the_text() -> None:
    results = await run_with_policy(Scripted(error=RuntimeError("secret text")), ["t"], anyio.CapacityLimiter(1))
    assert results == [ClassifierFailure("error", "RuntimeError")]
    own = await run_with_policy(Scripted(error=ClassifierError("x", "HTTP 503.")), ["t"], anyio.CapacityLimiter(1))
    assert own == [ClassifierFailure("error", "HTTP 503.")]


async def test_an_http_client_timeout_counts_as_a_timeout() -> None:
    import httpx

    results = await run_with_policy(Scripted(error=httpx.ReadTimeout("slow")), ["t"], anyio.CapacityLimiter(1))
    assert results[0] == ClassifierFailure("timeout", "ReadTimeout")


async def test_a_wrong_number_of_verdicts_is_an_error() -> None:
    class Short(Scripted):
        async def classify(self, texts: Sequence[str]) -> list[Verdict]:
            return [Verdict(False)]

    class NotVerdicts(Scripted):
        async def classify(self, texts: Sequence[str]) -> list[Verdict]:
            return [True, False]  # type: ignore[list-item]

    limiter = anyio.CapacityLimiter(1)
    assert (
        await run_with_policy(Short(), ["a", "b"], limiter)
        == [ClassifierFailure("error", "classify() returned 1 verdicts for 2 texts.")] * 2
    )
    assert (await run_with_policy(NotVerdicts(), ["a", "b"], limiter))[0].reason == "error"  # type: ignore[union-attr]


async def test_the_limiter_caps_calls_in_flight() -> None:
    classifier = Scripted(delay=0.05, max_concurrency=2)
    limiter = make_limiters([classifier])["scripted"]
    assert limiter.total_tokens == 2
    async with anyio.create_task_group() as group:
        for _ in range(6):
            group.start_soon(run_with_policy, classifier, ["t"], limiter)
    assert classifier.most_in_flight == 2 and len(classifier.calls) == 6


async def test_the_wait_for_a_slot_counts_toward_the_timeout() -> None:
    classifier = Scripted(delay=0.3, timeout_ms=100, max_concurrency=1)
    limiter = anyio.CapacityLimiter(1)
    results: list[list[Verdict | ClassifierFailure]] = []

    async def check() -> None:
        results.append(await run_with_policy(classifier, ["t"], limiter))

    async with anyio.create_task_group() as group:
        group.start_soon(check)
        group.start_soon(check)
    assert [r[0] for r in results] == [ClassifierFailure("timeout", "no verdict within 100 ms")] * 2
    assert len(classifier.calls) == 1  # the second never got a slot


async def test_a_slow_classifier_never_stalls_another() -> None:
    slow = Scripted("slow", delay=2, timeout_ms=5000, max_concurrency=1)
    fast = Scripted("fast")
    limiters = make_limiters([slow, fast])
    fast_done: list[float] = []
    started = time.perf_counter()
    async with anyio.create_task_group() as group:
        for _ in range(3):
            group.start_soon(run_with_policy, slow, ["t"], limiters["slow"])
        await anyio.sleep(0.01)
        for _ in range(50):
            await run_with_policy(fast, ["bad"], limiters["fast"])
            fast_done.append(time.perf_counter() - started)
        group.cancel_scope.cancel()
    assert len(fast_done) == 50 and fast_done[-1] < 1


async def test_cancellation_from_outside_propagates() -> None:
    classifier = Scripted(delay=5, timeout_ms=10_000)
    with anyio.move_on_after(0.05) as scope:
        await run_with_policy(classifier, ["t"], anyio.CapacityLimiter(1))
    assert scope.cancelled_caught


async def test_metrics_count_checks_errors_and_time() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, classifiers=["scripted"]).classifier("scripted")
    limiter = anyio.CapacityLimiter(1)
    await run_with_policy(Scripted(), ["fine", "ok"], limiter, metrics)
    await run_with_policy(Scripted(), ["fine", "bad"], limiter, metrics)
    await run_with_policy(Scripted(delay=1, timeout_ms=20), ["t"], limiter, metrics)
    await run_with_policy(Scripted(error=ValueError()), ["t"], limiter, metrics)
    assert sample(registry, "guardstream_classifier_checks_total", verdict="clear") == 1
    assert sample(registry, "guardstream_classifier_checks_total", verdict="flagged") == 1
    assert sample(registry, "guardstream_classifier_errors_total", reason="timeout") == 1
    assert sample(registry, "guardstream_classifier_errors_total", reason="error") == 1
    assert sample(registry, "guardstream_classifier_seconds_count") == 4
    assert sample(registry, "guardstream_classifier_seconds_sum") >= 0.02


async def test_a_sync_python_classifier_runs_off_the_event_loop() -> None:
    # inhouse.slow sleeps 0.3 s in a thread; the loop keeps ticking meanwhile.
    (classifier,) = load_classifiers(
        [settings("python", module="tests.classifiers.inhouse:slow", max_concurrency=2)], client=None
    )
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with anyio.create_task_group() as group:
        group.start_soon(tick)
        results = await run_with_policy(classifier, ["a"], anyio.CapacityLimiter(2))
        group.cancel_scope.cancel()
    assert results == [Verdict(False)]
    assert ticks >= 10
