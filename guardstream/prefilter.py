"""Shared literal prefilters: why most deltas of prose wake no rule at all.

At load time each regex rule is probed for the literal every match begins with (`AKIA`/`ASIA`,
`sk-`, `-----BEGIN`) or the few characters a match can start with (digits). Rules with such
literals are put in one `RuleGroup` whose `SharedLiterals` search, one Aho-Corasick automaton
over a length-keeping fold of the new text, tells which of them can match there: on prose it
finds nothing and none of them run. Rules that start with a digit, or whose first positions
follow a selective sequence of character classes (an IBAN's `[A-Z][A-Z][0-9]`), share one
character search the same way. Everything else is scanned on every delta.

The window only sees `RuleGroup`s: per-rule resume offsets and hold points in flat lists
(cheap to update in bulk), and `wake()` to learn which members must scan this time.
"""

from __future__ import annotations

import copy
import functools
import re
import sys
from bisect import bisect_right
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

import ahocorasick_rs
import regex

from guardstream.matchers import RegexMatcher, ScanResult, ScanTimeout, fold
from guardstream.payload import SURROGATE
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
    # A character-class search (a hit wakes the members whose own search, below, finds it too),
    # or None for a literal search.
    search: re.Pattern[str] | None
    tail_len: int
    # For class searches: whether the text ends with a proper prefix of a class sequence (and the
    # longest one), asked with one match of the reversed heads against the reversed end of the
    # text (an end-anchored search would be tried from every position).
    reversed_tails: re.Pattern[str] | None
    # For literal searches: the folded literals in one automaton, and which members (by position
    # in `members`) each of them, by its index, wakes.
    literals: ahocorasick_rs.AhoCorasick | None = None
    wakes: list[list[int]] | None = None
    # For class searches: one class holding a character of every possible hit, searched first (a
    # class is found by a fast scan, while the alternation of sequences tries each branch at every
    # position: ~3x the cost on prose, which rarely has any of these characters); and the
    # characters a proper prefix of a sequence can end with (prose rarely ends with one).
    trigger: re.Pattern[str] | None = None
    tail_ends: frozenset[str] | None = None
    # For class searches, after a hit: each member's own search (its sequence, or its first
    # characters), so that "2024" in prose or a pad such as "Jg49Yi" wakes only the rules that
    # can begin there, not every rule of the group (a scan costs ~5x a search).
    member_searches: list[OwnSearch] | None = None
    # The ASCII characters that every member's own search excludes before a match.
    excluded_by_all: frozenset[str] = frozenset()
    # For literal searches: the folded proper prefixes of the literals in a trie, reversed (dicts,
    # a key "" marks where one ends), walked back from the end of the text: a walk usually stops
    # after two or three characters, where a `re` match of the reversed tails costs ~5x as much.
    tail_trie: dict[str, Any] | None = None


