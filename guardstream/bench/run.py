"""The proxy benchmark's run: every scenario through every path, round after round, and the report."""

from __future__ import annotations

import os
import platform
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from guardstream.bench.load import StreamResult
from guardstream.bench.processes import HOST, free_port, server_process
from guardstream.bench.proxies import (
    DELTA_CHARS,
    FRAMING_EVENTS,
    Bench,
    Scenario,
    Variant,
    benign_unit,
    median_tree,
    scenarios,
    variants,
    versus,
)


class Progress:
    """One line on stderr saying what is being measured, rewritten in place on a terminal."""

    def __init__(self, stream: Any = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.is_tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.prefix = ""
        self.events = 0
        self.last_write = 0.0

    def start(self, step: int, total: int, scenario: Scenario, variant: Variant) -> None:
        self.prefix = f"bench: [{step}/{total}] {scenario.label} · {variant.label}"
        self.events = 0
        self._write(self.prefix + " …", force=True)

    def stream_done(self, result: StreamResult) -> None:
        self.events += result.events
        if self.is_tty and time.monotonic() - self.last_write > 0.2:
            self._write(f"{self.prefix} · {self.events:,} events")

    def finish(self, figures: dict[str, Any]) -> None:
        cpu = figures["server_cpu_us_per_event"]
        self._write(f"{self.prefix} · {figures['events']:,} events · {cpu:.1f} µs/event", force=True, end=True)

    def _write(self, text: str, *, force: bool = False, end: bool = False) -> None:
        if not self.is_tty:
            if end:
                self.stream.write(text + "\n")
                self.stream.flush()
            return
        self.last_write = time.monotonic()
        self.stream.write("\r\033[K" + text + ("\n" if end else ""))
        self.stream.flush()


def run_proxy_bench(
    *, packs: Sequence[str], regime: str = "all", quick: bool = False, rounds: int = 1, progress: Progress | None = None
) -> dict[str, Any]:
    """Every scenario through every path, `rounds` times; medians, ranges and ratios to the bare proxy."""
    progress = progress or Progress()
    paths = variants(packs, regime)
    plan = scenarios(regime, quick=quick)
    unit = benign_unit(packs)
    raw: dict[str, dict[str, list[dict[str, Any]]]] = {s.key: {v.key: [] for v in paths} for s in plan}
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="guardstream-bench-") as workdir:
        mock_port = free_port()
        with (
            server_process(["-m", "guardstream", "mock", "--port", str(mock_port)], mock_port, "tcp") as mock,
            ExitStack() as servers,
        ):
            bench = Bench(mock.pid, f"http://{HOST}:{mock_port}", unit, Path(workdir), servers if quick else None)
            total, step = rounds * len(plan) * len(paths), 0
            for _ in range(rounds):
                for scenario in plan:
                    for variant in paths:
                        step += 1
                        progress.start(step, total, scenario, variant)
                        figures = bench.measure(scenario, variant, progress.stream_done)
                        progress.finish(figures)
                        raw[scenario.key][variant.key].append(figures)
                    bare = raw[scenario.key]["bare"][-1]
                    for variant in paths:
                        figures = raw[scenario.key][variant.key][-1]
                        figures["vs_bare"] = versus(figures, bare)
    results = []
    for scenario in plan:
        by_path: dict[str, Any] = {}
        for variant in paths:
            rounds_run = raw[scenario.key][variant.key]
            summary = median_tree(rounds_run)
            summary["range"] = {
                "server_cpu_us_per_event": _span(r["server_cpu_us_per_event"] for r in rounds_run),
                "events_per_cpu_second_vs_bare": _span(r["vs_bare"]["events_per_cpu_second"] for r in rounds_run),
            }
            failed: Counter[str] = Counter()
            for r in rounds_run:
                failed.update(r["streams_failed"])
            summary["streams_failed"] = dict(sorted(failed.items()))  # over every round, not a median
            summary["rounds"] = rounds_run
            by_path[variant.key] = summary
        results.append(
            {
                "key": scenario.key,
                "label": scenario.label,
                "regime": scenario.regime,
                "events_per_stream": scenario.events + FRAMING_EVENTS,
                "streams": scenario.streams,
                "concurrency": scenario.concurrency,
                "delay_ms": scenario.delay_ms,
                "ramp_seconds": scenario.ramp_seconds,
                "events_per_chunk": scenario.events_per_chunk,
                "is_size_series": scenario.is_size_series,
                "results": by_path,
            }
        )
    return {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "implementation": platform.python_implementation(),
            "system": platform.platform(),
            "load_average_before": list(load_before),
            "load_average_after": list(os.getloadavg()),
        },
        "settings": {
            "packs": list(packs),
            "regime": regime,
            "quick": quick,
            "rounds": rounds,
            "delta_chars": DELTA_CHARS,
        },
        "paths": [{"key": v.key, "label": v.label} for v in paths],
        "scenarios": results,
        "cost_per_size": cost_per_size(results, paths),
    }


def _span(values: Iterator[float | None]) -> list[float] | None:
    present = [v for v in values if v is not None]
    return [min(present), max(present)] if present else None


def cost_per_size(results: list[dict[str, Any]], paths: Sequence[Variant]) -> dict[str, Any]:
    """Server CPU per event against stream length, per path, and the longest's cost over the shortest's."""
    series = [s for s in results if s["is_size_series"]]
    table: dict[str, Any] = {}
    for variant in paths:
        costs = {
            str(s["events_per_stream"] - FRAMING_EVENTS): s["results"][variant.key]["server_cpu_us_per_event"]
            for s in series
        }
        values = list(costs.values())
        table[variant.key] = {
            "us_per_event": costs,
            "longest_over_shortest": values[-1] / values[0] if len(values) > 1 and values[0] else None,
        }
    return table
