"""Configuration: frozen settings from a TOML file (README's "Configuration"), with flags and
environment variables on top.

Every setting is declared once, as a field of a section dataclass with its kind in the field's
metadata; the TOML parser, the `guardstream serve` flags (`--timeouts-idle 30`) and the
environment variables (`GUARDSTREAM_TIMEOUTS_IDLE=30`) are all derived from that declaration, so
they cannot drift apart. Every problem raises `ConfigError` naming the file (or flag), the key
and what would be valid: a typo stops start-up with one readable line instead of a default
silently taking over.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import Field, dataclass, field, fields, replace
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
DEFAULT_CONFIG_NAME = "guardstream.toml"
ENV_PREFIX = "GUARDSTREAM_"


def setting(default: Any, kind: str, help: str, **rules: Any) -> Any:
    """A config field: `kind` says how a TOML value or a flag's text is read and checked."""
    factory = (lambda: default) if isinstance(default, dict) else None
    metadata = {"kind": kind, "help": help, **rules}
    if factory is not None:
        return field(default_factory=factory, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class ServerSettings:
    host: str = setting("127.0.0.1", "str", "Interface to listen on.")
    port: int = setting(8080, "int", "Port to listen on.", minimum=0, maximum=65535)
    max_body_bytes: int = setting(DEFAULT_MAX_BODY_BYTES, "int", "Larger request bodies get 413.", minimum=1)
    shutdown_grace: float = setting(30.0, "seconds", "On SIGTERM, how long streams may finish before they are ended.")
    workers: int = setting(1, "int", "Worker processes on one port (one per core); /metrics sums them.", minimum=1)


@dataclass(frozen=True)
class Upstreams:
    openai: str = setting("https://api.openai.com", "url", "Where the OpenAI API (and compatible routes) live.")
    anthropic: str = setting("https://api.anthropic.com", "url", "Where the Anthropic API lives.")
    gemini: str = setting("https://generativelanguage.googleapis.com", "url", "Where the Gemini API lives.")

    def uses_mock(self) -> bool:
        return MOCK_UPSTREAM in (self.openai, self.anthropic, self.gemini)


@dataclass(frozen=True)
class ModerationSettings:
    packs: tuple[str, ...] = setting(DEFAULT_PACKS, "packs", "Rule packs: built-in names or paths to .toml files.")
    on_violation: Literal["error", "finish"] = setting(
        "error",
        "choice",
        "A block ends the stream with an error, or finishes it gracefully.",
        choices=("error", "finish"),
    )
    max_holdback_chars: int = setting(DEFAULT_MAX_HOLDBACK_CHARS, "int", "Longest text held for one match.", minimum=1)
    context_chars: int = setting(DEFAULT_CONTEXT_CHARS, "int", "Released text rules re-read.", minimum=0)
    # Rules read through invisible (default-ignorable) characters and compatibility look-alikes (NFKC).
    normalize: bool = setting(True, "bool", "See through invisible characters and look-alikes.")
    rule_timeout_ms: int = setting(100, "int", "Longest a rule's regex may run on one delta.", minimum=1)
    rule_budget_ms: int = setting(
        1000, "int", "Regex time one stream may spend in one rule, + 50 µs per character.", minimum=1
    )
    allow_slow_rules: bool = setting(False, "bool", "Load rules that fail the backtracking probe (with a warning).")
    allow_no_rules: bool = setting(False, "bool", "Start even when no rule applies (an explicit choice).")


@dataclass(frozen=True)
class RouteSettings:
    # Forwarded unmoderated; every other route that is not moderated is refused.
    passthrough: tuple[str, ...] = setting(DEFAULT_PASSTHROUGH, "passthrough", "Routes forwarded unmoderated.")


@dataclass(frozen=True)
class Timeouts:
    """Seconds. `idle` is the longest silence from the upstream mid-stream; `keepalive` how often
    the client hears something while text is held."""

    connect: float = setting(10.0, "seconds", "Connecting to the upstream.")
    first_byte: float = setting(120.0, "seconds", "Until the upstream's answer starts (504 after).")
    idle: float = setting(60.0, "seconds", "Longest upstream silence mid-stream.")
    total: float = setting(900.0, "seconds", "Longest a request may take in all.")
    keepalive: float = setting(15.0, "seconds", "How often the client hears a keep-alive while text is held.")


@dataclass(frozen=True)
class AuthSettings:
    client_keys: tuple[str, ...] = setting((), "list", "Keys clients must present (as their SDK's API key).")
    client_keys_env: str = setting("GUARDSTREAM_CLIENT_KEYS", "str", "Environment variable with more client keys.")
    upstream_key_env: dict[str, str] = setting(
        {},
        "map",
        "Per upstream, the environment variable holding the key guardstream injects.",
        keys=("openai", "anthropic", "gemini"),
    )
    admin_key_env: str = setting("GUARDSTREAM_ADMIN_KEY", "str", "Environment variable with the admin key.")


@dataclass(frozen=True)
class LoggingSettings:
    level: Literal["debug", "info", "warning", "error"] = setting(
        "info", "choice", "Log level.", choices=("debug", "info", "warning", "error")
    )
    format: Literal["text", "json"] = setting(
        "text", "choice", "One line per request, as text or JSON.", choices=("text", "json")
    )


@dataclass(frozen=True)
class Policy:
    """Rules of their own for the clients that present one of `client_keys`."""

    client_keys: tuple[str, ...]
    packs: tuple[str, ...] | None = None
    on_violation: Literal["error", "finish"] | None = None


SECTIONS: dict[str, type[Any]] = {
    "server": ServerSettings,
    "upstreams": Upstreams,
    "moderation": ModerationSettings,
    "routes": RouteSettings,
    "timeouts": Timeouts,
    "auth": AuthSettings,
    "logging": LoggingSettings,
}


@dataclass(frozen=True)
class Config:
    server: ServerSettings = field(default_factory=ServerSettings)
    upstreams: Upstreams = field(default_factory=Upstreams)
    moderation: ModerationSettings = field(default_factory=ModerationSettings)
    routes: RouteSettings = field(default_factory=RouteSettings)
    timeouts: Timeouts = field(default_factory=Timeouts)
    auth: AuthSettings = field(default_factory=AuthSettings)
    logging: LoggingSettings = field(default_factory=LoggingSettings)
    policies: tuple[Policy, ...] = ()
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
        """Apply the classic `guardstream serve` flags over the file."""
        values: dict[tuple[str, str], Any] = {}
        if host:
            values["server", "host"] = host
        if port is not None:
            values["server", "port"] = port
        if packs is not None:
            values["moderation", "packs"] = packs
        config = self.with_settings(values, source="flags")
        if upstream:
            url = _convert(upstream, _field(Upstreams, "openai"), "--upstream")
            config = replace(config, upstreams=Upstreams(url, url, url))
        return config

    def with_settings(
        self, values: Mapping[tuple[str, str], Any], *, source: str, names: Mapping[tuple[str, str], str] | None = None
    ) -> Config:
        """Override `(section, key)` settings with values from flags or the environment (text or typed).

        `names` says how the user spelled a setting (`--port` for `--server-port`), for error messages.
        """
        config = self
        for (section, key), value in values.items():
            if value is None:
                continue
            current = getattr(config, section)
            spec = _field(type(current), key)
            name = (names or {}).get((section, key)) or flag_name(section, key)
            converted = _convert(value, spec, f"{source}: {name}")
            config = replace(config, **{section: replace(current, **{key: converted})})
        _check_packs(config.moderation.packs, source)
        return config


def iter_settings() -> Iterator[tuple[str, Field[Any]]]:
    """Every (section, field) there is: what flags and environment variables are made from."""
    for section, cls in SECTIONS.items():
        for spec in fields(cls):
            yield section, spec


def flag_name(section: str, key: str) -> str:
    return f"--{section}-{key}".replace("_", "-")


def env_name(section: str, key: str) -> str:
    return f"{ENV_PREFIX}{section}_{key}".upper()


def settings_from_env(
    environ: Mapping[str, str] = os.environ,
) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    """(settings found in the environment, the variable each came from)."""
    names = {(s, f.name): env_name(s, f.name) for s, f in iter_settings() if env_name(s, f.name) in environ}
    # The short names of the most used flags work as variables too (GUARDSTREAM_PORT).
    for key, short in SHORT_NAMES.items():
        variable = ENV_PREFIX + short.upper()
        if variable in environ and key not in names:
            names[key] = variable
    return {key: environ[variable] for key, variable in names.items()}, names


# Settings with a short flag of their own: `--port` for `--server-port`.
SHORT_NAMES = {
    ("server", "host"): "host",
    ("server", "port"): "port",
    ("server", "workers"): "workers",
    ("moderation", "packs"): "packs",
    ("logging", "level"): "log_level",
    ("logging", "format"): "log_format",
}


def find_config(path: str | Path | None, cwd: Path | None = None) -> str | None:
    """The config file to read: the one named, else `guardstream.toml` in the working directory."""
    if path is not None:
        return str(path)
    candidate = (cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
    return str(candidate) if candidate.is_file() else None


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
    known = {*SECTIONS, "policies", "classifiers"}
    _no_unknown(data, known, source, "")
    classifiers = parse_classifiers(data.get("classifiers", []), source)
    base = Path(source).parent if source != "<config>" else Path(".")
    sections: dict[str, Any] = {}
    for name, cls in SECTIONS.items():
        table = data.get(name, {})
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [{name}] must be a table.")
        _no_unknown(table, {f.name for f in fields(cls)}, source, name)
        values = {key: _convert(value, _field(cls, key), f"{source}: [{name}] {key}") for key, value in table.items()}
        sections[name] = cls(**values)
    moderation = sections["moderation"]
    # A pack given as a relative path is relative to the config file, not the working directory.
    packs = _relative_to(moderation.packs, base)
    _check_packs(packs, f"{source}: [moderation] packs")
    sections["moderation"] = replace(moderation, packs=packs)
    policies = _policies(data.get("policies", []), source, base)
    return Config(**sections, policies=policies, classifiers=classifiers, source=source)


def _relative_to(packs: tuple[str, ...], base: Path) -> tuple[str, ...]:
    return tuple(str(base / p) if p.endswith(".toml") and not Path(p).is_absolute() else p for p in packs)


def _check_packs(packs: tuple[str, ...], where: str) -> None:
    for pack in packs:
        try:
            resolve_pack(pack)
        except RuleError as exc:
            raise ConfigError(f"{where}: {exc}") from None


def _policies(raw: Any, source: str, base: Path) -> tuple[Policy, ...]:
    if not isinstance(raw, list) or not all(isinstance(p, dict) for p in raw):
        raise ConfigError(f"{source}: [[policies]] must be tables, each with client_keys and its own settings.")
    policies = []
    for i, table in enumerate(raw):
        where = f"{source}: [[policies]] #{i + 1}"
        _no_unknown(table, {"client_keys", "packs", "on_violation"}, source, f"[policies] #{i + 1}")
        keys = _convert(table.get("client_keys", []), _field(AuthSettings, "client_keys"), f"{where} client_keys")
        if not keys:
            raise ConfigError(f"{where}: client_keys is empty; a policy applies to the clients that present its keys.")
        packs = None
        if "packs" in table:
            packs = _relative_to(_convert(table["packs"], _field(ModerationSettings, "packs"), f"{where} packs"), base)
            _check_packs(packs, f"{where} packs")
        on_violation = None
        if "on_violation" in table:
            on_violation = _convert(
                table["on_violation"], _field(ModerationSettings, "on_violation"), f"{where} on_violation"
            )
        policies.append(Policy(keys, packs, on_violation))
    return tuple(policies)


def _field(cls: type[Any], key: str) -> Field[Any]:
    for spec in fields(cls):
        if spec.name == key:
            return spec
    raise KeyError(key)  # pragma: no cover - callers check keys first


def _no_unknown(table: dict[str, Any], known: set[str], source: str, section: str) -> None:
    unknown = sorted(set(table) - known)
    if unknown:
        where = f"[{section}] " if section else ""
        raise ConfigError(f"{source}: {where}unknown key {unknown[0]!r}. Known keys: {', '.join(sorted(known))}.")


def _split(value: Any) -> Any:
    """Lists and maps given as text (a flag, an environment variable) are comma-separated."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _convert(value: Any, spec: Field[Any], where: str) -> Any:
    """One setting's value, from TOML or from text, checked as its declaration says."""
    meta = spec.metadata
    kind = meta["kind"]
    convert = _CONVERTERS[kind]
    return convert(value, meta, where)


def _to_str(value: Any, meta: Mapping[str, Any], where: str) -> str:
    if not isinstance(value, str) or not value:
        raise ConfigError(f"{where} has value {value!r}. Not a valid string.")
    return value


def _to_int(value: Any, meta: Mapping[str, Any], where: str) -> int:
    number = value
    if isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    minimum, maximum = meta.get("minimum"), meta.get("maximum")
    if (
        not isinstance(number, int)
        or isinstance(number, bool)
        or (minimum is not None and number < minimum)
        or (maximum is not None and number > maximum)
    ):
        bounds = f">= {minimum}" if maximum is None else f"{minimum} to {maximum}"
        raise ConfigError(f"{where} has value {value!r}. Not a valid int ({bounds}).")
    return number


def _to_seconds(value: Any, meta: Mapping[str, Any], where: str) -> float:
    number = value
    if isinstance(value, str):
        try:
            number = float(value)
        except ValueError:
            pass
    if isinstance(number, bool) or not isinstance(number, int | float) or not 0 < number < float("inf"):
        raise ConfigError(f"{where} has value {value!r}. Use a number of seconds above 0.")
    return float(number)


def _to_bool(value: Any, meta: Mapping[str, Any], where: str) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
        return value.lower() in ("true", "1", "yes")
    if not isinstance(value, bool):
        raise ConfigError(f"{where} has value {value!r}. Use true or false.")
    return value


def _to_choice(value: Any, meta: Mapping[str, Any], where: str) -> str:
    choices = meta["choices"]
    if value not in choices:
        options = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"{where} has value {value!r}. Use one of {options}.")
    return cast(str, value)


def _to_list(value: Any, meta: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = _split(value)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of strings.")
    return tuple(value)


def _to_packs(value: Any, meta: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = _split(value)
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise ConfigError(f"{where} must be a list of pack names or paths.")
    return tuple(value)


def _to_passthrough(value: Any, meta: Mapping[str, Any], where: str) -> tuple[str, ...]:
    value = _split(value)
    if not isinstance(value, list) or not all(isinstance(p, str) for p in value):
        raise ConfigError(f"{where} must be a list of 'METHOD /path' strings.")
    for rule in value:
        PassthroughRule.parse(rule, source=where)
    return tuple(value)


def _to_map(value: Any, meta: Mapping[str, Any], where: str) -> dict[str, str]:
    if isinstance(value, str):
        pairs = [item.partition("=") for item in _split(value)]
        value = {k.strip(): v.strip() for k, _, v in pairs}
    allowed = meta.get("keys")
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in value.items()
    ):
        raise ConfigError(f'{where} must map names to strings, e.g. {{ openai = "OPENAI_API_KEY" }}.')
    unknown = sorted(set(value) - set(allowed or value))
    if unknown:
        raise ConfigError(f"{where} has unknown name {unknown[0]!r}. Use {', '.join(allowed or ())}.")
    return dict(value)


def _to_url(value: Any, meta: Mapping[str, Any], where: str) -> str:
    if value == MOCK_UPSTREAM:
        return MOCK_UPSTREAM
    if not isinstance(value, str) or not value.startswith(("http://", "https://")) or len(value.split("//", 1)[1]) < 1:
        raise ConfigError(f"{where} has value {value!r}. Use an http:// or https:// URL, or 'mock'.")
    return value.rstrip("/")


_CONVERTERS: dict[str, Callable[[Any, Mapping[str, Any], str], Any]] = {
    "str": _to_str,
    "int": _to_int,
    "seconds": _to_seconds,
    "bool": _to_bool,
    "choice": _to_choice,
    "list": _to_list,
    "packs": _to_packs,
    "passthrough": _to_passthrough,
    "map": _to_map,
    "url": _to_url,
}
