"""Multiprocess metrics in one process: what one worker writes, and what a scrape reads from all.

prometheus_client chooses its value class when it is imported; here the test swaps in the
multiprocess one, as `PROMETHEUS_MULTIPROC_DIR` would have, and plays the other workers by writing
their files under other process ids.
"""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, values

from guardstream import __version__, multiprocess
from guardstream.metrics import Metrics


@pytest.fixture
def files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(tmp_path))
    monkeypatch.setattr(values, "ValueClass", values.MultiProcessValue())  # type: ignore[no-untyped-call]
    yield tmp_path


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def other_worker(pid: int, path: Path) -> None:
    """What another worker process left in the folder: a request, and a stream still open."""
    value_class = values.MultiProcessValue(lambda: pid)  # type: ignore[no-untyped-call]
    counter = value_class(
        "counter",
        "guardstream_requests",
        "guardstream_requests_total",
        ("provider", "outcome"),
        ("openai-chat", "passed"),
        "h",
    )
    counter.inc(1)
    gauge = value_class(
        "gauge",
        "guardstream_active_streams",
        "guardstream_active_streams",
        ("provider",),
        ("openai-chat",),
        "h",
        multiprocess_mode="livesum",
    )
    gauge.set(1)
    info = value_class(
        "gauge", "guardstream_build_info", "guardstream_build_info", (), (), "h", multiprocess_mode="livemax"
    )
    info.set(1)


def test_metrics_in_multiprocess_mode_sum_the_workers_files(files: Path) -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    assert metrics.is_multiprocess
    metrics.record_request("openai-chat", "passed", 0.5)
    stream = metrics.stream("openai-chat")
    stream.active.inc()
    stream.on_holdback(3)
    stream.on_holdback(0)
    other_worker(dead_pid(), files)
    # The other worker has exited: its request still counts, its open stream no longer does.
    assert (
        registry.get_sample_value("guardstream_requests_total", {"provider": "openai-chat", "outcome": "passed"}) == 2
    )
    assert registry.get_sample_value("guardstream_active_streams", {"provider": "openai-chat"}) == 1
    # FastHistogram observations reach the files at the scrape, without being counted twice.
    labels = {"provider": "openai-chat"}
    assert registry.get_sample_value("guardstream_holdback_chars_count", labels) == 2
    assert registry.get_sample_value("guardstream_holdback_chars_count", labels) == 2
    assert registry.get_sample_value("guardstream_holdback_chars_bucket", {**labels, "le": "0.0"}) == 1
    assert registry.get_sample_value("guardstream_holdback_chars_sum", labels) == 3
    build = {"version": __version__, "python": platform.python_version()}
    assert registry.get_sample_value("guardstream_build_info", build) == 1
    # One process_* series per live worker, labelled with its pid.
    pids = {s.labels["pid"] for f in registry.collect() if f.name == "process_cpu_seconds" for s in f.samples}
    assert pids == {str(os.getpid())}
    assert not list(files.glob("gauge_livesum_*.db"))[1:]  # the dead worker's live file is gone


def test_a_worker_that_exits_takes_its_live_gauges_along(files: Path) -> None:
    gauge = Gauge("g", "h", ["provider"], multiprocess_mode="livesum", registry=None)
    gauge.labels("p").set(1)
    counter = Counter("c", "h", registry=None)
    counter.inc()
    assert list(files.glob("gauge_livesum_*.db"))
    multiprocess.worker_exiting()
    assert not list(files.glob("gauge_livesum_*.db"))
    assert list(files.glob("counter_*.db"))


def test_multiprocess_needs_its_folder(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR"):
        multiprocess.directory()
