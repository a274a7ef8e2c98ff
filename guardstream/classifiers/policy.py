"""One classifier call under its policy: the concurrency limit, `timeout_ms`, and a typed failure instead of a raise.

Each classifier has its own `CapacityLimiter` (`make_limiters`), so a slow classifier fills only its
own slots: other classifiers, and the streams they serve, go on. `timeout_ms` counts from the moment
a check is asked for, the wait for a slot included, because that is the delay a stream sees.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Sequence
from typing import Literal

import anyio
import httpx

from guardstream.classifiers.base import Classifier, ClassifierError, ClassifierFailure, Verdict
from guardstream.metrics import ClassifierMetrics

logger = logging.getLogger("guardstream.classifiers")


def make_limiters(classifiers: Iterable[Classifier]) -> dict[str, anyio.CapacityLimiter]:
    """One limiter per classifier, sized by its `max_concurrency`: share it between every call to that classifier."""
    return {c.name: anyio.CapacityLimiter(c.settings.max_concurrency) for c in classifiers}


async def run_with_policy(
    classifier: Classifier,
    texts: Sequence[str],
    limiter: anyio.CapacityLimiter,
    metrics: ClassifierMetrics | None = None,
) -> list[Verdict | ClassifierFailure]:
    """Classify `texts` in one call, within the classifier's `timeout_ms` and `limiter`.

    Never raises for a failing classifier: every text then gets the same `ClassifierFailure`
    (`"timeout"` or `"error"`), and the caller applies `on_error`. Cancellation from outside
    (the stream ended) still propagates.

    ```python
    limiters = make_limiters(classifiers)
    results = await run_with_policy(judge, ["window one", "window two"], limiters[judge.name])
    ```
    """
    if not texts:
        return []
    started = time.perf_counter()
    failure: ClassifierFailure | None = None
    verdicts: list[Verdict] = []
    with anyio.move_on_after(classifier.settings.timeout_ms / 1000) as scope:
        try:
            async with limiter:
                verdicts = await classifier.classify(texts)
            _check_verdicts(classifier, verdicts, len(texts))
        except Exception as exc:
            # An HTTP client's own timeout is a timeout too, whichever clock ran out first.
            reason: Literal["timeout", "error"] = "timeout" if isinstance(exc, httpx.TimeoutException) else "error"
            failure = ClassifierFailure(reason, _describe(exc))
            # The message names the classifier and the failure; the texts are never logged.
            logger.warning("classifier %s failed: %s", classifier.name, failure.detail)
    seconds = time.perf_counter() - started
    if scope.cancelled_caught:
        failure = ClassifierFailure("timeout", f"no verdict within {classifier.settings.timeout_ms} ms")
        # Logged like any other failure: under on_error = "allow" nothing else would show it.
        logger.warning("classifier %s failed: %s", classifier.name, failure.detail)
    if failure is not None:
        if metrics is not None:
            metrics.on_error(failure.reason, seconds)
        return [failure] * len(texts)
    if metrics is not None:
        metrics.on_check("flagged" if any(v.flagged for v in verdicts) else "clear", seconds)
    return list(verdicts)


def _check_verdicts(classifier: Classifier, verdicts: object, count: int) -> None:
    if not isinstance(verdicts, list) or not all(isinstance(v, Verdict) for v in verdicts):
        raise ClassifierError(classifier.name, "classify() must return a list of Verdict.")
    if len(verdicts) != count:
        raise ClassifierError(classifier.name, f"classify() returned {len(verdicts)} verdicts for {count} texts.")


def _describe(exc: Exception) -> str:
    # A ClassifierError's message is written never to hold text; other exceptions' messages might
    # (a user's function can raise anything), so only their type is kept.
    if isinstance(exc, ClassifierError):
        return exc.reason
    return type(exc).__name__
