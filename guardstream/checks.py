"""Classifier checks in the window, sans-I/O: when to ask, what to ask about, what a verdict does.

Rules decide a match the moment its text arrives; a classifier is a slow, remote judgment, so the
window asks it about *spans* of a channel's text and the I/O side runs the calls:

```
 text arrives ──► every_chars new characters, a sentence end, or the end of the stream?
                     │ yes, and no check of this classifier in flight on this channel
                     ▼
              CheckRequest(texts = the new text plus `overlap_chars` before it)  ──► adapter calls it
                     │ meanwhile more text arrives: it is coalesced into the next request
                     ▼
 resolve(request, verdicts):  clear ─► strict: the window may release up to the request's end
                              flagged / failed with on_error = "block" ─► a violation: the stream ends
```

`mode = "strict"` holds text back (the window's barrier) until a check that covers it came back
clear: nothing unchecked is released, at the cost of the classifier's latency. `mode = "async"`
releases text as rules allow and cuts the stream when a verdict arrives; what can leak is the text
released between the start of the check that flags it and its verdict. A check that has to wait for
the one in flight reads everything that streamed meanwhile, so with an upstream that outpaces the
classifier its span is what streams during one round trip, not `every_chars`: the leak is at most
max(every_chars, rate x latency) + rate x latency. Text a classifier has not read yet (and the
overlap before it) stays in the window until a check has asked about it, released or not.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from guardstream.matchers import Prefilter, ScanResult
from guardstream.rules import CLASSIFIER_PACK, Rule
from guardstream.window import Violation, Window

# A sentence end after at least this many new characters triggers a check before `every_chars`.
MIN_SENTENCE_CHARS = 24
# Characters that continue a word: a check's clear verdict stops short of a trailing run of them.
WORD_CHARS = "".join(chr(c) for c in range(128) if chr(c).isalnum()) + "-_'@./:"
# How far a piece of a long check may run on to finish its last word.
MAX_WORD_EXTENSION = 64
SENTENCE_END = re.compile(r"[.!?。！？]['\")\]]*\s|\n\n")


class VerdictLike(Protocol):
    """A classifier's answer for one text."""

    @property
    def flagged(self) -> bool: ...

    @property
    def categories(self) -> tuple[str, ...]: ...


class FailureLike(Protocol):
    """A call that gave no answer (it timed out or failed)."""

    @property
    def reason(self) -> Literal["timeout", "error"]: ...


class PlanSource(Protocol):
    """Classifier settings, as far as the window needs them."""

    @property
    def name(self) -> str: ...

    @property
    def mode(self) -> Literal["strict", "async"]: ...

    @property
    def every_chars(self) -> int: ...

    @property
    def overlap_chars(self) -> int: ...

    @property
    def on_error(self) -> Literal["block", "allow"]: ...

    @property
    def category(self) -> str | None: ...

    def applies_to(self, direction: Literal["input", "output"]) -> bool: ...


@dataclass(frozen=True)
class CheckPlan:
    """What the window needs to know of one classifier: how often, how it holds text, how it fails."""

    name: str
    mode: Literal["strict", "async"] = "strict"
    every_chars: int = 200
    overlap_chars: int = 100
    on_error: Literal["block", "allow"] = "block"
    category: str | None = None


@dataclass(eq=False)
class CheckRequest:
    """One call to make: `texts` (spans of one channel, each at most every_chars + overlap_chars)."""

    id: int
    classifier: str
    texts: list[str]
    start: int
    end: int
    windows: list[Window] = field(default_factory=list)


@dataclass
class _State:
    requested_to: int = 0  # text up to here is covered by a request, answered or not
    cleared_to: int = 0  # text up to here was cleared by every check that covered it
    in_flight: CheckRequest | None = None


class _NeverMatches:
    """The matcher of a classifier's stand-in rule: classifiers are not scanned, they are asked."""

    prefilter: Prefilter | None = None

    def scan(self, text: str, pos: int, *, final: bool) -> ScanResult | None:
        return None


_RULES: dict[tuple[str, str], Rule] = {}


def classifier_rule(name: str, category: str) -> Rule:
    """The rule a classifier's violation reports: its id is the classifier's name (a closed set)."""
    key = (name, category)
    if key not in _RULES:
        _RULES[key] = Rule(
            id=name,
            category=category,
            action="block",
            scope="both",
            replacement="",
            matcher=_NeverMatches(),
            pack=CLASSIFIER_PACK,
            source=f"[[classifiers]] {name}",
        )
    return _RULES[key]


