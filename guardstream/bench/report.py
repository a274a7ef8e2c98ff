"""The proxy benchmark's report: tables for a terminal, the issue's targets checked against it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

# Each target names the scenario and path it reads, what it reads, and the bound it must meet.
TARGET_PATH = "rules"


def _find(report: dict[str, Any], predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any] | None:
    return next((s for s in report["scenarios"] if predicate(s)), None)


def _target(
    name: str,
    scenario: dict[str, Any] | None,
    read: Callable[[dict[str, Any]], float | None],
    bound: float,
    *,
    at_least: bool,
) -> dict[str, Any]:
    measured = read(scenario["results"][TARGET_PATH]) if scenario is not None else None
    return _verdict(name, scenario["key"] if scenario is not None else None, measured, bound, at_least=at_least)


def _verdict(
    name: str, scenario: str | None, measured: float | None, bound: float, *, at_least: bool
) -> dict[str, Any]:
    """One target as the report keeps it: met is None when nothing was measured."""
    met = None if measured is None else (measured >= bound if at_least else measured <= bound)
    return {
        "target": name,
        "scenario": scenario,
        "measured": measured,
        "bound": bound,
        "at_least": at_least,
        "met": met,
    }


def targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's targets, each read off this report for guardstream with rule packs."""
    one_per_read = _find(report, lambda s: s["is_size_series"])
    batched = _find(report, lambda s: s["events_per_chunk"] > 1)
    paced = _find(report, lambda s: s["regime"] == "paced" and s["streams"] < 1_000)
    sizes = report["cost_per_size"].get(TARGET_PATH, {})
    # Held-back text depends on the text, not the pace: any scenario with guardstream's histogram will do.
    held = one_per_read or paced
    found = [
        _target(
            "flood, one event per read: events per CPU-second ≥ 0.5 × bare",
            one_per_read,
            lambda r: r["vs_bare"]["events_per_cpu_second"],
            0.5,
            at_least=True,
        ),
        _target(
            "flood, several events per read: events per CPU-second ≥ 0.8 × bare",
            batched,
            lambda r: r["vs_bare"]["events_per_cpu_second"],
            0.8,
            at_least=True,
        ),
        _target(
            "paced: events per CPU-second ≥ 0.8 × bare",
            paced,
            lambda r: r["vs_bare"]["events_per_cpu_second"],
            0.8,
            at_least=True,
        ),
        _target(
            "characters held back p50 ≤ 2",
            held,
            lambda r: (r["holdback_chars"] or {}).get("p50"),
            2,
            at_least=False,
        ),
        _target(
            "characters held back p99 ≤ 16",
            held,
            lambda r: (r["holdback_chars"] or {}).get("p99"),
            16,
            at_least=False,
        ),
        _target(
            "paced: added latency p50 ≤ one inter-event gap (ms)",
            paced,
            lambda r: _ms(r["vs_bare"]["latency_added_us"]["p50"]),
            paced["delay_ms"] if paced is not None else 0.0,
            at_least=False,
        ),
        _target(
            "paced: peak RSS per stream ≤ 1.5 × bare",
            paced,
            lambda r: r["vs_bare"]["peak_rss_per_stream"],
            1.5,
            at_least=False,
        ),
    ]
    many = _find(report, lambda s: s["regime"] == "paced" and s["streams"] >= 1_000)
    if many is not None:
        complete = many["results"][TARGET_PATH]["streams_complete"]
        name = "1,000 concurrent slow streams complete in one process"
        found.append(_verdict(name, many["key"], complete, many["streams"], at_least=True))
    found += _isolation_targets(report)
    flat = sizes.get("longest_over_shortest")
    found.append(
        _verdict("cost per event, longest stream ≤ 1.2 × shortest", "cost_per_size", flat, 1.2, at_least=False)
    )
    return found


