"""Detection targets on the labelled set (#13): counts, never timings.

`python -m tests.score_detection` prints the same numbers per kind.
"""

from __future__ import annotations

import pytest

from tests.score_detection import SUITES, SuiteScore, benign_text_findings, score_suite

PII_KINDS = ("email", "phone", "card", "iban", "ssn")


@pytest.fixture(scope="module")
def scores() -> dict[str, SuiteScore]:
    return {suite.name: score_suite(suite) for suite in SUITES}


def test_secrets_recall_and_false_positives(scores: dict[str, SuiteScore]) -> None:
    secrets = scores["secrets"]
    assert secrets.recall() >= 0.90
    assert secrets.recall(claimed_only=True) >= 0.97
    assert secrets.false_positive_rate <= 0.01
    # No kind the pack claims is left behind by the average.
    weak = [k.kind for k in secrets.kinds.values() if k.claimed and k.positives and k.recall < 0.85]
    assert weak == []
    assert len([k for k in secrets.kinds.values() if k.claimed and k.positives]) >= 100


def test_pii_recall_and_false_positives_per_kind(scores: dict[str, SuiteScore]) -> None:
    pii = scores["pii"]
    for kind in PII_KINDS:
        assert pii.kinds[kind].recall >= 0.97, kind
    assert pii.false_positive_rate <= 0.01


def test_prompt_injection_recall_without_false_positives(scores: dict[str, SuiteScore]) -> None:
    injection = scores["prompt-injection"]
    assert injection.recall() >= 0.95
    assert injection.flagged == 0


def test_secrets_find_next_to_nothing_in_the_standard_library_docs() -> None:
    chunks, findings = benign_text_findings(["secrets"], chars=1_000_000)
    # The one finding is a literal password in urllib's documentation example.
    assert len({found for _, found in findings}) <= 1 and chunks >= 500


def test_pii_finds_only_real_addresses_in_the_standard_library_docs() -> None:
    _, findings = benign_text_findings(["pii"], chars=1_000_000)
    assert {rule_id for rule_id, _ in findings} <= {"pii.email"}
    assert all("@" in found for _, found in findings)
