"""`guardstream serve`: the proxy's life as a process — start-up checks, signals, reload, shutdown.

```
 config file (--config, or ./guardstream.toml) → environment GUARDSTREAM_* → flags   (later wins)
        │ every setting checked, every pack compiled, keys read, the port tried: then, and only then,
        ▼ the start lines say what is in force and the server listens
 SIGHUP / POST /-/reload   re-read all of it; a config that does not load is reported, the old one stays
 SIGTERM / SIGINT          stop accepting; streams may finish for [server] shutdown_grace seconds, then
                           each ends with its provider's terminal event; a second signal ends them at once
```
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from collections.abc import Callable, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field, replace
from types import FrameType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import click
import uvicorn

from guardstream.auth import Credentials
from guardstream.config import (
    MOCK_UPSTREAM,
    SHORT_NAMES,
    Config,
    find_config,
    load_config,
    settings_from_env,
)
from guardstream.errors import ConfigError
from guardstream.guard import Guard
from guardstream.logs import configure_logging, log_event
from guardstream.packs import load_rules
from guardstream.proxy import GuardstreamProxy, create_app
from guardstream.servers import SECOND_SIGNAL_CUTOFF_SECONDS, EarlyHangups, uvicorn_config


def build_config(
    config_path: str | None,
    flags: Mapping[tuple[str, str], Any],
    classic: Mapping[str, Any],
    environ: Mapping[str, str],
) -> Config:
    """The config in force: the file, then the environment, then flags (each checked as it comes)."""
    config = load_config(find_config(config_path))
    values, variables = settings_from_env(environ)
    config = config.with_settings(values, source="environment", names=variables)
    short = {key: "--" + name.replace("_", "-") for key, name in SHORT_NAMES.items()}
    config = config.with_settings(flags, source="flags", names=short)
    return config.with_overrides(**classic)


@dataclass(frozen=True)
class ConfigSource:
    """Where the config in force comes from, to read again on reload: the file, the environment at
    that moment, the same flags. A value, not a closure, so worker processes can be handed it."""

    config_path: str | None
    flags: Mapping[tuple[str, str], Any] = field(default_factory=dict)
    classic: Mapping[str, Any] = field(default_factory=dict)
    mock_url: str | None = None

    def __call__(self) -> Config:
        config = build_config(self.config_path, self.flags, self.classic, os.environ)
        return replace_mock(config, self.mock_url) if self.mock_url else config


def check_startable(config: Config) -> list[str]:
    """Everything that can be wrong, found before anything listens. Returns warnings to print."""
    warnings = []
    if not config.moderation.packs and not config.moderation.allow_no_rules:
        raise ConfigError(
            "no rule pack is configured, so nothing would be moderated; name packs with --packs, or set "
            "[moderation] allow_no_rules = true if that is what you want."
        )
    guard = Guard(config)
    warnings += guard.warnings
    for direction, rules in (("output", guard.output_rules), ("input", guard.input_rules)):
        if not rules:
            warnings.append(f"no rule in the packs applies to {direction} text: {direction} is not moderated.")
    for policy in config.policies:
        if policy.packs is not None:
            load_rules(policy.packs)
    Credentials.from_settings(config.auth, [k for p in config.policies for k in p.client_keys])
    _check_port_free(config.server.host, config.server.port)
    return warnings


def _check_port_free(host: str, port: int) -> None:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port.") from None


def _shown(url: str) -> str:
    """An upstream URL as printed: without any credentials it may carry."""
    parts = urlsplit(url)
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def start_lines(config: Config, guard: Guard) -> list[str]:
    upstreams = config.upstreams
    packs = ", ".join(
        f"{name} ({sum(1 for r in guard.ruleset if r.pack == name)} rules)" for name in guard.ruleset.packs
    )
    lines = [
        f"config {config.source or 'defaults (no guardstream.toml found)'}",
        f"upstreams openai={_shown(upstreams.openai)} anthropic={_shown(upstreams.anthropic)} "
        f"gemini={_shown(upstreams.gemini)}",
        f"packs {packs or 'none'}: {len(guard.output_rules)} output rules, {len(guard.input_rules)} input rules",
        f"forwarded unmoderated ([routes] passthrough): {', '.join(config.routes.passthrough) or 'nothing'}",
    ]
    if config.classifiers:
        # An operator sees what checks the text besides the rules (never a URL: it may hold a key).
        lines.append(
            "classifiers: "
            + ", ".join(
                f"{c.name} ({c.kind}, {c.mode}, {c.direction}, on_error={c.on_error})" for c in config.classifiers
            )
        )
    if config.policies:
        lines.append(
            f"policies: {len(config.policies)} ({sum(len(p.client_keys) for p in config.policies)} client keys)"
        )
    auth = (
        "client keys required"
        if Credentials.from_settings(config.auth).requires_client_key or config.policies
        else "open"
    )
    lines.append(f"auth: {auth}; injected upstream keys: {', '.join(sorted(config.auth.upstream_key_env)) or 'none'}")
    return lines


class GuardstreamServer(uvicorn.Server):
    """uvicorn, with signals that end streams properly and a SIGHUP that reloads."""

    def __init__(self, config: uvicorn.Config, proxy: GuardstreamProxy, hangups: EarlyHangups | None = None) -> None:
        super().__init__(config)
        self.proxy = proxy
        self.hangups = hangups
        self._loop: asyncio.AbstractEventLoop | None = None
        self._signals = 0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        if hasattr(signal, "SIGHUP"):
            self._loop.add_signal_handler(signal.SIGHUP, self.proxy.reload)
            if self.hangups is not None and self.hangups.seen:
                self.proxy.reload()  # asked for while starting
        await super().startup(sockets)
        if self.started:
            # Said once the socket accepts, not before: scripts wait for this line and connect.
            click.echo(f"guardstream: listening on http://{self.config.host}:{self.config.port}", err=True)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self._signals += 1
        now = self._signals > 1
        loop = self._loop
        if loop is not None:
            loop.call_soon_threadsafe(lambda: self.proxy.begin_shutdown(now=now))
            if now:
                loop.call_soon_threadsafe(loop.call_later, SECOND_SIGNAL_CUTOFF_SECONDS, self._cut_off)
        elif now:
            self.force_exit = True
        super().handle_exit(sig, frame)
        if now and loop is not None:
            # uvicorn cuts at once on a second SIGINT: the cut-off above comes after the terminal events.
            self.force_exit = False
        # uvicorn would raise the signal again once it has shut down, killing the process by it; the
        # shutdown was ours and finished cleanly, so the process exits 0 instead.
        self._captured_signals.clear()

    def _cut_off(self) -> None:
        self.force_exit = True


def run(config: Config, source: Callable[[], Config], hangups: EarlyHangups | None = None) -> None:
    """Check everything, say what is in force, then serve until a signal says stop."""
    hangups = hangups or EarlyHangups()
    configure_logging(config.logging.level, config.logging.format)
    warnings = check_startable(config)
    with ExitStack() as stack:
        if config.upstreams.uses_mock():
            from guardstream.mock import create_mock_app
            from guardstream.servers import serve_in_thread

            mock_url = stack.enter_context(serve_in_thread(create_mock_app()))
            config = replace_mock(config, mock_url)
            click.echo(f"guardstream: built-in mock model at {mock_url}", err=True)
            if isinstance(source, ConfigSource):
                source = replace(source, mock_url=mock_url)
            else:
                load = source
                source = lambda: replace_mock(load(), mock_url)  # noqa: E731
        app = create_app(config)
        app.reloads_from(source)
        for line in start_lines(config, app.guard):
            click.echo(f"guardstream: {line}", err=True)
        for warning in warnings:
            click.echo(f"guardstream: warning: {warning}", err=True)
        if config.server.workers > 1:
            from guardstream.workers import serve_workers

            if not isinstance(source, ConfigSource):  # pragma: no cover - the CLI always passes one
                raise ConfigError("worker processes need a ConfigSource to read the config from.")
            click.echo(
                f"guardstream: {config.server.workers} worker processes; "
                f"listening on http://{config.server.host}:{config.server.port}",
                err=True,
            )
            serve_workers(config, source, hangups)
        else:
            server = GuardstreamServer(uvicorn_config(app, config), app, hangups)
            server.run()
        log_event("stopped")
        click.echo("guardstream: stopped", err=True)


def replace_mock(config: Config, url: str) -> Config:
    upstreams = config.upstreams
    return replace(
        config,
        upstreams=type(upstreams)(
            *(
                url if value == MOCK_UPSTREAM else value
                for value in (upstreams.openai, upstreams.anthropic, upstreams.gemini)
            )
        ),
    )
