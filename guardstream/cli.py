"""The `guardstream` command. Errors print one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from guardstream.config import Config, flag_name, iter_settings
from guardstream.errors import ConfigError, GuardstreamError
from guardstream.packs import builtin_pack_names, load_rules
from guardstream.probes import slow_rules
from guardstream.rules import RuleSet
from guardstream.window import check_rule_examples, moderate_text

F = TypeVar("F", bound=Callable[..., Any])


def _fail_cleanly(func: F) -> F:
    import functools

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except GuardstreamError as exc:
            click.echo(f"guardstream: {exc}", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(package_name="guardstream")
def main() -> None:
    """Streaming content moderation for LLM APIs."""


def _settings_options(func: F) -> F:
    """`--<section>-<key>` for every setting, each also read from `GUARDSTREAM_<SECTION>_<KEY>`."""
    for section, spec in reversed(list(iter_settings())):
        option = click.option(
            flag_name(section, spec.name),
            f"setting__{section}__{spec.name}",
            default=None,
            metavar=spec.metadata["kind"].upper(),
            help=f"[{section}] {spec.name}: {spec.metadata['help']}",
        )
        func = option(func)
    return func


@main.command(context_settings={"max_content_width": 120})
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False),
    envvar="GUARDSTREAM_CONFIG",
    help="TOML config file (default: ./guardstream.toml when it exists).",
)
@click.option(
    "--upstream", envvar="GUARDSTREAM_UPSTREAM", help="Send every provider to this URL ('mock': built-in model)."
)
@click.option("--host", help="Interface to listen on (default 127.0.0.1).")
@click.option("--port", help="Port to listen on (default 8080).")
@click.option("--packs", help="Comma-separated rule packs (names or paths).")
@click.option("--log-level", help="debug, info, warning or error.")
@click.option("--log-format", help="text or json: one line per request.")
@_settings_options
@_fail_cleanly
def serve(
    config_path: str | None,
    upstream: str | None,
    host: str | None,
    port: str | None,
    packs: str | None,
    log_level: str | None,
    log_format: str | None,
    **settings: str | None,
) -> None:
    """Run the moderating proxy: point any OpenAI/Anthropic/Gemini SDK's base_url at it.

    Every setting of the config file is also a flag (--timeouts-idle 30) and an environment
    variable (GUARDSTREAM_TIMEOUTS_IDLE=30); flags win over the environment, which wins over the file.
    """
    import os

    from guardstream.serve import build_config, run

    flags: dict[tuple[str, str], Any] = {}
    for name, value in settings.items():
        _, section, key = name.split("__")
        flags[section, key] = value
    for section, key, value in (
        ("server", "host", host),
        ("server", "port", port),
        ("logging", "level", log_level),
        ("logging", "format", log_format),
        ("moderation", "packs", packs),
    ):
        if value is not None:
            flags[section, key] = value
    classic = {"upstream": upstream}

    def load() -> Config:
        return build_config(config_path, flags, classic, os.environ)

    run(load(), load)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(0, 65535), default=8081, show_default=True)
def mock(host: str, port: int) -> None:
    """Run the built-in scripted model server (all four provider formats)."""
    import uvicorn

    from guardstream.mock import create_mock_app

    uvicorn.run(create_mock_app(), host=host, port=port, log_level="warning")


@main.command()
@click.argument("source", type=click.File("rb"), default="-")
@click.option("--packs", default="pii,secrets", show_default=True, help="Comma-separated rule packs.")
@click.option("--direction", type=click.Choice(["output", "input"]), default="output", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON report instead of the moderated text.")
@_fail_cleanly
def scan(source: Any, packs: str, direction: str, as_json: bool) -> None:
    """Moderate a text offline (FILE or - for stdin); exit 1 if it would be blocked."""
    rules = load_rules(p.strip() for p in packs.split(",") if p.strip())
    raw = source.read()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        name = getattr(source, "name", "-")
        name = "<stdin>" if name == "-" else name
        raise ConfigError(f"{name}: the text is not valid UTF-8 (byte {exc.start}); convert it first.") from None
    applicable = rules.for_direction(direction)  # type: ignore[arg-type]
    if not applicable:
        # "Clean" would be a lie: nothing was checked.
        raise ConfigError(
            f"no rule in {', '.join(rules.packs)} applies to {direction} text, so nothing would be checked; "
            f"choose other packs, or --direction {'input' if direction == 'output' else 'output'}."
        )
    verdict = moderate_text(applicable, text)
    out, violations, blocked = verdict.text, verdict.violations, verdict.blocked
    if as_json:
        report = {
            "blocked": blocked is not None,
            "text": out,
            "violations": [
                {
                    "rule": v.rule.id,
                    "category": v.rule.category,
                    "action": v.action,
                    "timeout": v.is_timeout,
                    "start": v.start,
                    "end": v.end,
                }
                for v in violations
            ],
        }
        click.echo(json.dumps(report, indent=2))
    else:
        click.echo(out, nl=not out.endswith("\n"))
        for v in violations:
            what = "timeout (undecided, withheld)" if v.is_timeout else v.action
            click.echo(f"{what}: {v.rule.id} ({v.rule.category}) at {v.start}-{v.end}", err=True)
    sys.exit(1 if blocked is not None else 0)


@main.group()
def rules() -> None:
    """List or test rule packs."""


@rules.command("list")
@click.argument("packs", nargs=-1)
@_fail_cleanly
def rules_list(packs: tuple[str, ...]) -> None:
    """List the rules of PACKS (default: every built-in pack)."""
    ruleset = load_rules(packs or builtin_pack_names())
    for rule in ruleset:
        click.echo(f"{rule.id:<40} {rule.action:<7} {rule.scope:<7} {rule.category}")


@rules.command("test")
@click.argument("packs", nargs=-1)
@_fail_cleanly
def rules_test(packs: tuple[str, ...]) -> None:
    """Stream every example of PACKS (default: every built-in pack) and check it behaves as declared."""
    ruleset: RuleSet = load_rules(packs or builtin_pack_names(), check_examples=False)
    problems: list[str] = []
    count = 0
    for rule in ruleset:
        count += len(rule.examples_match) + len(rule.examples_no_match)
        problems.extend(check_rule_examples(rule))
    for rule, shape in slow_rules(ruleset):
        problems.append(f"{rule.id}: its regex backtracks catastrophically ({shape} takes over the probe's budget)")
    for problem in problems:
        click.echo(f"FAIL {problem}", err=True)
    status = "FAILED" if problems else "ok"
    click.echo(f"{status}: {len(ruleset)} rules, {count} examples, {len(problems)} failing")
    sys.exit(1 if problems else 0)


@main.command()
def demo() -> None:
    """Mock model + proxy + a client: one clean stream and one cut by a secret."""
    from guardstream.demo import run_demo

    run_demo()


@main.command()
@click.option("--packs", default="pii,secrets", show_default=True)
@click.option("--delta-chars", type=int, default=20, show_default=True)
@click.option("--chars", type=int, default=1_000_000, show_default=True, help="Size of the English text to stream.")
@click.option("--keywords", is_flag=True, help="Also compare keyword matching with regex's \\L<list> at 5,000 words.")
@click.option("--proxy", is_flag=True, help="Also measure proxy overhead against a bare pass-through proxy.")
@click.option("--long", "is_long", is_flag=True, help="With --proxy: add 100,000-event streams.")
@_fail_cleanly
def bench(packs: str, delta_chars: int, chars: int, keywords: bool, proxy: bool, is_long: bool) -> None:
    """Measure moderation cost per delta on a large English text (and, with --proxy, per event)."""
    from guardstream.bench import run_engine_bench, run_keyword_bench, run_proxy_bench

    run_engine_bench([p.strip() for p in packs.split(",") if p.strip()], delta_chars=delta_chars, chars=chars)
    if keywords:
        run_keyword_bench()
    if proxy:
        run_proxy_bench(events=(1_000, 10_000, 100_000) if is_long else (1_000, 10_000))
