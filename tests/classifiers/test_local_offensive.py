"""local-offensive: the shipped model scored in plain Python, on its own and in a window, and its README figures."""

from __future__ import annotations

import re
import sys
import threading
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from guardstream.classifiers import Verdict, load_classifiers
from guardstream.classifiers.local_offensive import LinearScorer, LocalOffensive, OffensiveModel, segments
from guardstream.errors import ConfigError
from tests.classifiers.conftest import settings
from tests.classifiers.local_model_figures import THRESHOLDS, figures, in_window, load_examples

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parents[2] / "README.md"


@pytest.fixture(scope="module")
def model() -> OffensiveModel:
    return OffensiveModel()


def local(model: OffensiveModel, **table: object) -> LocalOffensive:
    return LocalOffensive(settings("local-offensive", **table), model)  # type: ignore[arg-type]


def test_plain_python_scores_equal_scikit_learns(model: OffensiveModel) -> None:
    examples = load_examples()
    texts = [e.text for e in examples] + in_window(examples) + ["", "the and of", "!!!", "zzqx", "FUCK " * 50]
    assert model.scorer is not None
    ours = model.piece_probabilities(texts)
    assert np.allclose(ours, model.reference_probabilities(texts), rtol=0, atol=1e-12)


def test_weights_of_another_shape_fall_back_to_scikit_learn(model: OffensiveModel) -> None:
    vectorizer = SimpleNamespace(get_params=lambda: {"norm": "l1"})
    assert LinearScorer.from_weights(vectorizer, model._model) is None
    plain = SimpleNamespace(get_params=model._vectorizer.get_params)
    assert LinearScorer.from_weights(plain, SimpleNamespace()) is None
    isotonic = SimpleNamespace(calibrated_classifiers_=[SimpleNamespace(method="isotonic", estimator=None)])
    assert LinearScorer.from_weights(plain, isotonic) is None
    fallback = OffensiveModel()
    fallback.scorer = None
    assert fallback.probabilities(["you idiot", "hello"]) == pytest.approx(model.probabilities(["you idiot", "hello"]))


def test_segments_are_sentences_and_overlapping_runs_of_words() -> None:
    assert segments("Hi there. You idiot!  Bye") == ["Hi there.", "You idiot!", "Bye"]
    words = " ".join(f"w{i}" for i in range(23))
    assert segments(words) == [
        " ".join(f"w{i}" for i in range(10)),
        " ".join(f"w{i}" for i in range(5, 15)),
        " ".join(f"w{i}" for i in range(10, 20)),
        " ".join(f"w{i}" for i in range(15, 23)),
    ]
    assert segments("") == [] and segments(" \n ") == []


async def test_an_insult_is_flagged_alone_and_inside_a_window(model: OffensiveModel) -> None:
    classifier = local(model)
    window = (
        "The function returns None when the list is empty. Use a dictionary to count words. "
        "you are a fucking idiot. Restart the server after changing the environment variables."
    )
    verdicts = await classifier.classify(["kill the process", "you are a fucking idiot", window, ""])
    assert [v.flagged for v in verdicts] == [False, True, True, False]
    assert verdicts[1].categories == ("offensive",) and verdicts[1].scores["offensive"] > 0.9
    assert verdicts[3] == Verdict(False, scores={"offensive": 0.0})


async def test_threshold_and_category_are_configurable(model: OffensiveModel) -> None:
    text = ["I hate Mondays."]  # 0.91 from this model: a false positive at the default threshold
    assert (await local(model).classify(text))[0].flagged
    assert not (await local(model, threshold=0.95).classify(text))[0].flagged
    assert (await local(model, category="abuse").classify(["you moron"]))[0].categories == ("abuse",)


async def test_small_checks_run_on_the_loop_and_large_batches_in_a_thread(model: OffensiveModel) -> None:
    seen: list[bool] = []

    class Recording(OffensiveModel):
        def probabilities(self, texts: object) -> list[float]:
            seen.append(threading.current_thread() is threading.main_thread())
            return super().probabilities(texts)  # type: ignore[arg-type]

    recording = Recording()
    classifier = LocalOffensive(settings("local-offensive", max_batch=40), recording)
    await classifier.classify(["a short window"] * 3)
    await classifier.classify(["x" * 300] * 80)
    assert seen == [True, False, False]


def test_load_classifiers_builds_it_and_a_missing_package_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    (classifier,) = load_classifiers([settings("local-offensive", name="words")], client=None)
    assert isinstance(classifier, LocalOffensive) and classifier.categories == ("offensive", "other")
    monkeypatch.setitem(sys.modules, "profanity_check.profanity_check", None)
    with pytest.raises(ConfigError, match=r"classifier 'words': .* Install it: pip install \"guardstream\[local\]\""):
        load_classifiers([settings("local-offensive", name="words")], client=None)


def test_the_readme_shows_the_measured_precision_and_recall(model: OffensiveModel) -> None:
    section = README.read_text(encoding="utf-8").split("### A local model", 1)[1].split("\n## ", 1)[0]
    examples = load_examples()
    for name, texts in (("alone", [e.text for e in examples]), ("in a window", in_window(examples))):
        probabilities = model.probabilities(texts)
        for threshold in THRESHOLDS:
            f = figures(examples, probabilities, threshold)
            row = f"| {name} | {threshold} | {f.precision:.2f} | {f.recall:.2f} |"
            assert row in section, row
    counts = re.search(r"(\d+) texts\s+\((\d+) offensive, (\d+) benign", section)
    assert counts is not None
    offensive = sum(e.is_offensive for e in examples)
    assert counts.groups() == (str(len(examples)), str(offensive), str(len(examples) - offensive))
