"""The sliding window: which part of one channel's streamed text may leave, and in what form.

Sans-I/O: `push(delta)` and `flush()` return a `Verdict`; the caller moves bytes. Positions are
absolute offsets into the channel's text, so callers can map them onto the events that carried
the text.

```
 ... released (sent) ...|<- context ->|......... pending .........|
                        ^ rules re-read this for lookbehinds/\\b   ^ end
                                         ^ hold: earliest start that could still become a match
```

Zero leak (DESIGN.md §2.3): text leaves only up to the earliest *undecided* start of any block or
redact rule, so whatever way the upstream splits the text, no character of a match shorter than
`max_holdback_chars` leaves unredacted. Each rule resumes where it stopped, so the work per delta
is bounded by the delta plus what that rule still holds, never by the length of the stream.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from guardstream.matchers import RegexMatcher, ScanTimeout, trie_pattern
from guardstream.rules import Action, Rule

DEFAULT_MAX_HOLDBACK_CHARS = 512
DEFAULT_CONTEXT_CHARS = 256


@dataclass(frozen=True, slots=True)
class Violation:
    """A rule match in a channel's text (absolute offsets).

    A regex that times out is a violation over the text it could not decide (fail closed).
    """

    rule: Rule
    start: int
    end: int
    is_timeout: bool = False

    @property
    def action(self) -> Action:
        if self.is_timeout and self.rule.action != "flag":
            return "block"
        return self.rule.action


@dataclass(slots=True)
class Verdict:
    """What one `push` or `flush` decided.

    `released` is cumulative: everything before it may leave (render it with `Window.render`).
    `violations` are the matches found by this step; `blocked`, once set, ends the channel.
    `forced_chars` counts text released past an undecided match because it had been held for
    `max_holdback_chars`: never silent, the caller counts it.
    """

    released: int
    violations: tuple[Violation, ...] = ()
    blocked: Violation | None = None
    forced_chars: int = 0
    held_chars: int = 0


@dataclass(slots=True)
class _Span:
    start: int
    end: int
    key: tuple[int, int]  # (first match start, rule order): the replacement of the earliest match wins
    replacement: str


class Window:
    """Per-channel guard over rule matches.

    ```python
    window = Window(rules.for_direction("output"))
    verdict = window.push("Contact me at bob@exa")
    out = window.render(0, verdict.released)   # "Contact me at " (the address is still held)
    ```

    `gate` lets a slower check (a classifier) cap the release point: text at or after `gate`
    stays pending until the gate moves. `None` means no outside check is pending.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        max_holdback_chars: int = DEFAULT_MAX_HOLDBACK_CHARS,
        context_chars: int = DEFAULT_CONTEXT_CHARS,
    ) -> None:
        self.rules = tuple(rules)
        self.max_holdback_chars = max_holdback_chars
        self.context_chars = context_chars
        self.gate: int | None = None
        self.scanned_chars = 0
        self._text = ""
        self._base = 0
        self._released = 0
        self._rendered = 0
        self._resume = [0] * len(self.rules)
        self._holds: list[int | None] = [None] * len(self.rules)
        self._guards = [i for i, r in enumerate(self.rules) if r.action != "flag"]
        self._groups, self._others = _groups(self.rules)
        self._spans: list[_Span] = []
        self._blocked: Violation | None = None
        self._finished = False

    @property
    def end(self) -> int:
        return self._base + len(self._text)

    @property
    def released(self) -> int:
        return self._released

    @property
    def blocked(self) -> Violation | None:
        return self._blocked

    def push(self, delta: str) -> Verdict:
        if self._blocked is not None or self._finished:
            return Verdict(self._released, blocked=self._blocked, held_chars=self.end - self._released)
        self._text += delta
        return self._step(final=False)

    def flush(self) -> Verdict:
        """End of the channel: decide everything still pending, as if no more text can come."""
        if self._blocked is not None or self._finished:
            return Verdict(self._released, blocked=self._blocked, held_chars=self.end - self._released)
        verdict = self._step(final=True)
        self._finished = True
        return verdict

    def text(self, start: int, end: int) -> str:
        """Original (unredacted) text of a range still inside the window."""
        return self._text[start - self._base : end - self._base]

    def render(self, start: int, end: int) -> str:
        """The text to send for `[start, end)` of released text, redactions applied.

        Ranges must be rendered in order; a replacement is emitted in the range where its match
        starts, and the rest of the match is dropped from whatever range it falls in.
        """
        if not (self._base <= start <= end <= self._released):
            raise ValueError(f"cannot render [{start}, {end}): window holds [{self._base}, {self._released}) released")
        out: list[str] = []
        pos = start
        for span in self._spans:
            if span.end <= pos:
                continue
            if span.start >= end:
                break
            if span.start >= pos:
                out.append(self._text[pos - self._base : span.start - self._base])
                out.append(span.replacement)
            pos = min(span.end, end)
        out.append(self._text[pos - self._base : end - self._base])
        self._rendered = max(self._rendered, end)
        if self._spans and self._spans[0].end <= end:
            self._spans = [s for s in self._spans if s.end > end]
        return "".join(out)

    def _step(self, *, final: bool) -> Verdict:
        text, base = self._text, self._base
        end = base + len(text)
        found: list[Violation] = []
        indices = list(self._others)
        for group in self._groups:
            # One search over the new text answers for every rule of the group (secret prefixes,
            # digits): on prose it usually finds nothing, and none of those rules need run.
            lo = min(self._resume[i] for i in group.members) - base
            if group.gate.search(text, lo) is not None:
                indices.extend(group.members)
                continue
            hold: int | None = None
            if not final and group.tail is not None:
                # No literal, but the text may end with the start of one ("...sk"): hold that
                # much until the next delta says more. At most a literal's length, briefly.
                tail = group.tail.search(text[-group.tail_len :].casefold())
                if tail is not None:
                    hold = end - group.tail_len + tail.start() if len(text) >= group.tail_len else base + tail.start()
            for i in group.members:
                self._resume[i] = end if hold is None else hold
                self._holds[i] = hold
        for i in indices:
            rule = self.rules[i]
            pos = self._resume[i] - base
            try:
                result = rule.matcher.scan(text, pos, final=final)
            except ScanTimeout:
                found.append(Violation(rule, base + pos, end, is_timeout=True))
                self._resume[i] = end
                self._holds[i] = None
                continue
            if result is None:
                self._resume[i] = end
                self._holds[i] = None
                continue
            self.scanned_chars += result.scanned
            for s, e in result.matches:
                found.append(Violation(rule, base + s, base + e))
            self._resume[i] = base + result.resume
            self._holds[i] = None if result.hold is None else base + result.hold
        if found:
            found.sort(key=lambda v: v.start)
            for v in found:
                if v.action == "redact":
                    self._add_span(v.start, v.end, (v.start, self.rules.index(v.rule)), v.rule.replacement)
                elif v.action == "block" and self._blocked is None:
                    self._blocked = v

        release = end
        for i in self._guards:
            hold = self._holds[i]
            if hold is not None and hold < release:
                release = hold
        release = self._snap(release)
        forced = 0
        if not final and end - release > self.max_holdback_chars:
            # A partial match longer than the cap is released (and counted) rather than held
            # forever; the contract covers matches up to max_holdback_chars.
            target = self._snap_after(end - self.max_holdback_chars)
            forced = target - release
            release = target
        if self._blocked is not None:
            release = min(release, self._snap(self._blocked.start))
        if self.gate is not None:
            release = min(release, self._snap(max(self.gate, self._released)))
        release = max(release, self._released)
        self._released = release
        self._trim(end)
        return Verdict(release, tuple(found), self._blocked, forced, end - release)

    def _span_at(self, pos: int) -> _Span | None:
        for span in self._spans:
            if span.start < pos < span.end:
                return span
            if span.start >= pos:
                break
        return None

    def _snap(self, pos: int) -> int:
        """Never cut inside a redaction: move back to its start."""
        span = self._span_at(pos)
        return pos if span is None else span.start

    def _snap_after(self, pos: int) -> int:
        span = self._span_at(pos)
        return pos if span is None else span.end

    def _add_span(self, start: int, end: int, key: tuple[int, int], replacement: str) -> None:
        # Text released before the match was found (only past max_holdback) cannot be recalled.
        start = max(start, self._released)
        if end <= start:
            return
        merged = _Span(start, end, key, replacement)
        kept: list[_Span] = []
        for span in self._spans:
            if span.start < merged.end and merged.start < span.end:
                first = span if span.key < merged.key else merged
                merged = _Span(min(span.start, merged.start), max(span.end, merged.end), first.key, first.replacement)
            else:
                kept.append(span)
        kept.append(merged)
        kept.sort(key=lambda s: s.start)
        self._spans = kept

    def _trim(self, end: int) -> None:
        # A rule still undecided about text older than the cap gave up on it (it was force-released);
        # clamping keeps every rescan bounded by the window.
        floor = end - self.max_holdback_chars - self.context_chars
        keep = min(self._released - self.context_chars, self._rendered)
        for i, resume in enumerate(self._resume):
            if resume < floor:
                resume = self._resume[i] = floor
            keep = min(keep, resume)
        # Slicing costs a copy, so trim in steps rather than on every delta.
        if keep - self._base > self.context_chars:
            self._text = self._text[keep - self._base :]
            self._base = keep