@dataclass(slots=True)
class RuleGroup:
    """Rules scanned together, with their per-rule state in flat lists (cheap bulk updates)."""

    rules: list[Rule]
    shared: SharedLiterals | None
    resume: list[int] = field(default_factory=list)
    hold: list[int] = field(default_factory=list)
    is_flag: list[bool] = field(default_factory=list)
    scans: list[Callable[..., ScanResult | None]] = field(default_factory=list)
    # (resume, hold) of every member, after a bulk update that set them all alike (the usual
    # case on prose): then the lists above are stale and are only built again (`states`) when
    # members need state of their own. Building two lists of a few hundred entries on every
    # delta cost more than the group's search.
    uniform: tuple[int, int] | None = (0, NO_HOLD)
    # The fewest characters any member's match spans (0: unknown): a shorter value is decided
    # without asking the group at all.
    min_length: int = 0
    min_lengths: list[int] = field(default_factory=list)
    # For a group without a shared search whose every member needs one of a few literals to match
    # (`@` in an address): each member's search for them, and whether it reads folded text. A
    # whole value where none finds anything holds no match of any member.
    gates: list[tuple[re.Pattern[str], bool]] | None = None

    def __post_init__(self) -> None:
        self.min_lengths = [getattr(r.matcher, "min_length", 0) for r in self.rules]
        gates = [
            (m.contains_gate, m.is_contains_folded)
            for m in (r.matcher for r in self.rules)
            if isinstance(m, RegexMatcher) and m.contains_gate is not None
        ]
        if self.shared is None and len(gates) == len(self.rules):
            self.gates = gates
        self.min_length = min(self.min_lengths, default=0)
        self.scans = [r.matcher.scan for r in self.rules]
        self.resume = [0] * len(self.rules)
        self.hold = [NO_HOLD] * len(self.rules)
        self.is_flag = [r.action == "flag" for r in self.rules]

    def copy(self) -> RuleGroup:
        """The same rules and state, with state of its own (a window fork, or a new window from
        its rule set's prototype). What never changes (rules, scans, flags) is shared, and so
        are stale lists (nobody writes to them: `states` builds new ones)."""
        twin = copy.copy(self)
        if self.uniform is None:
            twin.resume = self.resume.copy()
            twin.hold = self.hold.copy()
        return twin

    def states(self) -> tuple[list[int], list[int]]:
        """The per-member (resume, hold) lists, up to date and the group's own to change."""
        uniform = self.uniform
        if uniform is not None:
            self.resume = [uniform[0]] * len(self.rules)
            self.hold = [uniform[1]] * len(self.rules)
            self.uniform = None
        return self.resume, self.hold

    def min_hold(self) -> int:
        uniform = self.uniform
        return uniform[1] if uniform is not None else min(self.hold)

    def min_resume(self) -> int:
        uniform = self.uniform
        return uniform[0] if uniform is not None else min(self.resume)

    def members_in(self, text: str, pos: int = 0, *, within: int | None = None) -> Collection[int]:
        """The members that `text[pos:]` can wake: every one for a group without a shared search;
        for a class search, once it finds something there, those whose own sequence (or first
        character) is there; for a literal search, those whose literal it holds. With `within`,
        only the members whose matches can be that short (a whole value of that length)."""
        shared = self.shared
        lengths = self.min_lengths
        if shared is None:
            if within is None:
                return range(len(self.rules))
            return [k for k in range(len(self.rules)) if lengths[k] <= within]
        if shared.search is not None:
            if shared.trigger is not None and shared.trigger.search(text, pos) is None:
                return ()
            # Hits right after a character that every member's lookbehind excludes (the digits
            # inside a word, an OpenAI pad's "Jg49Yi5") wake none of them: one search decides.
            if _unexcluded_hit(shared, text, pos) is None:
                return ()
            if shared.member_searches is None:
                return range(len(self.rules))
            return [
                k
                for k, own in enumerate(shared.member_searches)
                if (within is None or lengths[k] <= within) and own.finds(text, pos)
            ]
        literal = _literal_members(shared, fold(text[pos:]))
        return literal if within is None else {k for k in literal if lengths[k] <= within}

    def suspects(self, joined: str, starts: list[int]) -> Collection[int] | None:
        """Which of the texts joined in `joined` (text i begins at `starts[i]`, after a separator)
        the group may find something in, by one search over them all; None: any of them."""
        shared = self.shared
        positions: list[int] = []
        if shared is None:
            # Rules that need one of a few literals (`@` in an address) to match: where they are.
            if self.gates is None:
                return None
            for gate, folded in self.gates:
                positions += [found.start() for found in gate.finditer(fold(joined) if folded else joined)]
        elif shared.search is not None:
            if shared.trigger is not None and shared.trigger.search(joined) is None:
                return ()
            if _SEPARATOR in shared.excluded_by_all:
                return None  # a text's first character would look excluded
            suspects: list[int] = []
            at = _unexcluded_hit(shared, joined, 0)
            while at is not None:
                # Its text is a suspect: go on from the next text.
                index = bisect_right(starts, at) - 1
                suspects.append(index)
                if index + 1 >= len(starts):
                    break
                at = _unexcluded_hit(shared, joined, starts[index + 1])
            return suspects
        else:
            assert shared.literals is not None
            found_literals = shared.literals.find_matches_as_indexes(fold(joined), overlapping=True)
            positions = [start for _, start, _ in found_literals]
        return sorted({bisect_right(starts, at) - 1 for at in positions})

    def wake(self, text: str, base: int, final: bool) -> Collection[int]:
        """Which members must scan; the others are settled here in bulk.

        One search over the new text answers for the whole group (secret prefixes, digits): on
        prose it usually finds nothing, and none of the group's rules need run.
        """
        shared = self.shared
        if shared is None:
            self.states()
            return range(len(self.rules))
        lo = self.min_resume() - base
        end = base + len(text)
        hold = NO_HOLD
        tail_len = shared.tail_len
        # No literal, but the text may end with the start of one ("...sk"): hold that much until
        # the next delta says more. At most a literal's length, and only briefly. The longest such
        # tail: the earliest start that could still grow into a literal.
        if shared.search is not None:
            woken = self.members_in(text, lo)
            tail_ends = shared.tail_ends
            if not final and shared.reversed_tails is not None and (tail_ends is None or text[-1:] in tail_ends):
                found = shared.reversed_tails.match(text[-tail_len:][::-1])
                if found is not None:
                    hold = end - found.end()
        else:
            new = fold(text[lo:])
            woken = _literal_members(shared, new)
            if not final and shared.tail_trie is not None:
                tail = new[-tail_len:] if len(new) >= tail_len else fold(text[-tail_len:])
                longest = _longest_tail(shared.tail_trie, tail)
                if longest:
                    hold = end - longest
        uniform = self.uniform
        if not woken:
            if hold == NO_HOLD:
                self.uniform = (end, NO_HOLD)
            elif uniform is not None:
                # Never move a rule back before where it has already decided: it may have
                # reported a match there, and a rescan could find an overlapping one.
                latest = max(uniform[0], hold)
                self.uniform = (latest, latest)
            elif max(self.resume) <= hold:
                self.uniform = (hold, hold)
            else:
                self.resume = [r if r > hold else hold for r in self.resume]
                self.hold = self.resume.copy()
            return woken
        # Settle the others in bulk, then put back the state of the woken few (a loop over every
        # rule in Python costs more than the search itself once a pack has a hundred rules).
        old_resume, old_hold = self.states()
        if hold == NO_HOLD:
            self.resume = [end] * len(self.rules)
            self.hold = [NO_HOLD] * len(self.rules)
        else:
            self.resume = [r if r > hold else hold for r in old_resume]
            self.hold = self.resume.copy()
        for k in woken:
            self.resume[k] = old_resume[k]
            self.hold[k] = old_hold[k]
        return woken


