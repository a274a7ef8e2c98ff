"""`guardstream serve --workers N`: one process per core, behind one socket.

guardstream keeps no state between requests, so more cores need no coordination: uvicorn's
supervisor binds the socket, starts N worker processes that accept from it (and replaces any that
dies), and each worker builds the same app from the same configuration. The configuration travels
as a file in a folder made for this run, next to the metrics files of prometheus_client's
multiprocess mode (`guardstream.multiprocess`); the folder is removed when the server stops.

```
parent: guardstream serve --workers 2       (binds :8080, supervises; the mock model, if asked for)
  ├─ worker 1: create_worker_app() -> create_app(config)   ┐ accept on the same socket,
  └─ worker 2: create_worker_app() -> create_app(config)   ┘ write metrics to PROMETHEUS_MULTIPROC_DIR
```
"""

from __future__ import annotations

import atexit
import os
import pickle
import shutil
import tempfile
from pathlib import Path

from guardstream.config import Config
from guardstream.errors import ConfigError
from guardstream.proxy import GuardstreamProxy, create_app

CONFIG_ENV = "GUARDSTREAM_WORKER_CONFIG_FILE"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def serve_workers(config: Config, *, workers: int) -> None:
    """Serve `config` with `workers` processes until the server is stopped (SIGINT or SIGTERM)."""
    import uvicorn

    run_dir = Path(tempfile.mkdtemp(prefix="guardstream-"))
    saved = {name: os.environ.get(name) for name in (CONFIG_ENV, MULTIPROC_ENV)}
    try:
        metrics_dir = run_dir / "metrics"
        metrics_dir.mkdir()
        config_file = run_dir / "config.pickle"
        config_file.write_bytes(pickle.dumps(config))
        # Workers are spawned, not forked: they read both from the environment they inherit.
        os.environ[CONFIG_ENV] = str(config_file)
        os.environ[MULTIPROC_ENV] = str(metrics_dir)
        uvicorn.run(
            "guardstream.workers:create_worker_app",
            factory=True,
            workers=workers,
            host=config.server.host,
            port=config.server.port,
            log_level="warning",
            server_header=False,
            date_header=False,
        )
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        shutil.rmtree(run_dir, ignore_errors=True)


def create_worker_app() -> GuardstreamProxy:
    """The app of one worker process (uvicorn calls this in each worker)."""
    from guardstream import multiprocess

    path = os.environ.get(CONFIG_ENV)
    if not path:
        raise ConfigError(f"{CONFIG_ENV} is not set: worker processes are started by `guardstream serve --workers`.")
    config = pickle.loads(Path(path).read_bytes())
    if not isinstance(config, Config):
        raise ConfigError(f"{path} does not hold a guardstream configuration.")
    app = create_app(config)
    if multiprocess.is_multiprocess():
        # A worker that stops on its own terms takes its live gauges with it at once.
        atexit.register(multiprocess.worker_exiting)
    return app
