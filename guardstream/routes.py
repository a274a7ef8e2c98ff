"""Which requests are moderated, which are forwarded on trust, and which are refused.

Routing is on the *normalised* path (percent escapes decoded once, dot segments resolved, `//`
collapsed, no trailing slash), and the upstream receives exactly that path, percent-encoded again
in one canonical form: a request can never be checked as one route and served as another. A path
whose escapes would mean something else to some server than to the router (an encoded `/`, `?`,
`#` or `%`, a control character, bytes that are not UTF-8) is refused before it is routed.

OpenAI-compatible APIs live under several base URLs (`/v1`, none at all, `/openai/v1` for Azure's
v1 API and Groq, `/api/v1` for OpenRouter, `/v1beta/openai` for Gemini's compatibility endpoint);
each is recognised. Anything else is refused unless it is on the
pass-through list, whose default holds only routes that return no generated text.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import quote, unquote_to_bytes

from guardstream.errors import ConfigError

UpstreamName = Literal["openai", "anthropic", "gemini"]
ApiStyle = Literal["openai", "anthropic", "gemini"]

OPENAI_PREFIXES = ("/v1", "/openai/v1", "/api/v1", "/v1beta/openai", "")
AZURE_DEPLOYMENT = re.compile(r"^/openai/deployments/[^/]+(/.*)$")
# Gemini's methods follow a colon in the last segment: models/gemini-2.0-flash:streamGenerateContent.
GEMINI_METHOD = re.compile(r"^/(?:[^/]+/)*models/[^/:]+:([A-Za-z]+)$")
GEMINI_GENERATE = frozenset({"streamGenerateContent", "generateContent"})

MODERATED_OPENAI = {
    "/chat/completions": "openai-chat",
    "/completions": "openai-completions",
    "/responses": "openai-responses",
}

DEFAULT_PASSTHROUGH = (
    "GET /v1/models",
    "GET /v1/models/*",
    "POST /v1/embeddings",
    "POST /v1/messages/count_tokens",
    "GET /v1/files",
    "GET /v1/files/*",
    "GET /v1/batches",
    "GET /v1/batches/*",
    "GET /*/models",
    "GET /*/models/*",
    "POST /*/models/*:countTokens",
    "POST /*/models/*:embedContent",
    "POST /*/models/*:batchEmbedContents",
)

# Characters a decoded path may not hold. Servers and proxies disagree about them: `?` and `#`
# end a path once decoded and re-parsed, `%` is decoded a second time by some, `\` is a `/` to
# some, `;` starts path parameters that some strip. No provider's route has any of them.
UNSAFE_IN_PATH = frozenset("?#%\\;")
# Escapes of a separator: whether `%2F` splits a segment is each server's own choice.
ENCODED_SEPARATORS = re.compile(r"%(?:2f|5c)", re.IGNORECASE)
# Path segments a log line may name: the words of the APIs' own routes. Any other segment (a model,
# a deployment, a file id, or a credential someone put in a path) is logged as `*`.
API_WORDS = frozenset(
    {
        "api",
        "assistants",
        "audio",
        "batches",
        "cachedContents",
        "chat",
        "completions",
        "content",
        "count_tokens",
        "deployments",
        "embeddings",
        "files",
        "generations",
        "images",
        "input_items",
        "messages",
        "models",
        "moderations",
        "openai",
        "responses",
        "threads",
        "tunedModels",
        "uploads",
    }
)
API_VERSION = re.compile(r"^v[0-9]+(?:(?:alpha|beta)[0-9]*)?$")
GEMINI_METHODS = frozenset(
    {"generateContent", "streamGenerateContent", "countTokens", "embedContent", "batchEmbedContents", "predict"}
)
# What stays as it is when the routed path is encoded again for the upstream (RFC 3986 pchar
# without `%` and `;`, which a routed path never holds, plus `/`).
PATH_SAFE = "/:@!$&'()*+,=-._~"


@dataclass(frozen=True)
class Route:
    """Where one request goes.

    `kind`: `moderated` (a provider name is set), `passthrough` (forwarded untouched), `refused`
    (no such route) or `invalid` (a path servers could read differently; `problem` says why).
    `path` is the decoded, normalised path, the one the upstream receives (as `wire_path`).
    `style` is the API family the caller's SDK speaks, for error bodies.
    """

    kind: Literal["moderated", "passthrough", "refused", "invalid"]
    provider: str | None
    upstream: UpstreamName
    path: str
    style: ApiStyle
    # Why an `invalid` path was refused, in words for the caller.
    problem: str | None = None

    @property
    def log_path(self) -> str:
        """`path` as a log line may show it: only the APIs' own words, any other segment as `*`."""
        return redacted_path(self.path)

    @property
    def wire_path(self) -> str:
        """`path` as it goes upstream: percent-encoded so that decoding it once gives `path` back."""
        return quote(self.path, safe=PATH_SAFE)


class UnsafePath(ValueError):
    """A request path whose meaning depends on who decodes it."""


def decode_path(raw_path: str) -> str:
    """The path a request names, from the path as it was sent (`raw_path` in ASGI): its percent
    escapes decoded once, as UTF-8. Raises `UnsafePath` for one that servers could read differently."""
    encoded = ENCODED_SEPARATORS.search(raw_path)
    if encoded is not None:
        raise UnsafePath(f"it holds an encoded path separator ({encoded.group()})")
    try:
        path = unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        raise UnsafePath("its percent escapes are not UTF-8") from None
    for char in path:
        if char in UNSAFE_IN_PATH:
            raise UnsafePath(f"it holds {char!r} (sent as is or percent-encoded), which servers read differently")
        if char.isspace() or unicodedata.category(char) in ("Cc", "Cf"):
            raise UnsafePath(f"it holds the control or space character U+{ord(char):04X}")
    return path


