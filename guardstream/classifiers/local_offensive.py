"""`local-offensive`: an offensive-language model that runs in-process, with no network and no set-up.

The model is alt-profanity-check's (`pip install "guardstream[local]"`): a linear SVM, calibrated
to a probability, over a TF-IDF bag of words, trained on labelled offensive and abusive posts; the
package ships its weights. It scores a batch of short texts in microseconds per text (README,
"Classifiers"). It reads words, not meaning: it catches profanity, insults and abuse, and it misses
politely worded threats and hate.

Scoring is pure Python under the GIL. A window or two is scored on the event loop, where it costs
less than a hop to a thread; more text at once runs in one worker thread (a second would not be
faster), so a large batch never blocks the loop for long.
"""

from __future__ import annotations

import importlib
import math
import re
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import anyio
import anyio.to_thread

from guardstream.classifiers.base import ClassifierSettings, Verdict, closed_category, known_categories
from guardstream.errors import ConfigError

OFFENSIVE = "offensive"
SENTENCE_END = re.compile(r"(?<=[.!?;\n])\s+")
SEGMENT_WORDS = 10
# Up to this much text is scored on the event loop (about 0.5 ms of CPU): less than a hop to a
# worker thread costs. More goes to the thread, so a large batch never stalls other streams.
INLINE_CHARS = 1000
MAX_EXPONENT = 700.0  # math.exp overflows a float past about 709
INSTALL_HINT = 'pip install "guardstream[local]"'


class OffensiveModel:
    """alt-profanity-check's vectoriser and model, loaded once: `probabilities(texts)` is the whole API.

    The model is a sum of word weights, so it is scored here in plain Python from the weights
    (`LinearScorer`), giving the same probabilities as scikit-learn without its per-call checks,
    which cost milliseconds per call. Weights of another shape fall back to scikit-learn.
    """

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
        self.scorer = LinearScorer.from_weights(self._vectorizer, self._model)

    def probabilities(self, texts: Sequence[str]) -> list[float]:
        """The probability that each text is offensive: the highest of its segments' (`segments`)."""
        pieces: list[str] = []
        owners: list[int] = []
        for index, text in enumerate(texts):
            for piece in segments(text):
                pieces.append(piece)
                owners.append(index)
        best = [0.0] * len(texts)
        for owner, probability in zip(owners, self.piece_probabilities(pieces), strict=True):
            best[owner] = max(best[owner], probability)
        return best

    def piece_probabilities(self, pieces: list[str]) -> list[float]:
        """Each piece's probability, as scored whole."""
        if not pieces:
            return []
        if self.scorer is not None:
            return [self.scorer.probability(piece) for piece in pieces]
        return [float(p) for p in self.reference_probabilities(pieces)]

    def reference_probabilities(self, pieces: list[str]) -> Any:
        """scikit-learn's own answer (the package's predict_prob, without its slow numpy.apply_along_axis)."""
        return self._model.predict_proba(self._vectorizer.transform(pieces))[:, 1]


class LinearScorer:
    """TF-IDF (l2-normalised) into calibrated linear SVMs, averaged: alt-profanity-check's model, in plain Python.

    Per word it keeps the idf and one weight per calibrated fold; a text costs a dictionary look-up
    and a multiply-add per fold for each word, and one sigmoid per fold.
    """

    def __init__(
        self,
        analyze: Callable[[str], list[str]],
        words: dict[str, tuple[float, tuple[float, ...]]],
        intercepts: tuple[float, ...],
        sigmoids: tuple[tuple[float, float], ...],
    ) -> None:
        self.analyze = analyze
        self.words = words
        self.intercepts = intercepts
        self.sigmoids = sigmoids

    @classmethod
    def from_weights(cls, vectorizer: Any, model: Any) -> LinearScorer | None:
        """The scorer for these fitted weights, or None when they are not of the shape it reproduces."""
        params = vectorizer.get_params()
        expected = {"norm": "l2", "use_idf": True, "sublinear_tf": False, "binary": False, "analyzer": "word"}
        folds = getattr(model, "calibrated_classifiers_", None)
        if any(params.get(key) != value for key, value in expected.items()) or not folds:
            return None
        weights, intercepts, sigmoids = [], [], []
        for fold in folds:
            coef = getattr(fold.estimator, "coef_", None)
            if fold.method != "sigmoid" or coef is None or coef.shape[0] != 1 or len(fold.calibrators) != 1:
                return None
            weights.append(coef[0])
            intercepts.append(float(fold.estimator.intercept_[0]))
            sigmoids.append((float(fold.calibrators[0].a_), float(fold.calibrators[0].b_)))
        # Each fold's weight is stored times the word's idf: a count times it is the word's share.
        words = {
            word: (idf, tuple(idf * float(w[column]) for w in weights))
            for word, column in vectorizer.vocabulary_.items()
            for idf in (float(vectorizer.idf_[column]),)
        }
        return cls(vectorizer.build_analyzer(), words, tuple(intercepts), tuple(sigmoids))

    def probability(self, text: str) -> float:
        counts = Counter([word for word in self.analyze(text) if word in self.words])
        squares = 0.0
        sums = [0.0] * len(self.intercepts)
        for word, count in counts.items():
            idf, weights = self.words[word]
            squares += (count * idf) ** 2
            sums = [total + count * weight for total, weight in zip(sums, weights, strict=True)]
        norm = math.sqrt(squares) or 1.0
        probability = 0.0
        for intercept, (a, b), total in zip(self.intercepts, self.sigmoids, sums, strict=True):
            # scikit-learn's _SigmoidCalibration, 1 / (1 + exp(a * f + b)), which is 0 where exp would overflow.
            exponent = a * (intercept + total / norm) + b
            probability += 1.0 / (1.0 + math.exp(exponent)) if exponent < MAX_EXPONENT else 0.0
        return probability / len(self.intercepts)


def segments(text: str) -> list[str]:
    """`text` as the short pieces the model reads well: sentences, and runs of SEGMENT_WORDS words of longer ones.

    The model normalises a text's word weights by its length, so one insult in a 300-character
    window of clean text scores low; scored alone, its sentence scores as it should. Runs overlap
    by half, so a phrase cut by one run boundary is whole in the next.
    """
    pieces = []
    for sentence in SENTENCE_END.split(text):
        words = sentence.split()
        if len(words) <= SEGMENT_WORDS:
            if words:
                pieces.append(" ".join(words))
            continue
        stride = SEGMENT_WORDS // 2
        for start in range(0, len(words) - stride, stride):
            pieces.append(" ".join(words[start : start + SEGMENT_WORDS]))
    return pieces


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
            if sum(map(len, chunk)) <= INLINE_CHARS:
                probabilities += self.model.probabilities(chunk)
            else:
                probabilities += await anyio.to_thread.run_sync(
                    self.model.probabilities, chunk, abandon_on_cancel=True, limiter=self._thread
                )
        return [self.verdict(p) for p in probabilities]

    def verdict(self, probability: float) -> Verdict:
        scores = {OFFENSIVE: probability}
        if probability >= self.settings.threshold:
            return Verdict(True, (self._flag,), scores)
        return Verdict(False, scores=scores)
