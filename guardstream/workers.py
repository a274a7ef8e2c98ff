"""`guardstream serve --workers N`: one process per core, behind one socket.

guardstream keeps no state between requests, so more cores need no coordination: uvicorn's
supervisor binds the socket, starts N worker processes that accept from it (and replaces any that
dies), and each worker builds the same app from the same configuration. The configuration, and
where to read it again on reload, travel as a file in a folder made for this run, next to the
metrics files of prometheus_client's multiprocess mode (`guardstream.multiprocess`); the folder is
removed when the server stops.

```
parent: guardstream serve --workers 2       (binds :8080, supervises; the mock model, if asked for)
  ├─ worker 1: create_worker_app() -> create_app(config)   ┐ accept on the same socket,
  └─ worker 2: create_worker_app() -> create_app(config)   ┘ write metrics to PROMETHEUS_MULTIPROC_DIR
```

Signals keep the meaning they have with one process. The parent passes SIGHUP on to every worker,
and each reloads in place (uvicorn's own SIGHUP replaces the workers, which would cut long
streams). SIGTERM reaches every worker, which stops accepting and lets its streams finish for
`[server] shutdown_grace`; a second SIGTERM to the parent is passed on, and the workers end their
streams at once. `POST /-/reload` lands on one worker: it checks the new config, then asks the
parent to reload them all.
"""

from __future__ import annotations

import asyncio
import atexit
import os
import pickle
import shutil
import signal
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from uvicorn.supervisors.multiprocess import Multiprocess

from guardstream.config import Config
from guardstream.errors import ConfigError, GuardstreamError
from guardstream.logs import configure_logging
from guardstream.proxy import GuardstreamProxy, create_app
from guardstream.servers import SECOND_SIGNAL_CUTOFF_SECONDS, EarlyHangups, uvicorn_config

CONFIG_ENV = "GUARDSTREAM_WORKER_CONFIG_FILE"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve_workers(config: Config, source: Callable[[], Config], hangups: EarlyHangups | None = None) -> None:
    """Serve `config` with `[server] workers` processes until the server is stopped."""
    run_dir = Path(tempfile.mkdtemp(prefix="guardstream-"))
    saved = {name: os.environ.get(name) for name in (CONFIG_ENV, MULTIPROC_ENV)}
    try:
        metrics_dir = run_dir / "metrics"
        metrics_dir.mkdir()
        config_file = run_dir / "config.pickle"
        write_config(config_file, config, source)
        # Workers are spawned, not forked: they read both from the environment they inherit.
        os.environ[CONFIG_ENV] = str(config_file)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        server_config = uvicorn_config(
            "guardstream.workers:create_worker_app", config, factory=True, workers=config.server.workers
        )
        socket = server_config.bind_socket()
        try:
            supervisor = Supervisor(server_config, sockets=[socket], config_file=config_file, source=source)
            if hangups is not None and hangups.seen:
                supervisor.signal_queue.append(signal.SIGHUP)  # asked for while starting: reload once up
            supervisor.run()
        finally:
            socket.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(run_dir, ignore_errors=True)


def write_config(path: Path, config: Config, source: Callable[[], Config]) -> None:
    # Written whole, then renamed: a worker starting at that moment reads the old file or the new.
    partial = path.with_suffix(".partial")
    partial.write_bytes(pickle.dumps((config, source)))
    partial.replace(path)


class Supervisor(Multiprocess):
    """uvicorn's supervisor, with guardstream's meaning of SIGHUP and of a second SIGTERM."""

    def __init__(self, config: Any, sockets: list[Any], *, config_file: Path, source: Callable[[], Config]) -> None:
        super().__init__(config, sockets)
        self.config_file = config_file
        self.source = source

    def handle_hup(self) -> None:
        # The file is what a replacement worker starts from (after a crash), so it must hold the
        # config in force. One that does not load stays out of it; the workers report why.
        try:
            write_config(self.config_file, self.source(), self.source)
        except GuardstreamError:
            pass
        self._signal_workers(signal.SIGHUP)

    def join_all(self) -> None:
        # terminate_all() has sent every worker SIGTERM; while they drain, a further signal to the
        # parent is passed on, so the workers end their streams at once.
        while any(process.process.is_alive() for process in self.processes):
            if self.signal_queue:
                self.signal_queue.clear()
                self._signal_workers(signal.SIGTERM)
            time.sleep(0.05)
        super().join_all()

    def _signal_workers(self, sig: int) -> None:
        for process in self.processes:
            if process.pid is not None and process.process.is_alive():
                os.kill(process.pid, sig)


def create_worker_app() -> GuardstreamProxy:
    """The app of one worker process (uvicorn calls this in each worker)."""
    from guardstream import multiprocess

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"{CONFIG_ENV} is not set: worker processes are started by `guardstream serve --workers`.")
    loaded = pickle.loads(Path(path).read_bytes())
    if not (isinstance(loaded, tuple) and len(loaded) == 2 and isinstance(loaded[0], Config)):
        raise ConfigError(f"{path} does not hold a guardstream configuration.")
    config, source = loaded
    # A SIGHUP before the worker serves must not kill it (its default action); the config it then
    # missed is picked up when it starts (see install_worker_signals).
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    started_from = Path(path).stat().st_mtime_ns
    # A spawned process starts with Python's logging unset: the request lines are set up again here.
    configure_logging(config.logging.level, config.logging.format)
    app = create_app(config)
    app.reloads_from(source)
    app.reload_everywhere = ask_parent_to_reload
    app.at_startup(lambda app: install_worker_signals(app, Path(path), started_from))
    if multiprocess.is_multiprocess():
        # A worker that stops on its own terms takes its live gauges with it at once.
        atexit.register(multiprocess.worker_exiting)
    return app


def cut_off(server: Any) -> None:
    """Stop waiting for connections that are still open (uvicorn's `force_exit`)."""
    server.force_exit = True


def ask_parent_to_reload() -> None:
    os.kill(os.getppid(), signal.SIGHUP)


def install_worker_signals(app: GuardstreamProxy, config_file: Path, started_from: int) -> None:
    """Give the worker the single process's signals, inside uvicorn's own handling.

    uvicorn has installed its exit handler by the time the app starts; it is wrapped, not
    replaced, so uvicorn still stops accepting and waits for connections as it always does.
    """
    loop = asyncio.get_running_loop()
    if hasattr(signal, "SIGHUP"):
        loop.add_signal_handler(signal.SIGHUP, app.reload)
    if config_file.stat().st_mtime_ns != started_from:
        app.reload()  # a reload happened while this worker was starting
    signals = 0
    for sig in (signal.SIGTERM, signal.SIGINT):
        uvicorn_exit = signal.getsignal(sig)
        if not callable(uvicorn_exit):  # pragma: no cover - uvicorn always installs one
            continue

        def on_exit(number: int, frame: FrameType | None, uvicorn_exit: Any = uvicorn_exit) -> None:
            nonlocal signals
            signals += 1
            now = signals > 1
            loop.call_soon_threadsafe(lambda: app.begin_shutdown(now=now))
            server = getattr(uvicorn_exit, "__self__", None)
            if now and server is not None:
                loop.call_soon_threadsafe(loop.call_later, SECOND_SIGNAL_CUTOFF_SECONDS, cut_off, server)
            uvicorn_exit(number, frame)
            if now and server is not None:
                server.force_exit = False  # uvicorn's own second-SIGINT cut: ours comes after the events

        signal.signal(sig, on_exit)
