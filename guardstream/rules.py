"""The rule model: what a compiled rule is, and what its matches mean for a complete text.

Loading packs from TOML lives in `packs.py`; the streaming decisions live in `window.py`. This
module depends on neither, so both can build on it.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from guardstream.matchers import Matcher, RegexMatcher, ScanTimeout

Action = Literal["block", "redact", "flag"]
Scope = Literal["output", "input", "both"]
Direction = Literal["output", "input"]

ACTIONS: tuple[Action, ...] = ("block", "redact", "flag")
# The pack of the stand-in rules that classifier violations report (they are asked, not scanned).
CLASSIFIER_PACK = "classifiers"
SCOPES: tuple[Scope, ...] = ("output", "input", "both")


@dataclass(frozen=True, eq=False)
class Rule:
    """One compiled rule. Identity is the `id`, unique across all loaded packs."""

    id: str
    category: str
    action: Action
    scope: Scope
    replacement: str
    matcher: Matcher
    pack: str
    source: str
    examples_match: tuple[str, ...] = ()
    examples_no_match: tuple[str, ...] = ()

    def applies_to(self, direction: Direction) -> bool:
        return self.scope == "both" or self.scope == direction

    def __repr__(self) -> str:
        return f"Rule(id={self.id!r}, action={self.action!r}, scope={self.scope!r})"


@dataclass(frozen=True)
class RuleSet:
    """The rules of one or more packs, in load order."""

    rules: tuple[Rule, ...] = ()
    packs: tuple[str, ...] = field(default=())

    def for_direction(self, direction: Direction) -> tuple[Rule, ...]:
        return tuple(r for r in self.rules if r.applies_to(direction))

    def __iter__(self) -> Iterator[Rule]:
        return iter(self.rules)

    def __len__(self) -> int:
        return len(self.rules)


T = TypeVar("T")


class PerRuleSet(Generic[T]):
    """Something built once per rule set and shared by every window, channel and answer using it.

    Keyed by the rule tuple's identity, not its value: every window of a rule set is handed the
    same tuple, and hashing a few hundred rules on each lookup would cost what the memo saves.
    The tuple is kept with its entry, so its id cannot be reused while the entry lives; the
    oldest rule sets are dropped beyond `limit` (reloads make new ones).
    """

    def __init__(self, build: Callable[[tuple[Rule, ...]], T], *, limit: int = 64) -> None:
        self._build = build
        self._limit = limit
        self._entries: OrderedDict[int, tuple[tuple[Rule, ...], T]] = OrderedDict()

    def __call__(self, rules: tuple[Rule, ...]) -> T:
        found = self._entries.get(id(rules))
        if found is not None and found[0] is rules:
            return found[1]
        value = self._build(rules)
        self._entries[id(rules)] = (rules, value)
        while len(self._entries) > self._limit:
            self._entries.popitem(last=False)
        return value


def find_matches(rule: Rule, text: str) -> list[tuple[int, int]]:
    """Every match of `rule` in a complete text, as the stream would see it once it has ended."""
    try:
        result = rule.matcher.scan(text, 0, final=True)
    except ScanTimeout:
        return [(0, len(text))]
    return [] if result is None else result.matches


def longest_example_match(rule: Rule) -> int:
    """The longest match among a rule's examples: a lower bound on what the window must hold.

    A rule that reports only a group of its match (its value) still holds the whole match.
    """
    if isinstance(rule.matcher, RegexMatcher):
        return max((len(m.group()) for e in rule.examples_match for m in rule.matcher.accepted_matches(e)), default=0)
    return max((e - s for example in rule.examples_match for s, e in find_matches(rule, example)), default=0)


def redact_text(rules: Sequence[Rule], text: str) -> str:
    """The whole-text redaction that streaming must reproduce exactly, whatever the chunking.

    Overlapping matches of redact rules merge into one span, replaced by the replacement of the
    match that starts first (the earlier rule on a tie).
    """
    spans: list[tuple[int, int, int, str]] = []
    for order, rule in enumerate(rules):
        if rule.action == "redact":
            spans.extend((s, order, e, rule.replacement) for s, e in find_matches(rule, text))
    out: list[str] = []
    pos = 0
    for start, _order, end, replacement in _merge(sorted(spans)):
        out.append(text[pos:start])
        out.append(replacement)
        pos = end
    out.append(text[pos:])
    return "".join(out)


def _merge(spans: list[tuple[int, int, int, str]]) -> list[tuple[int, int, int, str]]:
    merged: list[tuple[int, int, int, str]] = []
    for span in spans:
        if merged and span[0] < merged[-1][2]:
            last = merged[-1]
            merged[-1] = (last[0], last[1], max(last[2], span[2]), last[3])
        else:
            merged.append(span)
    return merged