def _isolation_targets(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Issue 11: a catastrophic rule loaded must not slow other streams: p99 within 2x of without."""
    found = []
    for scenario in report["scenarios"]:
        results = scenario["results"]
        if "slow-rule" not in results or scenario["regime"] != "paced":
            continue
        with_rule = results["slow-rule"]["latency_us"]["p99"]
        without = results[TARGET_PATH]["latency_us"]["p99"]
        ratio = with_rule / without if with_rule is not None and without else None
        name = f"{scenario['label']}: p99 latency with a catastrophic rule ≤ 2 × without"
        found.append(_verdict(name, scenario["key"], ratio, 2.0, at_least=False))
    return found


def comparisons(report: dict[str, Any]) -> list[dict[str, Any]]:
    """What each extra path (a classifier, a slow rule) adds to guardstream with the same packs alone."""
    found = []
    labels = {p["key"]: p["label"] for p in report["paths"]}
    for scenario in report["scenarios"]:
        results = scenario["results"]
        base = results.get(TARGET_PATH)
        if base is None or scenario["regime"] != "paced":
            continue
        for key in ("strict", "async", "slow-rule"):
            if key not in results:
                continue
            added = {q: _minus(results[key]["latency_us"][q], base["latency_us"][q]) for q in ("p50", "p99")}
            found.append(
                {
                    "path": labels[key],
                    "scenario": scenario["key"],
                    "latency_added_ms": {q: _ms(v) for q, v in added.items()},
                    "ttft_added_ms": {
                        q: _minus(results[key]["ttft_ms"][q], base["ttft_ms"][q]) for q in ("p50", "p99")
                    },
                    "cpu_us_per_event_added": _minus(
                        results[key]["server_cpu_us_per_event"], base["server_cpu_us_per_event"]
                    ),
                }
            )
    return found


def _minus(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None else a - b


def _ms(us: float | None) -> float | None:
    return None if us is None else us / 1000


def _num(value: float | None, spec: str = ".1f", missing: str = "—") -> str:
    return missing if value is None else format(value, spec)


def _pair(pair: dict[str, float | None] | None, spec: str = ".1f") -> str:
    if pair is None or pair["p50"] is None:
        return "—"
    return f"{_num(pair['p50'], spec)}/{_num(pair['p99'], spec)}"


def print_proxy(report: dict[str, Any]) -> None:
    machine, settings = report["machine"], report["settings"]
    rounds = settings["rounds"]
    python = f"{machine['implementation']} {machine['python']}"
    load = f"{machine['load_average_before'][0]:.1f} before, {machine['load_average_after'][0]:.1f} after"
    click.echo(f"\nproxy benchmark: {machine['cpus']} CPUs, {python}, {machine['system']}")
    click.echo(f"{rounds} round{'s' if rounds > 1 else ''} (medians); load average {load}")
    click.echo(
        "CPU: server CPU µs per event (/proc); eff: events per CPU-second as a share of the bare proxy's;\n"
        "latency (paced only: flooding measures queues): mock wrote the event -> client read it; added: minus "
        "the bare proxy's;\nheld: guardstream_holdback_chars (bucket upper bounds); RSS: peak per concurrent stream"
    )
    header = (
        f"{'path':<30}{'CPU µs/ev':>10}{'eff':>6}{'events/s':>10}{'latency p50/p99 ms':>20}{'added p50 ms':>13}"
        f"{'TTFB ms':>9}{'TTFT ms':>9}{'held p50/p99':>13}{'RSS KiB/stream':>16}"
    )
    labels = {p["key"]: p["label"] for p in report["paths"]}
    width = max(30, *(len(label) + 2 for label in labels.values()))
    header = f"{'path':<{width}}" + header[30:]
    for scenario in report["scenarios"]:
        click.echo(f"\n{scenario['label']} ({scenario['streams']} × {scenario['events_per_stream']:,} events)")
        failed = {k: r["streams_failed"] for k, r in scenario["results"].items() if r["streams_failed"]}
        for key, statuses in failed.items():
            ended = ", ".join(f"{count} with status {status}" for status, count in statuses.items())
            click.echo(f"  {labels[key]}: streams that did not complete: {ended}")
        click.echo(header)
        for key, r in scenario["results"].items():
            vs = r["vs_bare"]
            # Flooding fills every buffer on the way: its latency is the depth of the queue (JSON only).
            paced = scenario["regime"] == "paced"
            latency = {q: _ms(r["latency_us"][q]) if paced else None for q in ("p50", "p99")}
            added = _ms(vs["latency_added_us"]["p50"]) if paced and key != "bare" else None
            rss = r["peak_rss_kib_per_stream"]
            rss_text = "—" if rss is None else f"{rss:.0f}"
            if rss is not None and vs["peak_rss_per_stream"] is not None and key != "bare":
                rss_text += f" ({vs['peak_rss_per_stream']:.2f}×)"
            eff = vs["events_per_cpu_second"] if key not in ("bare", "direct") else None
            click.echo(
                f"{labels[key]:<{width}}{r['server_cpu_us_per_event']:>10.1f}{_num(eff, '.2f'):>6}"
                f"{r['events_per_second']:>10,.0f}{_pair(latency, '.2f'):>20}"
                f"{_num(added, '+.2f'):>13}"
                f"{_num(r['ttfb_ms']['p50'], '.1f'):>9}{_num(r['ttft_ms']['p50'], '.1f'):>9}"
                f"{_pair(r['holdback_chars'], '.0f'):>13}{rss_text:>16}"
            )
    sizes = report["cost_per_size"]
    series = [s for s in report["scenarios"] if s["is_size_series"]]
    if series:
        lengths = list(next(iter(sizes.values()))["us_per_event"])
        click.echo("\nserver CPU µs per event by stream length (flood, one stream at a time)")
        click.echo(f"{'path':<30}" + "".join(f"{int(n):>10,}" for n in lengths) + f"{'longest/shortest':>18}")
        for key, row in sizes.items():
            cells = "".join(f"{v:>10.1f}" for v in row["us_per_event"].values())
            click.echo(f"{labels[key]:<30}{cells}{_num(row['longest_over_shortest'], '.2f'):>18}")
    extra = report.get("comparisons") or []
    if extra:
        click.echo(
            f"\nadded to {labels[TARGET_PATH]} (per-event latency p50/p99 ms, time to first token p50/p99 ms, "
            "server CPU µs per event):"
        )
        for row in extra:
            cpu = row["cpu_us_per_event_added"]
            click.echo(
                f"  {row['path']:<{width}}{_pair(row['latency_added_ms'], '+.2f'):>20}"
                f"{_pair(row['ttft_added_ms'], '+.1f'):>20}{_num(cpu, '+.1f'):>10}"
            )
    click.echo(f"\ntargets (issues 11, 12), for {labels[TARGET_PATH]}:")
    for target in report["targets"]:
        verdict = {True: "met", False: "NOT met", None: "not measured"}[target["met"]]
        click.echo(f"  {target['target']:<68}{_num(target['measured'], '.2f'):>8}  {verdict}")
