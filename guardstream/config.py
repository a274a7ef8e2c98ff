"""Configuration: frozen settings from a TOML file (README's "Configuration"), with CLI/env overrides on top.

Every problem raises `ConfigError` naming the file, the key and what would be valid, so that a
typo stops start-up with one readable line instead of a default silently taking over.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, cast

from guardstream.classifiers.base import ClassifierSettings
from guardstream.classifiers.settings import parse_classifiers
from guardstream.errors import ConfigError, RuleError
from guardstream.packs import resolve_pack
from guardstream.routes import DEFAULT_PASSTHROUGH, PassthroughRule
from guardstream.window import DEFAULT_CONTEXT_CHARS, DEFAULT_MAX_HOLDBACK_CHARS

MOCK_UPSTREAM = "mock"
DEFAULT_PACKS = ("pii", "secrets")


DEFAULT_MAX_BODY_BYTES = 32 * 1024 * 1024


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    # Requests larger than this are refused with 413 before anything reads them whole.
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass(frozen=True)
class Upstreams:
    openai: str = "https://api.openai.com"
    anthropic: str = "https://api.anthropic.com"
    gemini: str = "https://generativelanguage.googleapis.com"

    def uses_mock(self) -> bool:
        return MOCK_UPSTREAM in (self.openai, self.anthropic, self.gemini)


@dataclass(frozen=True)
class ModerationSettings:
    packs: tuple[str, ...] = DEFAULT_PACKS
    on_violation: Literal["error", "finish"] = "error"
    max_holdback_chars: int = DEFAULT_MAX_HOLDBACK_CHARS
    context_chars: int = DEFAULT_CONTEXT_CHARS
    # Rules read through zero-width characters and compatibility look-alikes (NFKC).
    normalize: bool = True


@dataclass(frozen=True)
class RouteSettings:
    # Forwarded unmoderated; every other route that is not moderated is refused.
    passthrough: tuple[str, ...] = DEFAULT_PASSTHROUGH


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `idle` is the longest silence from the upstream mid-stream; `keepalive` how often
    the client hears something while text is held."""

    connect: float = 10.0
    first_byte: float = 120.0
    idle: float = 60.0
    total: float = 900.0
    keepalive: float = 15.0


