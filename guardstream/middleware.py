"""`GuardStreamMiddleware`: moderate the SSE your own app streams, as pure ASGI middleware.

```python
app = FastAPI()
app.add_middleware(GuardStreamMiddleware, packs=["pii", "secrets"], text_field="content")
```

In Starlette's shape (like its `GZipMiddleware`): one responder per request wraps `send`. A
`text/event-stream` response is moderated event by event; anything else passes after a header
check. The format is read from the events: OpenAI-, Anthropic- and Gemini-style streams are
moderated (and cut) in their own format, any other JSON events by their fields, non-JSON `data:`
lines as plain text.

On a block the client gets one terminal event and the body ends. For the app, that is the client
going away: its `receive` answers `http.disconnect` from then on, so Starlette's `StreamingResponse`
cancels its body task. A generator waiting on its model gets the cancellation inside that wait and
closes there (its `finally` and `async with` exits run at once, so it pulls no more tokens), then
the response's background tasks run and the endpoint's dependencies exit cleanly, as after any
disconnect. Nothing is raised into the app: an exception travelling through Starlette's task group
holds the generator in a reference cycle until the cyclic collector runs, and skips the background
tasks. To get that disconnect path the app is shown ASGI spec 2.3 at most (from 2.4 Starlette drops
its disconnect listener and expects `send` to raise instead). The app's `receive` is never read
ahead of the app: the middleware only races the app's own `receive` call against the block.
"""

from __future__ import annotations

import json
import time
import weakref
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NoReturn

import anyio
from prometheus_client import CollectorRegistry, Gauge
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from guardstream.config import Config
from guardstream.errors import GuardstreamError
from guardstream.guard import Guard
from guardstream.metrics import Metrics, StreamMetrics
from guardstream.payload import dumps, loads_strict, read_as_one
from guardstream.providers.base import ParsedEvent, ReleasedText, StreamCodec, block_message
from guardstream.providers.generic import WALKER, ErrorEvent, GenericStream, default_error_event
from guardstream.providers.registry import sniff_codec
from guardstream.sse import Event
from guardstream.stream import StreamModerator
from guardstream.window import Violation


class _StreamEnded(Exception):
    """Raised into an app that goes on sending long after its stream ended: stop producing.

    Only an app that never listens for the disconnect (Starlette's `StreamingResponse` does) sees it.
    """


# The middleware's metrics on each registry it was given: several middleware instances (or apps)
# may share one registry, which can hold each metric only once.
_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, Metrics] = weakref.WeakKeyDictionary()
# The provider label of what the middleware refuses before the app answers (a request body it
# reads by its JSON fields).
REQUEST_PROVIDER = "json-field"

# How long `send` waits, once the stream ended, for the app's disconnect listener to cancel it (a
# few turns of the event loop) before it raises to stop an app that does not listen.
STOP_GRACE_SECONDS = 1.0
APP_FAILED_MESSAGE = "guardstream stopped the response: the app's stream failed mid-stream"
# The ASGI spec version the app is shown: from 2.4 Starlette stops listening for the disconnect.
APP_SPEC_VERSION = (2, 3)


async def unattached_send(message: Message) -> NoReturn:  # pragma: no cover - replaced before use
    raise RuntimeError("send awaitable not set")