@dataclass(slots=True)
class _Group:
    """Rules whose gates are checked together: if `gate` finds nothing in the new text, none of
    them can match there, and the only thing they can hold is a `tail`: the text's end being a
    proper prefix of one of their literals."""

    members: list[int]
    gate: re.Pattern[str]
    tail: re.Pattern[str] | None
    tail_len: int


def _groups(rules: Sequence[Rule]) -> tuple[list[_Group], list[int]]:
    literal: list[int] = []
    sensitive: set[str] = set()
    insensitive: set[str] = set()
    tails: set[str] = set()
    chars: list[int] = []
    char_class: set[str] = set()
    others: list[int] = []
    for i, rule in enumerate(rules):
        matcher = rule.matcher
        if isinstance(matcher, RegexMatcher) and matcher.prefixes:
            literal.append(i)
            (insensitive if matcher.is_casefolded else sensitive).update(matcher.prefixes)
            tails.update(matcher.tail_prefixes)
        elif isinstance(matcher, RegexMatcher) and matcher.is_selective:
            chars.append(i)
            char_class.update(matcher.first_char_set)
        else:
            others.append(i)
    groups: list[_Group] = []
    if literal:
        parts = []
        if sensitive:
            parts.append(trie_pattern(sensitive))
        if insensitive:
            parts.append("(?i:" + trie_pattern({p.casefold() for p in insensitive}) + ")")
        tail = re.compile(trie_pattern(tails) + r"\Z") if tails else None
        groups.append(_Group(literal, re.compile("|".join(parts)), tail, max(map(len, tails), default=0)))
    if chars:
        # Non-ASCII characters always pass: probing cannot enumerate which of them a rule accepts.
        pattern = "[" + "".join(re.escape(c) for c in sorted(char_class)) + "]|[^\x00-\x7f]"
        groups.append(_Group(chars, re.compile(pattern), None, 0))
    return groups, others
