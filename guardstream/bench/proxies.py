"""The proxy benchmark: the same streams through each path, side by side, in one run.

Paths (`Variant`): the mock model read directly, the bare pass-through proxy, and guardstream
with no rules and with rule packs, each its own process on loopback, started fresh for every
scenario (so memory and garbage-collector state never carry over). Scenarios (`Scenario`):
flooding (the mock writes as fast as it can; one stream at a time in 1k-, 10k- and 100k-event
streams, 50 at once, and several events per HTTP chunk) and paced (200 streams at once, one event
every 50 ms, their starts spread over a second as arrivals would be; `many`: 1,000 of them).

Per path and scenario: server CPU per event from `/proc` (the portable figure: wall
time mostly measures the machine), events/s, per-event latency (the mock stamps each event with
the time it wrote it; the client subtracts that from the time it read it), time to first byte,
characters held back (guardstream's own `guardstream_holdback_chars` histogram, read from
`/metrics` before and after), and peak RSS per concurrent stream; each as a ratio to the bare
proxy measured in the same round.
"""

from __future__ import annotations

import base64
import statistics
from collections import Counter
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import httpx
from prometheus_client.parser import text_string_to_metric_families

from guardstream.bench.engine import english_corpus
from guardstream.bench.load import StreamResult, build_request, drive
from guardstream.bench.processes import (
    HOST,
    ReadinessCheck,
    cpu_seconds,
    free_port,
    memory_kib,
    reset_peak_memory,
    server_process,
)
from guardstream.errors import ConfigError
from guardstream.packs import load_rules
from guardstream.window import moderate_text

CHAT_PATH = "/v1/chat/completions"
DELTA_CHARS = 4
# The reply the mock repeats: a stretch of English long enough to look like prose, short enough
# to travel in a header (a request body would be scanned by guardstream's input rules and counted
# in its CPU).
UNIT_CHARS = 2_000
# A chat stream carries a role event, a finish event and `[DONE]` besides its text events.
FRAMING_EVENTS = 3
# 200 paced streams start over one second (200 new streams a second), then run together: a busy
# service rather than a thundering herd, which no load balancer sends.
PACED_RAMP_SECONDS = 1.0


@dataclass(frozen=True)
class Variant:
    """One path through which the streams are sent."""

    key: str
    label: str
    kind: Literal["direct", "passthrough", "guardstream"]
    packs: tuple[str, ...] = ()
    # Extra guardstream configuration (TOML), written to a file and passed with --config;
    # `{mock_url}` in it becomes the mock model's URL.
    config_toml: str | None = None
    # A rule pack of the variant's own (TOML), written to a file and added to its packs.
    pack_toml: str | None = None


@dataclass(frozen=True)
class Scenario:
    key: str
    regime: Literal["flood", "paced"]
    label: str
    events: int  # text events per stream
    streams: int
    concurrency: int
    delay_ms: float = 0.0
    events_per_chunk: int = 1
    is_size_series: bool = False  # one of the scenarios that show cost per event against stream length
    # The first `concurrency` streams start spread over this long, as arrivals would be, not all at once.
    ramp_seconds: float = 0.0


# A classifier that answers after a fixed delay: the mock's moderation endpoint, told to wait.
CLASSIFIER_DELAY_MS = 50
CLASSIFIER_TOML = """
[[classifiers]]
name = "fixed-latency"
kind = "openai-moderation"
url = "{mock_url}/v1/moderations"
mode = "%s"
every_chars = 200
timeout_ms = 2000
headers = { "x-mock-delay-ms" = "%d" }
"""
# A rule that backtracks catastrophically on runs of "a" not followed by "b", loaded on purpose.
SLOW_RULE_PACK = """
[pack]
name = "slow"
[[rule]]
id = "slow.nested-quantifier"
action = "block"
pattern = '(a+)+b'
"""
SLOW_RULE_TOML = "[moderation]\nallow_slow_rules = true\n"