def _unexcluded_hit(shared: SharedLiterals, text: str, pos: int) -> int | None:
    """Where the first hit of a class search in `text[pos:]` begins that does not follow a
    character every member's lookbehind excludes; None if there is none."""
    search, excluded = shared.search, shared.excluded_by_all
    assert search is not None
    found = search.search(text, pos)
    while found is not None:
        at = found.start()
        if at == 0 or text[at - 1] not in excluded:
            return at
        found = search.search(text, at + 1)
    return None


def _literal_members(shared: SharedLiterals, folded: str) -> set[int]:
    """The members whose literals occur in `folded` (a folded copy of the text to search).

    Aho-Corasick reads each character once whatever the number of literals (a trie-factored `re`
    alternation of ~900 literals cost ~8x as much on prose); overlapping hits are all reported,
    and only the rules whose literal was found need to run.
    """
    assert shared.literals is not None and shared.wakes is not None
    wakes = shared.wakes
    found: set[int] = set()
    try:
        matches = shared.literals.find_matches_as_indexes(folded, overlapping=True)
    except UnicodeEncodeError:
        # A lone surrogate (text given to `Guard.check` as it is) cannot be encoded as UTF-8 for
        # the search; it is part of no literal, so U+FFFD in its place finds the same members.
        matches = shared.literals.find_matches_as_indexes(SURROGATE.sub("\ufffd", folded), overlapping=True)
    for index, _, _ in matches:
        found.update(wakes[index])
    return found


def _longest_tail(trie: dict[str, Any], folded: str) -> int:
    """The length of the longest end of `folded` that the reversed `trie` holds (0: none)."""
    node = trie
    longest = depth = 0
    for ch in reversed(folded):
        child = node.get(ch)
        if child is None:
            break
        node = child
        depth += 1
        if "" in node:
            longest = depth
    return longest


