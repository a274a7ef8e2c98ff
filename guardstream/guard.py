"""The moderation service behind every face: the proxy, the ASGI middleware and the Python API.

A `Guard` is built once from a `Config`: rules per direction, settings, metrics. It knows no
HTTP. It checks (and redacts) request bodies, moderates whole answers and error bodies, makes
the `StreamModerator` for a streamed answer, and moderates plain text, whole or streamed:

```python
guard = Guard()                                   # the default packs: pii, secrets
guard.check("my key is AKIA4HJQ7XRZ2PLWKD5N").blocked          # Violation(rule=secrets.aws-…)

async for piece in guard.stream(model_tokens()):   # released text; raises Blocked at a match
    await websocket.send_text(piece)
```
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
from anyio.from_thread import BlockingPortal, start_blocking_portal

from guardstream.channels import PartState, TextChannels
from guardstream.checks import CheckPlan, CheckRequest, plans_from
from guardstream.classifiers import ClassifierFailure, Verdict, load_classifiers, make_limiters, run_with_policy
from guardstream.config import Config, ModerationSettings
from guardstream.errors import ConfigError, GuardstreamError, RuleError
from guardstream.metrics import Metrics
from guardstream.packs import load_rules
from guardstream.payload import TextPart, TextWalker, dumps, loads_strict, read_as_one
from guardstream.probes import PROBE_BUDGET_SECONDS, slow_rules
from guardstream.providers.base import Provider, StreamCodec, block_message, drop_stale_logprobs, rewrite_payload
from guardstream.rules import Direction, Rule, RuleSet, longest_example_match
from guardstream.stream import StreamModerator
from guardstream.window import RuleBudget, TextVerdict, Violation, Window, moderate_text

_T = TypeVar("_T")


class Blocked(GuardstreamError):
    """A rule blocked the text. `rule` and `category` name it; the text is never included.

    ```python
    try:
        async for piece in guard.stream(tokens):
            await send(piece)
    except guardstream.Blocked as exc:
        await send(f"[stopped: {exc.category}]")
    ```
    """

    def __init__(self, violation: Violation, *, direction: Direction = "output") -> None:
        self.violation = violation
        self.rule = violation.rule.id
        self.category = violation.rule.category
        self.direction = direction
        self.is_timeout = violation.is_timeout
        super().__init__(block_message(violation, "the request" if direction == "input" else "the response"))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(rule={self.rule!r}, category={self.category!r}, direction={self.direction!r})"


@dataclass
class BodyVerdict:
    """What moderation decided about a JSON body (a request, a whole answer, an error body)."""

    payload: Any
    parts: list[TextPart] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    violations: list[Violation] = field(default_factory=list)
    blocked: Violation | None = None
    is_changed: bool = False


def check_holdback(rules: Iterable[Rule], max_holdback_chars: int) -> None:
    """Zero leak holds for matches up to max_holdback_chars; a cap below a rule's own examples
    would quietly switch that rule off, so refuse to start instead."""
    for rule in rules:
        longest = longest_example_match(rule)
        if rule.action != "flag" and longest > max_holdback_chars:
            raise ConfigError(
                f"max_holdback_chars = {max_holdback_chars} is shorter than matches of rule {rule.id} "
                f"({longest} characters in its examples), which could then leak; raise it to at least {longest}."
            )


# Error bodies: the message text and whatever else they carry, one text; codes and types on their own.
ERROR_WALKER = TextWalker(
    structural=frozenset({"type", "code", "status", "param", "request_id", "id", "reason", "domain"}),
    known_keys=frozenset(
        {"error", "type", "code", "status", "param", "message", "request_id", "details", "id", "reason", "domain"}
    ),
)


class _ViolationRecorder:
    """Counts the violations found in a whole body (bodies have no hold-back to observe)."""

    def __init__(self, metrics: Metrics, direction: Direction) -> None:
        self.metrics = metrics
        self.direction = direction

    def on_violation(self, violation: Violation) -> None:
        self.metrics.violation(violation, self.direction)

    def on_holdback(self, chars: int) -> None:
        pass

    def on_forced_release(self, chars: int) -> None:
        pass


class Guard:
    """Moderation for one set of rules and settings.

    `config` names the packs (`[moderation] packs`) and settings; `rules` (a loaded `RuleSet`)
    replaces the packs when given. `metrics` records what the guard does.
    """

    def __init__(
        self,
        config: Config | None = None,
        *,
        rules: RuleSet | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.config = config or Config()
        self.settings: ModerationSettings = self.config.moderation
        timeout = self.settings.rule_timeout_ms / 1000
        self.ruleset = rules if rules is not None else load_rules(self.settings.packs, timeout=timeout)
        check_holdback(self.ruleset, self.settings.max_holdback_chars)
        # Rules that backtrack catastrophically are refused before they can stall a stream.
        self.warnings: list[str] = []
        for rule, shape in slow_rules(self.ruleset):
            reason = f"its regex backtracks catastrophically (over {PROBE_BUDGET_SECONDS * 1000:g} ms on {shape})"
            if not self.settings.allow_slow_rules:
                raise RuleError(
                    f"{reason}; bound its repeats or anchor it on a literal, or set "
                    "[moderation] allow_slow_rules = true to load it anyway.",
                    path=rule.source,
                    rule_id=rule.id,
                )
            self.warnings.append(f"rule {rule.id}: {reason}; loaded because allow_slow_rules is set.")
        self.output_rules: tuple[Rule, ...] = self.ruleset.for_direction("output")
        self.input_rules: tuple[Rule, ...] = self.ruleset.for_direction("input")
        self.metrics = metrics
        if metrics is not None:
            metrics.track_rules(rule.id for rule in self.ruleset)
        # Classifiers: built now, so a missing key or module stops start-up; called by the faces.
        try:
            self.classifiers = load_classifiers(self.config.classifiers, client=None)
        except ConfigError as exc:
            # What a classifier lacks (an API key's variable, a module) is found here, after the
            # file was read: say which file configured it, as every other config error does.
            if self.config.source in (None, "<config>"):
                raise
            raise ConfigError(f"{self.config.source}: {exc}") from None
        self._by_name = {c.name: c for c in self.classifiers}
        self._limiters = make_limiters(self.classifiers)
        self.output_plans = plans_from(self.config.classifiers, "output")
        self.input_plans = plans_from(self.config.classifiers, "input")

    def rules_for(self, direction: Direction) -> tuple[Rule, ...]:
        return self.output_rules if direction == "output" else self.input_rules

    # -- classifiers --------------------------------------------------------------------------

    async def run_check(self, request: CheckRequest) -> list[Verdict | ClassifierFailure]:
        """One classifier call for a check the window asked for, under the classifier's policy."""
        classifier = self._by_name[request.classifier]
        metrics = None
        if self.metrics is not None and request.classifier in self.metrics.classifiers:
            metrics = self.metrics.classifier(request.classifier)
        return await run_with_policy(classifier, request.texts, self._limiters[classifier.name], metrics)

    async def settle(self, moderator: StreamModerator) -> bytes:
        """Run every check the moderator asks for, and what their answers lead to, until none is out.

        For faces that can simply wait (the middleware, the Python API); the proxy runs checks
        alongside the stream instead, so async-mode classifiers do not hold it up.
        """
        out: list[bytes] = []
        while moderator.is_checking and not moderator.is_done:
            requests = moderator.take_checks()
            if not requests:
                break  # pragma: no cover - checks asked for are always taken here
            results = await _gather(self.run_check(r) for r in requests)
            for request, result in zip(requests, results, strict=True):
                out.append(moderator.check_done(request, result))
        return b"".join(out)

    async def aclose(self) -> None:
        await self.classifiers.aclose()

    # -- plain text ---------------------------------------------------------------------------

    def check(self, text: str, *, direction: Direction = "output") -> TextVerdict:
        """Moderate a complete text: the same decisions a stream of it would get, however split."""
        return moderate_text(self.rules_for(direction), text, normalize=self.settings.normalize)

    def window(self, *, direction: Direction = "output") -> Window:
        return Window(
            self.rules_for(direction),
            max_holdback_chars=self.settings.max_holdback_chars,
            context_chars=self.settings.context_chars,
            normalize=self.settings.normalize,
        )

    async def stream(self, chunks: AsyncIterable[str], *, direction: Direction = "output") -> AsyncIterator[str]:
        """Yield text as soon as it is cleared (by the rules and any classifier); raise `Blocked` at a
        block: nothing of the blocked text is yielded."""
        released = _Released(self._text_channels(direction))
        async for chunk in chunks:
            released.add(chunk, direction)
            await self._settle_channels(released.channels)
            piece = released.take()
            if piece:
                yield piece
            released.raise_if_blocked(direction)
        released.channels.flush()
        await self._settle_channels(released.channels)
        piece = released.take()
        if piece:
            yield piece
        released.raise_if_blocked(direction)

    def stream_sync(self, chunks: Iterable[str], *, direction: Direction = "output") -> Iterator[str]:
        """`stream` for synchronous code: the same guarantee, the same `Blocked`.

        Classifier checks, if any, run on an event loop of its own in a helper thread, one per call
        and only once a check is due; its connections are closed before the call returns, so a
        later call (on another loop) never meets a connection of a loop that has ended."""
        released = _Released(self._text_channels(direction))
        with ExitStack() as stack:
            portal: BlockingPortal | None = None

            def settle() -> None:
                nonlocal portal
                if not released.channels.is_checking:
                    return
                if portal is None:
                    portal = stack.enter_context(start_blocking_portal())
                    stack.callback(portal.call, self.classifiers.aclose)
                portal.call(self._settle_channels, released.channels)

            for chunk in chunks:
                released.add(chunk, direction)
                settle()
                piece = released.take()
                if piece:
                    yield piece
                released.raise_if_blocked(direction)
            released.channels.flush()
            settle()
            piece = released.take()
            if piece:
                yield piece
            released.raise_if_blocked(direction)

    def _text_channels(self, direction: Direction) -> TextChannels:
        return TextChannels(
            self.rules_for(direction),
            max_holdback_chars=self.settings.max_holdback_chars,
            context_chars=self.settings.context_chars,
            normalize=self.settings.normalize,
            budget=RuleBudget(self.settings.rule_budget_ms / 1000),
            plans=self.output_plans if direction == "output" else self.input_plans,
        )

    async def _settle_channels(self, channels: TextChannels) -> None:
        while channels.is_checking and channels.blocked is None:
            requests = channels.take_checks()
            if not requests:
                break  # pragma: no cover - checks asked for are always taken here
            results = await _gather(self.run_check(r) for r in requests)
            for request, result in zip(requests, results, strict=True):
                channels.resolve(request, result)

    # -- JSON bodies --------------------------------------------------------------------------

    def moderate_parts(self, payload: Any, parts: list[TextPart], *, direction: Direction) -> BodyVerdict:
        """Decide every part of a complete body at once, and write redactions back into `payload`."""
        observer = _ViolationRecorder(self.metrics, direction) if self.metrics is not None else None
        channels = TextChannels(
            self.rules_for(direction),
            # The whole body is here: nothing needs releasing before it is decided.
            max_holdback_chars=max(self.settings.max_holdback_chars, sum(len(p.text) for p in parts) + 1),
            context_chars=self.settings.context_chars,
            normalize=self.settings.normalize,
            observer=observer,
        )
        states = [channels.add(part) for part in parts]
        channels.flush()
        for state in states:
            channels.render(state)
        texts = [state.rendered() for state in states]
        verdict = BodyVerdict(payload, parts, texts, list(channels.violations), channels.blocked)
        if channels.blocked is None:
            verdict.is_changed = any(t != p.text for t, p in zip(texts, parts, strict=True))
            if verdict.is_changed:
                rewrite_payload(payload, parts, texts)
        return verdict

    def check_request(self, provider: Provider, payload: Any) -> BodyVerdict:
        """Input rules over every string of a request body the model reads (rewritten on redaction)."""
        return self.moderate_parts(payload, provider.payload.request_parts(payload), direction="input")

    async def classify_request(self, provider: Provider, payload: Any) -> Violation | None:
        """Input classifiers over the request's text, before the model is called: the violation, if any."""
        return await self._classify(provider.payload.request_parts(payload), self.input_plans)

    async def classify_answer(self, provider: Provider, payload: Any) -> Violation | None:
        """Output classifiers over a whole (non-streaming) answer."""
        return await self._classify(provider.payload.response_parts(payload), self.output_plans)

    async def _classify(self, parts: Iterable[TextPart], plans: tuple[CheckPlan, ...]) -> Violation | None:
        if not plans:
            return None
        channels = TextChannels((), normalize=False, plans=plans)
        for part in parts:
            if not part.is_value:
                # Read as a person reads it: each string on a line of its own.
                channels.add(TextPart((("text",),), part.text + "\n", part.path))
        channels.flush()
        await self._settle_channels(channels)
        return channels.blocked

    def moderate_answer(self, provider: Provider, payload: Any) -> BodyVerdict:
        """Output rules over a whole (non-streaming) answer; a choice whose text was redacted
        keeps no logprobs (they would still spell what was redacted)."""
        verdict = self.moderate_parts(payload, provider.payload.response_parts(payload), direction="output")
        if verdict.is_changed:
            drop_stale_logprobs(payload, verdict.parts, verdict.texts)
        return verdict

    def moderate_error_body(self, body: bytes) -> tuple[bytes, Violation | None, bool]:
        """An upstream's error body passes the output rules like any answer: (body, block, changed).

        JSON bodies keep their shape (every string is text); anything else is moderated as text.
        A body that is neither valid JSON nor UTF-8 cannot be read, so it is not relayed: callers
        replace it with their own error.
        """
        try:
            payload = loads_strict(body)
        except GuardstreamError:
            try:
                text = body.decode("utf-8")
            except UnicodeDecodeError:
                return b"", None, True
            verdict = self.check(text)
            return verdict.text.encode(), verdict.blocked, verdict.text != text
        parts = read_as_one(ERROR_WALKER, payload, ("error",))
        result = self.moderate_parts(payload, parts, direction="output")
        if result.is_changed:
            return dumps(result.payload).encode(), None, True
        return body, result.blocked, False

    # -- streams ------------------------------------------------------------------------------

    def stream_moderator(
        self, codec: StreamCodec, *, observer: Any = None, keep_fields: bool = False
    ) -> StreamModerator:
        return StreamModerator(
            codec,
            self.output_rules,
            max_holdback_chars=self.settings.max_holdback_chars,
            context_chars=self.settings.context_chars,
            on_violation=self.settings.on_violation,
            normalize=self.settings.normalize,
            observer=observer,
            rule_budget_seconds=self.settings.rule_budget_ms / 1000,
            plans=self.output_plans,
            keep_fields=keep_fields,
        )


