"""The drop-in proxy: a plain ASGI app around `httpx.AsyncClient.send(stream=True)`.

It is not a Starlette app with responses on purpose: request/response views are awkward for
streaming (httpx#830), and a `StreamingResponse` background task does not run when the stream
raises (starlette#1152), so the upstream response is closed in `finally` here instead.

Routing is by path (DESIGN.md §3): a moderated route gets input rules on the request and a
`StreamModerator` (or whole-body moderation) on the answer; any other path is forwarded
untouched to the OpenAI upstream.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any

import anyio
import httpx
from prometheus_client import CollectorRegistry, make_asgi_app

from guardstream.config import Config
from guardstream.errors import ConfigError
from guardstream.metrics import Metrics
from guardstream.packs import load_rules
from guardstream.providers.base import Provider, block_message, dumps, set_path
from guardstream.providers.openai_chat import OPENAI_CHAT
from guardstream.routes import route_for
from guardstream.rules import Rule, RuleSet, longest_example_match
from guardstream.stream import StreamModerator
from guardstream.window import Violation, moderate_whole

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "proxy-connection",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
DEFAULT_TIMEOUT = httpx.Timeout(connect=10.0, read=600.0, write=60.0, pool=10.0)
# Idle pooled connections are dropped before common servers' keep-alive timeouts (uvicorn: 5 s), so
# a request rarely lands on a connection the upstream is closing at that moment.
DEFAULT_LIMITS = httpx.Limits(keepalive_expiry=4.0)
UPSTREAM_DROPPED = "guardstream stopped the response: the upstream connection broke off mid-stream"
PROVIDERS: dict[str, Provider] = {OPENAI_CHAT.name: OPENAI_CHAT}


@dataclass(frozen=True)
class _Route:
    provider: Provider | None
    upstream: str


def _check_holdback(rules: RuleSet, max_holdback_chars: int) -> None:
    """Zero leak holds for matches up to max_holdback_chars; a cap below a rule's own examples
    would quietly switch that rule off, so refuse to start instead."""
    for rule in rules:
        longest = longest_example_match(rule)
        if rule.action != "flag" and longest > max_holdback_chars:
            raise ConfigError(
                f"max_holdback_chars = {max_holdback_chars} is shorter than matches of rule {rule.id} "
                f"({longest} characters in its examples), which could then leak; raise it to at least {longest}."
            )


def _strip_hop_by_hop(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    named = {
        token.strip().lower() for name, value in headers if name.lower() == "connection" for token in value.split(",")
    }
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() not in named]


class GuardstreamProxy:
    """The ASGI app returned by `create_app`."""

    def __init__(self, config: Config, client: httpx.AsyncClient | None, registry: CollectorRegistry) -> None:
        if config.upstreams.uses_mock():
            raise ConfigError("upstream 'mock' is started by `guardstream serve`; pass the mock's URL to create_app.")
        self.config = config
        rules = load_rules(config.moderation.packs)
        _check_holdback(rules, config.moderation.max_holdback_chars)
        self.output_rules: tuple[Rule, ...] = rules.for_direction("output")
        self.input_rules: tuple[Rule, ...] = rules.for_direction("input")
        self.registry = registry
        self.metrics = Metrics(registry)
        self.metrics_app = make_asgi_app(registry)
        self._client = client
        self._owns_client = client is None

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(timeout=DEFAULT_TIMEOUT, limits=DEFAULT_LIMITS, follow_redirects=False)
        return self._client

    async def aclose(self) -> None:
        if self._owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not proxied
            return
        path: str = scope["path"]
        if path == "/metrics" and scope["method"] == "GET":
            await self.metrics_app(scope, receive, send)
            return
        if path == "/healthz":
            await _send_bytes(send, 200, b'{"status":"ok"}', [("content-type", "application/json")])
            return
        provider_name, upstream_key = route_for(scope["method"], path)
        route = _Route(PROVIDERS.get(provider_name or ""), getattr(self.config.upstreams, upstream_key))
        await _Exchange(self, route, scope, receive, send).run()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _Exchange:
    """One request through the proxy (the per-request responder, in Starlette's shape)."""

    def __init__(self, proxy: GuardstreamProxy, route: _Route, scope: Scope, receive: Receive, send: Send) -> None:
        self.proxy = proxy
        self.route = route
        self.provider = route.provider
        self.label = route.provider.name if route.provider else "passthrough"
        self.scope = scope
        self.receive = receive
        self.send = send
        self.metrics = proxy.metrics
        self.client_gone = False

    async def run(self) -> None:
        body = await self._read_body()
        if self.client_gone:
            return
        payload: Any = None
        if self.provider is not None:
            try:
                payload = json.loads(body) if body else None
            except (ValueError, RecursionError):
                payload = None  # not JSON the provider would accept either: forward, let it answer
            if payload is not None:
                blocked, redacted = self._check_input(payload)
                if blocked is not None:
                    await self._reply_blocked(blocked, "input")
                    return
                if redacted:
                    body = dumps(payload).encode()
        await self._forward(body)

    async def _read_body(self) -> bytes:
        chunks = []
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                return b""
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _check_input(self, payload: Any) -> tuple[Violation | None, bool]:
        """Input rules on every user-supplied text: (the block, if any; whether `payload` was redacted)."""
        assert self.provider is not None
        redacted = False
        for path, text in self.provider.request_texts(payload):
            new_text, violations, blocked = moderate_whole(self.proxy.input_rules, text)
            for violation in violations:
                self.metrics.violation(violation, "input")
            if blocked is not None:
                return blocked, False
            if new_text != text:
                set_path(payload, path, new_text)
                redacted = True
        return None, redacted

    async def _reply_blocked(self, violation: Violation, direction: str) -> None:
        """HTTP 400 in the provider's format: the honest answer when nothing has been sent yet."""
        assert self.provider is not None
        message = block_message(violation.rule.id, violation.rule.category)
        if direction == "input":
            message = message.replace("the response", "the request")
        self.metrics.requests.labels(self.label, f"blocked_{direction}").inc()
        await _send_bytes(
            self.send,
            400,
            self.provider.error_body(message, "content_filter"),
            [("content-type", "application/json"), ("x-should-retry", "false")],
        )

    def _upstream_request(self, body: bytes) -> httpx.Request:
        url = self.route.upstream + self.scope.get("raw_path", self.scope["path"].encode()).decode("latin-1")
        if self.scope.get("query_string"):
            url += "?" + self.scope["query_string"].decode("latin-1")
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.scope["headers"]]
        headers = [(k, v) for k, v in _strip_hop_by_hop(headers) if k.lower() not in ("host", "content-length")]
        if self.provider is not None:
            # Moderation reads decoded text; compressed SSE would have to be inflated and re-deflated.
            headers = [(k, v) for k, v in headers if k.lower() != "accept-encoding"]
            headers.append(("accept-encoding", "identity"))
        return self.proxy.client.build_request(self.scope["method"], url, headers=headers, content=body)

    async def _forward(self, body: bytes) -> None:
        request = self._upstream_request(body)
        started = time.perf_counter()
        try:
            try:
                response = await self.proxy.client.send(request, stream=True)
            except httpx.RemoteProtocolError:
                # "Server disconnected without sending a response" is almost always the keep-alive
                # race (a pooled connection the upstream closed as the request went out); one more
                # try on a fresh connection is what HTTP clients do for it. Nothing reached the
                # client yet, and a second failure is a 502.
                response = await self.proxy.client.send(self._upstream_request(body), stream=True)
        except httpx.TimeoutException:
            await self._reply_upstream_failure(504, "timeout", "the upstream did not answer in time")
            return
        except httpx.HTTPError:
            await self._reply_upstream_failure(502, "connect", "the upstream could not be reached")
            return
        self.metrics.upstream_ttfb.labels(self.label).observe(time.perf_counter() - started)
        try:
            await self._relay(response)
        finally:
            await response.aclose()

    async def _reply_upstream_failure(self, status: int, reason: str, message: str) -> None:
        self.metrics.upstream_errors.labels(self.label, reason).inc()
        self.metrics.requests.labels(self.label, "upstream_error").inc()
        provider = self.provider or OPENAI_CHAT
        body = provider.error_body(f"guardstream: {message}", "upstream_error")
        await _send_bytes(self.send, status, body, [("content-type", "application/json")])

    async def _relay(self, response: httpx.Response) -> None:
        headers = _strip_hop_by_hop(list(response.headers.multi_items()))
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if self.provider is None or response.status_code >= 400 or response.status_code in (204, 304):
            await self._relay_untouched(response, headers)
        elif media_type == "text/event-stream":
            await self._relay_stream(response, headers)
        elif media_type == "application/json" or media_type.endswith("+json"):
            await self._relay_json(response, headers)
        else:
            # A moderated route must not pass text it cannot read (fail closed).
            await self._reply_upstream_failure(502, "malformed", "the upstream answered in a format it cannot moderate")

    async def _relay_untouched(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        await self._start(response.status_code, headers)
        outcome = "passed" if response.status_code < 400 else "upstream_error"
        try:
            async for chunk in response.aiter_raw():
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError:
            self.metrics.upstream_errors.labels(self.label, "read").inc()
            outcome = "upstream_error"
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        self.metrics.requests.labels(self.label, outcome).inc()

    async def _relay_json(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        assert self.provider is not None
        try:
            raw = await response.aread()
            payload = json.loads(raw)
        except (httpx.HTTPError, ValueError, RecursionError):
            await self._reply_upstream_failure(502, "malformed", "the upstream sent a malformed response")
            return
        outcome = "passed"
        body = raw
        changed = False
        # Each text field of a whole answer is its own channel: moderate it in one push and flush.
        for part in self.provider.response_parts(payload):
            new_text, violations, blocked = moderate_whole(self.proxy.output_rules, part.text)
            for violation in violations:
                self.metrics.violation(violation, "output")
            if blocked is not None:
                await self._reply_blocked(blocked, "output")
                return
            if new_text != part.text:
                set_path(payload, part.path, new_text)
                changed = True
        if changed:
            outcome = "redacted"
            body = dumps(payload).encode()
        headers = [(k, v) for k, v in headers if k.lower() != "content-length"]
        await _send_bytes(self.send, response.status_code, body, headers)
        self.metrics.requests.labels(self.label, outcome).inc()

    async def _relay_stream(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        assert self.provider is not None
        moderation = self.proxy.config.moderation
        moderator = StreamModerator(
            self.provider.stream_codec(),
            self.proxy.output_rules,
            max_holdback_chars=moderation.max_holdback_chars,
            context_chars=moderation.context_chars,
            on_violation=moderation.on_violation,
            observer=self.metrics.stream(self.label),
        )
        drop = {"content-length", "cache-control", "x-accel-buffering"}
        headers = [(k, v) for k, v in headers if k.lower() not in drop]
        headers += [("cache-control", "no-store"), ("x-accel-buffering", "no")]
        await self._start(response.status_code, headers)
        active = self.metrics.active_streams.labels(self.label)
        active.inc()
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._watch_disconnect, tg.cancel_scope)
                await self._pump(response, moderator)
                tg.cancel_scope.cancel()
        finally:
            active.dec()
        # An SDK closes as soon as it has read [DONE] or the error event: that stream completed.
        if self.client_gone and not (moderator.is_done or moderator.has_delivered_end):
            self.metrics.requests.labels(self.label, "client_closed").inc()
            return
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        if moderator.failure is not None:
            outcome = "upstream_error"
        elif moderator.blocked is not None:
            outcome = "blocked_output"
        elif moderator.is_redacted:
            outcome = "redacted"
        else:
            outcome = "passed"
        self.metrics.requests.labels(self.label, outcome).inc()

    async def _pump(self, response: httpx.Response, moderator: StreamModerator) -> None:
        try:
            async for chunk in response.aiter_raw():
                out = moderator.feed(chunk)
                if out:
                    await self.send({"type": "http.response.body", "body": out, "more_body": True})
                if moderator.is_done:
                    return
        except httpx.HTTPError as exc:
            reason = "timeout" if isinstance(exc, httpx.TimeoutException) else "dropped"
            self.metrics.upstream_errors.labels(self.label, reason).inc()
            out = moderator.fail(UPSTREAM_DROPPED)
        else:
            out = moderator.finish()
        if out:
            await self.send({"type": "http.response.body", "body": out, "more_body": True})

    async def _watch_disconnect(self, cancel_scope: anyio.CancelScope) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                # Stop reading the upstream at once: the `finally` in _forward closes it.
                self.client_gone = True
                cancel_scope.cancel()
                return

    async def _start(self, status: int, headers: list[tuple[str, str]]) -> None:
        await self.send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers],
            }
        )


async def _send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw_headers = [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers]
    if not any(k.lower() == "date" for k, _ in headers):
        # The server adds no Date of its own (upstream answers carry theirs): answers made here need one.
        raw_headers.append((b"date", formatdate(usegmt=True).encode()))
    raw_headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


def create_app(
    config: Config | None = None,
    *,
    client: httpx.AsyncClient | None = None,
    registry: CollectorRegistry | None = None,
) -> GuardstreamProxy:
    """The guardstream proxy as an ASGI app.

    ```python
    app = create_app(load_config("guardstream.toml"))
    uvicorn.run(app, host="127.0.0.1", port=8080)
    ```

    Rule packs load here, so a bad pack fails at start-up. Pass `client` to control the upstream
    transport and `registry` to keep metrics apart (tests use a fresh `CollectorRegistry()`).
    """
    return GuardstreamProxy(config or Config(), client, registry if registry is not None else CollectorRegistry())


__all__ = ["GuardstreamProxy", "create_app"]
