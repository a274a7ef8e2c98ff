"""The sliding window: which part of one channel's streamed text may leave, and in what form.

Sans-I/O: `push(delta)` and `flush()` return a `Verdict`; the caller moves bytes. Positions are
absolute offsets into the channel's text, so callers can map them onto the events that carried
the text.

```
 ... released (sent) ...|<- context ->|......... pending .........|
                        ^ rules re-read this for lookbehinds/\\b   ^ end
                                         ^ hold: earliest start that could still become a match
```

Zero leak: text leaves only up to the earliest *undecided* start of any block or
redact rule, so whatever way the upstream splits the text, no character of a match shorter than
`max_holdback_chars` leaves unredacted. Each rule resumes where it stopped, so the work per delta
is bounded by the delta plus what that rule still holds, never by the length of the stream.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from guardstream.matchers import ScanResult, ScanTimeout
from guardstream.normalize import JsonTextMap, OffsetMap
from guardstream.prefilter import NO_HOLD, RuleGroup, group_rules
from guardstream.rules import Action, PerRuleSet, Rule, redact_text

DEFAULT_MAX_HOLDBACK_CHARS = 512
DEFAULT_CONTEXT_CHARS = 256
TRIM_SLACK_CHARS = 2048
# Regex time a rule may spend per character a stream carries, on top of `rule_budget_ms`.
DEFAULT_BUDGET_PER_CHAR_SECONDS = 50e-6


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


class RuleBudget:
    """The regex time one stream may spend in each rule, across all its windows.

    A per-call timeout alone lets a pathological rule cost a stream (and, on one event loop, every
    other stream) that timeout on every delta. With a budget, the rule's time on this stream is
    added up, and once it is spent the rule fails closed here: the stream ends, the others go on.

    The allowance grows with the text the stream has carried (`per_char_seconds` for every
    character), so an honest rule on a long answer never runs out: a fixed budget would cut a
    benign 400,000-character answer on a slow machine for its length alone. The heaviest built-in
    rule costs about 2 µs per character on the slow 2-core development machine; the default
    allowance is 25 times that, while a rule that backtracks catastrophically costs orders of
    magnitude more and still runs out.
    """

    __slots__ = ("seconds", "per_char_seconds", "chars", "_spent")

    def __init__(self, seconds: float, *, per_char_seconds: float = DEFAULT_BUDGET_PER_CHAR_SECONDS) -> None:
        self.seconds = seconds
        self.per_char_seconds = per_char_seconds
        self.chars = 0
        self._spent: dict[int, float] = {}

    def read(self, chars: int) -> None:
        """The stream carried `chars` more characters: every rule may spend a little more."""
        self.chars += chars

    def charge(self, rule: Rule, seconds: float) -> bool:
        """Add `seconds` to the rule's time; True once it has spent more than its allowance."""
        spent = self._spent.get(id(rule), 0.0) + seconds
        self._spent[id(rule)] = spent
        return spent > self.seconds + self.per_char_seconds * self.chars


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

    Rules read a normalised copy of the text (`normalize=True`, see `normalize.py`): zero-width
    characters removed and compatibility look-alikes folded by NFKC. Every offset the window
    gives out (`end`, `released`, violations, `render` ranges) counts characters of the text as
    it was pushed, and `render` returns that text, byte for byte, with redactions applied.

    With `json_text=True` the text is JSON carried inside a string (tool-call arguments, which
    the client parses): the rules read it with its string escapes decoded too, and an escape cut
    off at the end of what has arrived is held until it is complete (see `JsonTextMap`).

    `barrier` lets a slower check (a classifier) cap the release point: text at or after
    `barrier` (an offset of the pushed text) stays pending until it moves. `None` means no outside
    check is pending.

    `check_floor` keeps text for such a check that has not read it yet: text at or after
    `check_floor` (an offset of the pushed text) is never trimmed, released or not. `None` means
    no outside check needs text behind the release point.
    """

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        max_holdback_chars: int = DEFAULT_MAX_HOLDBACK_CHARS,
        context_chars: int = DEFAULT_CONTEXT_CHARS,
        normalize: bool = True,
        budget: RuleBudget | None = None,
        json_text: bool = False,
    ) -> None:
        self.rules = tuple(rules)
        self.max_holdback_chars = max_holdback_chars
        self.context_chars = context_chars
        self.budget = budget
        self.barrier: int | None = None
        self.check_floor: int | None = None
        self.scanned_chars = 0
        # The rules' view: normalised text from absolute offset `_base`; all internal offsets
        # (`_released`, `_rendered`, spans, resume points) count characters of it.
        self._text = ""
        self._base = 0
        self._released = 0
        self._rendered = 0
        self._order = _rule_order(self.rules)
        self._trim_at = max_holdback_chars + context_chars + TRIM_SLACK_CHARS
        self._groups = group_rules(self.rules)
        self._spans: list[_Span] = []
        self._blocked: Violation | None = None
        self._finished = False
        # The text as pushed, kept apart only once normalising has changed something.
        self._map: OffsetMap | None = (
            JsonTextMap(normalize=normalize) if json_text else OffsetMap() if normalize else None
        )
        self._orig: str | None = None
        self._orig_base = 0
        self._public_released = 0
        self._public_blocked: Violation | None = None

    @property
    def end(self) -> int:
        if self._orig is not None:
            return self._orig_base + len(self._orig)
        return self._base + len(self._text)

    @property
    def released(self) -> int:
        return self._public_released

    @property
    def blocked(self) -> Violation | None:
        return self._public_blocked

    def fork(self) -> Window:
        """An independent copy: the same text and decisions so far, its own future.

        Used when two views of a stream (say, a choice by index and by position) have read the
        same text until now and are about to diverge.
        """
        twin = copy.copy(self)
        twin._groups = [group.copy() for group in self._groups]
        twin._spans = list(self._spans)
        if self._map is not None:
            twin._map = self._map.copy()
        return twin

    def push(self, delta: str) -> Verdict:
        self.append(delta)
        return self.settle()

    def append(self, delta: str) -> None:
        """Take in `delta` without deciding anything yet: `settle` decides all that was appended.

        Several deltas that arrive together cost one scan this way instead of one each; the
        verdict is the one a single push of them all would get, which the window's guarantees
        cover like any other split of the text.
        """
        if self._blocked is not None or self._finished:
            return
        mapped = delta if self._map is None else self._map.append(delta)
        if mapped is not delta or self._orig is not None:
            if self._orig is None:
                self._orig, self._orig_base = self._text, self._base
            self._orig += delta
        self._text += mapped
        if self.budget is not None:
            self.budget.read(len(delta))

    def settle(self) -> Verdict:
        """Decide the text appended so far (releasing what no rule can still claim)."""
        if self._blocked is not None or self._finished:
            return Verdict(self.released, blocked=self.blocked, held_chars=self.end - self.released)
        return self._public(self._step(final=False))

    def flush(self) -> Verdict:
        """End of the channel: decide everything still pending, as if no more text can come."""
        if self._blocked is not None or self._finished:
            return Verdict(self.released, blocked=self.blocked, held_chars=self.end - self.released)
        if self._map is not None:
            # An escape still incomplete was held back undecoded: the rules read it as written.
            self._text += self._map.finish()
        verdict = self._step(final=True)
        self._finished = True
        return self._public(verdict)

    def text(self, start: int, end: int) -> str:
        """Original (unredacted) text of a range still inside the window."""
        if self._orig is not None:
            return self._orig[start - self._orig_base : end - self._orig_base]
        return self._text[start - self._base : end - self._base]

    def redactions(self, start: int, end: int, *, keep_from: int | None = None) -> list[tuple[int, int, str]]:
        """The redactions overlapping released `[start, end)`, as `(start, end, replacement)`.

        Redactions that end by `end` are then forgotten, and the text before `end` may be dropped
        from the window, unless `keep_from` says that text from there on is still to be taken
        (a reader that renders parts of the window out of order: an older part waiting on
        another window). Without it, ranges must be taken in order.
        """
        if not (self._base_public() <= start <= end <= self.released):
            raise ValueError(f"cannot render [{start}, {end}): window holds [{self._base_public()}, {self.released})")
        found = self._overlapping(start, end) if self._spans else []
        inner_end = end if self._orig is None else self._to_norm(end)
        forget_to = inner_end
        if keep_from is not None and keep_from < end:
            forget_to = keep_from if self._orig is None else self._to_norm(keep_from)
        self._rendered = max(self._rendered, forget_to)
        if self._spans and self._spans[0].end <= forget_to:
            self._spans = [s for s in self._spans if s.end > forget_to]
        return found

    def has_redactions(self, start: int, end: int) -> bool:
        """Whether a redaction overlaps released `[start, end)`; unlike `redactions`, forgets nothing."""
        return bool(self._spans) and bool(self._overlapping(start, end))

    def _overlapping(self, start: int, end: int) -> list[tuple[int, int, str]]:
        """The redactions overlapping `[start, end)` of the pushed text."""
        found: list[tuple[int, int, str]] = []
        for span in self._spans:
            span_start, span_end = span.start, span.end
            if self._orig is not None:
                span_start, span_end = self._span_to_orig(span_start, span_end)
            if span_end <= start:
                continue
            if span_start >= end:
                break
            found.append((span_start, span_end, span.replacement))
        return found

    def render(self, start: int, end: int, *, keep_from: int | None = None) -> str:
        """The text to send for `[start, end)` of released text, redactions applied.

        Ranges must be rendered in order, or say with `keep_from` what is still to be rendered
        (see `redactions`); a replacement is emitted in the range where its match starts, and the
        rest of the match is dropped from whatever range it falls in.
        """
        return apply_redactions(self.text(start, end), start, self.redactions(start, end, keep_from=keep_from))

    # -- offsets between the pushed text and the rules' normalised view ---------------------------

    def _base_public(self) -> int:
        return self._orig_base if self._orig is not None else self._base

    def _to_norm(self, pos: int) -> int:
        assert self._map is not None
        return self._map.to_norm(pos)

    def _span_to_orig(self, start: int, end: int) -> tuple[int, int]:
        assert self._map is not None
        return self._map.span_to_orig(start, end)

    def _public(self, verdict: Verdict) -> Verdict:
        """The verdict in offsets of the pushed text."""
        if self._orig is None:
            self._public_released = verdict.released
            self._public_blocked = self._blocked
            return verdict
        assert self._map is not None
        released = self._map.release_to_orig(verdict.released)
        violations = tuple(self._violation_to_orig(v) for v in verdict.violations)
        if self._blocked is not None and self._public_blocked is None:
            self._public_blocked = self._violation_to_orig(self._blocked)
        self._public_released = released
        return Verdict(released, violations, self._public_blocked, verdict.forced_chars, self.end - released)

    def _violation_to_orig(self, violation: Violation) -> Violation:
        start, end = self._span_to_orig(violation.start, violation.end)
        return Violation(violation.rule, start, end, violation.is_timeout)

    def _step(self, *, final: bool) -> Verdict:
        text, base = self._text, self._base
        end = base + len(text)
        found: list[Violation] = []
        for group in self._groups:
            woken = group.wake(text, base, final)
            if woken:
                self._scan(group, woken, text, base, final, found)
        if found:
            found.sort(key=lambda v: v.start)
            for v in found:
                if v.action == "redact":
                    self._add_span(v.start, v.end, (v.start, self._order[id(v.rule)]), v.rule.replacement)
                elif v.action == "block" and self._blocked is None:
                    self._blocked = v

        release, forced = self._release_point(end, final)
        self._released = release
        if len(text) >= self._trim_at:
            self._trim(end)
        return Verdict(release, tuple(found) if found else (), self._blocked, forced, end - release)

    def _release_point(self, end: int, final: bool) -> tuple[int, int]:
        """How far text may go now: (release offset, characters forced out past an undecided match)."""
        release = end
        for group in self._groups:
            hold = group.min_hold()
            if hold < release:
                release = hold
        if self._spans:
            release = self._snap(release)
        forced = 0
        if not final and end - release > self.max_holdback_chars:
            # A partial match longer than the cap is released (and counted) rather than held
            # forever; the contract covers matches up to max_holdback_chars.
            target = self._snap_after(end - self.max_holdback_chars)
            # Only what this step releases: the hold may still start before text already forced out.
            forced = max(0, target - max(release, self._released))
            release = target
        if self._blocked is not None:
            release = min(release, self._snap(self._blocked.start))
        if self.barrier is not None:
            barrier = self.barrier if self._orig is None else self._to_norm(self.barrier)
            release = min(release, self._snap(max(barrier, self._released)))
        return max(release, self._released), forced

    def reconsider(self) -> Verdict:
        """The barrier moved (a classifier cleared text): release what the rules and the barrier allow now."""
        end = self._base + len(self._text)
        release, _ = self._release_point(end, self._finished)
        self._released = release
        return self._public(Verdict(release, (), self._blocked, 0, end - release))

    def block(self, violation: Violation) -> Verdict:
        """A check outside the rules (a classifier) found a violation: nothing from its start leaves."""
        if self._blocked is None:
            start = violation.start if self._orig is None else self._to_norm(violation.start)
            end = self._base + len(self._text)
            self._blocked = Violation(violation.rule, max(start, self._released), end, violation.is_timeout)
            self._public_blocked = None
        return self.reconsider()

    @property
    def is_finished(self) -> bool:
        """`flush` was called: no more text comes."""
        return self._finished

    @property
    def base(self) -> int:
        """The oldest offset whose text the window still holds."""
        return self._base_public()

    def _scan(
        self, unit: RuleGroup, slots: Iterable[int], text: str, base: int, final: bool, found: list[Violation]
    ) -> None:
        end = base + len(text)
        budget = self.budget
        for k in slots:
            pos = unit.resume[k] - base
            try:
                if budget is None:
                    result = _scan_with_retry(unit.scans[k], text, pos, final)
                else:
                    started = time.perf_counter()
                    try:
                        result = _scan_with_retry(unit.scans[k], text, pos, final)
                    finally:
                        spent = time.perf_counter() - started
                    if budget.charge(unit.rules[k], spent):
                        raise ScanTimeout(unit.rules[k].id)
            except ScanTimeout:
                rule = unit.rules[k]
                found.append(Violation(rule, base + pos, end, is_timeout=True))
                unit.resume[k] = end
                unit.hold[k] = NO_HOLD
                continue
            if result is None:
                unit.resume[k] = end
                unit.hold[k] = NO_HOLD
                continue
            self.scanned_chars += result.scanned
            if result.matches:
                rule = unit.rules[k]
                found.extend(Violation(rule, base + s, base + e) for s, e in result.matches)
            unit.resume[k] = base + result.resume
            # Flag rules never hold text back: they only report.
            unit.hold[k] = NO_HOLD if result.hold is None or unit.is_flag[k] else base + result.hold

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
        # Trimming copies the text, so it waits until there is a good amount to drop (the caller
        # checks `_trim_at`); until then the text (and so any rescan) is bounded by the same few KB.
        # A rule still undecided about text older than the cap gave up on it (it was force-released);
        # clamping keeps every rescan bounded by the window.
        floor = end - self.max_holdback_chars - self.context_chars
        oldest = end
        for unit in self._groups:
            unit_oldest = unit.min_resume()
            if unit_oldest < floor:
                resume, _ = unit.states()
                unit.resume = [max(r, floor) for r in resume]
                unit_oldest = floor
            oldest = min(oldest, unit_oldest)
        keep = min(self._released - self.context_chars, self._rendered, oldest)
        unread = self.check_floor
        if unread is not None and self._orig is None:
            keep = min(keep, unread)
        if keep <= self._base:
            return
        if self._orig is not None:
            assert self._map is not None
            # Cut both texts at the same character boundary.
            orig_keep = self._map.release_to_orig(keep)
            if unread is not None:
                orig_keep = min(orig_keep, unread)
            keep = self._map.to_norm(orig_keep)
            if keep <= self._base:
                return
            self._orig = self._orig[orig_keep - self._orig_base :]
            self._orig_base = orig_keep
            self._map.trim(orig_keep)
        self._text = self._text[keep - self._base :]
        self._base = keep


def apply_redactions(text: str, offset: int, redactions: Sequence[tuple[int, int, str]]) -> str:
    """`text` (which starts at absolute `offset`) with each `(start, end, replacement)` applied.

    A replacement is emitted where its redaction starts; a redaction that began before `offset`
    only removes its remaining characters. Redactions must be sorted and must not overlap.
    """
    if not redactions:
        return text
    out: list[str] = []
    pos = offset
    end = offset + len(text)
    for start, stop, replacement in redactions:
        if stop <= pos:
            continue
        if start >= end:
            break
        if start >= pos:
            out.append(text[pos - offset : start - offset])
            out.append(replacement)
        pos = min(stop, end)
    out.append(text[pos - offset :])
    return "".join(out)


WHOLE_TEXT_CHUNK = 2048


@dataclass(frozen=True)
class TextVerdict:
    """What moderation decided about a whole text: what may be shown, and why."""

    text: str
    violations: tuple[Violation, ...] = ()
    blocked: Violation | None = None

    @property
    def is_blocked(self) -> bool:
        return self.blocked is not None


def moderate_text(rules: Sequence[Rule], text: str, *, normalize: bool = True) -> TextVerdict:
    """A complete text (a request message, an answer, `guardstream scan`'s input): the one
    whole-text path.

    It goes through the window in pieces, like a stream: the result is the same (zero leak makes
    it so), and no single regex search runs over a long text against its timeout.
    """
    # All of the text is here, so nothing needs releasing before it is decided.
    window = Window(rules, max_holdback_chars=len(text) + 1, normalize=normalize)
    violations: list[Violation] = []
    for i in range(0, len(text), WHOLE_TEXT_CHUNK):
        verdict = window.push(text[i : i + WHOLE_TEXT_CHUNK])
        violations.extend(verdict.violations)
        if verdict.blocked is not None:
            return TextVerdict(window.render(0, verdict.released), tuple(violations), verdict.blocked)
    verdict = window.flush()
    violations.extend(verdict.violations)
    return TextVerdict(window.render(0, verdict.released), tuple(violations), verdict.blocked)


def stream_chunks(
    rules: Sequence[Rule], chunks: Sequence[str], *, max_holdback_chars: int = DEFAULT_MAX_HOLDBACK_CHARS
) -> tuple[str, list[Violation], Violation | None]:
    """Stream chunks through one window as a client would receive them: (text, matches, block)."""
    window = Window(rules, max_holdback_chars=max_holdback_chars)
    out: list[str] = []
    violations: list[Violation] = []
    pos = 0
    for chunk in chunks:
        verdict = window.push(chunk)
        violations.extend(verdict.violations)
        out.append(window.render(pos, verdict.released))
        pos = verdict.released
        if verdict.blocked is not None:
            return "".join(out), violations, verdict.blocked
    verdict = window.flush()
    violations.extend(verdict.violations)
    out.append(window.render(pos, verdict.released))
    return "".join(out), violations, verdict.blocked


def check_rule_examples(rule: Rule) -> list[str]:
    """Each example, whole and split at every position across two deltas, through the real window."""
    problems: list[str] = []
    for example, should_match in [(e, True) for e in rule.examples_match] + [
        (e, False) for e in rule.examples_no_match
    ]:
        expected = redact_text([rule], example)
        for cut in [len(example), *range(1, len(example))]:
            chunks = [example] if cut == len(example) else [example[:cut], example[cut:]]
            # Whole: the same function as `guardstream scan` and whole JSON answers; split: streamed.
            whole = len(chunks) == 1
            if whole:
                verdict = moderate_text([rule], example)
                out, violations, blocked = verdict.text, list(verdict.violations), verdict.blocked
            else:
                out, violations, blocked = stream_chunks([rule], chunks)
            hit = any(v.rule is rule for v in violations)
            where = "whole" if len(chunks) == 1 else f"split at {cut}"
            if hit != should_match:
                state = "did not match" if should_match else "matched"
                problems.append(f"{rule.id}: example {example!r} {state} when streamed {where}")
                break
            if rule.action == "redact" and out != expected:
                problems.append(f"{rule.id}: example {example!r} streamed {where} gave {out!r}, expected {expected!r}")
                break
            if rule.action == "block" and should_match and blocked is None:
                problems.append(f"{rule.id}: example {example!r} was not blocked when streamed {where}")
                break
    return problems


# Each rule's position (which redaction wins a tie), built once per rule set.
_rule_order = PerRuleSet(lambda rules: {id(rule): i for i, rule in enumerate(rules)})


def _scan_with_retry(scan: Callable[..., ScanResult | None], text: str, pos: int, final: bool) -> ScanResult | None:
    """A rule's scan, asked once more if its regex timed out.

    `regex` times a call by the process's CPU clock, every thread's together: while another
    thread works (a local classifier, the thread pool), a regex that is not slow at all can run
    out of time, and failing closed on that would cut a benign stream. A rule that backtracks
    times out again and fails closed then; scans are pure, so asking again changes nothing else.
    """
    try:
        return scan(text, pos, final=final)
    except ScanTimeout:
        return scan(text, pos, final=final)
