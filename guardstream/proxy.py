"""The drop-in proxy: HTTP I/O around a `Guard`, as a plain ASGI app.

It is not a Starlette app with responses on purpose: request/response views are awkward for
streaming (httpx#830), and a `StreamingResponse` background task does not run when the stream
raises (starlette#1152), so the upstream response is closed in `finally` here instead.

Per request: route on the normalised path (moderated, pass-through or refused); for a moderated
route read the body strictly and check it with the input rules, call the upstream, and relay the
answer through the guard: streamed answers through a `StreamModerator` fed by a reader task (so
the idle timeout and keep-alives work while the upstream is silent), JSON answers and error
bodies moderated whole. Bytes the guard cannot read (an unknown content encoding or media type)
are refused, never relayed.
"""

from __future__ import annotations

import importlib.util
import logging
import socket
import ssl
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from email.utils import formatdate
from urllib.parse import quote

import anyio
import httpx
from prometheus_client import CollectorRegistry, make_asgi_app
from starlette.types import Message, Receive, Scope, Send

from guardstream.auth import Credentials, client_credential, matches_any, outgoing_headers, outgoing_query
from guardstream.config import Config
from guardstream.errors import ConfigError, GuardstreamError
from guardstream.guard import Guard
from guardstream.logs import log_event, new_request_id
from guardstream.metrics import Metrics
from guardstream.payload import dumps, loads_strict
from guardstream.providers.base import Provider, block_message, is_classifier_failure
from guardstream.providers.errors import Style, error_body
from guardstream.providers.registry import PROVIDERS
from guardstream.relay import REST_SECONDS, SHUTTING_DOWN, StreamRelay
from guardstream.routes import PATH_SAFE, Route, Router
from guardstream.stream import MALFORMED_MESSAGE, UNTERMINATED_MESSAGE, StreamModerator
from guardstream.window import Violation

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
# Idle pooled connections are dropped before common servers' keep-alive timeouts (uvicorn: 5 s), so
# a request rarely lands on a connection the upstream is closing at that moment. At most 20 are
# kept, httpx's own default: httpcore 1.0's pool looks at every connection once per idle one
# whenever a request starts or ends. With 100 kept, the tail of a burst of 200 paced streams made
# 575,000 such calls; with 20, a few thousand. (It also drops idle connections while more than
# that many are open at all: encode/httpcore#1000.) Connections in use are not capped.
DEFAULT_LIMITS = httpx.Limits(max_connections=None, max_keepalive_connections=20, keepalive_expiry=4.0)
# What a pooled connection that the upstream closed at the moment it was reused fails with.
STALE_CONNECTION = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)
# After a stream's end event an upstream sends the end of its chunked body and nothing else; the
# most guardstream reads of it before it closes the connection instead (and, in relay.py, how
# long it waits for it).
REST_BYTES = 64 * 1024
# What httpx can decode: anything else on a moderated answer is refused, never relayed unread.
DECODABLE = {"identity", "gzip", "deflate"}
# Other names of those codings (RFC 9110 §8.4.1.3: x-gzip is gzip). httpx knows only the names
# above and passes a body under any other one through still encoded, so an alias is renamed before
# the body is read.
ENCODING_ALIASES = {"x-gzip": "gzip"}
UPSTREAM_TOO_LONG = "guardstream stopped the response: it took longer than {seconds:g} s in all"

if importlib.util.find_spec("brotli") is not None:  # pragma: no cover - httpx decodes br when it is installed
    DECODABLE.add("br")


def _strip_hop_by_hop(headers: list[tuple[str, str]]) -> list[tuple[str, str]]:
    # Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    named = {
        token.strip().lower() for name, value in headers if name.lower() == "connection" for token in value.split(",")
    }
    return [(n, v) for n, v in headers if n.lower() not in HOP_BY_HOP and n.lower() not in named]


def _media_type(headers: httpx.Headers) -> str:
    value: str = headers.get("content-type", "")
    return value.split(";")[0].strip().lower()


def _encodings(value: str) -> list[str]:
    return [token.strip().lower() for token in value.split(",") if token.strip()]


def _unreadable_encodings(response: httpx.Response) -> list[str]:
    """The content codings of `response` that httpx leaves encoded (its body cannot be read)."""
    return [e for e in _encodings(response.headers.get("content-encoding", "")) if e not in DECODABLE]


def _rename_encoding_aliases(response: httpx.Response) -> None:
    """Name each content coding as httpx knows it, before the body is read (and decoded) at all."""
    value = response.headers.get("content-encoding")
    if value is None:
        return
    codings = [ENCODING_ALIASES.get(coding, coding) for coding in _encodings(value)]
    if codings != _encodings(value):
        response.headers["content-encoding"] = ", ".join(codings)


