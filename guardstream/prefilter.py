"""Shared literal prefilters: why most deltas of prose wake no rule at all.

At load time each regex rule is probed for the literal every match begins with (`AKIA`/`ASIA`,
`sk-`, `-----BEGIN`) or the few characters a match can start with (digits). Rules with such
literals are put in one `RuleGroup` whose `SharedLiterals` search, a single trie-factored `re`
pattern over a length-keeping fold of the new text, tells which of them can match there: on
prose it finds nothing and none of them run. Rules that start with a digit share one
character-class search the same way. Everything else is scanned on every delta.

The window only sees `RuleGroup`s: per-rule resume offsets and hold points in flat lists
(cheap to update in bulk), and `wake()` to learn which members must scan this time.
"""

from __future__ import annotations

import copy
import functools
import re
import sys
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field

from guardstream.matchers import ScanResult, fold, trie_pattern
from guardstream.rules import PerRuleSet, Rule

NO_HOLD = sys.maxsize
# Shorter literals fire too often on prose to be worth a shared search.
MIN_GROUP_LITERAL = 3


@dataclass(slots=True)
class SharedLiterals:
    """One search for several rules: if `search` finds nothing in the new text, none of them can
    match there, and the only thing they can hold is a `tail`: the text's end being a proper
    prefix of one of their literals."""

    members: list[int]
    search: re.Pattern[str]
    tails: tuple[str, ...]
    tail_len: int
    # For literal searches: which members (by position in `members`) a found literal, casefolded,
    # wakes; None wakes them all.
    wakes: dict[str, list[int]] | None = None
    # The tails, anchored at the end: its leftmost match is the longest tail the text ends with
    # (one search instead of comparing hundreds of suffixes).
    tail_search: re.Pattern[str] | None = None


@dataclass(slots=True)
class RuleGroup:
    """Rules scanned together, with their per-rule state in flat lists (cheap bulk updates)."""

    rules: list[Rule]
    shared: SharedLiterals | None
    resume: list[int] = field(default_factory=list)
    hold: list[int] = field(default_factory=list)
    is_flag: list[bool] = field(default_factory=list)
    scans: list[Callable[..., ScanResult | None]] = field(default_factory=list)
    # (resume list, hold list, their one value each) after a bulk update that set every rule
    # alike: then the minimums need no pass over the lists. Valid while those very lists are in
    # place: whoever changes an entry in place (the window, for the members `wake` returned)
    # holds lists that `wake` made afresh.
    uniform: tuple[list[int], list[int], int, int] | None = None

    def __post_init__(self) -> None:
        self.scans = [r.matcher.scan for r in self.rules]
        self.resume = [0] * len(self.rules)
        self.hold = [NO_HOLD] * len(self.rules)
        self.is_flag = [r.action == "flag" for r in self.rules]

    def copy(self) -> RuleGroup:
        """The same rules and state, with state lists of its own (a window fork, or a new window
        from its rule set's prototype). What never changes (rules, scans, flags) is shared."""
        twin = copy.copy(self)
        twin.resume = self.resume.copy()
        twin.hold = self.hold.copy()
        twin.uniform = None
        return twin

    def min_hold(self) -> int:
        uniform = self.uniform
        if uniform is not None and uniform[1] is self.hold:
            return uniform[3]
        return min(self.hold)

    def _min_resume(self) -> int:
        uniform = self.uniform
        if uniform is not None and uniform[0] is self.resume:
            return uniform[2]
        return min(self.resume)

    def _settle_all(self, resume: int, hold: int) -> None:
        self.resume = [resume] * len(self.rules)
        self.hold = [hold] * len(self.rules)
        self.uniform = (self.resume, self.hold, resume, hold)

    def wake(self, text: str, base: int, final: bool) -> Collection[int]:
        """Which members must scan; the others are settled here in bulk.

        One search over the new text answers for the whole group (secret prefixes, digits): on
        prose it usually finds nothing, and none of the group's rules need run.
        """
        shared = self.shared
        if shared is None:
            return range(len(self.rules))
        lo = self._min_resume() - base
        woken: set[int] = set()
        if shared.wakes is None:
            if shared.search.search(text, lo) is not None:
                self.uniform = None  # the window updates the lists in place
                return range(len(self.rules))
        else:
            # Literals are matched folded, on a folded copy: one case-sensitive `re` search is
            # several times faster than an IGNORECASE one.
            region = fold(text[lo:])
            hit = shared.search.search(region)
            while hit is not None:
                # Only the rules whose literal was found need to run. Search again from the next
                # position, not the match end, so that overlapping literals are all seen.
                woken.update(shared.wakes.get(hit.group(), ()))
                hit = shared.search.search(region, hit.start() + 1)
        end = base + len(text)
        hold = NO_HOLD
        if not final and shared.tails:
            # No literal, but the text may end with the start of one ("...sk"): hold that much
            # until the next delta says more. At most a literal's length, and only briefly.
            tail = text[-shared.tail_len :]
            found = shared.tail_search.search(fold(tail)) if shared.tail_search is not None else None
            if found is not None:
                hold = end - (len(tail) - found.start())
        if not woken:
            if hold == NO_HOLD:
                self._settle_all(end, NO_HOLD)
            else:
                # Never move a rule back before where it has already decided: it may have
                # reported a match there, and a rescan could find an overlapping one.
                uniform = self.uniform
                if uniform is not None and uniform[0] is self.resume:
                    # All alike (the usual case on prose): the same rule, without a pass over them.
                    latest = max(uniform[2], hold)
                    self._settle_all(latest, latest)
                elif max(self.resume) <= hold:
                    self._settle_all(hold, hold)
                else:
                    self.resume = [r if r > hold else hold for r in self.resume]
                    self.hold = self.resume.copy()
                    self.uniform = None
            return woken
        # Settle the others in bulk, then put back the state of the woken few (a loop over every
        # rule in Python costs more than the search itself once a pack has a hundred rules).
        old_resume, old_hold = self.resume, self.hold
        if hold == NO_HOLD:
            self.resume = [end] * len(self.rules)
            self.hold = [NO_HOLD] * len(self.rules)
        else:
            self.resume = [r if r > hold else hold for r in old_resume]
            self.hold = self.resume.copy()
        for k in woken:
            self.resume[k] = old_resume[k]
            self.hold[k] = old_hold[k]
        self.uniform = None
        return woken


