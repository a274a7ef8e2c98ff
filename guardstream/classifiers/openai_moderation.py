"""`openai-moderation`: any `/v1/moderations`-compatible endpoint.

It sends `{"model": ..., "input": [texts]}` (several windows in one call: the endpoint takes a list)
and reads `results[].flagged`, `.categories` and `.category_scores`. With `thresholds` set, a text is
flagged in each category whose score reaches its threshold (`"*"` sets one for every category the
endpoint scores); without, the endpoint's own `flagged` and `categories` decide.
"""

from __future__ import annotations

from collections.abc import Sequence

from guardstream.classifiers.base import (
    OTHER_CATEGORY,
    ClassifierError,
    ClassifierSettings,
    Verdict,
    closed_category,
    known_categories,
)
from guardstream.classifiers.endpoint import Client, Endpoint, field

# The categories of OpenAI's omni-moderation model, in the order the API lists them (text-moderation
# models have all but `illicit*`). The mock model answers with the same list.
OPENAI_CATEGORIES = (
    "harassment",
    "harassment/threatening",
    "hate",
    "hate/threatening",
    "illicit",
    "illicit/violent",
    "self-harm",
    "self-harm/intent",
    "self-harm/instructions",
    "sexual",
    "sexual/minors",
    "violence",
    "violence/graphic",
)
# The threshold key that applies to every category without a threshold of its own.
ANY_CATEGORY = "*"


class OpenAIModeration:
    """A `/v1/moderations` endpoint as a classifier."""

    def __init__(self, settings: ClassifierSettings, client: Client) -> None:
        self.name = settings.name
        self.settings = settings
        thresholded = [name for name in settings.thresholds if name != ANY_CATEGORY]
        self.categories = known_categories([*OPENAI_CATEGORIES, *thresholded], settings)
        self._known = frozenset(self.categories)
        self._endpoint = Endpoint(settings, client)

    async def classify(self, texts: Sequence[str]) -> list[Verdict]:
        size = self.settings.max_batch if self.settings.batch else 1
        verdicts: list[Verdict] = []
        for start in range(0, len(texts), size):
            verdicts += await self._classify_batch(texts[start : start + size])
        return verdicts

    async def _classify_batch(self, texts: Sequence[str]) -> list[Verdict]:
        body = {"model": self.settings.model, "input": list(texts)}
        results = field(await self._endpoint.post(body), "results", self.name)
        if not isinstance(results, list) or len(results) != len(texts):
            raise ClassifierError(self.name, f"the endpoint's answer does not have {len(texts)} results.")
        return [self._verdict(result) for result in results]

    def _verdict(self, result: object) -> Verdict:
        scores = field(result, "category_scores", self.name)
        if not isinstance(scores, dict) or not all(_is_score(v) for v in scores.values()):
            raise ClassifierError(self.name, "the endpoint's category_scores are not numbers.")
        known_scores = {name: float(score) for name, score in scores.items() if name in self._known}
        if self.settings.thresholds:
            flagged = [name for name, score in scores.items() if score >= self._threshold(name)]
            is_flagged = bool(flagged)
        else:
            categories = field(result, "categories", self.name)
            is_flagged = field(result, "flagged", self.name) is True
            if not isinstance(categories, dict):
                raise ClassifierError(self.name, "the endpoint's categories are not an object.")
            flagged = [name for name, value in categories.items() if value is True]
        if not is_flagged:
            return Verdict(False, scores=known_scores)
        names = tuple(dict.fromkeys(closed_category(name, self._known) for name in flagged)) or (OTHER_CATEGORY,)
        return Verdict(True, names, known_scores)

    def _threshold(self, name: str) -> float:
        thresholds = self.settings.thresholds
        return thresholds.get(name, thresholds.get(ANY_CATEGORY, float("inf")))


def _is_score(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)