class Runtime:
    """Everything a config decides, built (and checked) at once, swapped whole on reload.

    A request keeps the runtime it started with, so a stream in flight finishes on the rules it
    started with while new requests get the new ones.
    """

    def __init__(self, config: Config, metrics: Metrics, guard: Guard | None = None) -> None:
        self.config = config
        self.guard = guard if guard is not None else Guard(config, metrics=metrics)
        self.router = Router(config.routes.passthrough)
        self.policies: dict[bytes, Guard] = {}
        for policy in config.policies:
            moderation = replace(
                config.moderation,
                packs=policy.packs if policy.packs is not None else config.moderation.packs,
                on_violation=policy.on_violation or config.moderation.on_violation,
            )
            policy_guard = Guard(replace(config, moderation=moderation), metrics=metrics)
            for key in policy.client_keys:
                self.policies[key.encode()] = policy_guard
        keys = [k for policy in config.policies for k in policy.client_keys]
        self.credentials = Credentials.from_settings(config.auth, keys)
        timeouts = config.timeouts
        # Reads wait at most as long as the longer of the two silences allowed; the pump enforces each exactly.
        self.read_timeout = max(timeouts.first_byte, timeouts.idle)
        self.timeout = httpx.Timeout(
            connect=timeouts.connect, read=self.read_timeout, write=60.0, pool=timeouts.connect
        )
        # Moderated answers time their own silences: the first byte and the whole body under a
        # deadline, a stream's reads by its relay's watchdog, an answer read whole read by read
        # (`_read_answer`). A read timeout in httpx would arm and cancel a timer on every read of
        # every stream: a sixth of the server's time on paced streams, for a silence already timed.
        self.moderated_timeout = httpx.Timeout(connect=timeouts.connect, read=None, write=60.0, pool=timeouts.connect)

    async def aclose(self) -> None:
        for guard in {id(g): g for g in [self.guard, *self.policies.values()]}.values():
            await guard.aclose()

    def guard_for(self, client_key: bytes | None) -> Guard:
        if client_key is not None and client_key in self.policies:
            return self.policies[client_key]
        return self.guard


