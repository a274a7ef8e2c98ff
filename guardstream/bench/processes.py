"""The benchmark's processes: started, waited for, read through /proc (Linux), and stopped."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

import httpx

from guardstream.errors import ConfigError

HOST = "127.0.0.1"
START_TIMEOUT = 60.0
ReadinessCheck = Literal["tcp", "http"]


def cpu_seconds(pid: int) -> float:
    """CPU time of a process, all its threads together, from /proc (Linux).

    Each thread's `schedstat` counts nanoseconds; `stat` counts clock ticks (10 ms), too coarse
    for a short run, so it is only the fallback where the kernel keeps no schedstat.
    """
    try:
        return (
            sum(int((task / "schedstat").read_text().split()[0]) for task in Path(f"/proc/{pid}/task").iterdir()) / 1e9
        )
    except (OSError, ValueError, IndexError):
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int, field: str) -> int:
    """`VmRSS` (now) or `VmHWM` (peak) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise ConfigError(f"/proc/{pid}/status has no {field}; the benchmark needs Linux.")


def reset_peak_memory(pid: int) -> None:
    """Start VmHWM again from the current RSS (Linux 4.0+); where that is refused, the peak since
    start is reported, which start-up keeps small."""
    try:
        Path(f"/proc/{pid}/clear_refs").write_text("5")
    except OSError:
        pass


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def _child_env() -> dict[str, str]:
    # The servers run exactly as the benchmark configures them, whatever this shell exports.
    return {k: v for k, v in os.environ.items() if not k.startswith("GUARDSTREAM_") and k != "PROMETHEUS_MULTIPROC_DIR"}


@contextmanager
def server_process(args: list[str], port: int, ready: ReadinessCheck) -> Iterator[subprocess.Popen[bytes]]:
    """A server started as `python ARGS`, stopped (and reaped) when the block ends."""
    with tempfile.TemporaryFile() as log:
        process = subprocess.Popen([sys.executable, *args], stdout=log, stderr=log, env=_child_env())
        try:
            _wait_ready(process, port, ready, log)
            yield process
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_ready(process: subprocess.Popen[bytes], port: int, ready: ReadinessCheck, log: Any) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if ready == "http":
                httpx.get(f"http://{HOST}:{port}/readyz", timeout=2).raise_for_status()
            else:
                socket.create_connection((HOST, port), timeout=2).close()
            return
        except (OSError, httpx.HTTPError):
            if process.poll() is not None or time.monotonic() > deadline:
                log.seek(0)
                said = log.read().decode(errors="replace").strip().splitlines()
                why = said[-1] if said else "no output"
                raise ConfigError(f"the benchmark could not start {' '.join(process.args)}: {why}") from None  # type: ignore[arg-type]
            time.sleep(0.05)