def normalize_path(path: str) -> str:
    """Resolve `.` and `..` segments (never above the root), collapse empty segments, drop a
    trailing slash: the path every HTTP server would end up serving."""
    segments: list[str] = []
    for segment in path.split("/"):
        if segment in ("", "."):
            continue
        if segment == "..":
            if segments:
                segments.pop()
            continue
        segments.append(segment)
    return "/" + "/".join(segments)


def redacted_path(path: str) -> str:
    """`/v1beta/models/gemini-2.0-flash:generateContent` -> `/v1beta/models/*:generateContent`:
    the route's shape without anything a client chose to put in it."""
    segments = []
    for segment in path.split("/")[1:]:
        name, colon, method = segment.partition(":")
        shown = name if not name or name in API_WORDS or API_VERSION.match(name) else "*"
        if colon:
            shown += ":" + (method if method in GEMINI_METHODS else "*")
        segments.append(shown)
    return "/" + "/".join(segments)


@dataclass(frozen=True)
class PassthroughRule:
    """`METHOD /path/pattern`: `*` matches within one path segment (so `/v1/files/*` is a file's
    metadata, never `/v1/files/{id}/content`), `**` across segments."""

    method: str
    pattern: str
    regex: re.Pattern[str]

    @classmethod
    def parse(cls, text: str, *, source: str = "[routes] passthrough") -> PassthroughRule:
        method, _, pattern = text.strip().partition(" ")
        pattern = pattern.strip()
        if not method.isalpha() or not pattern.startswith("/"):
            raise ConfigError(f"{source}: {text!r} is not 'METHOD /path' (for example 'GET /v1/models/*').")
        parts = [re.escape(piece) for piece in pattern.split("**")]
        body = ".*".join(piece.replace(r"\*", "[^/]*") for piece in parts)
        return cls(method.upper(), pattern, re.compile(f"^{body}$"))

    def matches(self, method: str, path: str) -> bool:
        return (self.method == "*" or self.method == method) and self.regex.match(path) is not None

    def __str__(self) -> str:
        return f"{self.method} {self.pattern}"


class Router:
    def __init__(self, passthrough: Sequence[str] = DEFAULT_PASSTHROUGH) -> None:
        self.passthrough = tuple(PassthroughRule.parse(rule) for rule in passthrough)

    def route(self, method: str, raw_path: str, headers: Mapping[str, str] | None = None) -> Route:
        """Route a request on its path as sent (still percent-encoded)."""
        try:
            path = normalize_path(decode_path(raw_path))
        except UnsafePath as exc:
            style = _style(normalize_path(raw_path), headers or {})
            return Route("invalid", None, _upstream_for(style), normalize_path(raw_path), style, str(exc))
        style = _style(path, headers or {})
        moderated = _moderated(method, path)
        if moderated is not None:
            provider, upstream = moderated
            return Route("moderated", provider, upstream, path, style)
        canonical = _canonical(path)
        upstream = _upstream_for(style)
        for rule in self.passthrough:
            if rule.matches(method, path) or (canonical is not None and rule.matches(method, canonical)):
                return Route("passthrough", None, upstream, path, style)
        return Route("refused", None, upstream, path, style)


def _moderated(method: str, path: str) -> tuple[str, UpstreamName] | None:
    if method != "POST":
        return None
    gemini = GEMINI_METHOD.match(path)
    if gemini is not None and gemini.group(1) in GEMINI_GENERATE:
        return "gemini", "gemini"
    if path in ("/v1/messages", "/messages"):
        return "anthropic", "anthropic"
    canonical = _canonical(path)
    if canonical is not None:
        provider = MODERATED_OPENAI.get(canonical.removeprefix("/v1"))
        if provider is not None:
            return provider, "openai"
    return None


def _canonical(path: str) -> str | None:
    """The OpenAI-style `/v1/...` form of a path under any known base URL (None if none fits)."""
    azure = AZURE_DEPLOYMENT.match(path)
    if azure is not None:
        return "/v1" + azure.group(1)
    for prefix in OPENAI_PREFIXES:
        if prefix and (path == prefix or path.startswith(prefix + "/")):
            return "/v1" + path[len(prefix) :]
    if path.removeprefix("/").split("/", 1)[0] in ("chat", "completions", "responses", "models", "embeddings", "files"):
        return "/v1" + path
    return None


def _style(path: str, headers: Mapping[str, str]) -> ApiStyle:
    if GEMINI_METHOD.match(path) or "x-goog-api-key" in headers or path.startswith(("/v1beta/models", "/v1alpha/")):
        return "gemini"
    if path.startswith(("/v1/messages", "/messages")) or "anthropic-version" in headers:
        return "anthropic"
    return "openai"


def _upstream_for(style: ApiStyle) -> UpstreamName:
    # Each API family's own routes (model lists, token counts) go to its own upstream.
    return style


def describe(rules: Sequence[PassthroughRule]) -> str:
    return ", ".join(str(rule) for rule in rules) or "nothing"


__all__ = [
    "DEFAULT_PASSTHROUGH",
    "PassthroughRule",
    "Route",
    "Router",
    "UnsafePath",
    "decode_path",
    "normalize_path",
    "redacted_path",
]