class GuardstreamProxy:
    """The ASGI app returned by `create_app`."""

    def __init__(
        self,
        config: Config,
        client: httpx.AsyncClient | None,
        registry: CollectorRegistry,
        guard: Guard | None = None,
    ) -> None:
        if config.upstreams.uses_mock():
            raise ConfigError("upstream 'mock' is started by `guardstream serve`; pass the mock's URL to create_app.")
        self.registry = registry
        self.metrics = Metrics(registry, classifiers=[c.name for c in config.classifiers])
        self.runtime = Runtime(config, self.metrics, guard)
        self.metrics_app = make_asgi_app(registry)
        self._client = client
        self.owns_client = client is None
        # Streams in flight, so a shutdown can end each one properly.
        self.exchanges: set[_Exchange] = set()
        self.is_draining = False
        self._load_config: Callable[[], Config] | None = None
        # With worker processes, an admin reload must reach every worker, not the one it landed on.
        self.reload_everywhere: Callable[[], None] | None = None
        self._at_startup: list[Callable[[GuardstreamProxy], None]] = []

    @property
    def config(self) -> Config:
        return self.runtime.config

    @property
    def guard(self) -> Guard:
        return self.runtime.guard

    @property
    def client(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                timeout=self.runtime.timeout, limits=DEFAULT_LIMITS, follow_redirects=False
            )
        return self._client

    async def aclose(self) -> None:
        if self.owns_client and self._client is not None:
            await self._client.aclose()
            self._client = None
        await self.runtime.aclose()

    def reloads_from(self, load: Callable[[], Config]) -> None:
        """How `reload()` gets the new config: re-read the file, apply the same flags."""
        self._load_config = load

    def at_startup(self, callback: Callable[[GuardstreamProxy], None]) -> None:
        """Run `callback(app)` on the server's event loop once it starts (lifespan startup)."""
        self._at_startup.append(callback)

    def reload(self) -> bool:
        """Build a new runtime from the config and swap it in; a bad one is reported and the old stays."""
        runtime = self._new_runtime()
        if runtime is None:
            return False
        self.runtime = runtime
        self.metrics.reloads.labels("success").inc()
        log_event(
            "reload",
            result="success",
            packs=list(runtime.config.moderation.packs),
            rule_count=len(runtime.guard.ruleset),
        )
        return True

    def _new_runtime(self) -> Runtime | None:
        if self._load_config is None:
            log_event("reload", result="failure", error="no config source to reload from", level=logging.ERROR)
            return None
        try:
            return Runtime(self._load_config(), self.metrics)
        except GuardstreamError as exc:
            self.metrics.reloads.labels("failure").inc()
            log_event("reload", result="failure", error=str(exc), level=logging.ERROR)
            return None

    def begin_shutdown(self, *, now: bool) -> None:
        """Stop taking work; end streams at once (`now`) or once the grace period is over."""
        first = not self.is_draining
        self.is_draining = True
        if first:
            log_event("shutdown", streams=len(self.exchanges), level=logging.WARNING)
        for exchange in list(self.exchanges):
            exchange.end_by(0.0 if now else self.config.server.shutdown_grace)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":  # pragma: no cover - websockets are not proxied
            return
        path: str = scope["path"]
        method: str = scope["method"]
        if method == "GET" and path == "/metrics":
            await self.metrics_app(scope, receive, send)
            return
        if path == "/healthz":
            await _send_bytes(send, 200, b'{"status":"ok"}', [("content-type", "application/json")])
            return
        if path == "/readyz":
            ready = not self.is_draining
            body = b'{"status":"ready"}' if ready else b'{"status":"shutting down"}'
            await _send_bytes(send, 200 if ready else 503, body, [("content-type", "application/json")])
            return
        runtime = self.runtime
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
        if path == "/-/reload" and method == "POST":
            await self._admin_reload(runtime, headers, scope, send)
            return
        # Routed on the path as it was sent: `scope["path"]` is already decoded, and what its escapes
        # were (an encoded `/` or `#`) decides whether the path means the same to the upstream.
        raw_path = scope.get("raw_path")
        sent_path = raw_path.decode("latin-1") if raw_path else quote(path, safe=PATH_SAFE)
        route = runtime.router.route(method, sent_path, headers)
        await _Exchange(self, runtime, route, scope, receive, send, headers).run()

    async def _admin_reload(self, runtime: Runtime, headers: dict[str, str], scope: Scope, send: Send) -> None:
        admin = runtime.credentials.admin_key
        given = client_credential(headers, scope.get("query_string", b"").decode("latin-1"))
        if admin is None or matches_any(given, [admin]) is None:
            status, body = (
                (404, b'{"error":"reload is not enabled: set [auth] admin_key_env"}')
                if admin is None
                else (
                    401,
                    b'{"error":"the admin key is missing or wrong"}',
                )
            )
            await _send_bytes(send, status, body, [("content-type", "application/json")])
            return
        if self.reload_everywhere is not None:
            # Check the new config here first, so a bad one is refused in the answer; then every
            # worker (this one included) reloads it in place.
            checked = self._new_runtime()
            ok = checked is not None
            if checked is not None:
                await checked.aclose()
                self.reload_everywhere()
        else:
            ok = self.reload()
        body = b'{"reloaded":true}' if ok else b'{"reloaded":false,"error":"the new config was refused; see the log"}'
        await _send_bytes(send, 200 if ok else 422, body, [("content-type", "application/json")])

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                # Building the upstream client loads CA certificates and HTTP modules: a cost of
                # the process's start, not of its first request.
                _ = self.client
                for callback in self._at_startup:
                    callback(self)
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.aclose()
                await send({"type": "lifespan.shutdown.complete"})
                return


class _BodyTooLarge(Exception):
    pass


def _inflate(data: bytes, wbits: int, limit: int) -> bytes:
    """`data` decompressed, stopping as soon as it is over `limit` bytes (`_BodyTooLarge`).
    Raises `zlib.error` for data that is cut short or followed by anything but its end."""
    decoder = zlib.decompressobj(wbits)
    body = decoder.decompress(data, limit + 1)
    if len(body) > limit:
        raise _BodyTooLarge
    if not decoder.eof or decoder.unused_data:
        raise zlib.error("truncated, or data after the end of the stream")
    return body