class GuardStreamMiddleware:
    """Moderates `text/event-stream` responses of the wrapped app (and, optionally, its requests).

    - `config` / `packs`: which rules (default: the `pii` and `secrets` packs); `guard`: a ready
      `Guard` shared with other parts of the app.
    - `text_field`: the dotted field of the app's JSON events that carries the text (`content`,
      `delta.text`). Every other string is moderated too; this one is where redaction happens.
    - `paths`: path prefixes to moderate (default: every path).
    - `moderate_requests`: check request bodies that parse as JSON (whatever their Content-Type)
      with the input rules before the endpoint runs; bodies over `[server] max_body_bytes` get 413.
    - `error_event`: `(message, rule, category) -> data` for the terminal event of an app's own
      format (default `{"error": {"message", "type", "code", "rule"}}`).
    - `registry`: where the guard's metrics go (the proxy's names and labels). Every middleware
      given the same registry shares one set of metrics, so several apps in a process may pass it.
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        config: Config | None = None,
        packs: Sequence[str] | None = None,
        guard: Guard | None = None,
        text_field: str | None = None,
        paths: Sequence[str] | None = None,
        moderate_requests: bool = False,
        error_event: ErrorEvent = default_error_event,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.app = app
        if guard is None:
            config = config or Config()
            if packs is not None:
                config = replace(config, moderation=replace(config.moderation, packs=tuple(packs)))
            metrics = _metrics_on(registry) if registry is not None else None
            guard = Guard(config, metrics=metrics)
        self.guard = guard
        self.text_field = text_field
        self.paths = tuple(paths) if paths is not None else None
        self.moderate_requests = moderate_requests
        self.error_event = error_event

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        if self.paths is not None and not scope["path"].startswith(self.paths):
            await self.app(scope, receive, send)
            return
        await _GuardResponder(self, scope).run(receive, send)


class _GuardResponder:
    """One request: state lives here, never on the middleware."""

    def __init__(self, middleware: GuardStreamMiddleware, scope: Scope) -> None:
        self.middleware = middleware
        self.guard = middleware.guard
        self.scope = scope
        self.send: Send = unattached_send
        self.start: Message | None = None
        self.moderator: StreamModerator | None = None
        self.is_finished = False
        # Set once the client's body has ended: the app is told the client went away.
        self.ended = anyio.Event()
        self.client_gone = False
        self.codec: _SniffingStream | None = None
        self.refused: str | None = None  # the outcome of a request refused before the app answered
        self.active: Gauge | None = None  # the active-streams gauge this stream counts in

    async def run(self, receive: Receive, send: Send) -> None:
        started = time.monotonic()
        try:
            await self._run(receive, send)
        finally:
            if self.active is not None:
                self.active.dec()
            self._record(time.monotonic() - started)

    def _count_active(self) -> None:
        """Count the stream in `guardstream_active_streams` once its first event named its format."""
        if self.active is None and self.codec is not None and self.codec.is_sniffed and self.guard.metrics is not None:
            self.active = self.guard.metrics.stream(self.codec.provider).active
            self.active.inc()

    def _record(self, duration_seconds: float) -> None:
        """Count a request the middleware moderated (an event stream, or a body it refused) under the
        proxy's names and labels, so the same dashboards and alerts read a middleware deployment."""
        metrics = self.guard.metrics
        if metrics is None:
            return
        if self.refused is not None:
            metrics.record_request(REQUEST_PROVIDER, self.refused, duration_seconds)
        elif self.moderator is not None and self.codec is not None:
            metrics.record_request(self.codec.provider, self._stream_outcome(self.moderator), duration_seconds)

    def _stream_outcome(self, moderator: StreamModerator) -> str:
        if moderator.blocked is not None:
            return "blocked_output"
        if self.client_gone and not self.is_finished:
            return "client_closed"
        if moderator.failure is not None:
            return "upstream_error"
        if not moderator.is_done:
            return "client_closed"  # cancelled before the body ended
        return "redacted" if moderator.is_redacted else "passed"

    async def _run(self, receive: Receive, send: Send) -> None:
        self.send = send
        if self.middleware.moderate_requests and self.scope["method"] in ("POST", "PUT", "PATCH"):
            receive = await self._check_request(receive)
            if self.is_finished:
                return
        try:
            app_receive = self._receive_until_ended(receive)
            await self.middleware.app(_listening_scope(self.scope), app_receive, self.send_with_moderation)
        except _StreamEnded:
            pass
        except Exception:
            if self.moderator is not None and not self.is_finished and self.start is None:
                # The body has begun: a 500 can no longer be sent. End it with the format's
                # terminal failure event (held text dropped) so a client reads an error, not a cut
                # connection; the exception goes on to the server's log.
                await self._finish(self.moderator.fail(APP_FAILED_MESSAGE))
            raise
        if self.moderator is not None and not self.is_finished and not self.client_gone:
            # The app returned without ending its body: end it ourselves, decided.
            out = self.moderator.finish()
            await self._finish(out + await self.guard.settle(self.moderator))

    def _receive_until_ended(self, receive: Receive) -> Receive:
        """The app's `receive`: the client's own messages, and `http.disconnect` once its body ended."""
        disconnect: Message = {"type": "http.disconnect"}

        async def receive_until_ended() -> Message:
            if self.ended.is_set():
                return disconnect
            message: Message | None = None
            async with anyio.create_task_group() as tg:

                async def client() -> None:
                    nonlocal message
                    message = await receive()
                    tg.cancel_scope.cancel()

                tg.start_soon(client)
                await self.ended.wait()
                tg.cancel_scope.cancel()
            if message is None:
                return disconnect
            if message["type"] == "http.disconnect":
                self.client_gone = True
            return message

        return receive_until_ended

    async def send_with_moderation(self, message: Message) -> None:
        if self.is_finished:
            if message["type"] != "http.response.body" or not message.get("more_body", False):
                return  # the app ends a body that has already ended
            # The client's body has ended and the app was told the client left: wait here for its
            # disconnect listener to cancel it (a cancellation, unlike an exception of ours, pins
            # nothing in memory, so the generator is closed as soon as the response is dropped).
            with anyio.move_on_after(STOP_GRACE_SECONDS):
                await anyio.sleep_forever()
            raise _StreamEnded  # an app that does not listen for the disconnect
        if message["type"] == "http.response.start":
            # Don't send the start until we know whether the body will change (its headers then do).
            self.start = message
            headers = MutableHeaders(raw=message["headers"])
            if headers.get("content-type", "").split(";")[0].strip().lower() != "text/event-stream":
                await self.send(message)
                self.start = None
                return
            if headers.get("content-encoding", "identity").lower() != "identity":
                # Compressed events cannot be read, so they are not sent (fail closed).
                await self._refuse("the app's event stream is compressed, so guardstream cannot read it")
                return
            del headers["content-length"]
            headers["cache-control"] = "no-store"
            headers["x-accel-buffering"] = "no"
            self.moderator = self._moderator()
            return
        if message["type"] != "http.response.body":
            await self.send(message)
            return
        if self.moderator is None:
            if self.start is not None:  # pragma: no cover - a body before its start: pass it on
                await self.send(self.start)
                self.start = None
            await self.send(message)
            return
        moderator = self.moderator
        out = moderator.feed(message.get("body", b""))
        self._count_active()
        # Classifier checks are awaited here: the app's next token waits for them (backpressure).
        out += await self.guard.settle(moderator)
        if not message.get("more_body", False):
            out += moderator.finish()
            out += await self.guard.settle(moderator)
            await self._finish(out)
            return
        if moderator.is_done:
            await self._finish(out)
            return
        await self._send_body(out, more_body=True)

    def _moderator(self) -> StreamModerator:
        codec = self.codec = _SniffingStream(self.middleware.text_field, self.middleware.error_event)
        metrics = self.guard.metrics
        observer = _SniffedObserver(metrics, codec) if metrics is not None else None
        # The app's client may be an EventSource: its ids and retry intervals reach it (moderated).
        return self.guard.stream_moderator(codec, observer=observer, keep_fields=True)

    async def _send_body(self, body: bytes, *, more_body: bool) -> None:
        try:
            if self.start is not None:
                await self.send(self.start)
                self.start = None
            if body or not more_body:
                await self.send({"type": "http.response.body", "body": body, "more_body": more_body})
        except OSError:  # ASGI 2.4: the client is gone
            self.client_gone = True
            raise

    async def _finish(self, out: bytes) -> None:
        self.is_finished = True
        await self._send_body(out, more_body=False)
        self._end()

    def _end(self) -> None:
        """The client's response is complete: from now on the app is told the client went away.

        Only once it is complete: the cancellation this starts must not cut the last write short.
        Returning from the `send` that ended it lets the app's generator go on to its next wait on
        its model, where the cancellation lands and closes it.
        """
        self.ended.set()

    async def _refuse(self, message: str) -> None:
        self.start = None
        self.is_finished = True
        body = dumps({"error": {"message": f"guardstream: {message}", "type": "server_error", "code": "stream_error"}})
        await _send_json(self.send, 502, body.encode())
        self._end()

    async def _check_request(self, receive: Receive) -> Receive:
        """Read the whole body, check it, and replay it (possibly redacted) to the app.

        A body is checked when it parses as JSON, whatever its Content-Type says: Starlette's
        `request.json()` reads any body, and a browser's `fetch` labels a JSON string
        `text/plain;charset=UTF-8`. A body too large to check is refused, never passed unchecked.
        """
        limit = self.guard.config.server.max_body_bytes
        chunks: list[bytes] = []
        size = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return receive  # the client left; the app will see it
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                reason = f"guardstream refused the request: its body is over {limit} bytes ([server] max_body_bytes)."
                await self._reject(413, reason, "request_too_large")
                return receive
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        media_type = MutableHeaders(scope=self.scope).get("content-type", "").split(";")[0].strip().lower()
        if body:
            try:
                payload = loads_strict(body)
            except GuardstreamError as exc:
                if media_type == "application/json" or media_type.endswith("+json") or _reads_as_json(body):
                    reason = f"guardstream could not read the request body: {exc}."
                    await self._reject(400, reason, "invalid_request_body")
                    return receive
                payload = _NOT_JSON
            if payload is not _NOT_JSON:
                parts = read_as_one(WALKER, payload, ("request",))
                verdict = self.guard.moderate_parts(payload, parts, direction="input")
                if verdict.blocked is not None:
                    reason = block_message(verdict.blocked, "the request")
                    await self._reject(400, reason, "content_filter")
                    return receive
                if verdict.is_changed:
                    body = dumps(verdict.payload).encode()
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        return replay

    async def _reject(self, status: int, message: str, code: str) -> None:
        self.is_finished = True
        self.refused = "blocked_input" if code == "content_filter" else "bad_request"
        await _send_json(self.send, status, dumps({"error": {"message": message, "type": code, "code": code}}).encode())