@dataclass(frozen=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    upstreams: Upstreams = field(default_factory=Upstreams)
    moderation: ModerationSettings = field(default_factory=ModerationSettings)
    routes: RouteSettings = field(default_factory=RouteSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    classifiers: tuple[ClassifierSettings, ...] = ()
    source: str | None = None

    def with_overrides(
        self,
        *,
        upstream: str | None = None,
        host: str | None = None,
        port: int | None = None,
        packs: str | None = None,
    ) -> Config:
        """Apply `guardstream serve` flags (or their `GUARDSTREAM_*` variables) over the file."""
        config = self
        if upstream:
            url = upstream if upstream == MOCK_UPSTREAM else _url(upstream, "--upstream", None)
            config = replace(config, upstreams=Upstreams(url, url, url))
        server = config.server
        if host:
            server = replace(server, host=host)
        if port is not None:
            server = replace(server, port=port)
        config = replace(config, server=server)
        if packs is not None:
            names = tuple(p.strip() for p in packs.split(",") if p.strip())
            config = replace(config, moderation=replace(config.moderation, packs=names))
        return config


def load_config(path: str | Path | None = None) -> Config:
    """Read a `guardstream.toml`; `None` gives the defaults. Every key is optional."""
    if path is None:
        return Config()
    source = str(path)
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: the config file does not exist.") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{source}: cannot read the config file ({exc}).") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: invalid TOML: {exc}.") from None
    return parse_config(data, source=source)


def parse_config(data: dict[str, Any], *, source: str = "<config>") -> Config:
    known = {"server", "upstreams", "moderation", "routes", "timeouts", "classifiers"}
    _no_unknown(data, known, source, "")
    classifiers = parse_classifiers(data.get("classifiers", []), source)
    server = _table(data, "server", source)
    _no_unknown(server, {"host", "port", "max_body_bytes"}, source, "server")
    upstreams = _table(data, "upstreams", source)
    _no_unknown(upstreams, {"openai", "anthropic", "gemini"}, source, "upstreams")
    moderation = _table(data, "moderation", source)
    _no_unknown(
        moderation, {"packs", "on_violation", "max_holdback_chars", "context_chars", "normalize"}, source, "moderation"
    )
    routes = _table(data, "routes", source)
    _no_unknown(routes, {"passthrough"}, source, "routes")
    passthrough = routes.get("passthrough", list(DEFAULT_PASSTHROUGH))
    if not isinstance(passthrough, list) or not all(isinstance(p, str) for p in passthrough):
        raise ConfigError(f"{source}: [routes] passthrough must be a list of 'METHOD /path' strings.")
    for rule in passthrough:
        PassthroughRule.parse(rule, source=f"{source}: [routes] passthrough")
    timeouts = _table(data, "timeouts", source)
    default_timeouts = Timeouts()
    _no_unknown(timeouts, set(default_timeouts.__dataclass_fields__), source, "timeouts")
    normalize = moderation.get("normalize", True)
    if not isinstance(normalize, bool):
        raise ConfigError(f"{source}: [moderation] normalize has value {normalize!r}. Use true or false.")

    defaults = Config()
    packs = moderation.get("packs", list(defaults.moderation.packs))
    if not isinstance(packs, list) or not all(isinstance(p, str) for p in packs):
        raise ConfigError(f"{source}: [moderation] packs must be a list of pack names or paths.")
    on_violation = moderation.get("on_violation", "error")
    if on_violation not in ("error", "finish"):
        raise ConfigError(f"{source}: [moderation] on_violation has value {on_violation!r}. Use 'error' or 'finish'.")
    base = Path(source).parent if source != "<config>" else Path(".")
    packs = [str(base / p) if p.endswith(".toml") and not Path(p).is_absolute() else p for p in packs]
    for pack in packs:
        try:
            resolve_pack(pack)
        except RuleError as exc:
            raise ConfigError(f"{source}: [moderation] packs: {exc}") from None
    return Config(
        server=ServerSettings(
            host=_str(server, "host", defaults.server.host, source, "server"),
            port=_int(server, "port", defaults.server.port, source, "server", minimum=0),
            max_body_bytes=_int(server, "max_body_bytes", defaults.server.max_body_bytes, source, "server", 1),
        ),
        upstreams=Upstreams(
            openai=_url(upstreams.get("openai", defaults.upstreams.openai), "[upstreams] openai", source),
            anthropic=_url(upstreams.get("anthropic", defaults.upstreams.anthropic), "[upstreams] anthropic", source),
            gemini=_url(upstreams.get("gemini", defaults.upstreams.gemini), "[upstreams] gemini", source),
        ),
        moderation=ModerationSettings(
            # A pack given as a relative path is relative to the config file, not the working directory.
            packs=tuple(packs),
            on_violation=cast(Literal["error", "finish"], on_violation),
            max_holdback_chars=_int(
                moderation, "max_holdback_chars", defaults.moderation.max_holdback_chars, source, "moderation", 1
            ),
            context_chars=_int(moderation, "context_chars", defaults.moderation.context_chars, source, "moderation", 0),
            normalize=normalize,
        ),
        routes=RouteSettings(tuple(passthrough)),
        timeouts=Timeouts(
            **{
                name: _seconds(timeouts, name, getattr(default_timeouts, name), source)
                for name in default_timeouts.__dataclass_fields__
            }
        ),
        classifiers=classifiers,
        source=source,
    )


def _table(data: dict[str, Any], key: str, source: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{source}: [{key}] must be a table.")
    return value


def _no_unknown(table: dict[str, Any], known: set[str], source: str, section: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        where = f"[{section}] " if section else ""
        raise ConfigError(f"{source}: {where}unknown key {unknown[0]!r}. Known keys: {', '.join(sorted(known))}.")


def _str(table: dict[str, Any], key: str, default: str, source: str, section: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{source}: [{section}] {key} has value {value!r}. Not a valid string.")
    return value


def _int(table: dict[str, Any], key: str, default: int, source: str, section: str, minimum: int) -> int:
    value = table.get(key, default)
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ConfigError(f"{source}: [{section}] {key} has value {value!r}. Not a valid int (>= {minimum}).")
    return value


def _seconds(table: dict[str, Any], key: str, default: float, source: str) -> float:
    value = table.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 < value < float("inf"):
        raise ConfigError(f"{source}: [timeouts] {key} has value {value!r}. Use a number of seconds above 0.")
    return float(value)


def _url(value: Any, key: str, source: str | None) -> str:
    where = f"{source}: " if source else ""
    if value == MOCK_UPSTREAM:
        return MOCK_UPSTREAM
    if not isinstance(value, str) or not value.startswith(("http://", "https://")):
        raise ConfigError(f"{where}{key} has value {value!r}. Use an http:// or https:// URL, or 'mock'.")
    return value.rstrip("/")
