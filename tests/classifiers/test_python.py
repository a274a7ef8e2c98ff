"""The python kind: sync and async functions, one text or a batch, and what start-up refuses."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from guardstream.classifiers import ClassifierError, ClassifierFailure, Verdict, load_classifiers, run_with_policy
from guardstream.classifiers.python import PythonClassifier
from guardstream.errors import ConfigError
from tests.classifiers.conftest import settings

pytestmark = pytest.mark.anyio

MODULE = "tests.classifiers.inhouse"


def python(function: str, **table: Any) -> PythonClassifier:
    (classifier,) = load_classifiers([settings("python", module=f"{MODULE}:{function}", **table)], client=None)
    assert isinstance(classifier, PythonClassifier)
    return classifier


@pytest.mark.parametrize(
    ("function", "table", "is_async"),
    [
        ("flags_bad", {}, False),
        ("flags_bad_async", {"categories": ["abuse"]}, True),
        ("flags_bad_batch", {"batch": True, "categories": ["abuse"]}, False),
        ("flags_bad_batch_async", {"batch": True, "max_batch": 1}, True),
        ("async_object", {}, True),
    ],
)
async def test_every_form_of_function_flags_the_same_texts(
    function: str, table: dict[str, Any], is_async: bool
) -> None:
    classifier = python(function, **table)
    assert classifier.is_async is is_async
    verdicts = await classifier.classify(["fine", "bad", "also fine"])
    assert [v.flagged for v in verdicts] == [False, True, False]
    assert verdicts[1].categories in (("flagged",), ("abuse",))


async def test_scores_from_a_dict_answer_stay_in_the_closed_set() -> None:
    (verdict,) = await python("flags_bad_async", categories=["abuse"]).classify(["bad"])
    assert verdict == Verdict(True, ("abuse",), {"other": 0.1})


async def test_failures_are_errors_that_do_not_carry_the_text() -> None:
    limiter = anyio.CapacityLimiter(1)
    assert await run_with_policy(python("raises"), ["private words"], limiter) == [
        ClassifierFailure("error", "RuntimeError")
    ]
    with pytest.raises(ClassifierError, match="the answer is not"):
        await python("wrong_type").classify(["x"])
    with pytest.raises(ClassifierError, match="did not return a list of 1 answers"):
        await python("wrong_length", batch=True).classify(["x"])


async def test_a_slow_sync_function_times_out_without_blocking() -> None:
    results = await run_with_policy(python("slow", timeout_ms=50), ["x"], anyio.CapacityLimiter(1))
    assert results == [ClassifierFailure("timeout", "no verdict within 50 ms")]


@pytest.mark.parametrize(
    ("module", "message"),
    [
        (
            "no_such_module_xyz:f",
            "classifier 'test': module 'no_such_module_xyz:f': cannot import 'no_such_module_xyz'",
        ),
        (f"{MODULE}:missing", f"{MODULE}' has no attribute 'missing'"),
        (f"{MODULE}:not_callable", "'not_callable' is not callable"),
    ],
)
def test_a_bad_module_stops_start_up(module: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_classifiers([settings("python", module=module)], client=None)


def test_a_dotted_attribute_is_followed() -> None:
    assert python("AsyncCallable.__call__").function.__name__ == "__call__"