def _reversed_trie(words: Collection[str]) -> dict[str, Any]:
    trie: dict[str, Any] = {}
    for word in words:
        node = trie
        for ch in reversed(word):
            node = node.setdefault(ch, {})
        node[""] = {}
    return trie


def group_rules(rules: Sequence[Rule]) -> list[RuleGroup]:
    """Rules with a shared literal search first, then digit-led rules, then the rest.

    Each call returns groups of its own, copied from prototypes built once per rule set (a
    window is built per channel and per checked value: hashing a few hundred rules and binding
    their scans each time cost more than a short answer's moderation).
    """
    rules = tuple(rules)
    return [group.copy() for group in _prototypes(rules)]


def finds_nothing(rules: Sequence[Rule], text: str) -> bool:
    """True if no rule matches anywhere in the whole of `text` (as a final text), asked through
    the shared searches: the rules they do not wake cannot match, the others scan it once.

    A window built to decide one short value (an id, an `obfuscation` pad that differs in every
    event of an OpenAI stream) cost ~50 µs, most of it building the window; this is what such a
    value costs when it is clean. False means "ask a window": a match, a flag, a timed-out scan.
    """
    return all(_group_finds_nothing(group, text) for group in _prototypes(tuple(rules)))


def finds_nothing_in_any(rules: Sequence[Rule], texts: Sequence[str]) -> bool:
    """`finds_nothing` for each of `texts` (whole texts of their own), with one search per group
    over all of them: only the texts where a group's search finds something are asked one by one.

    The pads of a run of events come together (ten in a read is common under load); asked one
    by one they cost ~6 µs each with `pii` + `secrets`, most of it the fixed cost of each search.
    Joined, a search can only find more, never less: every hit inside a text is a hit in the
    joined string (a hit across the separator only makes its first text a suspect).
    """
    if len(texts) == 1:
        return finds_nothing(rules, texts[0])
    joined = _SEPARATOR.join(texts)
    starts: list[int] = []
    at = 0
    for text in texts:
        starts.append(at)
        at += len(text) + 1
    longest = max(map(len, texts))
    for group in _prototypes(tuple(rules)):
        if longest < group.min_length:
            continue
        suspects = group.suspects(joined, starts)
        for i in range(len(texts)) if suspects is None else suspects:
            if not _group_finds_nothing(group, texts[i]):
                return False
    return True


# Joins the texts `finds_nothing_in_any` searches at once: a character no text read by a shape
# holds (a JSON string's control characters are escaped).
_SEPARATOR = "\x00"


