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

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from guardstream.matchers import ScanTimeout
from guardstream.prefilter import NO_HOLD, RuleGroup, group_rules
from guardstream.rules import Action, Rule, redact_text

DEFAULT_MAX_HOLDBACK_CHARS = 512
DEFAULT_CONTEXT_CHARS = 256
TRIM_SLACK_CHARS = 2048


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

    `barrier` lets a slower check (a classifier) cap the release point: text at or after
    `barrier` stays pending until it moves. `None` means no outside check is pending.
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
        self.barrier: int | None = None
        self.scanned_chars = 0
        self._text = ""
        self._base = 0
        self._released = 0
        self._rendered = 0
        self._order = {id(rule): i for i, rule in enumerate(self.rules)}
        self._trim_at = max_holdback_chars + context_chars + TRIM_SLACK_CHARS
        self._groups = group_rules(self.rules)
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
        for group in self._groups:
            self._scan(group, group.wake(text, base, final), text, base, final, found)
        if found:
            found.sort(key=lambda v: v.start)
            for v in found:
                if v.action == "redact":
                    self._add_span(v.start, v.end, (v.start, self._order[id(v.rule)]), v.rule.replacement)
                elif v.action == "block" and self._blocked is None:
                    self._blocked = v

        release = min(end, *[group.min_hold() for group in self._groups]) if self._groups else end
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
        if self.barrier is not None:
            release = min(release, self._snap(max(self.barrier, self._released)))
        release = max(release, self._released)
        self._released = release
        self._trim(end)
        return Verdict(release, tuple(found), self._blocked, forced, end - release)

    def _scan(
        self, unit: RuleGroup, slots: Iterable[int], text: str, base: int, final: bool, found: list[Violation]
    ) -> None:
        end = base + len(text)
        for k in slots:
            pos = unit.resume[k] - base
            try:
                result = unit.scans[k](text, pos, final=final)
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
        # Trimming copies the text, so it waits until there is a good amount to drop; until then
        # the text (and so any rescan) is bounded by the same few KB.
        if len(self._text) < self._trim_at:
            return
        # A rule still undecided about text older than the cap gave up on it (it was force-released);
        # clamping keeps every rescan bounded by the window.
        floor = end - self.max_holdback_chars - self.context_chars
        oldest = end
        for unit in self._groups:
            unit_oldest = min(unit.resume)
            if unit_oldest < floor:
                unit.resume = [max(r, floor) for r in unit.resume]
                unit_oldest = floor
            oldest = min(oldest, unit_oldest)
        keep = min(self._released - self.context_chars, self._rendered, oldest)
        if keep > self._base:
            self._text = self._text[keep - self._base :]
            self._base = keep


WHOLE_TEXT_CHUNK = 2048


def moderate_whole(rules: Sequence[Rule], text: str) -> tuple[str, list[Violation], Violation | None]:
    """A complete text (a request message, a non-streaming answer): (redacted text, matches, block).

    It goes through the window in pieces, like a stream: the result is the same (zero leak makes
    it so), and no single regex search runs over a long text against its timeout.
    """
    pieces = [text[i : i + WHOLE_TEXT_CHUNK] for i in range(0, len(text), WHOLE_TEXT_CHUNK)] or [""]
    # All of the text is here, so nothing needs releasing before it is decided.
    return stream_chunks(rules, pieces, max_holdback_chars=len(text) + 1)


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
        expected = redact_text(example, [rule])
        for cut in [len(example), *range(1, len(example))]:
            chunks = [example] if cut == len(example) else [example[:cut], example[cut:]]
            # Whole: the same function as `guardstream scan` and whole JSON answers; split: streamed.
            whole = len(chunks) == 1
            out, violations, blocked = moderate_whole([rule], example) if whole else stream_chunks([rule], chunks)
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
