"""`local-offensive`: an offensive-language model that runs in-process, with no network and no set-up.

The model is alt-profanity-check's (`pip install "guardstream[local]"`): a linear SVM, calibrated
to a probability, over a TF-IDF bag of words, trained on labelled offensive and abusive posts; the
package ships its weights. It scores a batch of short texts in microseconds per text (README,
"Classifiers"). It reads words, not meaning: it catches profanity, insults and abuse, and it misses
politely worded threats and hate.

The vectoriser is pure Python work under the GIL, so calls run one at a time in a worker thread:
the event loop is never blocked, and a second thread would not make it faster.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

import anyio
import anyio.to_thread

from guardstream.classifiers.base import ClassifierSettings, Verdict, closed_category, known_categories
from guardstream.errors import ConfigError

OFFENSIVE = "offensive"
INSTALL_HINT = 'pip install "guardstream[local]"'


class OffensiveModel:
    """alt-profanity-check's vectoriser and model, loaded once: `probabilities(texts)` is the whole API."""

    def __init__(self) -> None:
        try:
            # Untyped, and optional: imported by name so that neither the type checker nor a base
            # install needs it. Importing it loads the weights.
            weights: Any = importlib.import_module("profanity_check.profanity_check")
        except ImportError as exc:
            raise ConfigError(
                f"the local-offensive classifier needs alt-profanity-check ({exc}). Install it: {INSTALL_HINT}"
            ) from None
        self._vectorizer = weights.vectorizer
        self._model = weights.model

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """The probability that each text is offensive."""
        # The package's own predict_prob goes through numpy.apply_along_axis, several times slower.
        probabilities = self._model.predict_proba(self._vectorizer.transform(list(texts)))[:, 1]
        return [float(p) for p in probabilities]


class LocalOffensive:
    """The offensive-language model as a classifier: flagged at or above `threshold`."""

    def __init__(self, settings: ClassifierSettings, model: OffensiveModel | None = None) -> None:
        self.name = settings.name
        self.settings = settings
        try:
            # The package loads its weights once, at import: every OffensiveModel shares them.
            self.model = model if model is not None else OffensiveModel()
        except ConfigError as exc:
            raise ConfigError(f"classifier {settings.name!r}: {exc}") from None
        self.categories = known_categories([OFFENSIVE], settings)
        self._flag = closed_category(settings.category or OFFENSIVE, frozenset(self.categories))
        self._thread = anyio.CapacityLimiter(1)

    async def classify(self, texts: Sequence[str]) -> list[Verdict]:
        probabilities: list[float] = []
        for start in range(0, len(texts), self.settings.max_batch):
            chunk = texts[start : start + self.settings.max_batch]
            probabilities += await anyio.to_thread.run_sync(
                self.model.probabilities, chunk, abandon_on_cancel=True, limiter=self._thread
            )
        return [self.verdict(p) for p in probabilities]

    def verdict(self, probability: float) -> Verdict:
        scores = {OFFENSIVE: probability}
        if probability >= self.settings.threshold:
            return Verdict(True, (self._flag,), scores)
        return Verdict(False, scores=scores)