class _Released:
    """Text chunks in order, and how much of each has been handed out."""

    def __init__(self, channels: TextChannels) -> None:
        self.channels = channels
        self._states: deque[PartState] = deque()
        self._given = 0  # pieces of the head part already handed out

    def add(self, chunk: str, direction: Direction) -> None:
        if chunk:
            self._states.append(self.channels.add(TextPart(((direction,),), chunk, ())))
            # The windows decide what arrived here, not at the end: without this, nothing would be
            # released (and no block raised) before the source ran out.
            self.channels.settle()

    def take(self) -> str:
        out: list[str] = []
        while self._states:
            head = self._states[0]
            self.channels.render(head)
            out += head.pieces[self._given :]
            self._given = len(head.pieces)
            if not head.is_released:
                break
            self._states.popleft()
            self._given = 0
        return "".join(out)

    def raise_if_blocked(self, direction: Direction) -> None:
        if self.channels.blocked is not None:
            raise Blocked(self.channels.blocked, direction=direction)


async def _gather(calls: Iterable[Awaitable[_T]]) -> list[_T]:
    """Await every call concurrently; results in order."""
    pending = list(calls)
    results: list[_T | None] = [None] * len(pending)

    async def one(i: int, call: Awaitable[_T]) -> None:
        results[i] = await call

    async with anyio.create_task_group() as tg:
        for i, call in enumerate(pending):
            tg.start_soon(one, i, call)
    return [r for r in results if r is not None]