_NOT_JSON: Any = object()


def _reads_as_json(body: bytes) -> bool:
    """Would a lenient parser (the app's `json.loads`) read what the strict one refused?"""
    try:
        json.loads(body)
    except ValueError:  # not JSON at all (UnicodeDecodeError is a ValueError too)
        return False
    except RecursionError:
        return True
    return True


def _metrics_on(registry: CollectorRegistry) -> Metrics:
    """The guardstream metrics on `registry`, registered by the first middleware given it."""
    metrics = _METRICS.get(registry)
    if metrics is None:
        metrics = _METRICS[registry] = Metrics(registry)
    return metrics


def _listening_scope(scope: Scope) -> Scope:
    """The scope the app sees: an ASGI spec version from which Starlette listens for the disconnect.

    Lowering the version only withdraws a promise (2.4: `send` raises `OSError` once the client is
    gone); everything a 2.3 app relies on still holds. The scope is copied, never changed in place.
    """
    asgi = scope.get("asgi", {})
    try:
        version = tuple(int(part) for part in str(asgi.get("spec_version", "2.0")).split("."))
    except ValueError:
        version = (2, 0)
    if version <= APP_SPEC_VERSION:
        return scope
    return {**scope, "asgi": {**asgi, "spec_version": ".".join(map(str, APP_SPEC_VERSION))}}