def variants(packs: Sequence[str], regime: str = "all") -> list[Variant]:
    """The paths every scenario of `regime` goes through.

    `classifier` adds guardstream with a classifier answering after a fixed delay, strict and
    async; `isolation` adds guardstream with a catastrophically backtracking rule loaded.
    """
    rules_label = "+".join(packs) or "no packs"
    found = [
        Variant("direct", "upstream read directly", "direct"),
        Variant("bare", "bare pass-through proxy", "passthrough"),
    ]
    if regime not in ("classifier", "isolation"):
        found.append(Variant("none", "guardstream, no rules", "guardstream"))
    found.append(Variant("rules", f"guardstream, {rules_label}", "guardstream", tuple(packs)))
    if regime == "classifier":
        for mode in ("strict", "async"):
            found.append(
                Variant(
                    mode,
                    f"guardstream, {rules_label} + {mode} classifier ({CLASSIFIER_DELAY_MS} ms)",
                    "guardstream",
                    tuple(packs),
                    config_toml=CLASSIFIER_TOML % (mode, CLASSIFIER_DELAY_MS),
                )
            )
    if regime == "isolation":
        found.append(
            Variant(
                "slow-rule",
                f"guardstream, {rules_label} + a catastrophic rule",
                "guardstream",
                tuple(packs),
                config_toml=SLOW_RULE_TOML,
                pack_toml=SLOW_RULE_PACK,
            )
        )
    return found


def scenarios(regime: str, *, quick: bool) -> list[Scenario]:
    """`regime` is flood, paced, many (1,000 slow streams at once) or all (flood and paced);
    `quick` shrinks every scenario to a smoke test."""
    sizes = (100, 300, 1_000) if quick else (1_000, 10_000, 100_000)
    size_streams = (2, 1, 1) if quick else (20, 3, 1)
    flood: list[Scenario] = [
        Scenario(
            f"flood-1x{events}",
            "flood",
            f"flood, 1 stream, {_count(events)} events",
            events,
            streams,
            1,
            is_size_series=True,
        )
        for events, streams in zip(sizes, size_streams, strict=True)
    ]
    wide, wide_events = (5, 100) if quick else (50, 1_000)
    flood.append(Scenario(f"flood-{wide}x{wide_events}", "flood", f"flood, {wide} streams", wide_events, wide, wide))
    batch_events, batch_streams = (300, 1) if quick else (10_000, 3)
    flood.append(
        Scenario(
            f"flood-1x{batch_events}-batched",
            "flood",
            "flood, 10 events per read",
            batch_events,
            batch_streams,
            1,
            events_per_chunk=10,
        )
    )
    paced_streams, paced_events, gap = (10, 10, 20.0) if quick else (200, 100, 50.0)
    paced = [
        Scenario(
            f"paced-{paced_streams}",
            "paced",
            f"paced, {paced_streams} streams, {gap:g} ms",
            paced_events,
            paced_streams,
            paced_streams,
            delay_ms=gap,
            ramp_seconds=gap / 1000 if quick else PACED_RAMP_SECONDS,
        )
    ]
    # Not part of `all`: a check that one process carries 1,000 slow streams to the end (and what each costs).
    many_streams, many_events = (20, 5) if quick else (1_000, 20)
    many = [
        Scenario(
            f"paced-{many_streams}",
            "paced",
            f"paced, {many_streams:,} streams, 50 ms",
            many_events,
            many_streams,
            many_streams,
            delay_ms=50.0,
            ramp_seconds=PACED_RAMP_SECONDS * many_streams / 200,
        )
    ]
    # `classifier` and `isolation`: 50 paced streams, where added latency is what is measured.
    fifty, fifty_events = (5, 10) if quick else (50, 100)
    latency = [
        Scenario(
            f"paced-{fifty}-latency",
            "paced",
            f"paced, {fifty} streams, 50 ms",
            fifty_events,
            fifty,
            fifty,
            delay_ms=50.0,
            ramp_seconds=PACED_RAMP_SECONDS * fifty / 200,
        )
    ]
    return {
        "flood": flood,
        "paced": paced,
        "many": many,
        "all": flood + paced,
        "classifier": latency,
        "isolation": latency,
    }[regime]


def _count(events: int) -> str:
    return f"{events // 1000}k" if events >= 1000 and events % 1000 == 0 else str(events)


def benign_unit(packs: Sequence[str]) -> str:
    """A stretch of the English corpus that no rule of `packs` touches, even repeated: the text of
    every benchmark stream, so every path relays the same events in full."""
    rules = load_rules(packs).for_direction("output") if packs else ()
    corpus = english_corpus(400_000).replace("\r", "")
    for start in range(0, len(corpus) - UNIT_CHARS, UNIT_CHARS):
        unit = corpus[start : start + UNIT_CHARS]
        if not moderate_text(rules, unit * 2).violations:
            return unit
    raise ConfigError("no stretch of the benchmark's English text passes these packs untouched; choose other packs.")