class _Exchange:
    """One request through the proxy (the per-request responder, in Starlette's shape)."""

    def __init__(
        self,
        proxy: GuardstreamProxy,
        runtime: Runtime,
        route: Route,
        scope: Scope,
        receive: Receive,
        send: Send,
        headers: dict[str, str],
    ) -> None:
        self.proxy = proxy
        self.runtime = runtime
        self.config = runtime.config
        self.guard = runtime.guard
        self.route = route
        self.provider: Provider | None = PROVIDERS.get(route.provider or "")
        self.label: str = "none" if route.kind in ("refused", "invalid") else (route.provider or route.kind)
        self.scope = scope
        self.receive = receive
        self._send = send
        self.headers = headers
        self.metrics = proxy.metrics
        self.client_gone = False
        self.started = time.monotonic()
        self.request_id = new_request_id()
        self.status = 0
        self.ttfb: float | None = None
        # The upstream request went out without httpx's read timeout (`Runtime.moderated_timeout`):
        # an answer read whole times its reads here.
        self.times_own_reads = False
        self.held_chars = 0
        self.violations: list[Violation] = []
        # Set on shutdown: a stream still going then ends with the terminal event.
        self.deadline: float | None = None
        self._relay_of_stream: StreamRelay | None = None

    @property
    def upstream(self) -> str:
        return str(getattr(self.config.upstreams, self.route.upstream))

    async def send(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            message["headers"] = [*message["headers"], (b"x-guardstream-request-id", self.request_id.encode())]
        await self._send(message)

    def end_by(self, seconds: float) -> None:
        """Shutdown: the stream may go on for `seconds` more, then it ends with the terminal event."""
        deadline = time.monotonic() + seconds
        self.deadline = deadline if self.deadline is None else min(self.deadline, deadline)
        if self._relay_of_stream is not None:
            self._relay_of_stream.end_by(self.deadline)

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            self._log()

    def _log(self) -> None:
        for violation in self.violations:
            if violation.action == "block":
                log_event(
                    "block",
                    request_id=self.request_id,
                    rule=violation.rule.id,
                    category=violation.rule.category,
                    direction=self._direction(violation),
                    is_timeout=violation.is_timeout or None,
                    level=logging.WARNING,
                )
        redactions: dict[tuple[str, str], int] = {}
        for violation in self.violations:
            if violation.action == "redact":
                key = (violation.rule.id, self._direction(violation))
                redactions[key] = redactions.get(key, 0) + 1
        for (rule, direction), count in redactions.items():
            log_event("redaction", request_id=self.request_id, rule=rule, direction=direction, count=count)
        log_event(
            "request",
            request_id=self.request_id,
            provider=self.label,
            # The route's shape, never the path itself: a client can put anything in a path segment.
            route=f"{self.scope['method']} {self.route.log_path}",
            status=self.status,
            outcome=getattr(self, "outcome", None),
            rules=sorted({v.rule.id for v in self.violations}) or None,
            ttfb_ms=None if self.ttfb is None else round(self.ttfb * 1000, 1),
            duration_ms=round((time.monotonic() - self.started) * 1000, 1),
            held_chars=self.held_chars or None,
        )

    def _direction(self, violation: Violation) -> str:
        return "input" if violation in self.input_violations else "output"

    input_violations: tuple[Violation, ...] = ()

    async def _run(self) -> None:
        route = self.route
        credentials = self.runtime.credentials
        if credentials.requires_client_key:
            query = self.scope.get("query_string", b"").decode("latin-1")
            key = matches_any(client_credential(self.headers, query), credentials.client_keys)
            if key is None:
                message = "guardstream needs a valid API key: send one of the keys it was configured with."
                await self._reply_error(401, message, "invalid_api_key", outcome="unauthorized")
                return
            self.guard = self.runtime.guard_for(key)
        if self.proxy.is_draining:
            await self._reply_error(
                503, "guardstream is shutting down; try again.", "shutting_down", outcome="upstream_error"
            )
            return
        if route.kind == "invalid":
            message = f"guardstream refused the request path: {route.problem}."
            await self._reply_error(400, message, "invalid_request_path", outcome="bad_request")
            return
        if route.kind == "refused" or (route.kind == "moderated" and self.provider is None):
            method = self.scope["method"]
            message = (
                f"guardstream does not forward {method} {route.path}: it is not a route guardstream moderates. "
                f"To forward it unmoderated, add '{method} {route.path}' to [routes] passthrough."
            )
            await self._reply_error(403, message, "route_not_moderated", outcome="not_routed")
            return
        try:
            body = await self._read_body()
        except _BodyTooLarge:
            await self._reply_too_large()
            return
        if self.client_gone:
            return
        if self.provider is None:
            await self._forward(body, moderated=False)
            return
        checked = await self._checked_request(body)
        if checked is not None:
            await self._forward(checked, moderated=True)

    async def _checked_request(self, body: bytes) -> bytes | None:
        """The body to send upstream once the request has passed its checks; None once it was
        refused (answered here).

        A frame of its own on purpose: the parsed request (a long conversation is many times the
        size of its JSON as Python objects) is let go before the answer streams, not kept for as
        long as the stream lasts.
        """
        assert self.provider is not None
        try:
            body = self._decoded_request_body(body)
            payload = loads_strict(body)
            if not isinstance(payload, dict):
                raise GuardstreamError("the body is not a JSON object")
        except _BodyTooLarge:
            await self._reply_too_large(" once decompressed")
            return None
        except GuardstreamError as exc:
            message = f"guardstream could not read the request body: {exc}."
            await self._reply_error(400, message, "invalid_request_body", outcome="bad_request")
            return None
        verdict = self.guard.check_request(self.provider, payload)
        self.input_violations = tuple(verdict.violations)
        self.violations += verdict.violations
        if verdict.blocked is not None:
            message = block_message(verdict.blocked, "the request")
            await self._reply_error(400, message, "content_filter", outcome="blocked_input")
            return None
        flagged = await self.guard.classify_request(self.provider, payload)
        if flagged is not None:
            self.violations.append(flagged)
            self.input_violations = (*self.input_violations, flagged)
            if is_classifier_failure(flagged):
                # The classifier, not the prompt, is at fault, and the model was not called: a 503
                # that the SDKs retry, not a 400 that tells the caller to change the request.
                status, code = 503, "classifier_unavailable"
            else:
                status, code = 400, "content_filter"
            await self._reply_error(status, block_message(flagged, "the request"), code, outcome="blocked_input")
            return None
        return dumps(verdict.payload).encode() if verdict.is_changed else body

    async def _read_body(self) -> bytes:
        limit = self.config.server.max_body_bytes
        chunks = []
        size = 0
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                return b""
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise _BodyTooLarge
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    def _decoded_request_body(self, body: bytes) -> bytes:
        """A compressed request body is read as the upstream would read it (and sent on decoded).

        Each layer is decoded to at most `max_body_bytes` (one byte more tells it is over): a small
        body that inflates to gigabytes is refused with the 413 once the limit is passed, never
        decompressed in full first."""
        limit = self.config.server.max_body_bytes
        encodings = _encodings(self._header("content-encoding"))
        for encoding in reversed(encodings):
            if encoding == "identity":
                continue
            if encoding not in ("gzip", "x-gzip", "deflate"):
                raise GuardstreamError(f"its content-encoding {encoding!r} is not one guardstream can read")
            try:
                if encoding == "deflate":
                    try:
                        body = _inflate(body, zlib.MAX_WBITS, limit)
                    except zlib.error:
                        body = _inflate(body, -zlib.MAX_WBITS, limit)
                else:
                    body = _inflate(body, 16 + zlib.MAX_WBITS, limit)
            except zlib.error:
                raise GuardstreamError(f"it is not valid {encoding} data") from None
        return body

    def _header(self, name: str) -> str:
        raw = name.encode("latin-1")
        return ", ".join(v.decode("latin-1") for k, v in self.scope["headers"] if k.lower() == raw)

    def _upstream_request(self, body: bytes, *, moderated: bool) -> httpx.Request:
        # Exactly the path that was routed, encoded so that the upstream decodes it back to that
        # path: never the raw one, which an upstream could resolve differently, nor the decoded one
        # as a URL, in which a decoded `#` or `?` would end the path.
        url = self.upstream + self.route.wire_path
        injected = self.runtime.credentials.upstream_keys.get(self.route.upstream)
        query = outgoing_query(self.scope.get("query_string", b"").decode("latin-1"), injected)
        if query:
            url += "?" + query
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in self.scope["headers"]]
        drop = {"host", "content-length"}
        if moderated:
            # The body was read (and possibly decompressed or rewritten); answers must be readable too.
            drop |= {"content-encoding", "accept-encoding"}
        headers = [(k, v) for k, v in _strip_hop_by_hop(headers) if k.lower() not in drop]
        if moderated:
            headers.append(("accept-encoding", "identity"))
        headers = outgoing_headers(headers, self.route.upstream, injected)
        # A client passed to create_app keeps its own timeouts; ours follow the (reloadable) config.
        client = self.proxy.client
        if not self.proxy.owns_client:
            return client.build_request(self.scope["method"], url, headers=headers, content=body)
        timeout = self.runtime.moderated_timeout if moderated else self.runtime.timeout
        self.times_own_reads = moderated
        return client.build_request(self.scope["method"], url, headers=headers, content=body, timeout=timeout)

    async def _forward(self, body: bytes, *, moderated: bool) -> None:
        timeouts = self.config.timeouts
        started = time.perf_counter()
        try:
            with anyio.fail_after(timeouts.first_byte):
                try:
                    request = self._upstream_request(body, moderated=moderated)
                    response = await self.proxy.client.send(request, stream=True)
                except STALE_CONNECTION:
                    # The keep-alive race: a pooled connection the upstream closed as the request went
                    # out ("Server disconnected without sending a response", or a reset or broken pipe
                    # when the close raced the write). One more try on a fresh connection is what HTTP
                    # clients do for it. Nothing reached the client yet, and a second failure is a 502.
                    request = self._upstream_request(body, moderated=moderated)
                    response = await self.proxy.client.send(request, stream=True)
        except (TimeoutError, httpx.TimeoutException) as exc:
            cause = "timed out connecting" if isinstance(exc, httpx.ConnectTimeout) else "did not answer in time"
            await self._reply_upstream_failure(504, "timeout", cause)
            return
        except httpx.HTTPError as exc:
            await self._reply_upstream_failure(502, "connect", _connect_cause(exc))
            return
        self.ttfb = time.perf_counter() - started
        self.metrics.upstream_ttfb.labels(self.label).observe(self.ttfb)
        try:
            await self._relay(response, moderated=moderated)
        finally:
            await response.aclose()

    def _time_left(self) -> float:
        return max(0.0, self.config.timeouts.total - (time.monotonic() - self.started))

    async def _reply_upstream_failure(self, status: int, reason: str, cause: str) -> None:
        self._upstream_failed(reason)
        host = httpx.URL(self.upstream).host
        message = f"guardstream could not get an answer from the upstream {host}: it {cause}."
        await self._reply_error(status, message, "upstream_error", outcome="upstream_error")

    async def _reply_too_large(self, when: str = "") -> None:
        limit = self.config.server.max_body_bytes
        message = f"guardstream refused the request: its body is over {limit} bytes{when} ([server] max_body_bytes)."
        await self._reply_error(413, message, "request_too_large", outcome="bad_request")

    async def _reply_error(self, status: int, message: str, code: str, *, outcome: str) -> None:
        """An answer made here, in the caller's own API format."""
        body = error_body(self._style(), message, code, status=status)
        headers = [("content-type", "application/json")]
        if status < 500:
            headers.append(("x-should-retry", "false"))
        await _send_bytes(self.send, status, body, headers)
        self._count(outcome)

    def _style(self) -> Style:
        return self.route.style

    def _count(self, outcome: str) -> None:
        """How the request ended, counted once, with how long it took."""
        self.outcome = outcome
        self.metrics.record_request(self.label, outcome, time.monotonic() - self.started)

    def _upstream_failed(self, reason: str) -> None:
        self.metrics.upstream_error(self.label, reason)
        host = httpx.URL(self.upstream).host
        log_event("upstream_failure", request_id=self.request_id, upstream=host, reason=reason, level=logging.WARNING)

    async def _relay(self, response: httpx.Response, *, moderated: bool) -> None:
        headers = _strip_hop_by_hop(list(response.headers.multi_items()))
        _rename_encoding_aliases(response)
        if not moderated:
            await self._relay_untouched(response, headers)
            return
        unreadable = _unreadable_encodings(response)
        if unreadable:
            await self._reply_upstream_failure(502, "malformed", f"answered with content-encoding {unreadable[0]!r}")
            return
        # The body leaves decoded: its length and encoding change.
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding")]
        media_type = _media_type(response.headers)
        if response.status_code >= 400:
            await self._relay_error(response, headers)
        elif response.status_code in (204, 304):
            await self._relay_untouched(response, headers)
        elif media_type == "text/event-stream":
            await self._relay_stream(response, headers)
        elif media_type == "application/json" or media_type.endswith("+json"):
            await self._relay_json(response, headers)
        else:
            # A moderated route must not pass text it cannot read (fail closed).
            cause = f"answered in a format guardstream cannot read ({media_type or 'no content type'})"
            await self._reply_upstream_failure(502, "malformed", cause)

    async def _read_answer(self, response: httpx.Response) -> bytes | None:
        """The whole (decoded) body, or None if it broke off or took longer than the total allowed."""
        chunks: list[bytes] = []
        # Each read waits as long as httpx's own read timeout would have (see `Runtime`); a client
        # passed to create_app, and unmoderated requests, keep the read timeout they went out with.
        # (A compressed body is timed per decoded piece: reads that decode to nothing yet count
        # as one wait. Moderated requests ask for identity, so it seldom matters.)
        read_timeout = self.runtime.read_timeout if self.times_own_reads else None
        with anyio.move_on_after(self._time_left()):
            try:
                body = response.aiter_bytes()
                while True:
                    with anyio.fail_after(read_timeout):
                        chunk = await anext(body, None)
                    if chunk is None:
                        return b"".join(chunks)
                    chunks.append(chunk)
            except (httpx.HTTPError, TimeoutError):
                return None
        return None

    def _injected_key(self) -> bytes | None:
        key = self.runtime.credentials.upstream_keys.get(self.route.upstream)
        return key.encode() if key else None

    def _scrub_injected_key(self, body: bytes) -> bytes:
        """An upstream may quote the key it was sent in an error ("Incorrect API key provided: ...").
        With a key injected, that key is ours and the client must never read it, whatever its shape."""
        key = self._injected_key()
        return body.replace(key, b"[REDACTED:upstream-key]") if key and key in body else body

    async def _relay_untouched(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        if response.status_code >= 400 and self._injected_key() is not None:
            await self._relay_untouched_error(response, headers)
            return
        await self._start(response.status_code, headers)
        outcome = "passed" if response.status_code < 400 else "upstream_rejected"
        if response.status_code >= 500:
            outcome = "upstream_error"
        try:
            async for chunk in response.aiter_raw():
                await self.send({"type": "http.response.body", "body": chunk, "more_body": True})
        except httpx.HTTPError:
            self._upstream_failed("dropped")
            outcome = "upstream_error"
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        self._count(outcome)

    async def _relay_untouched_error(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        """An error on an unmoderated route, read whole (and decoded) so the injected key can be removed."""
        raw = await self._read_answer(response)
        status = response.status_code
        if status >= 500:
            self._upstream_failed("status_5xx")
        headers = [(k, v) for k, v in headers if k.lower() not in ("content-length", "content-encoding")]
        unreadable = _unreadable_encodings(response)
        if unreadable:
            # httpx left it encoded: the key cannot be looked for in it, so none of it is relayed.
            message = f"the upstream answered HTTP {status} in a content-encoding guardstream cannot read"
            raw = error_body(self._style(), f"{message} ({unreadable[0]!r})", "upstream_error", status=status)
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("content-type", "application/json"))
        await _send_bytes(self.send, status, self._scrub_injected_key(raw or b""), headers)
        self._count("upstream_rejected" if status < 500 else "upstream_error")

    async def _relay_error(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        """An upstream error passes the output rules too: it may quote the model's own output."""
        raw = await self._read_answer(response)
        if raw is not None:
            raw = self._scrub_injected_key(raw)
        status = response.status_code
        outcome = "upstream_rejected" if status < 500 else "upstream_error"
        if status >= 500:
            self._upstream_failed("status_5xx")
        body, blocked, changed = (b"", None, True) if raw is None else self.guard.moderate_error_body(raw)
        if blocked is not None:
            self.violations.append(blocked)
        if blocked is not None or (changed and not body):
            if blocked is not None:
                message, code = block_message(blocked, "the upstream's error"), "content_filter"
            else:
                message, code = (
                    f"the upstream answered HTTP {status} with a body guardstream cannot read",
                    "upstream_error",
                )
            body = error_body(self._style(), message, code, status=status)
            headers = [(k, v) for k, v in headers if k.lower() != "content-type"]
            headers.append(("content-type", "application/json"))
        await _send_bytes(self.send, status, body, headers)
        self._count(outcome)

    async def _relay_json(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        assert self.provider is not None
        raw = await self._read_answer(response)
        try:
            if raw is None:
                raise GuardstreamError("the answer broke off")
            payload = loads_strict(raw)
        except GuardstreamError:
            await self._reply_upstream_failure(502, "malformed", "sent an answer guardstream cannot read")
            return
        verdict = self.guard.moderate_answer(self.provider, payload)
        self.violations += verdict.violations
        if verdict.blocked is None:
            flagged = await self.guard.classify_answer(self.provider, payload)
            if flagged is not None:
                self.violations.append(flagged)
                verdict.blocked = flagged
                # A classifier judges the whole answer: none of its text is kept.
                verdict.texts = ["" if not p.is_value else t for p, t in zip(verdict.parts, verdict.texts, strict=True)]
        if verdict.blocked is not None:
            if self.guard.settings.on_violation == "finish":
                body = self.provider.payload.finish_body(payload, verdict.parts, verdict.texts)
                await _send_bytes(self.send, response.status_code, dumps(body).encode(), headers)
                self._count("blocked_output")
                return
            message = block_message(verdict.blocked)
            await self._reply_error(400, message, "content_filter", outcome="blocked_output")
            return
        body = dumps(verdict.payload).encode() if verdict.is_changed else raw
        await _send_bytes(self.send, response.status_code, body, headers)
        self._count("redacted" if verdict.is_changed else "passed")

    async def _relay_stream(self, response: httpx.Response, headers: list[tuple[str, str]]) -> None:
        assert self.provider is not None
        observer = self.metrics.stream(self.label)
        moderator = self.guard.stream_moderator(self.provider.stream_codec(), observer=observer)
        drop = {"cache-control", "x-accel-buffering"}
        headers = [(k, v) for k, v in headers if k.lower() not in drop]
        headers += [("cache-control", "no-store"), ("x-accel-buffering", "no")]
        await self._start(response.status_code, headers)
        active = observer.active
        active.inc()
        self.proxy.exchanges.add(self)
        if self.proxy.is_draining:
            self.end_by(self.config.server.shutdown_grace)
        relay = StreamRelay(
            moderator,
            self._send_chunk,
            idle=self.config.timeouts.idle,
            keepalive=self.config.timeouts.keepalive,
            run_check=self.guard.run_check,
            on_upstream_failure=self._upstream_failed,
        )
        if self.deadline is not None:
            relay.end_by(self.deadline)
        self._relay_of_stream = relay
        chunks = response.aiter_bytes()
        try:
            with anyio.move_on_after(self._time_left()) as deadline:
                await relay.run(chunks, beside=[self._watch_disconnect])
        finally:
            active.dec()
            self.proxy.exchanges.discard(self)
        self.violations += moderator.violations
        self.held_chars = moderator.channels.peak_held
        if moderator.failure in (MALFORMED_MESSAGE, UNTERMINATED_MESSAGE):
            # The moderator found the stream unreadable (or unfinished): an upstream failure too.
            self._upstream_failed("malformed")
        if deadline.cancelled_caught and not self.client_gone and (not moderator.is_done or relay.unsent):
            # The total time ran out mid-stream (or before all that was decided was written): end
            # it the way any other failure ends.
            self._upstream_failed("timeout")
            message = UPSTREAM_TOO_LONG.format(seconds=self.config.timeouts.total)
            await self._send_chunk(moderator.fail(message) if not moderator.is_done else moderator.cut_short(message))
        # An SDK closes as soon as it has read [DONE] or the error event: that stream completed.
        if moderator.first_release_at is not None and moderator.first_text_at is not None:
            observer.on_first_token(
                moderator.first_release_at - self.started, moderator.first_release_at - moderator.first_text_at
            )
        if self.client_gone and not (moderator.is_done or moderator.has_delivered_end):
            self._count("client_closed")
            return
        if moderator.has_delivered_end:
            # Before the client's answer ends, as a pass-through proxy's would with the upstream's:
            # a client that asks again at once then finds the connection back in the pool.
            await _read_rest(chunks)
        await self.send({"type": "http.response.body", "body": b"", "more_body": False})
        self._count(_stream_outcome(moderator))

    async def _send_chunk(self, data: bytes) -> None:
        if data:
            await self.send({"type": "http.response.body", "body": data, "more_body": True})

    async def _watch_disconnect(self, cancel_scope: anyio.CancelScope) -> None:
        while True:
            message = await self.receive()
            if message["type"] == "http.disconnect":
                self.client_gone = True
                relay = self._relay_of_stream
                if relay is not None and relay.moderator.has_delivered_end:
                    # The answer is complete (an SDK hangs up once it has read [DONE]): the relay
                    # only waits, briefly, for the end of the body, so that the connection is pooled.
                    return
                # Stop reading the upstream at once: the `finally` in _forward closes it.
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


async def _read_rest(chunks: AsyncIterator[bytes]) -> None:
    """Read what follows a stream's end event, so that httpx pools its connection again.

    httpx keeps a connection only once its body was read to the end. Closed right after `[DONE]`,
    every stream cost the next request a new connection: a TCP and a TLS handshake with the
    provider, tens of milliseconds before its first byte. The client has every event by now (the
    SDKs stop reading at the end event; others wait for the end of the body, sent right after
    this); what the upstream still sends is dropped, and one that sends more than the end of its
    body, or takes its time, has its connection closed.
    """
    left = REST_BYTES
    with anyio.move_on_after(REST_SECONDS):
        try:
            async for chunk in chunks:
                left -= len(chunk)
                if left < 0:
                    return
        except httpx.HTTPError:
            return


def _stream_outcome(moderator: StreamModerator) -> str:
    if moderator.failure == SHUTTING_DOWN:
        return "shutdown"
    if moderator.blocked is not None:
        return "blocked_output"
    if moderator.failure is not None or moderator.is_upstream_error:
        return "upstream_error"
    if moderator.is_redacted:
        return "redacted"
    return "passed"


def _connect_cause(exc: httpx.HTTPError) -> str:
    """Why the upstream could not be reached, in words an operator can act on (never the URL's secrets)."""
    causes: list[BaseException] = []
    seen: BaseException | None = exc
    while seen is not None and len(causes) < 10:
        causes.append(seen)
        seen = seen.__cause__ or seen.__context__
        if isinstance(seen, BaseExceptionGroup):
            seen = seen.exceptions[0] if seen.exceptions else None
    text = " ".join(str(c).lower() for c in causes)
    if (
        any(isinstance(c, socket.gaierror) for c in causes)
        or "name or service not known" in text
        or ("nodename nor servname" in text or "temporary failure in name" in text or "name resolution" in text)
    ):
        return "could not be found (DNS lookup failed)"
    if any(isinstance(c, ConnectionRefusedError) for c in causes) or "refused" in text:
        return "refused the connection"
    if any(isinstance(c, ssl.SSLError) for c in causes) or "ssl" in text or "certificate" in text or "tls" in text:
        return "failed the TLS handshake"
    if isinstance(exc, httpx.RemoteProtocolError):
        return "closed the connection without answering"
    return "could not be reached"


async def _send_bytes(send: Send, status: int, body: bytes, headers: list[tuple[str, str]]) -> None:
    raw_headers = [
        (k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers if k.lower() != "content-length"
    ]
    if not any(k == b"date" for k, _ in raw_headers):
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
