"""Score the built-in packs on the labelled detection set: `python -m tests.score_detection`.

The set (tests/fixtures/detection/*.jsonl, one JSON object a line) holds strings generated for
these tests from the documented layouts of each credential and identifier (random bodies with the
right prefix, length, alphabet and checksum) in the syntaxes people paste, hand-written
placeholders and look-alikes, and benign technical strings. Each row has a `group`, a `kind`,
whether the packs `claimed` that kind, and a `label` (1: must be caught, 0: must pass).

Printed: recall per kind, the false-positive rate on the negatives, and what the packs find in a
large benign text (the standard library's docstrings, the same text `guardstream bench` streams).
`tests/test_detection.py` asserts the targets on the same numbers.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from guardstream.bench.engine import english_corpus
from guardstream.packs import load_rules
from guardstream.rules import Direction, Rule
from guardstream.window import moderate_text

FIXTURES = Path(__file__).parent / "fixtures" / "detection"
BENIGN_CHUNK = 2_000


@dataclass(frozen=True)
class Suite:
    """One labelled file and the packs (and direction) it scores."""

    name: str
    file: str
    packs: tuple[str, ...]
    direction: Direction


SUITES = (
    Suite("secrets", "secrets.jsonl", ("secrets",), "output"),
    Suite("pii", "pii.jsonl", ("pii",), "output"),
    Suite("prompt-injection", "prompt_injection.jsonl", ("prompt-injection",), "input"),
)


@dataclass
class KindScore:
    kind: str
    claimed: bool
    positives: int = 0
    caught: int = 0
    negatives: int = 0
    flagged: int = 0
    misses: list[str] = field(default_factory=list)
    false_positives: list[str] = field(default_factory=list)

    @property
    def recall(self) -> float:
        return self.caught / self.positives if self.positives else 1.0


@dataclass
class SuiteScore:
    suite: Suite
    kinds: dict[str, KindScore]

    def recall(self, *, claimed_only: bool = False) -> float:
        scores = [k for k in self.kinds.values() if k.positives and (k.claimed or not claimed_only)]
        positives = sum(k.positives for k in scores)
        return sum(k.caught for k in scores) / positives if positives else 1.0

    @property
    def negatives(self) -> int:
        return sum(k.negatives for k in self.kinds.values())

    @property
    def flagged(self) -> int:
        return sum(k.flagged for k in self.kinds.values())

    @property
    def false_positive_rate(self) -> float:
        return self.flagged / self.negatives if self.negatives else 0.0


def rows(file: str) -> list[dict[str, object]]:
    with (FIXTURES / file).open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle if line.strip()]


def is_detected(rules: Sequence[Rule], text: str) -> bool:
    verdict = moderate_text(rules, text)
    return bool(verdict.violations) or verdict.is_blocked


def score_suite(suite: Suite) -> SuiteScore:
    rules = load_rules(suite.packs).for_direction(suite.direction)
    kinds: dict[str, KindScore] = {}
    for row in rows(suite.file):
        kind, text = str(row["kind"]), str(row["text"])
        score = kinds.setdefault(kind, KindScore(kind, bool(row["claimed"])))
        hit = is_detected(rules, text)
        if row["label"]:
            score.positives += 1
            score.caught += hit
            if not hit:
                score.misses.append(text)
        else:
            score.negatives += 1
            score.flagged += hit
            if hit:
                score.false_positives.append(text)
    return SuiteScore(suite, kinds)


def benign_text_findings(packs: Iterable[str], chars: int = 1_000_000) -> tuple[int, list[tuple[str, str]]]:
    """(chunks scanned, [(rule id, matched text)]) over the standard library's docstrings."""
    rules = load_rules(packs).for_direction("output")
    text = english_corpus(chars)
    findings: list[tuple[str, str]] = []
    chunks = range(0, len(text), BENIGN_CHUNK)
    for start in chunks:
        chunk = text[start : start + BENIGN_CHUNK]
        verdict = moderate_text(rules, chunk)
        findings.extend((v.rule.id, chunk[v.start : v.end]) for v in verdict.violations)
    return len(chunks), findings


def main() -> None:
    for suite in SUITES:
        score = score_suite(suite)
        print(f"\n== {suite.name} (packs: {', '.join(suite.packs)}) ==")
        print(f"{'kind':44} {'claimed':>7} {'caught':>9} {'recall':>7} {'FP':>7}")
        for kind in sorted(score.kinds.values(), key=lambda k: (not k.claimed, k.kind)):
            caught = f"{kind.caught}/{kind.positives}" if kind.positives else "-"
            fp = f"{kind.flagged}/{kind.negatives}" if kind.negatives else "-"
            recall = f"{kind.recall:.0%}" if kind.positives else "-"
            print(f"{kind.kind:44} {'yes' if kind.claimed else 'no':>7} {caught:>9} {recall:>7} {fp:>7}")
        print(
            f"recall: {score.recall():.1%} over all kinds, {score.recall(claimed_only=True):.1%} over claimed kinds; "
            f"false positives: {score.flagged}/{score.negatives} ({score.false_positive_rate:.2%})"
        )
        for kind in score.kinds.values():
            for text in kind.misses[:2]:
                print(f"  missed {kind.kind}: {text[:100]!r}")
            for text in kind.false_positives[:2]:
                print(f"  flagged {kind.kind}: {text[:100]!r}")
    for packs in (("secrets",), ("pii",), ("pii-strict",)):
        chunks, findings = benign_text_findings(packs)
        print(f"\n{'+'.join(packs)} on 1,000,000 characters of standard-library docstrings: {len(findings)} findings")
        for rule_id, found in findings[:12]:
            print(f"  {rule_id}: {found[:80]!r}")


if __name__ == "__main__":
    main()
