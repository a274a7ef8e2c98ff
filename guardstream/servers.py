"""uvicorn for guardstream: an ASGI app in a background thread (the mock upstream, the demo, tests),
and the settings `guardstream serve` runs under."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

import uvicorn

from guardstream.config import Config

# After a second stop signal, streams end at once with their terminal event; connections still open
# this much later (a client that stopped reading) are cut. Cutting at once would race the terminal
# events out of the process before they are written.
SECOND_SIGNAL_CUTOFF_SECONDS = 2.0


class EarlyHangups:
    """SIGHUP while guardstream starts: noted, not fatal.

    SIGHUP's default action ends a process, and start-up (reading the config, compiling the packs,
    starting workers) takes seconds. Until the server's own handler takes over, a SIGHUP is only
    noted here, and the server reloads once it is up: the config may have changed meanwhile.
    """

    def __init__(self) -> None:
        self.seen = False
        if hasattr(signal, "SIGHUP"):
            signal.signal(signal.SIGHUP, self._note)

    def _note(self, signum: int, frame: FrameType | None) -> None:
        self.seen = True


@contextmanager
def serve_in_thread(app: Any, *, host: str = "127.0.0.1", port: int = 0, log_level: str = "warning") -> Iterator[str]:
    """Serve `app` until the block exits; yields its base URL (`port=0` picks a free port).

    uvicorn's own logging set-up is skipped (`log_config=None`): its records go to the root
    logger like everyone else's, where the host application (or pytest's caplog) sees them. It
    adds no Date or Server header either: a proxy passes the upstream's on.
    """
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        log_config=None,
        lifespan="auto",
        timeout_graceful_shutdown=1,
        server_header=False,
        date_header=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="guardstream-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError(f"the server on {host}:{port} did not start")
        time.sleep(0.01)
    bound = server.servers[0].sockets[0].getsockname()[1]
    try:
        yield f"http://{host}:{bound}"
    finally:
        server.should_exit = True
        thread.join(timeout=5)


def uvicorn_config(app: Any, config: Config, **extra: Any) -> uvicorn.Config:
    """How `guardstream serve` runs uvicorn, one process or several."""
    logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
    return uvicorn.Config(
        app,
        host=config.server.host,
        port=config.server.port,
        log_level="error",
        # The upstream's Date and Server headers pass through; uvicorn must not add a second pair.
        server_header=False,
        date_header=False,
        lifespan="on",
        timeout_graceful_shutdown=int(config.server.shutdown_grace) + 5,
        **extra,
    )