class Checks:
    """The classifier checks of one answer or request (all its windows)."""

    def __init__(self, plans: Sequence[CheckPlan]) -> None:
        self.plans = tuple(plans)
        self._states: dict[tuple[int, str], _State] = {}
        self._windows: dict[int, Window] = {}
        self._new: list[CheckRequest] = []
        self._in_flight: dict[int, CheckRequest] = {}
        self._next_id = 0

    @property
    def is_waiting(self) -> bool:
        """Checks are in flight (or asked for and not yet taken)."""
        return bool(self._in_flight) or bool(self._new)

    def take(self) -> list[CheckRequest]:
        """The requests asked for since the last call: the adapter runs each, then `resolve`s it."""
        new, self._new = self._new, []
        return new

    def watch(self, window: Window) -> None:
        """A new window: strict classifiers hold it back until they have cleared its text."""
        self._windows[id(window)] = window
        if any(plan.mode == "strict" for plan in self.plans):
            window.barrier = 0
        self._keep_unread(window)

    def forked(self, window: Window, twin: Window) -> None:
        """`twin` read the same text as `window` so far: it shares what was cleared and asked for."""
        self._windows[id(twin)] = twin
        for plan in self.plans:
            state = self._states.get((id(window), plan.name))
            if state is not None:
                copy = _State(state.requested_to, state.cleared_to, state.in_flight)
                self._states[id(twin), plan.name] = copy
                if state.in_flight is not None:
                    state.in_flight.windows.append(twin)

    def arrived(self, window: Window, *, final: bool = False) -> None:
        """Text was pushed into `window` (or the stream ended): ask for the checks that are due."""
        end = window.end
        for plan in self.plans:
            state = self._state(window, plan)
            if state.in_flight is not None or end <= state.requested_to:
                continue
            pending = window.text(state.requested_to, end)
            if not final and len(pending) < plan.every_chars:
                if len(pending) < MIN_SENTENCE_CHARS or SENTENCE_END.search(pending) is None:
                    continue
            self._request(window, plan, state, end, final)

    def resolve(self, request: CheckRequest, results: Sequence[VerdictLike | FailureLike]) -> Violation | None:
        """A request came back: move the strict barriers, or report the violation it found."""
        self._in_flight.pop(request.id, None)
        plan = next(p for p in self.plans if p.name == request.classifier)
        violation = self._violation(plan, request, results)
        for window in request.windows:
            state = self._state(window, plan)
            state.in_flight = None
            if violation is None:
                state.cleared_to = max(state.cleared_to, request.end)
                self._update_barrier(window)
        return violation

    def _violation(
        self, plan: CheckPlan, request: CheckRequest, results: Sequence[VerdictLike | FailureLike]
    ) -> Violation | None:
        for result in results:
            if not hasattr(result, "flagged"):
                reason = result.reason
                if plan.on_error == "allow":
                    continue  # fail open, as configured
                # A classifier that cannot answer withholds the text (fail closed), and says so.
                return Violation(classifier_rule(plan.name, f"classifier_{reason}"), request.start, request.end)
            if result.flagged:
                categories = result.categories  # type: ignore[union-attr]
                category = plan.category or (categories[0] if categories else "other")
                return Violation(classifier_rule(plan.name, category), request.start, request.end)
        return None

    def pending_windows(self) -> Iterable[Window]:
        return self._windows.values()

    # -- internals ---------------------------------------------------------------------------

    def _state(self, window: Window, plan: CheckPlan) -> _State:
        key = (id(window), plan.name)
        state = self._states.get(key)
        if state is None:
            state = self._states[key] = _State()
        return state

    def _request(self, window: Window, plan: CheckPlan, state: _State, end: int, final: bool) -> None:
        base = _base(window)
        # The window kept this text, and the overlap before it, for this check (`_keep_unread`),
        # even if it was released (and so could have been trimmed) while the last check was out.
        start = state.requested_to
        if not final:
            # A word still being written cannot be judged yet ("MOCKF…" reads as nothing): the check
            # stops before it, and the next one reads it whole. A span that is one long word has no
            # boundary to wait for: it is judged as it is.
            tail = window.text(start, end)
            partial = len(tail) - len(tail.rstrip(WORD_CHARS))
            if 0 < partial < len(tail):
                end -= partial
        texts = []
        # Each text: about every_chars new characters, with overlap_chars before them for context,
        # ending where a word ends.
        piece_start = start
        while piece_start < end:
            piece_end = min(end, piece_start + max(1, plan.every_chars))
            if piece_end < end:
                rest = window.text(piece_end, min(end, piece_end + MAX_WORD_EXTENSION))
                piece_end += len(rest) - len(rest.lstrip(WORD_CHARS))
            texts.append(window.text(max(base, piece_start - plan.overlap_chars), piece_end))
            piece_start = piece_end
        self._next_id += 1
        request = CheckRequest(self._next_id, plan.name, texts, start, end, [window])
        state.requested_to = end
        state.in_flight = request
        self._in_flight[request.id] = request
        self._new.append(request)
        self._keep_unread(window)

    def _keep_unread(self, window: Window) -> None:
        """No text a classifier has not been asked about, nor the overlap its next check reads
        again, is trimmed from the window: not even in async mode, where it may have been released
        while a check was in flight. What this keeps is what arrives while one check is out, which
        `timeout_ms` bounds (then the check fails and follows on_error), as in strict mode."""
        if self.plans:
            window.check_floor = min(
                max(0, self._state(window, plan).requested_to - plan.overlap_chars) for plan in self.plans
            )

    def _update_barrier(self, window: Window) -> None:
        strict = [self._state(window, p).cleared_to for p in self.plans if p.mode == "strict"]
        if strict:
            window.barrier = min(strict)


def _base(window: Window) -> int:
    """The oldest offset the window still holds text for."""
    return window.base


def plans_from(settings: Iterable[PlanSource], direction: Literal["input", "output"]) -> tuple[CheckPlan, ...]:
    """CheckPlans for the classifiers whose settings apply to `direction`."""
    return tuple(
        CheckPlan(s.name, s.mode, s.every_chars, s.overlap_chars, s.on_error, s.category)
        for s in settings
        if s.applies_to(direction)
    )
