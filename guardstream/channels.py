"""The text of one answer (or one request) as a client reads it: views, windows and released parts.

Sans-I/O. A payload's strings arrive as `TextPart`s. A *text* part streams through one `Window`
per view it belongs to: the concatenations a client may read (a choice by index and by
position; an Anthropic block on its own and all text blocks in a row). Views that have read the
same text so far share one window, so a one-choice answer costs one window; when a part reaches
only some of the views sharing a window, the window is forked and they go their own ways.

A part is released as far as every one of its windows allows, and rendered with the union of
their redactions, so the text a client sees is safe on every view at once. A *value* part (an
id, a type, an object key) is checked on its own, once per distinct value.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from guardstream.checks import CheckPlan, CheckRequest, Checks, FailureLike, VerdictLike
from guardstream.errors import ProviderError
from guardstream.jsontext import JsonLexState, fit_redactions
from guardstream.normalize import needs_mapping
from guardstream.payload import Channel, TextPart
from guardstream.prefilter import finds_nothing, finds_nothing_in_any
from guardstream.rules import PerRuleSet, Rule
from guardstream.window import (
    DEFAULT_CONTEXT_CHARS,
    DEFAULT_MAX_HOLDBACK_CHARS,
    RuleBudget,
    Verdict,
    Violation,
    Window,
    apply_redactions,
)


class ChannelObserver(Protocol):
    """Where moderation reports what it decided (metrics implement this)."""

    def on_violation(self, violation: Violation) -> None: ...

    def on_holdback(self, chars: int) -> None: ...

    def on_forced_release(self, chars: int) -> None: ...


@dataclass(slots=True)
class PartState:
    """Where one part stands: which windows hold it and how much of it has been rendered."""

    part: TextPart
    # (window, start, end): the part's text occupies [start, end) of each window.
    spans: list[tuple[Window, int, int]] = field(default_factory=list)
    rendered_to: int = 0
    pieces: list[str] = field(default_factory=list)
    # A copy (a snapshot repeating a channel's text): the parts it repeats, rendered as they were.
    copies: list[PartState] | None = None
    # A piece of a JSON document (`TextPart.json_text`): the document, the lexer state before
    # the piece, and the document's character after it once that has come.
    json_doc: JsonDocument | None = None
    json_at: JsonLexState | None = None
    json_after: str | None = None
    # The part's length: a text part in a window is released once `rendered_to` reaches it.
    size: int = field(init=False)

    def __post_init__(self) -> None:
        self.size = len(self.part.text)

    @property
    def is_released(self) -> bool:
        if self.copies is not None:
            return all(state.is_released for state in self.copies)
        return self.rendered_to >= self.size

    def rendered(self) -> str:
        if self.copies is not None:
            return "".join(state.rendered() for state in self.copies)
        return "".join(self.pieces)

    def is_unchanged(self) -> bool:
        return self.is_released and self.rendered() == self.part.text


@dataclass(slots=True)
class JsonDocument:
    """A JSON text streamed in pieces on one view (a tool call's arguments): where its lexer
    stands after the pieces so far, its last piece, and whether it is complete."""

    state: JsonLexState = field(default_factory=JsonLexState)
    last: PartState | None = None
    ended: bool = False

    def take(self, state: PartState) -> None:
        """`state`'s part is the document's next piece."""
        text = state.part.text
        state.json_doc = self
        state.json_at = self.state
        if not text:
            return
        self.state = self.state.advance(text)
        if self.last is not None:
            self.last.json_after = text[0]
        self.last = state


class TextChannels:
    """All the windows of one answer or request, keyed by view."""

    def __init__(
        self,
        rules: Sequence[Rule],
        *,
        max_holdback_chars: int = DEFAULT_MAX_HOLDBACK_CHARS,
        context_chars: int = DEFAULT_CONTEXT_CHARS,
        normalize: bool = True,
        observer: ChannelObserver | None = None,
        budget: RuleBudget | None = None,
        plans: Sequence[CheckPlan] = (),
    ) -> None:
        self.rules = tuple(rules)
        self.max_holdback_chars = max_holdback_chars
        self.context_chars = context_chars
        self.normalize = normalize
        self.observer = observer
        # One budget for all the windows of this answer: it bounds a rule's time per stream.
        self.budget = budget
        # Classifier checks: when to ask, and what a verdict releases or blocks.
        self.checks = Checks(plans) if plans else None
        self.violations: list[Violation] = []
        self.blocked: Violation | None = None
        self.is_redacted = False
        # The most text held back at once, for the request's log line.
        self.peak_held = 0
        self._views: dict[Channel, Window] = {}
        # Which views read each window (by id): a window is forked when a part reaches only some.
        self._readers: dict[int, set[Channel]] = {}
        self._values: dict[tuple[str, bool], tuple[str, Violation | None]] = {}
        self._value_states: dict[tuple[str, bool], PartState] = {}
        # Parts still being released, per window (by id): a fork must hold them back as well.
        self._pending: dict[int, deque[PartState]] = {}
        # Per copied view, the parts read on it so far (kept only for formats with snapshots).
        self._view_parts: dict[Channel, list[PartState]] = {}
        # The windows each views tuple reads, while no fork or new view changes the mapping:
        # nearly every delta of a stream reads the same views as the one before.
        self._routes: dict[tuple[Channel, ...], list[Window]] = {}
        # Windows with text appended and not yet decided (see `settle`).
        self._unsettled: dict[int, Window] = {}
        # Views closed as complete (`close`): no text may be added to them.
        self._sealed: set[Channel] = set()
        # JSON documents streamed as text, by their view (see `TextPart.json_text`).
        self._json_docs: dict[Channel, JsonDocument] = {}

    def _window(self, *, json_text: bool = False) -> Window:
        window = Window(
            self.rules,
            max_holdback_chars=self.max_holdback_chars,
            context_chars=self.context_chars,
            normalize=self.normalize,
            budget=self.budget,
            json_text=json_text,
        )
        if self.checks is not None:
            self.checks.watch(window)
        return window

    def add(self, part: TextPart) -> PartState:
        """Take in one part: a text part is pushed into its windows, a value is decided now."""
        if part.copy_of is not None:
            return self._add_copy(part)
        if part.is_value and not part.tracked:
            # Ids, types and model names repeat in every event: one decided state serves them all
            # (a value's state never changes once decided, and only its text is read from it).
            shared = self._value_states.get((part.text, part.is_key))
            if shared is not None:
                return shared
        state = PartState(part)
        if part.tracked:
            self._view_parts.setdefault(part.views[0], []).append(state)
        if part.is_value:
            self._decide(part, state, remember=True)
            if not part.tracked and len(self._value_states) < MAX_STREAM_VALUES:
                self._value_states[part.text, part.is_key] = state
            return state
        return self._push(part, state)

    def add_pad(self, part: TextPart) -> PartState:
        """`add` for a value that differs in every event (OpenAI's `obfuscation` pad), decided the
        same way but not remembered: a stream's pads would fill its caches (a few hundred bytes
        each, hundreds per answer) and push out the values that do repeat."""
        state = PartState(part)
        self._decide(part, state, remember=False)
        return state

    def clean_pads(self, pads: Sequence[str]) -> int:
        """How many of `pads`, from the first, `add_pad` would release as they came with nothing
        to note: those need no state of their own (a run of events read together)."""
        rules = self.rules
        # Text the rules read as it is (ASCII needs no normalising); a clean value is released as it
        # came whatever a window would make of it, so no decided value needs looking up.
        if len(pads) > 1 and (not self.normalize or "".join(pads).isascii()) and finds_nothing_in_any(rules, pads):
            return len(pads)
        # One of them needs more than a glance: which.
        for count, pad in enumerate(pads):
            if not self._is_clean_as_is(pad):
                return count
        return len(pads)

    def split(self, state: PartState, parts: Sequence[TextPart]) -> list[PartState]:
        """`state`, a part pushed whole and rendered so far only to where `parts` begin, as those
        parts in its place: one state each, holding their stretch of the same windows.

        A run of events is pushed as one part; when one of them must be rewritten (a redaction,
        a block), they go on one by one from there.
        """
        states: list[PartState] = []
        offset = state.rendered_to
        lexed = state.json_at.advance(state.part.text[:offset]) if state.json_at is not None else None
        for part in parts:
            size = len(part.text)
            piece = PartState(part)
            piece.spans = [(window, start + offset, start + offset + size) for window, start, _ in state.spans]
            if lexed is not None and part.text:
                # The pieces of a JSON text go on where the whole left off.
                piece.json_doc, piece.json_at = state.json_doc, lexed
                lexed = lexed.advance(part.text)
                if states and states[-1].json_at is not None:
                    states[-1].json_after = part.text[0]
            states.append(piece)
            offset += size
        assert offset == state.size, "the parts must cover the rest of the state"
        if states and states[-1].json_at is not None:
            states[-1].json_after = state.json_after
            if state.json_doc is not None and state.json_doc.last is state:
                state.json_doc.last = states[-1]
        for window, _, _ in state.spans:
            pending = self._pending.get(id(window))
            if pending is None:
                continue
            for at, queued in enumerate(pending):
                if queued is state:
                    del pending[at]
                    for piece in reversed(states):
                        pending.insert(at, piece)
                    break
        return states

    def _decide(self, part: TextPart, state: PartState, *, remember: bool) -> None:
        rendered, blocked = self._check_value(part, remember=remember)
        state.pieces.append(rendered)
        state.rendered_to = len(part.text)
        if blocked is not None and self.blocked is None:
            self.blocked = blocked

    def add_text(self, part: TextPart) -> PartState:
        """`add` for a text part that no snapshot copies (not `tracked`, not a copy): every text
        delta of most formats, taken without asking what else it could be."""
        return self._push(part, PartState(part))

    def _push(self, part: TextPart, state: PartState) -> PartState:
        text = part.text
        if part.json_text:
            doc = self._json_docs.get(part.views[0])
            if doc is None:
                doc = self._json_docs[part.views[0]] = JsonDocument()
            doc.take(state)
        for window in self._windows_for(part.views, part.json_text):
            start = window.end
            # Decided in `settle`, once for all the parts that arrived together.
            window.append(text)
            self._unsettled[id(window)] = window
            state.spans.append((window, start, window.end))
            pending = self._pending.get(id(window))
            if pending is None:
                pending = self._pending[id(window)] = deque()
            # Parts of one window are released in order: forget the ones that are out. (Parts in
            # windows are text parts: released when rendered to their size.)
            while pending and pending[0].rendered_to >= pending[0].size:
                pending.popleft()
            pending.append(state)
        return state

    def settle(self) -> None:
        """Decide the text added since the last call: every window scans what it got, once.

        Nothing is released before this, so a batch of parts costs one scan per window instead
        of one per part. Adapters call it after taking in what has arrived and before rendering.
        """
        if not self._unsettled:
            return
        windows = list(self._unsettled.values())
        self._unsettled.clear()
        for window in windows:
            self._note(window.settle())
            if self.checks is not None:
                self.checks.arrived(window)

    def _add_copy(self, part: TextPart) -> PartState:
        """A snapshot of a channel's text carries exactly what the client got on that channel.

        What the upstream repeats is checked against what it streamed: text beyond it is new text
        on the channel (so it is moderated), and a snapshot that disagrees is moderated as a text
        of its own. Either way the copy never shows text the window did not release.
        """
        assert part.copy_of is not None
        states = self._view_parts.setdefault(part.copy_of, [])
        original = "".join(state.part.text for state in states)
        if original and part.text != original:
            # A repeat says other than was streamed: the client's deltas never carry the
            # difference, moderating it on the channel would put it between them, and on its own
            # it could join another item's text in the SDK's `output_text` unseen.
            raise ProviderError("the upstream repeated a text other than it had streamed")
        if len(part.text) > len(original):
            if any(view in self._sealed for view in part.views):  # `copy_of` is one of them
                # Nothing streamed, and the channel is complete: the snapshot is a text of its own.
                return self.add(TextPart((("snapshot", *part.path),), part.text, part.path, json_text=part.json_text))
            extra = TextPart(part.views, part.text, part.path, tracked=True, json_text=part.json_text)
            self.add(extra)
        return PartState(part, copies=list(states))

    def flush(self) -> None:
        """The text is complete: decide everything still held (classifiers get their last checks)."""
        self.settle()
        for doc in self._json_docs.values():
            doc.ended = True
        for window in {id(w): w for w in self._views.values()}.values():
            self._note(window.flush())
            if self.checks is not None:
                self.checks.arrived(window, final=True)

    def close(self, prefixes: Sequence[tuple[Any, ...]], *, sealed: bool = True) -> None:
        """The views whose keys begin with one of `prefixes` have all their text (an Anthropic
        block stopped; with `sealed=False`, a row of blocks joined on one view was interrupted by
        a block of another type): their windows decide what they hold now, as `flush` does at the
        end of the stream. Views that share a window with them go on with a copy. A sealed view
        takes no more text (its codec refuses it; a snapshot that adds to it is checked whole);
        text on an unsealed one later starts a window of its own."""
        closing = {view for view in self._views if any(view[: len(p)] == p for p in prefixes)}
        if sealed:
            self._sealed |= closing
            for view, doc in self._json_docs.items():
                if any(view[: len(p)] == p for p in prefixes):
                    doc.ended = True
        if not closing:
            return
        self.settle()
        finished: dict[int, Window] = {}
        for view in closing:
            window = self._views[view]
            if id(window) in finished:
                continue
            readers = self._readers[id(window)]
            others = readers - closing
            if others:
                twin = self._fork(window)
                self._readers[id(twin)] = others
                for other in others:
                    self._views[other] = twin
                readers -= others
            finished[id(window)] = window
        for view in closing:
            del self._views[view]
        self._routes.clear()
        for window in finished.values():
            self._note(window.flush())
            if self.checks is not None:
                self.checks.arrived(window, final=True)

    @property
    def is_checking(self) -> bool:
        """Classifier checks are asked for or in flight: some text waits on them."""
        return self.checks is not None and self.checks.is_waiting

    def take_checks(self) -> list[CheckRequest]:
        return self.checks.take() if self.checks is not None else []

    def resolve(self, request: CheckRequest, results: Sequence[VerdictLike | FailureLike]) -> None:
        """A classifier answered: release what it cleared, or block what it flagged."""
        assert self.checks is not None
        self.settle()
        violation = self.checks.resolve(request, results)
        for window in request.windows:
            if violation is not None:
                self._note(window.block(violation), observe=False)
                self.violations.append(violation)
                if self.observer is not None:
                    self.observer.on_violation(violation)
            else:
                self._note(window.reconsider(), observe=False)
            if violation is None and self.checks is not None:
                # What arrived while this check was in flight may be due now.
                self.checks.arrived(window, final=window.is_finished)

    def render(self, state: PartState) -> None:
        """Advance `state.pieces` to what every window of the part has released (as of the last
        `settle`)."""
        if state.copies is not None:
            for copied in state.copies:
                self.render(copied)
            return
        lo = state.rendered_to
        spans = state.spans
        if lo >= state.size or not spans:
            return
        if state.json_at is not None and self._render_json(state):
            return
        if len(spans) == 1:  # a part on one window: nearly every part
            window, start, end = spans[0]
            upto = min(state.size, max(0, min(window.released, end) - start))
            if upto <= lo:
                return
            keep_from = self._unrendered(window, state)
            state.pieces.append(window.render(start + lo, start + upto, keep_from=keep_from))
        else:
            upto = state.size
            for window, start, end in spans:
                upto = min(upto, max(0, min(window.released, end) - start))
            if upto <= lo:
                return
            redactions: list[tuple[int, int, str]] = []
            for window, start, _ in state.spans:
                keep_from = self._unrendered(window, state)
                found = window.redactions(start + lo, start + upto, keep_from=keep_from)
                redactions += [(s - start, e - start, r) for s, e, r in found]
            state.pieces.append(apply_redactions(state.part.text[lo:upto], lo, _merge(redactions)))
        state.rendered_to = upto

    def _render_json(self, state: PartState) -> bool:
        """`render` for a piece of a JSON document that a redaction touches (False if none does):
        each redaction written so the document stays JSON (see `jsontext.py`). One that cannot
        be blocks the channel instead, with nothing of the piece rendered; one that ends where the
        piece does waits for the document's next character (or its end) to be judged. The
        window reads the piece with its escapes decoded, but gives each redaction back over raw
        characters (whole escapes): those are what the lexer judges and the client parses."""
        lo = state.rendered_to
        upto = state.size
        for window, start, end in state.spans:
            upto = min(upto, max(0, min(window.released, end) - start))
        if upto <= lo or not any(w.has_redactions(s + lo, s + upto) for w, s, _ in state.spans):
            return False
        assert state.json_at is not None and state.json_doc is not None
        # Peek without forgetting: a redaction the piece cannot take yet must still be there later.
        found: list[tuple[int, int, str]] = []
        for window, start, _ in state.spans:
            peek_from = self._unrendered(window, state)
            keep_from = start + lo if peek_from is None else min(peek_from, start + lo)
            peeked = window.redactions(start + lo, start + upto, keep_from=keep_from)
            found += [(s - start, e - start, r) for s, e, r in peeked]
        redactions = _merge(found)
        after = state.json_after if state.json_after is not None else ("" if state.json_doc.ended else None)
        if after is None and any(end == state.size for _, end, _ in redactions):
            return True  # judged once the document's next character (or its end) has come
        fitted = fit_redactions(state.part.text, state.json_at, redactions, after or "")
        if fitted is None:
            self._block_unfit([r for _, _, r in redactions])
            return True
        for window, start, _ in state.spans:
            window.redactions(start + lo, start + upto, keep_from=self._unrendered(window, state))
        state.pieces.append(apply_redactions(state.part.text[lo:upto], lo, fitted))
        state.rendered_to = upto
        return True

    def _block_unfit(self, replacements: Sequence[str]) -> None:
        """A redaction in a JSON text that would leave it invalid JSON blocks instead: the rule
        that asked for it, as a block (the client gets the provider's error, not broken JSON)."""
        if self.blocked is not None:
            return
        redacting = [v for v in self.violations if v.action == "redact"]
        cause = next((v for v in reversed(redacting) if v.rule.replacement in replacements), redacting[-1])
        violation = replace(cause, rule=replace(cause.rule, action="block"))
        self.violations.append(violation)
        self.blocked = violation
        if self.observer is not None:
            self.observer.on_violation(violation)

    def pass_through(self, state: PartState, upto: int) -> bool:
        """Render `state`, a part on one window, to `upto` as it came, if no redaction touches
        that stretch (its bytes can then leave as they are); False, with nothing done, if one does."""
        window, start, _ = state.spans[0]
        lo = state.rendered_to
        if window.has_redactions(start + lo, start + upto):
            return False
        window.redactions(start + lo, start + upto, keep_from=self._unrendered(window, state))
        state.pieces.append(state.part.text[lo:upto])
        state.rendered_to = upto
        return True

    def _unrendered(self, window: Window, rendering: PartState) -> int | None:
        """The oldest offset of `window` that a part other than `rendering` has still to render.

        A part waiting on another window of its own may be rendered after later parts of this
        one: the redactions and text it needs must outlive their renders.
        """
        pending = self._pending.get(id(window))
        if not pending:
            return None
        while pending and pending[0].rendered_to >= pending[0].size:
            pending.popleft()
        if not pending or pending[0] is rendering:
            # Nothing before it is left to render; the parts after it begin where it ends.
            return None
        # A window's parts follow one another in the order they came, and each has rendered
        # less than its own length: the first part still rendering is the oldest offset. (Walking
        # them all made a batch of n events cost n² here: 2,000 events in one read took 3.7 s.)
        for state in pending:
            if state is rendering or state.is_released:
                continue
            for owner, start, _ in state.spans:
                if owner is window:
                    return start + state.rendered_to
        return None

    def released_text(self, view: Channel) -> str:
        """What the client got on a tracked view so far: the rendered text of its released parts."""
        out = []
        for state in self._view_parts.get(view, ()):
            out.append(state.rendered())
            if not state.is_released:
                break
        return "".join(out)

    @property
    def held_chars(self) -> int:
        return sum(w.end - w.released for w in {id(w): w for w in self._views.values()}.values())

    # -- internals ---------------------------------------------------------------------------

    def _windows_for(self, views: tuple[Channel, ...], json_text: bool) -> list[Window]:
        route = self._routes.get(views)
        if route is not None:
            return route
        route = self._route(views, json_text)
        self._routes[views] = route
        return route

    def _route(self, views: tuple[Channel, ...], json_text: bool) -> list[Window]:
        """The windows of `views`, forking shared ones and opening one for views new so far (a
        view carries one kind of text, so the first part on it says whether it is JSON text)."""
        wanted = set(views)
        windows: dict[int, Window] = {}
        fresh: list[Channel] = []
        for view in views:
            window = self._views.get(view)
            if window is None:
                fresh.append(view)
                continue
            if id(window) in windows:
                continue
            readers = self._readers[id(window)]
            if not readers <= wanted:
                # Some readers of this window do not read this part: they keep the window, the
                # views that read the part go on with a copy.
                twin = self._fork(window)
                self._routes.clear()
                moving = readers & wanted
                readers -= moving
                self._readers[id(twin)] = moving
                for moved in moving:
                    self._views[moved] = twin
                window = twin
            windows[id(window)] = window
        if fresh:
            # Views that have read nothing so far all read the same text from here on.
            window = self._window(json_text=json_text)
            self._routes.clear()
            self._readers[id(window)] = set(fresh)
            for view in fresh:
                self._views[view] = window
            windows[id(window)] = window
        return list(windows.values())

    def _fork(self, window: Window) -> Window:
        """A copy of `window` for views that go their own way. Text it holds was read on those
        views too, so every part not yet released waits for the copy as well."""
        # The twin must not inherit text appended and not yet decided without deciding it too.
        self.settle()
        twin = window.fork()
        if self.checks is not None:
            self.checks.forked(window, twin)
        pending = deque(state for state in self._pending.get(id(window), ()) if not state.is_released)
        self._pending[id(window)] = pending
        self._pending[id(twin)] = deque(pending)
        for state in pending:
            start, end = next((s, e) for w, s, e in state.spans if w is window)
            state.spans.append((twin, start, end))
        return twin

    def _check_value(self, part: TextPart, *, remember: bool = True) -> tuple[str, Violation | None]:
        key = (part.text, part.is_key)
        if remember:
            cached = self._values.get(key)
            if cached is not None:
                return cached
        # Values (ids, types, keys) are checked by the rules, on their own; classifiers read text.
        # Most repeat across answers (object types, model names): decided once per rule set.
        decided = _decided_values(self.rules)
        known = decided.get((part.text, self.normalize))
        result: tuple[str, Violation | None]
        if known is None and self._is_clean_as_is(part.text):
            # The rules read it as it is, and none of them finds anything: released as it came,
            # with nothing to note. (Values that never repeat, such as OpenAI's per-event
            # `obfuscation` pad, are not remembered: they would only push the ones that do
            # repeat out.)
            result = (part.text, None)
        else:
            rendered, verdict = known if known is not None else self._decide_value(part.text, decided)
            self._note(verdict, observe=False)
            result = (rendered, verdict.blocked)
        if remember and len(self._values) < MAX_STREAM_VALUES:
            self._values[key] = result
        return result

    def _is_clean_as_is(self, text: str) -> bool:
        """The rules read `text` as it is (normalising changes nothing) and none finds anything in it."""
        return not (self.normalize and needs_mapping(text)) and finds_nothing(self.rules, text)

    def _decide_value(self, text: str, decided: dict[tuple[str, bool], tuple[str, Verdict]]) -> tuple[str, Verdict]:
        """A window's decision on a whole value, remembered per rule set unless a rule timed out."""
        window = Window(self.rules, max_holdback_chars=len(text) + 1, normalize=self.normalize)
        window.append(text)
        verdict = window.flush()
        known = (window.render(0, verdict.released), verdict)
        # A rule that ran out of time decided nothing about the value: ask again next time.
        if not any(v.is_timeout for v in verdict.violations):
            if len(decided) >= MAX_DECIDED_VALUES:
                decided.clear()
            decided[text, self.normalize] = known
        return known

    def _note(self, verdict: Verdict, *, observe: bool = True) -> None:
        observer = self.observer
        for violation in verdict.violations:
            self.violations.append(violation)
            if violation.action == "redact":
                self.is_redacted = True
            if observer is not None:
                observer.on_violation(violation)
        if verdict.blocked is not None and self.blocked is None:
            self.blocked = verdict.blocked
        if observe and verdict.held_chars > self.peak_held:
            self.peak_held = verdict.held_chars
        if observe and observer is not None:
            observer.on_holdback(verdict.held_chars)
            if verdict.forced_chars:
                observer.on_forced_release(verdict.forced_chars)


# Values decided per rule set, shared by every answer.
MAX_DECIDED_VALUES = 4096
# Values remembered per answer: the ones that repeat (ids, types, model names) come first; a
# value that differs in every event (a pad, a timestamp) must not grow a long answer's memory.
MAX_STREAM_VALUES = 256
_decided_values: PerRuleSet[dict[tuple[str, bool], tuple[str, Verdict]]] = PerRuleSet(lambda rules: {})


def _merge(redactions: list[tuple[int, int, str]]) -> list[tuple[int, int, str]]:
    """Overlapping redactions from several windows become one; the earliest one's replacement wins."""
    merged: list[tuple[int, int, str]] = []
    for start, end, replacement in sorted(redactions):
        if merged and start < merged[-1][1]:
            last = merged[-1]
            merged[-1] = (last[0], max(last[1], end), last[2])
        else:
            merged.append((start, end, replacement))
    return merged
