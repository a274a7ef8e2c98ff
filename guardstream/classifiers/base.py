"""What every classifier shares: its settings, its verdicts, the `Classifier` protocol and the error a call raises.

A classifier reads text and says whether it is flagged, and in which categories. The window decides
when to ask (cadence, strict or async); `run_with_policy` (policy.py) applies the classifier's
timeout, concurrency limit and metrics around one call. Category names come from a closed set per
classifier (they become metric labels and block messages), never from the text.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, Protocol

import anyio

from guardstream.errors import GuardstreamError

Mode = Literal["strict", "async"]
OnError = Literal["block", "allow"]
Direction = Literal["output", "input", "both"]

# What a category name may be made of: metric label values and block messages carry it.
CATEGORY_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_./-]{0,63}")
# The category a classifier reports for a name outside its closed set.
OTHER_CATEGORY = "other"


def _empty() -> Mapping[Any, Any]:
    # Read-only, so a frozen settings object cannot be changed through one of its tables.
    return MappingProxyType({})


@dataclass(frozen=True)
class Verdict:
    """One text's verdict. `categories` are the flagged categories (from the classifier's closed set);
    `scores` the per-category scores when the classifier gives them."""

    flagged: bool
    categories: tuple[str, ...] = ()
    scores: Mapping[str, float] = field(default_factory=dict, hash=False)


CLEAR = Verdict(False)


@dataclass(frozen=True)
class ClassifierFailure:
    """A call that gave no verdict: it took longer than `timeout_ms` (`"timeout"`) or raised (`"error"`).

    `detail` names what went wrong (an exception type, an HTTP status), never the text.
    """

    reason: Literal["timeout", "error"]
    detail: str = ""


@dataclass(frozen=True)
class ClassifierSettings:
    """One `[[classifiers]]` table, validated (`parse_classifiers`). Fields a kind does not use keep their defaults.

    Common to every kind: `name`, `kind`, `mode`, `every_chars`, `overlap_chars`, `timeout_ms`,
    `on_error`, `max_concurrency`, `direction` and `category` (the category a violation reports;
    `None` reports the classifier's own flagged category).
    """

    name: str
    kind: str
    mode: Mode = "strict"
    every_chars: int = 200
    overlap_chars: int = 100
    timeout_ms: int = 1000
    on_error: OnError = "block"
    max_concurrency: int = 8
    direction: Direction = "output"
    category: str | None = None
    # http-based kinds (openai-moderation, chat-judge, http)
    url: str | None = None
    api_key_env: str | None = None
    headers: Mapping[str, str] = field(default_factory=_empty, hash=False)
    # openai-moderation: per-category score thresholds; none means the endpoint's own `flagged`.
    model: str | None = None
    thresholds: Mapping[str, float] = field(default_factory=_empty, hash=False)
    # openai-moderation, http, python: several texts in one call; at most `max_batch` of them.
    batch: bool = False
    max_batch: int = 32
    # Extra category names a classifier may report (beyond its kind's own); others become "other".
    categories: tuple[str, ...] = ()
    # chat-judge: the prompt (`{text}` is replaced by the text), an optional system message, how the
    # answer is read, and category codes to names.
    template: str | None = None
    system: str | None = None
    parser: str = "safe-unsafe"
    codes: Mapping[str, str] = field(default_factory=_empty, hash=False)
    max_tokens: int = 32
    # chat-judge (score parser), http/python numeric categories, local models: flagged at or above.
    threshold: float = 0.5
    # python: "package.module:callable"
    module: str | None = None

    def applies_to(self, direction: Literal["input", "output"]) -> bool:
        """Whether this classifier checks text going in `direction`."""
        return self.direction in (direction, "both")

    def category_of(self, verdict: Verdict) -> str:
        """The category a flagged verdict is reported under: `category` when set, else the verdict's first."""
        if self.category is not None:
            return self.category
        return verdict.categories[0] if verdict.categories else OTHER_CATEGORY


class Classifier(Protocol):
    """A configured classifier. Build one with `load_classifiers`; call it through `run_with_policy`.

    `categories` is the closed set of category names its verdicts can carry.
    """

    name: str
    settings: ClassifierSettings
    categories: tuple[str, ...]

    async def classify(self, texts: Sequence[str]) -> list[Verdict]:
        """One verdict per text; several channels' windows may be batched in one call. Raises on failure
        (the caller applies timeout_ms and on_error)."""
        ...


class ClassifierError(GuardstreamError):
    """A classifier call failed: the endpoint was down, answered an error, or gave an answer that cannot be read.

    The message names the classifier and what went wrong, never the text classified.
    """

    def __init__(self, classifier: str, reason: str) -> None:
        self.classifier = classifier
        self.reason = reason
        super().__init__(f"classifier {classifier!r}: {reason}")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(classifier={self.classifier!r}, reason={self.reason!r})"


def closed_category(name: str, known: Sequence[str] | frozenset[str]) -> str:
    """`name` if it is one of `known`, else `"other"`: what an endpoint answers never widens the label set."""
    return name if name in known else OTHER_CATEGORY


def known_categories(own: Sequence[str], settings: ClassifierSettings) -> tuple[str, ...]:
    """A kind's own category names, the configured extra ones and the fallbacks, without repeats."""
    extra = [settings.category] if settings.category else []
    return tuple(dict.fromkeys([*own, *settings.categories, *extra, OTHER_CATEGORY]))


async def for_each(texts: Sequence[str], call: Callable[[str], Awaitable[Verdict]]) -> list[Verdict]:
    """`call` on every text at once (endpoints that take one text a call), verdicts in order.

    The first failure is raised as itself, not inside an exception group, so that the policy sees
    an HTTP timeout as a timeout; the other calls are cancelled.
    """
    verdicts: list[Verdict] = [CLEAR] * len(texts)

    async def run(index: int) -> None:
        verdicts[index] = await call(texts[index])

    try:
        async with anyio.create_task_group() as group:
            for index in range(len(texts)):
                group.start_soon(run, index)
    except BaseExceptionGroup as group:
        first = _first_leaf(group)
        if not isinstance(first, Exception):
            raise
        raise first from None
    return verdicts


def _first_leaf(group: BaseExceptionGroup[BaseException]) -> BaseException:
    first = group.exceptions[0]
    return _first_leaf(first) if isinstance(first, BaseExceptionGroup) else first