def _group_finds_nothing(group: RuleGroup, text: str) -> bool:
    if len(text) < group.min_length:
        return True
    gates = group.gates
    if gates is not None and all(gate.search(fold(text) if folded else text) is None for gate, folded in gates):
        return True
    for k in group.members_in(text, within=len(text)):
        try:
            result = group.scans[k](text, 0, final=True)
        except ScanTimeout:
            return False
        if result is not None and result.matches:
            return False
    return True


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
    # Per member of the class search (in `chars` order): its own search.
    own_searches: list[OwnSearch] = []
    sequences: set[tuple[frozenset[str], ...]] = set()
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
        elif prefilter.classes:
            chars.append(i)
            sequences.add(prefilter.classes)
            own_searches.append(_own_search(rule, "".join(map(_class, prefilter.classes))))
        elif prefilter.is_selective:
            chars.append(i)
            char_class.update(prefilter.first_chars)
            own_searches.append(_own_search(rule, _class(prefilter.first_chars) + "|[^\x00-\x7f]"))
        else:
            others.append(i)
    shared: list[SharedLiterals] = []
    if literal:
        # A found literal wakes the rules it begins; the automaton reports overlapping literals
        # (and literals that are prefixes of others) each on its own.
        by_literal: dict[str, list[int]] = {}
        for k, i in enumerate(literal):
            for p in literal_prefixes[i]:
                by_literal.setdefault(p, []).append(k)
        ordered = sorted(literals)
        wakes = [by_literal[found] for found in ordered]
        tail_len = max(map(len, tails), default=0)
        automaton = ahocorasick_rs.AhoCorasick(ordered)
        trie = _reversed_trie(tails) if tails else None
        shared.append(SharedLiterals(literal, None, tail_len, None, automaton, wakes, tail_trie=trie))
    if chars:
        # One search for the rules that begin with a selective character (non-ASCII characters
        # always pass: probing cannot enumerate which of them a rule accepts) and for those whose
        # first characters follow a selective sequence of classes (`[A-Z][A-Z][0-9]`): a hit
        # wakes them all. Only the sequences can be cut off by the end of the text.
        parts = [_class(char_class) + "|[^\x00-\x7f]"] if char_class else []
        parts += ["".join(map(_class, sequence)) for sequence in sorted(sequences, key=repr)]
        # A sequence's proper prefixes, reversed, longest first: the first branch that matches
        # the reversed end of the text is its longest such tail.
        heads = sorted({sequence[:n] for sequence in sequences for n in range(1, len(sequence))}, key=len, reverse=True)
        reversed_heads = "|".join("".join(map(_class, reversed(head))) for head in heads)
        # Every hit holds a character of the trigger: one of the single characters, or (for a
        # sequence) one of its most selective class's.
        trigger = set(char_class)
        for sequence in sequences:
            rarest: frozenset[str] = min(sequence, key=_unselectivity)
            trigger.update(rarest)
        shared.append(
            SharedLiterals(
                chars,
                re.compile("|".join(parts)),
                max(map(len, heads), default=0),
                re.compile(reversed_heads) if heads else None,
                trigger=re.compile(_class(trigger) + ("|[^\x00-\x7f]" if char_class else "")),
                tail_ends=frozenset(c for head in heads for c in head[-1]),
                member_searches=own_searches,
                excluded_by_all=frozenset.intersection(*(own.excluded_ascii for own in own_searches)),
            )
        )
    return shared, others


@dataclass(frozen=True, slots=True)
class OwnSearch:
    """Where one member's matches can begin: where `starts` (its class sequence or first
    characters) is found, unless the character before is one that the negative lookbehind every
    one of its matches begins after excludes (`excluded`, as the rule's own flags read it).

    Digit-led rules begin so (`(?<![\\w.+-])`): the digits inside a word, as in "v2024" or an
    OpenAI pad such as "Jg49Yi5", then wake none of them.
    """

    starts: re.Pattern[str]
    excluded: regex.Pattern[str] | None = None
    # The ASCII characters `excluded` matches, asked of it once rather than per character.
    excluded_ascii: frozenset[str] = frozenset()

    def finds(self, text: str, pos: int) -> bool:
        found = self.starts.search(text, pos)
        excluded = self.excluded
        if excluded is None:
            return found is not None
        while found is not None:
            at = found.start()
            if at == 0:
                return True
            before = text[at - 1]
            if not (before in self.excluded_ascii if before.isascii() else excluded.fullmatch(before) is not None):
                return True
            # The next start may lie inside this one: search again from the next character.
            found = self.starts.search(text, at + 1)
        return False


def _own_search(rule: Rule, starts: str) -> OwnSearch:
    matcher = rule.matcher
    if not isinstance(matcher, RegexMatcher) or not matcher.leading_lookbehind:
        return OwnSearch(re.compile(starts))
    # "(?<![\\w.+-])" -> "[\\w.+-]": the one character it must not follow.
    excluded = regex.compile(matcher.leading_lookbehind[4:-1], matcher.pattern.flags)
    ascii_excluded = frozenset(c for c in map(chr, range(128)) if excluded.fullmatch(c) is not None)
    return OwnSearch(re.compile(starts), excluded, ascii_excluded)


def _unselectivity(chars: Collection[str]) -> tuple[bool, int]:
    """Orders classes from the rarest in prose: no letters or spaces first, then fewest characters."""
    return any(c.isalpha() or c.isspace() for c in chars), len(chars)


def _class(chars: Collection[str]) -> str:
    return "[" + "".join(re.escape(c) for c in sorted(chars)) + "]"
