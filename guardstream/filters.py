"""Checks on complete matches: what tells a credential from a placeholder of the same shape.

A pattern says where a candidate is; a `MatchCheck` decides whether it counts. It looks at the
*secret* (a named or numbered group of the match, or the whole match) and applies, in order: a
Shannon-entropy floor, a floor on the kinds of characters, the rule's validator (a checksum),
required keywords, and allowlists (regexes and stop words, as in gitleaks' configuration).

These checks run only on complete, final matches (the window has already decided that no longer
match can start there), so a rejected candidate is released exactly as it would be in the whole
text: a check can never make the window let out text that a longer match could still cover.
The same check also says which part of an accepted match is reported and replaced
(`redact_group`): the value, not its label.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

import regex

Target = Literal["secret", "match"]
Condition = Literal["or", "and"]
Group = int | str


def shannon_entropy(text: str) -> float:
    """Bits per character of `text`'s own character distribution (0 for "" or "aaaa")."""
    if not text:
        return 0.0
    n = len(text)
    return -sum(c / n * math.log2(c / n) for c in Counter(text).values())


def char_classes(text: str) -> int:
    """How many of lower case, upper case, digits and other characters `text` uses."""
    return (
        any(c.islower() for c in text)
        + any(c.isupper() for c in text)
        + any(c.isdigit() for c in text)
        + any(not c.isalnum() for c in text)
    )


@dataclass(frozen=True)
class Allowlist:
    """Matches to let pass: a regex found in the target, or a stop word inside the secret.

    `target` is what the regexes search: the secret (default) or the whole match. Stop words are
    compared with the lower-cased secret, as gitleaks does. `condition = "and"` requires every
    kind of check given (regexes and stop words) to agree; "or" (default) any one of them.
    `rules`, on a pack-level allowlist, limits it to those rule ids (empty: every rule).
    """

    regexes: tuple[regex.Pattern[str], ...] = ()
    stopwords: tuple[str, ...] = ()
    target: Target = "secret"
    condition: Condition = "or"
    rules: tuple[str, ...] = ()
    description: str = ""

    def allows(self, secret: str, match: str, timeout: float) -> bool:
        checks: list[bool] = []
        if self.regexes:
            text = match if self.target == "match" else secret
            checks.append(any(r.search(text, timeout=timeout) is not None for r in self.regexes))
        if self.stopwords:
            lowered = secret.lower()
            checks.append(any(word in lowered for word in self.stopwords))
        return all(checks) if self.condition == "and" else any(checks)

    def applies_to(self, rule_id: str) -> bool:
        return not self.rules or rule_id in self.rules


@dataclass(frozen=True)
class MatchCheck:
    """Everything a rule checks on a complete match before it counts.

    `secret_group`: the group the entropy, character-class, validator, keyword and allowlist
    checks look at (None: the whole match; `first_group_is_secret` picks the first group that
    took part, gitleaks' default). `redact_group`: the span reported and replaced (None: the
    whole match). `min_entropy`: the secret's Shannon entropy must be at least this (or, with
    `is_entropy_exclusive`, above it: gitleaks' `entropy`). `keywords`: the match must contain
    one of them, case-insensitively. `confirm`: a checksum that, when it holds, makes the match
    count whatever the entropy, character-class and allowlist checks say (a real token can look
    like a placeholder by chance; a placeholder almost never carries a valid checksum). It is
    never required: test fixtures and hand-typed tokens omit it.
    """

    secret_group: Group | None = None
    redact_group: Group | None = None
    first_group_is_secret: bool = False
    min_entropy: float = 0.0
    is_entropy_exclusive: bool = False
    min_char_classes: int = 0
    validator: Callable[[str], bool] | None = None
    confirm: Callable[[str], bool] | None = None
    keywords: tuple[str, ...] = ()
    allowlists: tuple[Allowlist, ...] = ()

    @property
    def is_trivial(self) -> bool:
        return self == MatchCheck()

    def secret(self, m: regex.Match[str]) -> str:
        if self.secret_group is not None:
            return m.group(self.secret_group) or ""
        if self.first_group_is_secret:
            for value in m.groups():
                if value:
                    return value
        return m.group()

    def accept(self, m: regex.Match[str], timeout: float) -> tuple[int, int] | None:
        """The span to report for an accepted match, or None if the match does not count."""
        if m.end() <= m.start():
            return None
        secret = self.secret(m)
        if self.validator is not None and not self.validator(secret):
            return None
        if self.keywords:
            lowered = m.group().lower()
            if not any(k in lowered for k in self.keywords):
                return None
        if self.confirm is None or not self.confirm(secret):
            if not self._passes_floors_and_allowlists(secret, m.group(), timeout):
                return None
        if self.redact_group is not None:
            start, end = m.span(self.redact_group)
            if end > start:
                return start, end
        return m.span()

    def _passes_floors_and_allowlists(self, secret: str, match: str, timeout: float) -> bool:
        if self.min_entropy:
            entropy = shannon_entropy(secret)
            if entropy < self.min_entropy or (self.is_entropy_exclusive and entropy <= self.min_entropy):
                return False
        if self.min_char_classes and char_classes(secret) < self.min_char_classes:
            return False
        return not any(allowlist.allows(secret, match, timeout) for allowlist in self.allowlists)


def group_exists(pattern: regex.Pattern[str], group: Group) -> bool:
    if isinstance(group, int):
        return 0 <= group <= pattern.groups
    return group in pattern.groupindex


def compile_allowlist(
    *,
    regexes: Sequence[str] = (),
    stopwords: Sequence[str] = (),
    target: Target = "secret",
    condition: Condition = "or",
    rules: Sequence[str] = (),
    description: str = "",
    flags: int = 0,
) -> Allowlist:
    """Compile an allowlist; raises `regex.error` on a bad regex and `ValueError` if it is empty."""
    if not regexes and not stopwords:
        raise ValueError("an allowlist needs 'regexes' or 'stopwords'")
    return Allowlist(
        regexes=tuple(regex.compile(r, flags) for r in regexes),
        stopwords=tuple(w.lower() for w in stopwords),
        target=target,
        condition=condition,
        rules=tuple(rules),
        description=description,
    )