async def _send_json(send: Send, status: int, body: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


class _SniffedObserver:
    """The stream's metrics under the provider its events turn out to be in.

    The format is known only from the first event, after the moderator was made: each call asks
    the codec (a provider's stream, `json-field` or `text`) and uses the metrics bound to it.
    """

    def __init__(self, metrics: Metrics, codec: _SniffingStream) -> None:
        self.metrics = metrics
        self.codec = codec
        self._bound: dict[str, StreamMetrics] = {}

    def _current(self) -> StreamMetrics:
        provider = self.codec.provider
        bound = self._bound.get(provider)
        if bound is None:
            bound = self._bound[provider] = self.metrics.stream(provider)
        return bound

    def on_violation(self, violation: Violation) -> None:
        self._current().on_violation(violation)

    def on_holdback(self, chars: int) -> None:
        self._current().on_holdback(chars)

    def on_forced_release(self, chars: int) -> None:
        self._current().on_forced_release(chars)

    def on_release(self, chars: int, delays_seconds: Sequence[float]) -> None:
        self._current().on_release(chars, delays_seconds)

    def on_scan(self, seconds: float) -> None:
        self._current().on_scan(seconds)


class _SniffingStream:
    """Picks the codec from the first event: a provider's own format, or the app's."""

    def __init__(self, text_field: str | None, error_event: ErrorEvent) -> None:
        self._generic = GenericStream(text_field=text_field, error_event=error_event)
        self._codec: StreamCodec | None = None

    @property
    def provider(self) -> str:
        return self._codec.provider if self._codec is not None else self._generic.provider

    @property
    def is_complete(self) -> bool:
        return self._codec.is_complete if self._codec is not None else True

    @property
    def is_sniffed(self) -> bool:
        """The first event has been read, so `provider` names the stream's format."""
        return self._codec is not None

    def _pick(self, event: Event) -> StreamCodec:
        if self._codec is None:
            try:
                payload: Any = json.loads(event.data)
            except ValueError:
                payload = None
            self._codec = sniff_codec(event, payload) or self._generic
        return self._codec

    def parse(self, event: Event) -> ParsedEvent:
        return self._pick(event).parse(event)

    def render(self, event: Event, parsed: ParsedEvent, texts: Sequence[str], *, partial: bool) -> bytes:
        return self._pick(event).render(event, parsed, texts, partial=partial)

    def violation_event(self, message: str, *, rule: str, category: str) -> bytes:
        return (self._codec or self._generic).violation_event(message, rule=rule, category=category)

    def failure_event(self, message: str) -> bytes:
        return (self._codec or self._generic).failure_event(message)

    def delivered(self, parsed: ParsedEvent, *, partial: bool) -> None:
        (self._codec or self._generic).delivered(parsed, partial=partial)

    def finish_events(self, released: ReleasedText) -> bytes:
        return (self._codec or self._generic).finish_events(released)

    def keepalive(self) -> bytes:
        return (self._codec or self._generic).keepalive()
