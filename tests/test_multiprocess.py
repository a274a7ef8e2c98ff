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
from typing import Any

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


# -- one worker's app, in this process (the real workers are driven in test_workers.py) -------------


@pytest.fixture
def signals_restored() -> Iterator[None]:
    import signal

    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGHUP, signal.SIGTERM, signal.SIGINT)}
    yield
    for sig, handler in saved.items():
        signal.signal(sig, handler)


def worker_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, packs: str = "secrets") -> Any:
    from guardstream.serve import ConfigSource
    from guardstream.workers import CONFIG_ENV, create_worker_app, write_config

    (tmp_path / "guardstream.toml").write_text(f'[moderation]\npacks = ["{packs}"]\n', encoding="utf-8")
    source = ConfigSource(str(tmp_path / "guardstream.toml"))
    path = tmp_path / "config.pickle"
    write_config(path, source(), source)
    monkeypatch.setenv(CONFIG_ENV, str(path))
    return create_worker_app()


async def start(app: Any) -> None:
    messages = [{"type": "lifespan.startup"}]

    async def receive() -> dict[str, str]:
        return messages.pop(0) if messages else {"type": "lifespan.shutdown"}

    async def send(message: dict[str, str]) -> None:
        pass

    await app({"type": "lifespan"}, receive, send)


def test_a_worker_reloads_on_sighup_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals_restored: None
) -> None:
    import asyncio
    import signal

    app = worker_app(tmp_path, monkeypatch)

    async def run() -> tuple[str, ...]:
        await start(app)
        (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["pii"]\n', encoding="utf-8")
        os.kill(os.getpid(), signal.SIGHUP)
        await asyncio.sleep(0.2)
        packs: tuple[str, ...] = app.config.moderation.packs
        return packs

    assert asyncio.run(run()) == ("pii",)


def test_a_worker_wraps_uvicorns_exit_so_streams_end_properly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals_restored: None
) -> None:
    import asyncio
    import signal

    app = worker_app(tmp_path, monkeypatch)
    exits: list[int] = []
    signal.signal(signal.SIGTERM, lambda number, frame: exits.append(number))  # uvicorn's handler

    async def run() -> tuple[bool, bool]:
        await start(app)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)
        draining_after_first = app.is_draining
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.sleep(0.1)
        return draining_after_first, app.is_draining

    assert asyncio.run(run()) == (True, True)
    assert exits == [signal.SIGTERM, signal.SIGTERM]  # uvicorn still stops accepting, as always


def test_a_worker_started_during_a_reload_picks_the_new_config_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, signals_restored: None
) -> None:
    import asyncio

    from guardstream.serve import ConfigSource
    from guardstream.workers import write_config

    app = worker_app(tmp_path, monkeypatch)
    # The parent rewrote the file (a SIGHUP) after this worker read it and before it served.
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["pii"]\n', encoding="utf-8")
    source = ConfigSource(str(tmp_path / "guardstream.toml"))
    write_config(tmp_path / "config.pickle", source(), source)
    os.utime(tmp_path / "config.pickle", ns=(1, 1))  # a clock as coarse as it comes still tells them apart
    asyncio.run(start(app))
    assert app.config.moderation.packs == ("pii",)


def test_a_worker_without_its_config_file_says_how_workers_start(monkeypatch: pytest.MonkeyPatch) -> None:
    from guardstream.errors import ConfigError
    from guardstream.workers import CONFIG_ENV, create_worker_app

    monkeypatch.delenv(CONFIG_ENV, raising=False)
    with pytest.raises(ConfigError, match="started by `guardstream serve --workers`"):
        create_worker_app()


def test_a_sighup_while_starting_is_noted_then_reloads_once_the_server_is_up(
    tmp_path: Path, signals_restored: None
) -> None:
    import asyncio
    import signal

    from guardstream.proxy import create_app
    from guardstream.serve import ConfigSource, GuardstreamServer
    from guardstream.servers import EarlyHangups, uvicorn_config
    from tests.serve_process import free_port

    hangups = EarlyHangups()
    os.kill(os.getpid(), signal.SIGHUP)  # its default action would end this very process
    assert hangups.seen
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["secrets"]\n', encoding="utf-8")
    source = ConfigSource(str(tmp_path / "guardstream.toml"), {("server", "port"): free_port()})
    config = source()
    app = create_app(config)
    app.reloads_from(source)
    # Changed while starting, after it was read: the noted SIGHUP brings it in.
    (tmp_path / "guardstream.toml").write_text('[moderation]\npacks = ["pii"]\n', encoding="utf-8")
    server = GuardstreamServer(uvicorn_config(app, config), app, hangups)

    async def run() -> tuple[str, ...]:
        serving = asyncio.create_task(server.serve())
        while not server.started:
            await asyncio.sleep(0.05)
        packs: tuple[str, ...] = app.config.moderation.packs
        server.should_exit = True
        await serving
        return packs

    assert asyncio.run(run()) == ("pii",)
