"""`http`: your own classifier service. POST `{"text": ...}`, answer `{"flagged": bool, "categories": {...}}`.

With `batch = true` it POSTs `{"texts": [...]}` (at most `max_batch`) and expects `{"results": [...]}`
(or a bare list), one answer per text, in order. `categories` in an answer maps names to `true`/`false`
or to a score (flagged at or above `threshold`); a list of names works too. Names outside the
classifier's closed set (its `categories` setting) are reported as `"other"`.
"""

from __future__ import annotations

from collections.abc import Sequence

from guardstream.classifiers.base import (
    ClassifierError,
    ClassifierSettings,
    Verdict,
    closed_category,
    for_each,
    known_categories,
)
from guardstream.classifiers.endpoint import Client, Endpoint

# The category of a flag that names none.
FLAGGED = "flagged"


class AnswerReader:
    """Turns a service's (or a function's) answer into a `Verdict`, inside one classifier's closed category set."""

    def __init__(self, settings: ClassifierSettings) -> None:
        self.name = settings.name
        self.settings = settings
        self.categories = known_categories([FLAGGED], settings)
        self._known = frozenset(self.categories)

    def verdict(self, answer: object) -> Verdict:
        """A bool, a `Verdict`, or `{"flagged": bool, "categories": {...}, "scores": {...}}`."""
        if isinstance(answer, Verdict):
            return self._closed(answer)
        if isinstance(answer, bool):
            return Verdict(True, (self._flag_name(),)) if answer else Verdict(False)
        if not isinstance(answer, dict) or not isinstance(answer.get("flagged"), bool):
            raise ClassifierError(self.name, 'the answer is not {"flagged": true|false, ...}.')
        flagged: list[str] = []
        scores: dict[str, float] = {}
        categories = answer.get("categories", {})
        if isinstance(categories, list):
            categories = dict.fromkeys(categories, True)
        if not isinstance(categories, dict):
            raise ClassifierError(self.name, "the answer's categories are not an object or a list.")
        raw_scores = answer.get("scores", {})
        if not isinstance(raw_scores, dict):
            raise ClassifierError(self.name, "the answer's scores are not an object.")
        for name, value in categories.items():
            score = _score(value)
            if value is True or (score is not None and score >= self.settings.threshold):
                flagged.append(str(name))
            if score is not None:
                scores[str(name)] = score
            elif not isinstance(value, bool):
                raise ClassifierError(self.name, "the answer's categories are not true/false or numbers.")
        for name, value in raw_scores.items():
            score = _score(value)
            if score is None:
                raise ClassifierError(self.name, "the answer's scores are not numbers.")
            scores[str(name)] = score
        scores = {closed_category(name, self._known): score for name, score in scores.items()}
        is_flagged = answer["flagged"] or bool(flagged)
        if not is_flagged:
            return Verdict(False, scores=scores)
        names = tuple(dict.fromkeys(closed_category(name, self._known) for name in flagged))
        return Verdict(True, names or (self._flag_name(),), scores)

    def _closed(self, verdict: Verdict) -> Verdict:
        names = tuple(dict.fromkeys(closed_category(name, self._known) for name in verdict.categories))
        if verdict.flagged and not names:
            names = (self._flag_name(),)
        scores = {closed_category(name, self._known): float(score) for name, score in verdict.scores.items()}
        return Verdict(verdict.flagged, names, scores)

    def _flag_name(self) -> str:
        return closed_category(self.settings.category or FLAGGED, self._known)


class HTTPClassifier:
    """A classifier service of your own, over HTTP."""

    def __init__(self, settings: ClassifierSettings, client: Client) -> None:
        self.name = settings.name
        self.settings = settings
        self.reader = AnswerReader(settings)
        self.categories = self.reader.categories
        self._endpoint = Endpoint(settings, client)

    async def classify(self, texts: Sequence[str]) -> list[Verdict]:
        if self.settings.batch:
            verdicts: list[Verdict] = []
            for start in range(0, len(texts), self.settings.max_batch):
                verdicts += await self._classify_batch(texts[start : start + self.settings.max_batch])
            return verdicts
        return await for_each(texts, self._classify_one)

    async def _classify_one(self, text: str) -> Verdict:
        return self.reader.verdict(await self._endpoint.post({"text": text}))

    async def _classify_batch(self, texts: Sequence[str]) -> list[Verdict]:
        answer = await self._endpoint.post({"texts": list(texts)})
        results = answer.get("results") if isinstance(answer, dict) else answer
        if not isinstance(results, list) or len(results) != len(texts):
            raise ClassifierError(self.name, f"the answer does not have {len(texts)} results.")
        return [self.reader.verdict(result) for result in results]


def _score(value: object) -> float | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    return None
