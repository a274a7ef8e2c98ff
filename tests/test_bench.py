"""`guardstream bench`: the report's shape and the client's parsing. Counts, never timings."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from guardstream.bench.load import STAMP, StreamResult, _StreamProtocol, stamp_ns
from guardstream.bench.proxies import FRAMING_EVENTS, histogram_quantile, median_tree, mock_headers, scenarios, versus
from guardstream.bench.report import targets
from guardstream.cli import main
from guardstream.mock.openai_chat import chat_chunks
from guardstream.mock.script import MockScript
from guardstream.mock.turn import Turn
from guardstream.mock.writer import _stamped, stamp_pad
from guardstream.packs import load_rules
from guardstream.providers.openai_chat import OpenAIChatStream
from guardstream.stream import StreamModerator

PATHS = ["direct", "bare", "none", "rules"]


def test_bench_quick_run_reports_every_scenario_and_path(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    result = subprocess.run(
        [sys.executable, "-m", "guardstream", "bench", "--quick", "--keywords", "--proxy", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "µs/delta" in result.stdout and "regex \\L<list>" in result.stdout
    assert "targets (issues 11, 12)" in result.stdout
    report = json.loads(out.read_text(encoding="utf-8"))
    assert report["engine"]["deltas"] == 1_000  # 20,000 chars in 20-char deltas
    # The machine's own speed, measured in the same run, so reports from other days compare.
    assert report["engine"]["machine_reference_us"] > 0 and "sum(range(1000))" in result.stdout
    assert report["keywords"]["words"] == 500
    proxy = report["proxy"]
    assert [p["key"] for p in proxy["paths"]] == PATHS
    planned = scenarios("all", quick=True)
    assert [s["key"] for s in proxy["scenarios"]] == [s.key for s in planned]
    steps = len(planned) * len(PATHS)
    assert f"bench: [{steps}/{steps}]" in result.stderr
    for scenario, plan in zip(proxy["scenarios"], planned, strict=True):
        assert list(scenario["results"]) == PATHS
        for path, figures in scenario["results"].items():
            # Every path relays every event of every stream: the text is one no rule touches.
            assert figures["streams"] == figures["streams_complete"] == plan.streams, (scenario["key"], path)
            assert figures["streams_failed"] == {}
            assert figures["events"] == figures["expected_events"] == plan.streams * (plan.events + FRAMING_EVENTS)
            assert (figures["holdback_chars"] is not None) == (path in ("none", "rules"))
            assert (figures["peak_rss_kib_per_stream"] is None) == (path == "direct")
            assert set(figures["vs_bare"]) == {
                "events_per_cpu_second",
                "events_per_second",
                "latency_added_us",
                "ttfb",
                "ttft_added_ms",
                "peak_rss_per_stream",
            }
            assert len(figures["rounds"]) == 1
    assert set(proxy["cost_per_size"]) == set(PATHS)
    assert all(list(row["us_per_event"]) == ["100", "300", "1000"] for row in proxy["cost_per_size"].values())
    assert len(proxy["targets"]) == 8
    assert {t["scenario"] for t in proxy["targets"]} >= {"flood-1x100", "paced-10", "cost_per_size"}


def run_regime(tmp_path: Path, regime: str) -> dict[str, Any]:
    out = tmp_path / f"{regime}.json"
    result = subprocess.run(
        [sys.executable, "-m", "guardstream", "bench", "--quick", "--no-engine", "--proxy", "--regime", regime]
        + ["--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    proxy: dict[str, Any] = json.loads(out.read_text(encoding="utf-8"))["proxy"]
    return proxy


def test_classifier_regime_measures_what_a_strict_and_an_async_classifier_add(tmp_path: Path) -> None:
    # test for #9: a classifier answering after a fixed delay, through the proxy
    proxy = run_regime(tmp_path, "classifier")
    assert [p["key"] for p in proxy["paths"]] == ["direct", "bare", "rules", "strict", "async"]
    (scenario,) = proxy["scenarios"]
    for figures in scenario["results"].values():
        assert figures["streams_complete"] == figures["streams"]
    added = {row["path"].split(" + ")[-1]: row["latency_added_ms"] for row in proxy["comparisons"]}
    first_token = {row["path"].split(" + ")[-1]: row["ttft_added_ms"] for row in proxy["comparisons"]}
    # Strict mode holds text until the classifier has answered; async mode does not wait for it.
    assert added["strict classifier (50 ms)"]["p50"] > 50
    assert first_token["strict classifier (50 ms)"]["p50"] > 50
    assert set(added) == {"strict classifier (50 ms)", "async classifier (50 ms)"}


def test_isolation_regime_checks_a_catastrophic_rule_against_the_2x_bound(tmp_path: Path) -> None:
    # test for #11: the bound is measured by the benchmark, never asserted as a timing here
    proxy = run_regime(tmp_path, "isolation")
    assert [p["key"] for p in proxy["paths"]] == ["direct", "bare", "rules", "slow-rule"]
    (target,) = [t for t in proxy["targets"] if "catastrophic" in t["target"]]
    assert target["bound"] == 2.0 and target["measured"] is not None and target["met"] is not None


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--chars", "0"], "guardstream: --chars must be at least --delta-chars (20) (got 0)."),
        (["--delta-chars", "0"], "guardstream: --delta-chars must be at least 1 (got 0)."),
        (
            ["--regime", "fast"],
            "guardstream: --regime must be flood, paced, all, many, classifier or isolation (got 'fast').",
        ),
        (["--rounds", "0"], "guardstream: --rounds must be at least 1 (got 0)."),
        (["--no-engine"], "guardstream: nothing to measure: --no-engine needs --keywords or --proxy."),
        (["--json", "/nonexistent/folder/report.json"], "guardstream: --json /nonexistent/folder/report.json: "),
        (["--packs", "nope"], "guardstream: unknown built-in rule pack 'nope'"),
    ],
)
def test_bench_refuses_bad_flags_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["bench", *args])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(message)


# --- the client's HTTP/1.1 reading, split in every awkward place --------------------------------

# Stamps as the mock writes them: a leading field, or (an event with a pad) the pad itself.
EVENTS = [
    *(b'data: {"mock_sent_ns":%d,"x":1}\n\n' % n for n in (100, 200)),
    b'data: {"x":1,"obfuscation":"%s"}\n\n' % stamp_pad(300).encode(),
    b"data: [DONE]\n\n",
]
BODY = b"".join(b"%x\r\n%s\r\n" % (len(e), e) for e in EVENTS) + b"0\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n" + BODY


def read(pieces: list[bytes]) -> StreamResult:
    loop = asyncio.new_event_loop()
    try:
        done: asyncio.Future[StreamResult] = loop.create_future()
        protocol = _StreamProtocol(b"", done)
        for piece in pieces:
            protocol.data_received(piece)
        protocol.connection_lost(None)
        return done.result()
    finally:
        loop.close()


@pytest.mark.parametrize(
    "pieces",
    [
        [RESPONSE],
        [RESPONSE[:i] for i in [1]] + [RESPONSE[1:]],
        [RESPONSE[i : i + 1] for i in range(len(RESPONSE))],  # one byte at a time
        [RESPONSE[:80], RESPONSE[80:81], RESPONSE[81:]],  # inside the head
        [RESPONSE[: RESPONSE.index(b"\r\n0\r\n") + 1], RESPONSE[RESPONSE.index(b"\r\n0\r\n") + 1 :]],  # mid-CRLF
        [RESPONSE[: RESPONSE.index(b"200,") + 2], RESPONSE[RESPONSE.index(b"200,") + 2 :]],  # mid-stamp
    ],
)
def test_client_reads_events_and_stamps_across_any_split(pieces: list[bytes]) -> None:
    result = read(pieces)
    assert (result.status, result.events, result.is_complete) == (200, 4, True)
    assert len(result.latencies_ns) == 3


def test_a_stamp_in_a_pad_reads_back_as_the_time_it_was_written() -> None:
    ns = time.monotonic_ns()
    for pad in ("", "Jg49Yi5", "ghij", "A1b2C3"):
        (found,) = STAMP.findall(b'{"obfuscation":"%s"}' % stamp_pad(ns, pad).encode())
        assert stamp_ns(*found) == ns


def test_benchmark_streams_are_read_by_their_shape_like_real_openai_streams() -> None:
    # Real OpenAI deltas differ only in their text and their pad; the stamp rides in the pad, so
    # the benchmark measures the path real streams take (a stamp elsewhere defeats shapes).
    turn = Turn(MockScript(reply="Hello there, world. " * 10, chunk_chars=4), "gpt-4o", "0123456789abcdef", 5)
    *chunks, done = chat_chunks(turn, 1, include_usage=False, obfuscation=True)
    events = [_stamped(e) for e in chunks]
    assert all("mock_sent_ns" not in e.data for e in events)
    moderator = StreamModerator(OpenAIChatStream(), load_rules(["pii", "secrets"]).for_direction("output"))
    out = b"".join(moderator.feed(f"data: {e.data}\n\n".encode()) for e in [*events, done])
    assert out.count(b"obfuscation") == len(events)
    assert moderator._shapes is not None
    assert sum(shape.hits for shape in moderator._shapes._known) >= len(events) - 4


def test_client_counts_a_body_that_breaks_off_as_incomplete() -> None:
    result = read([RESPONSE[: RESPONSE.index(b"[DONE]")]])
    assert (result.events, result.is_complete) == (3, False)


def test_client_stops_at_an_error_status() -> None:
    result = read([b"HTTP/1.1 502 Bad Gateway\r\ncontent-length: 2\r\n\r\n{}"])
    assert (result.status, result.events, result.is_complete) == (502, 0, False)


# --- the arithmetic ---------------------------------------------------------------------------


def test_mock_headers_repeat_the_unit_for_long_streams() -> None:
    unit = "abcd" * 500
    assert dict(mock_headers(unit, 100))["x-mock-repeat"] == "1"
    headers = dict(mock_headers(unit, 100_000, delay_ms=50, events_per_chunk=10))
    assert headers["x-mock-repeat"] == "200"
    assert headers["x-mock-delay-ms"] == "50"
    assert headers["x-mock-events-per-chunk"] == "10"


def test_histogram_quantile_reads_the_upper_bound_between_scrapes() -> None:
    before = {0.0: 10.0, 2.0: 10.0, 16.0: 10.0, float("inf"): 10.0}
    after = {0.0: 60.0, 2.0: 108.0, 16.0: 110.0, float("inf"): 110.0}
    assert histogram_quantile(before, after, 0.5) == 0.0
    assert histogram_quantile(before, after, 0.99) == 16.0
    assert histogram_quantile(after, after, 0.5) is None


def test_median_tree_takes_the_median_of_each_number() -> None:
    rounds: list[Any] = [{"a": 1, "b": {"c": 1.0, "d": None}}, {"a": 3, "b": {"c": 5.0, "d": None}}]
    rounds.append({"a": 2, "b": {"c": 2.0, "d": None, "500": 1}})  # keys that only some rounds have
    assert median_tree(rounds) == {"a": 2, "b": {"c": 2.0, "d": None, "500": 1}}


def figures(cpu: float, latency: float | None = 1000.0, rss: float | None = 40.0) -> dict[str, Any]:
    return {
        "server_cpu_us_per_event": cpu,
        "events_per_second": 1000.0,
        "latency_us": {"p50": latency, "p99": latency},
        "ttfb_ms": {"p50": 2.0, "p99": 3.0},
        "ttft_ms": {"p50": 4.0, "p99": 6.0},
        "peak_rss_kib_per_stream": rss,
        "holdback_chars": {"p50": 1.0, "p99": 16.0},
    }


def test_versus_and_targets_read_ratios_to_the_bare_proxy() -> None:
    bare, ours = figures(10.0), figures(40.0, latency=3000.0, rss=50.0)
    vs = versus(ours, bare)
    assert vs["events_per_cpu_second"] == 0.25
    assert vs["latency_added_us"] == {"p50": 2000.0, "p99": 2000.0}
    assert vs["peak_rss_per_stream"] == 1.25
    ours["vs_bare"] = vs
    scenario = {"key": "s", "is_size_series": True, "events_per_chunk": 1, "regime": "paced", "delay_ms": 50.0}
    scenario["streams"] = 200
    many = {**scenario, "key": "many", "is_size_series": False, "streams": 1_000}
    report = {
        "scenarios": [
            {**scenario, "results": {"rules": ours}},
            {**many, "results": {"rules": {"streams_complete": 999}}},
        ],
        "cost_per_size": {"rules": {"longest_over_shortest": 1.1}},
    }
    verdicts = {t["target"]: t["met"] for t in targets(report)}
    assert verdicts["flood, one event per read: events per CPU-second ≥ 0.5 × bare"] is False
    assert verdicts["flood, several events per read: events per CPU-second ≥ 0.8 × bare"] is None
    assert verdicts["paced: added latency p50 ≤ one inter-event gap (ms)"] is True
    assert verdicts["paced: peak RSS per stream ≤ 1.5 × bare"] is True
    assert verdicts["characters held back p50 ≤ 2"] is True
    assert verdicts["cost per event, longest stream ≤ 1.2 × shortest"] is True
    assert verdicts["1,000 concurrent slow streams complete in one process"] is False
