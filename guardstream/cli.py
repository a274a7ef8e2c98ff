"""The `guardstream` command. Errors print one line and exit 2, never a traceback."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from guardstream.config import flag_name, iter_settings
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
@click.option("--workers", help="Worker processes, one per core (default 1); /metrics sums them.")
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
    workers: str | None,
    **settings: str | None,
) -> None:
    """Run the moderating proxy: point any OpenAI/Anthropic/Gemini SDK's base_url at it.

    Every setting of the config file is also a flag (--timeouts-idle 30) and an environment
    variable (GUARDSTREAM_TIMEOUTS_IDLE=30); flags win over the environment, which wins over the file.
    """

    from guardstream.serve import ConfigSource, run
    from guardstream.servers import EarlyHangups

    hangups = EarlyHangups()  # before the config is read: that takes time, and SIGHUP would end us
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
        ("server", "workers", workers),
    ):
        if value is not None:
            flags[section, key] = value
    source = ConfigSource(config_path, flags, {"upstream": upstream})
    run(source(), source, hangups)


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


REGIMES = ("flood", "paced", "all", "many", "classifier", "isolation")


@main.command()
@click.option("--packs", default="pii,secrets", show_default=True, help="Rule packs of the engine and the proxy.")
@click.option("--delta-chars", type=int, default=20, show_default=True, help="Engine: characters per delta.")
@click.option("--chars", type=int, help="Engine: size of the English text to stream (1,000,000; --quick 20,000).")
@click.option("--engine/--no-engine", default=True, show_default=True, help="Measure the window's cost per delta.")
@click.option("--keywords", is_flag=True, help="Also compare keyword matching with regex's \\L<list> at 5,000 words.")
@click.option("--proxy", is_flag=True, help="Also measure the proxy against a bare pass-through proxy, per event.")
@click.option(
    "--regime",
    default="all",
    show_default=True,
    help="Proxy scenarios: flood, paced, all (both), many (1,000 streams), classifier (a strict and an async "
    "classifier's added latency) or isolation (a catastrophic rule's effect on other streams).",
)
@click.option("--rounds", type=int, default=1, show_default=True, help="Proxy: measure every scenario this many times.")
@click.option("--quick", is_flag=True, help="A short run of everything asked for (a smoke test, not a measurement).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False), help="Also write the report as JSON to FILE.")
@_fail_cleanly
def bench(
    packs: str,
    delta_chars: int,
    chars: int | None,
    engine: bool,
    keywords: bool,
    proxy: bool,
    regime: str,
    rounds: int,
    quick: bool,
    json_path: str | None,
) -> None:
    """Measure what moderation costs: per delta in the window, and (--proxy) per event through the proxy."""
    from pathlib import Path

    from guardstream.bench.engine import engine_bench, keyword_bench, print_engine, print_keywords

    pack_names = [p.strip() for p in packs.split(",") if p.strip()]
    chars = chars if chars is not None else (20_000 if quick else 1_000_000)
    if delta_chars < 1:
        raise ConfigError(f"--delta-chars must be at least 1 (got {delta_chars}).")
    if chars < delta_chars:
        raise ConfigError(f"--chars must be at least --delta-chars ({delta_chars}) (got {chars}).")
    if regime not in REGIMES:
        raise ConfigError(f"--regime must be {', '.join(REGIMES[:-1])} or {REGIMES[-1]} (got {regime!r}).")
    if rounds < 1:
        raise ConfigError(f"--rounds must be at least 1 (got {rounds}).")
    if not (engine or keywords or proxy):
        raise ConfigError("nothing to measure: --no-engine needs --keywords or --proxy.")
    if json_path is not None and not Path(json_path).resolve().parent.is_dir():
        raise ConfigError(f"--json {json_path}: its folder does not exist.")
    load_rules(pack_names)  # a bad pack fails here, before anything is measured
    report: dict[str, Any] = {}
    if engine:
        report["engine"] = engine_bench(pack_names, delta_chars=delta_chars, chars=chars, repeats=1 if quick else 3)
        print_engine(report["engine"])
    if keywords:
        report["keywords"] = keyword_bench(words=500 if quick else 5_000, chars=chars if quick else 300_000)
        print_keywords(report["keywords"])
    if proxy:
        from guardstream.bench.report import comparisons, print_proxy, targets
        from guardstream.bench.run import run_proxy_bench

        report["proxy"] = run_proxy_bench(packs=pack_names, regime=regime, quick=quick, rounds=rounds)
        report["proxy"]["targets"] = targets(report["proxy"])
        report["proxy"]["comparisons"] = comparisons(report["proxy"])
        print_proxy(report["proxy"])
    if json_path is not None:
        Path(json_path).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")


@main.group()
def deploy() -> None:
    """Print deployment files: a container image definition, Kubernetes manifests."""


@deploy.command("containerfile")
def deploy_containerfile() -> None:
    """A Containerfile (Dockerfile) for the guardstream image."""
    from guardstream.deploy import containerfile

    click.echo(containerfile(), nl=False)


@deploy.command("kubernetes")
@click.option("--image", help="Image reference (default guardstream:VERSION, built from the Containerfile).")
@click.option("--name", default="guardstream", show_default=True, help="Name of every object.")
@click.option("--replicas", type=int, default=2, show_default=True, help="Pods at least (the autoscaler's minimum).")
@click.option("--max-replicas", type=int, default=10, show_default=True, help="Pods at most.")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes per pod (cores requested).")
@click.option("--autoscale-on", default="cpu", show_default=True, help="cpu, or active-streams (needs an adapter).")
@click.option(
    "--streams-per-worker", type=int, default=200, show_default=True, help="With active-streams: the target per worker."
)
@_fail_cleanly
def deploy_kubernetes(
    image: str | None,
    name: str,
    replicas: int,
    max_replicas: int,
    workers: int,
    autoscale_on: str,
    streams_per_worker: int,
) -> None:
    """Kubernetes manifests: ConfigMap, Deployment, Service, HPA, PodDisruptionBudget, ServiceMonitor."""
    from guardstream import __version__
    from guardstream.deploy import KubernetesOptions, kubernetes

    options = KubernetesOptions(
        image=image if image is not None else f"guardstream:{__version__}",
        name=name,
        replicas=replicas,
        max_replicas=max_replicas,
        workers=workers,
        autoscale_on=autoscale_on,  # type: ignore[arg-type]  # checked by KubernetesOptions.check
        streams_per_worker=streams_per_worker,
    )
    click.echo(kubernetes(options), nl=False)