def mock_headers(unit: str, events: int, *, delay_ms: float = 0.0, events_per_chunk: int = 1) -> list[tuple[str, str]]:
    chars = events * DELTA_CHARS
    if chars <= len(unit):
        reply, repeat = unit[:chars], 1
    else:
        reply, repeat = unit, -(-chars // len(unit))
    headers = [
        ("x-mock-reply", "b64:" + base64.b64encode(reply.encode()).decode()),
        ("x-mock-chunk-chars", str(DELTA_CHARS)),
        ("x-mock-repeat", str(repeat)),
        ("x-mock-stamp", "true"),
    ]
    if delay_ms:
        headers.append(("x-mock-delay-ms", f"{delay_ms:g}"))
    if events_per_chunk > 1:
        headers.append(("x-mock-events-per-chunk", str(events_per_chunk)))
    return headers


def chat_request(port: int, headers: list[tuple[str, str]]) -> bytes:
    # Padded like the real API's streams by default: every delta carries its own `obfuscation`.
    body = (
        b'{"model":"bench","stream":true,"stream_options":{"include_obfuscation":true},'
        b'"messages":[{"role":"user","content":"Tell me about the library."}]}'
    )
    return build_request(HOST, port, CHAT_PATH, body, headers)


def holdback_buckets(port: int, provider: str = "openai-chat") -> dict[float, float]:
    """guardstream's cumulative `guardstream_holdback_chars` buckets, by upper bound."""
    text = httpx.get(f"http://{HOST}:{port}/metrics", timeout=10).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != "guardstream_holdback_chars":
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket") and sample.labels.get("provider") == provider:
                buckets[float(sample.labels["le"])] = sample.value
    return buckets


def histogram_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float | None:
    """The upper bound of the bucket holding quantile `q` of what was observed between two scrapes
    (an "at most" figure: Prometheus would interpolate inside the bucket)."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= q * counts[-1]:
            return bound
    return bounds[-1]  # pragma: no cover - the last bucket always holds every observation


def percentile(values: Sequence[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


# --- one measurement ---------------------------------------------------------------------------


@dataclass
class Bench:
    """The mock model (one process for the whole run) and what every measurement shares.

    Each measurement starts its server afresh, unless `servers` is given (a quick run): then one
    server per path serves every scenario, which saves start-ups but lets memory carry over.
    """

    mock_pid: int
    mock_url: str
    unit: str
    workdir: Path
    servers: ExitStack | None = None
    _running: dict[str, tuple[int, int]] = field(default_factory=dict)

    def measure(
        self, scenario: Scenario, variant: Variant, on_stream: Callable[[StreamResult], None]
    ) -> dict[str, Any]:
        """Start the variant's server (or reuse it), warm it up, run the scenario through it."""
        if variant.kind == "direct":
            port = int(self.mock_url.rsplit(":", 1)[1])
            return self._run(scenario, variant, port, self.mock_pid, on_stream)
        if self.servers is not None:
            if variant.key not in self._running:
                port = free_port()
                process = self.servers.enter_context(server_process(*self._command(variant, port)))
                self._running[variant.key] = (process.pid, port)
            pid, port = self._running[variant.key]
            return self._run(scenario, variant, port, pid, on_stream)
        port = free_port()
        with server_process(*self._command(variant, port)) as process:
            return self._run(scenario, variant, port, process.pid, on_stream)

    def _command(self, variant: Variant, port: int) -> tuple[list[str], int, ReadinessCheck]:
        if variant.kind == "passthrough":
            return (
                ["-m", "guardstream.bench.passthrough", "--upstream", self.mock_url, "--port", str(port)],
                port,
                "tcp",
            )
        args = ["-m", "guardstream", "serve", "--upstream", self.mock_url, "--port", str(port)]
        packs = list(variant.packs)
        if variant.pack_toml is not None:
            pack = self.workdir / f"{variant.key}-pack.toml"
            pack.write_text(variant.pack_toml, encoding="utf-8")
            packs.append(str(pack))
        args += ["--packs", ",".join(packs)]
        if not packs:
            args += ["--moderation-allow-no-rules", "true"]  # the no-rules baseline is meant
        if variant.config_toml is not None:
            config = self.workdir / f"{variant.key}.toml"
            config.write_text(variant.config_toml.replace("{mock_url}", self.mock_url), encoding="utf-8")
            args += ["--config", str(config)]
        return args, port, "http"

    def _run(
        self,
        scenario: Scenario,
        variant: Variant,
        port: int,
        pid: int,
        on_stream: Callable[[StreamResult], None],
    ) -> dict[str, Any]:
        is_guardstream = variant.kind == "guardstream"
        warm = chat_request(port, mock_headers(self.unit, min(scenario.events, 200)))
        drive(HOST, port, warm, streams=2, concurrency=1)
        headers = mock_headers(
            self.unit, scenario.events, delay_ms=scenario.delay_ms, events_per_chunk=scenario.events_per_chunk
        )
        request = chat_request(port, headers)
        before = holdback_buckets(port) if is_guardstream else {}
        rss_before = memory_kib(pid, "VmRSS")
        reset_peak_memory(pid)
        cpu_before, mock_before = cpu_seconds(pid), cpu_seconds(self.mock_pid)
        stagger = scenario.ramp_seconds / scenario.concurrency
        results, wall = drive(
            HOST,
            port,
            request,
            streams=scenario.streams,
            concurrency=scenario.concurrency,
            stagger_seconds=stagger,
            on_stream=on_stream,
        )
        cpu = cpu_seconds(pid) - cpu_before
        mock_cpu = cpu_seconds(self.mock_pid) - mock_before
        peak = memory_kib(pid, "VmHWM")
        after = holdback_buckets(port) if is_guardstream else {}
        events = sum(r.events for r in results)
        latencies = [n / 1000 for r in results for n in r.latencies_ns]
        ttfbs = [r.ttfb_ns / 1e6 for r in results if r.ttfb_ns is not None]
        ttfts = [r.ttft_ns / 1e6 for r in results if r.ttft_ns is not None]
        per_event = 1e6 / events if events else 0.0
        statuses = Counter(str(r.status) for r in results if not r.is_complete)
        return {
            "streams": len(results),
            "streams_complete": sum(r.is_complete for r in results),
            # How the others ended: their HTTP status ("0": no answer at all; "200": cut mid-body).
            "streams_failed": dict(sorted(statuses.items())),
            "events": events,
            "expected_events": scenario.streams * (scenario.events + FRAMING_EVENTS),
            "wall_seconds": wall,
            "server_cpu_us_per_event": cpu * per_event,
            "upstream_cpu_us_per_event": mock_cpu * per_event if variant.kind != "direct" else None,
            "events_per_second": events / wall if wall else 0.0,
            "latency_us": {"p50": percentile(latencies, 0.5), "p99": percentile(latencies, 0.99)},
            "ttfb_ms": {"p50": percentile(ttfbs, 0.5), "p99": percentile(ttfbs, 0.99)},
            "ttft_ms": {"p50": percentile(ttfts, 0.5), "p99": percentile(ttfts, 0.99)},
            "holdback_chars": {
                "p50": histogram_quantile(before, after, 0.5),
                "p99": histogram_quantile(before, after, 0.99),
            }
            if is_guardstream
            else None,
            # The mock serves every path, so its own memory says nothing about one of them.
            "peak_rss_kib_per_stream": (peak - rss_before) / scenario.concurrency if variant.kind != "direct" else None,
        }


def versus(figures: dict[str, Any], bare: dict[str, Any]) -> dict[str, Any]:
    """Ratios to the bare proxy's figures from the same round (None where one side has none)."""

    def ratio(ours: float | None, theirs: float | None) -> float | None:
        return ours / theirs if ours is not None and theirs else None

    def minus(ours: float | None, theirs: float | None) -> float | None:
        return ours - theirs if ours is not None and theirs is not None else None

    return {
        # The issue's own measure: events per CPU-second relative to the bare proxy's (higher is better, 1 = free).
        "events_per_cpu_second": ratio(bare["server_cpu_us_per_event"], figures["server_cpu_us_per_event"]),
        "events_per_second": ratio(figures["events_per_second"], bare["events_per_second"]),
        "latency_added_us": {q: minus(figures["latency_us"][q], bare["latency_us"][q]) for q in ("p50", "p99")},
        "ttfb": ratio(figures["ttfb_ms"]["p50"], bare["ttfb_ms"]["p50"]),
        "ttft_added_ms": {q: minus(figures["ttft_ms"][q], bare["ttft_ms"][q]) for q in ("p50", "p99")},
        "peak_rss_per_stream": ratio(figures["peak_rss_kib_per_stream"], bare["peak_rss_kib_per_stream"]),
    }


def median_tree(values: Sequence[Any]) -> Any:
    """The median of each number across rounds, in the shape of one round's figures."""
    first = values[0]
    if isinstance(first, dict):
        keys = dict.fromkeys(key for v in values for key in v)
        return {key: median_tree([v[key] for v in values if key in v]) for key in keys}
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    if not numbers:
        return first
    middle = statistics.median(numbers)
    return int(middle) if all(isinstance(v, int) for v in numbers) and middle == int(middle) else middle