def group_rules(rules: Sequence[Rule]) -> list[RuleGroup]:
    """Rules with a shared literal search first, then digit-led rules, then the rest.

    Each call returns groups of its own, copied from prototypes built once per rule set (a
    window is built per channel and per checked value: hashing a few hundred rules and binding
    their scans each time cost more than a short answer's moderation).
    """
    rules = tuple(rules)
    return [group.copy() for group in _prototypes(rules)]


def _build_prototypes(rules: tuple[Rule, ...]) -> list[RuleGroup]:
    shared, others = _shared_searches(rules)
    groups = [RuleGroup([rules[i] for i in s.members], s) for s in shared]
    if others:
        groups.append(RuleGroup([rules[i] for i in others], None))
    return groups


_prototypes = PerRuleSet(_build_prototypes)


@functools.lru_cache(maxsize=64)
def _shared_searches(rules: tuple[Rule, ...]) -> tuple[list[SharedLiterals], list[int]]:
    """The searches of `group_rules`, built once per rule set: a window is built per channel, per
    request, and with a few hundred literals building them costs milliseconds. They are never
    mutated, so windows can share them."""
    literal: list[int] = []
    literal_prefixes: dict[int, set[str]] = {}
    literals: set[str] = set()
    tails: set[str] = set()
    chars: list[int] = []
    char_class: set[str] = set()
    others: list[int] = []
    for i, rule in enumerate(rules):
        prefilter = rule.matcher.prefilter
        if rule.action == "flag" or prefilter is None:
            others.append(i)
        elif min(map(len, prefilter.literals), default=0) >= MIN_GROUP_LITERAL:
            literal.append(i)
            literal_prefixes[i] = {fold(p) for p in prefilter.literals}
            literals.update(literal_prefixes[i])
            tails.update(prefilter.tail_prefixes)
        elif prefilter.is_selective:
            chars.append(i)
            char_class.update(prefilter.first_chars)
        else:
            others.append(i)
    shared: list[SharedLiterals] = []
    if literal:
        # A found literal wakes every rule with a literal that is a prefix of it: the trie
        # returns the longest literal at a position, and the others there are its prefixes.
        by_literal: dict[str, list[int]] = {}
        for k, i in enumerate(literal):
            for p in literal_prefixes[i]:
                by_literal.setdefault(p, []).append(k)
        wakes = {
            found: sorted({k for n in range(1, len(found) + 1) for k in by_literal.get(found[:n], ())})
            for found in literals
        }
        search = re.compile(trie_pattern(literals))
        tail_len = max(map(len, tails), default=0)
        tail_search = re.compile(f"(?:{trie_pattern(tails)})\\Z") if tails else None
        shared.append(SharedLiterals(literal, search, tuple(sorted(tails)), tail_len, wakes, tail_search))
    if chars:
        # Non-ASCII characters always pass: probing cannot enumerate which of them a rule accepts.
        pattern = "[" + "".join(re.escape(c) for c in sorted(char_class)) + "]|[^\x00-\x7f]"
        shared.append(SharedLiterals(chars, re.compile(pattern), (), 0))
    return shared, others
