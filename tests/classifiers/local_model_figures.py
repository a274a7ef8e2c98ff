"""The local model's figures for the README: precision and recall on the labelled set, and the cost of a check.

    python -m tests.classifiers.local_model_figures

The labelled set (tests/fixtures/classifiers/offensive.tsv) is written for this purpose: short
offensive texts (insults, threats, harassment, hateful generalisations, profanity, abuse in polite
words) and benign ones (everyday, technical, and tricky: violent or crude words in harmless senses,
mild swearing at things, talk about offensive words). Each text is scored alone, and again inside a
window like the ones a stream sends (clean sentences from the same set on both sides, about 300
characters), because the window is what the classifier sees.
"""

from __future__ import annotations

import csv
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import anyio

from guardstream.classifiers import ClassifierSettings
from guardstream.classifiers.local_offensive import LocalOffensive, OffensiveModel

LABELLED = Path(__file__).resolve().parents[1] / "fixtures" / "classifiers" / "offensive.tsv"
THRESHOLDS = (0.5, 0.7, 0.8)
CONTEXT_CHARS = 150


@dataclass(frozen=True)
class Example:
    label: str
    group: str
    text: str

    @property
    def is_offensive(self) -> bool:
        return self.label == "offensive"


@dataclass(frozen=True)
class Figures:
    threshold: float
    true_positives: int
    false_positives: int
    false_negatives: int

    @property
    def precision(self) -> float:
        return self.true_positives / (self.true_positives + self.false_positives)

    @property
    def recall(self) -> float:
        return self.true_positives / (self.true_positives + self.false_negatives)


def load_examples() -> list[Example]:
    with LABELLED.open(encoding="utf-8", newline="") as file:
        return [Example(row["label"], row["group"], row["text"]) for row in csv.DictReader(file, delimiter="\t")]


def in_window(examples: list[Example]) -> list[str]:
    """Each text between clean sentences of the set, cut to CONTEXT_CHARS a side, in a fixed order."""
    clean = [e.text for e in examples if e.group in ("everyday", "technical")]
    windows = []
    for index, example in enumerate(examples):
        before = " ".join(clean[(3 * index + k) % len(clean)] for k in range(3))[-CONTEXT_CHARS:]
        after = " ".join(clean[(3 * index + 7 + k) % len(clean)] for k in range(3))[:CONTEXT_CHARS]
        windows.append(f"{before} {example.text} {after}")
    return windows


def figures(examples: list[Example], probabilities: list[float], threshold: float) -> Figures:
    pairs = list(zip(probabilities, (e.is_offensive for e in examples), strict=True))
    return Figures(
        threshold,
        sum(1 for p, is_offensive in pairs if p >= threshold and is_offensive),
        sum(1 for p, is_offensive in pairs if p >= threshold and not is_offensive),
        sum(1 for p, is_offensive in pairs if p < threshold and is_offensive),
    )


def microseconds_per_text(model: OffensiveModel, texts: list[str], batch: int, repeat: int = 5) -> float:
    """The median over `repeat` runs of the CPU time per text, calling the model `batch` texts at a time.

    CPU time, not wall time: on a shared machine it is the figure that holds still.
    """
    runs = []
    for _ in range(repeat):
        started = time.process_time()
        for start in range(0, len(texts), batch):
            model.probabilities(texts[start : start + batch])
        runs.append((time.process_time() - started) / len(texts) * 1e6)
    return statistics.median(runs)


def microseconds_per_check(texts: list[str], repeat: int = 5) -> float:
    """The median wall time of one `classify([text])` call through the classifier (its thread hop included)."""
    classifier = LocalOffensive(ClassifierSettings(name="local", kind="local-offensive"))

    async def run() -> float:
        started = time.perf_counter()
        for text in texts:
            await classifier.classify([text])
        return (time.perf_counter() - started) / len(texts) * 1e6

    return statistics.median(anyio.run(run) for _ in range(repeat))


def main() -> None:
    model = OffensiveModel()
    examples = load_examples()
    offensive = sum(e.is_offensive for e in examples)
    print(f"{len(examples)} texts: {offensive} offensive, {len(examples) - offensive} benign")
    short = [e.text for e in examples]
    windows = in_window(examples)
    for name, texts in (("alone", short), ("in a window", windows)):
        probabilities = model.probabilities(texts)
        for threshold in THRESHOLDS:
            f = figures(examples, probabilities, threshold)
            print(f"{name:12} threshold {threshold}: precision {f.precision:.2f} recall {f.recall:.2f} ({f})")
    print(f"mean window length: {statistics.mean(map(len, windows)):.0f} characters")
    for name, texts in (("alone", short), ("in a window", windows)):
        for batch in (1, 32):
            print(f"{name:12} batch {batch:2}: {microseconds_per_text(model, texts, batch):.0f} CPU µs per text")
        print(f"{name:12} classify([text]): {microseconds_per_check(texts):.0f} µs per check (wall)")


if __name__ == "__main__":
    main()
