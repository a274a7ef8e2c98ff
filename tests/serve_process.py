"""A real `guardstream serve` process for tests that need signals, logs and exit codes."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import mock_headers

HELD_CHAT = {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServeProcess:
    """`guardstream serve` in a subprocess; its stderr (start lines and logs) is collected to a file."""

    def __init__(self, args: list[str], *, cwd: Path, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = tempfile.NamedTemporaryFile(mode="w+b", suffix=".log", delete=False)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "guardstream", "serve", "--port", str(self.port), *args],
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdout=subprocess.DEVNULL,
            stderr=self._log,
        )

    def wait_ready(self, timeout: float = 60) -> None:
        # Generous: under `coverage run` (CI) every process, workers included, is traced, and
        # each compiles and probes the packs (seconds without tracing, several times that with).
        deadline = time.monotonic() + timeout
        while True:
            try:
                httpx.get(f"{self.url}/healthz", timeout=1)
                return
            except httpx.TransportError:
                if self.process.poll() is not None:
                    raise AssertionError(f"guardstream serve exited: {self.stderr()}") from None
                if time.monotonic() > deadline:
                    raise AssertionError(f"guardstream serve did not start: {self.stderr()}") from None
                time.sleep(0.05)

    def stderr(self) -> str:
        return Path(self._log.name).read_text(encoding="utf-8", errors="replace")

    def signal(self, sig: signal.Signals) -> None:
        self.process.send_signal(sig)

    def wait_for_log(self, text: str, timeout: float = 10) -> str:
        deadline = time.monotonic() + timeout
        while text not in self.stderr():
            assert time.monotonic() < deadline, f"{text!r} never logged: {self.stderr()}"
            time.sleep(0.05)
        return self.stderr()

    def stop(self) -> int:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._log.close()
        return self.process.returncode


@contextmanager
def serving(*args: str, cwd: Path, env: dict[str, str] | None = None, ready: bool = True) -> Iterator[ServeProcess]:
    server = ServeProcess(list(args), cwd=cwd, env=env)
    try:
        if ready:
            server.wait_ready()
        yield server
    finally:
        server.stop()
        Path(server._log.name).unlink(missing_ok=True)


def run_serve(
    *args: str, cwd: Path, env: dict[str, str] | None = None, timeout: float = 20
) -> subprocess.CompletedProcess[str]:
    """`guardstream serve` expected to refuse to start: its exit code and messages."""
    return subprocess.run(
        [sys.executable, "-m", "guardstream", "serve", *args],
        cwd=cwd,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def chat_held_open(url: str) -> tuple[threading.Thread, list[bytes]]:
    """A stream whose upstream stops after two events and never ends, running in a thread.

    Returns once the first bytes have reached the client, so a signal sent next finds it open.
    """
    results: list[bytes] = []
    started = threading.Event()
    headers = mock_headers({"reply": "words keep coming.", "hold_after": 2, "hold_key": "forever"})

    def run() -> None:
        body = b""
        with httpx.Client(timeout=30) as client:
            with client.stream("POST", f"{url}/v1/chat/completions", json=HELD_CHAT, headers=headers) as answer:
                for chunk in answer.iter_bytes():
                    body += chunk
                    started.set()
        results.append(body)

    thread = threading.Thread(target=run)
    thread.start()
    assert started.wait(timeout=30), "the stream never started"
    return thread, results
