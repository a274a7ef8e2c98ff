"""Catastrophic backtracking, found before a rule ever sees a stream.

A pattern such as `(a+)+b` takes exponential time on `aaaa…a!`: one such rule, fed the right text,
stalls every stream in the process for as long as its regex timeout allows, on every delta. So
at load time each regex rule is searched, under a tight time budget, on inputs built to make
backtracking explode: its own leading literal followed by long runs of one character or of a
two-character pair, and its examples repeated. Linear patterns take microseconds on these; a
pattern that runs out of budget is refused (or, with `allow_slow_rules`, loaded with a warning),
naming the rule and the input shape. At run time a per-call timeout and a per-stream budget
bound whatever the probe missed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from guardstream.matchers import RegexMatcher
from guardstream.rules import Rule

PROBE_BUDGET_SECONDS = 0.05
PROBE_LENGTH = 512
SINGLES = "a1 .-_/@:=A\t\n'\"x0"
PAIRS = ("a ", "a.", "a-", "1.", "1,", "a1", "ab", "a\n", " \t", "a_", "a/", "0x", "-a", "\\a")


def _inputs(matcher: RegexMatcher, rule: Rule) -> Iterator[str]:
    head = matcher.prefixes[0] if matcher.prefixes else ""
    for ch in SINGLES:
        yield head + ch * PROBE_LENGTH
    for pair in PAIRS:
        yield head + pair * (PROBE_LENGTH // 2)
    for example in rule.examples_match[:2]:
        if len(example) > 1:
            yield example[:-1] * (PROBE_LENGTH // (len(example) - 1) + 1)


def slow_input(rule: Rule, budget: float = PROBE_BUDGET_SECONDS) -> str | None:
    """A short description of an input on which the rule's regex runs out of `budget`, or None.

    Each input is searched whole with a character no run can continue (where a complete match
    backtracks) and, for the hold pattern, ending where the text ends (where a partial one does).
    """
    matcher = rule.matcher
    if not isinstance(matcher, RegexMatcher):
        return None  # keyword lists are set lookups: linear by construction
    for text in _inputs(matcher, rule):
        try:
            matcher.pattern.search(text + "\x00", 0, None, None, False, budget)
            matcher.hold_pattern.search(text, 0, None, None, True, budget)
        except TimeoutError:
            shown = repr(text[:16]) + ("…" if len(text) > 16 else "")
            return f"{len(text)} characters like {shown}"
    return None


_CHECKED: dict[int, tuple[Rule, str | None]] = {}


def slow_rules(rules: Iterable[Rule]) -> list[tuple[Rule, str]]:
    """Rules that fail the probe, with the input that showed it (each rule probed once per process)."""
    found = []
    for rule in rules:
        cached = _CHECKED.get(id(rule))
        if cached is None or cached[0] is not rule:
            cached = _CHECKED[id(rule)] = (rule, slow_input(rule))
        if cached[1] is not None:
            found.append((rule, cached[1]))
    return found
