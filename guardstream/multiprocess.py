"""Metrics across worker processes: prometheus_client's multiprocess mode, made whole.

`guardstream serve --workers N` runs N processes behind one socket. Each writes its metrics to
files in `PROMETHEUS_MULTIPROC_DIR` (prometheus_client does that for its own metric types once the
variable is set before it is imported), and whichever worker answers a scrape reads every file:

- counters and histograms are summed over the workers, including workers that have exited (so a
  restart never makes a counter go back);
- `guardstream_active_streams` sums live workers only (`livesum`), and `guardstream_build_info`
  shows one series (`livemax`); a worker that exits removes its live files, and one that died
  without doing so (killed, out of memory) is noticed at the next scrape and removed then;
- the `FastHistogram`s keep their cheap per-event path and add what they observed to the files
  every second and before each scrape (`track`, `flush_tracked`);
- `process_*` comes from `/proc` for every live worker, with a `pid` label (prometheus_client's
  own process collector only sees the process that answers the scrape); `python_gc_*` is left
  out, since it cannot be summed.
"""

from __future__ import annotations

import glob
import os
import threading
import weakref
from collections.abc import Callable, Iterable, Iterator

from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.registry import Collector

from guardstream.histograms import FastHistogram, is_multiprocess

__all__ = ["FLUSH_SECONDS", "WorkerMetrics", "flush_tracked", "is_multiprocess", "track", "worker_exiting"]

FLUSH_SECONDS = 1.0
# The file of a gauge that only counts while its process lives: gauge_live<mode>_<pid>.db.
_LIVE_FILES = "gauge_live*_*.db"
# build_info is `livemax`: each live worker has exactly one such file.
_WORKER_FILES = "gauge_livemax_*.db"

_tracked: weakref.WeakSet[FastHistogram] = weakref.WeakSet()
_flush_lock = threading.Lock()
_flusher: threading.Thread | None = None


def directory() -> str:
    path = os.environ.get("PROMETHEUS_MULTIPROC_DIR", "")
    if not path or not os.path.isdir(path):
        raise ValueError("PROMETHEUS_MULTIPROC_DIR is not set to a folder; multiprocess metrics need one.")
    return path


def track(histogram: FastHistogram) -> None:
    """Flush `histogram` to the worker's files every `FLUSH_SECONDS` (a daemon thread, started once)."""
    global _flusher
    _tracked.add(histogram)
    with _flush_lock:
        if _flusher is None or not _flusher.is_alive():
            _flusher = threading.Thread(target=_flush_forever, name="guardstream-metrics-flush", daemon=True)
            _flusher.start()


def flush_tracked() -> None:
    # One flush at a time: two at once would both add the same observations.
    with _flush_lock:
        for histogram in list(_tracked):
            histogram.flush()


def _flush_forever() -> None:
    while True:
        threading.Event().wait(FLUSH_SECONDS)
        flush_tracked()


def worker_exiting(pid: int | None = None) -> None:
    """A worker stops: write out its histograms and drop its live gauges (active streams, build info)."""
    flush_tracked()
    mark_process_dead(pid if pid is not None else os.getpid(), directory())  # type: ignore[no-untyped-call]


def _pid_of(path: str) -> int | None:
    try:
        return int(os.path.basename(path).rsplit("_", 1)[1].removesuffix(".db"))
    except (IndexError, ValueError):
        return None


def _constant(pid: int) -> Callable[[], int]:
    return lambda: pid


def _is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's process: it exists
        return True
    return True


class WorkerMetrics(Collector):
    """Every worker's metrics, read from the multiprocess files at each scrape."""

    def __init__(self, registry: CollectorRegistry | None, path: str | None = None) -> None:
        self.path = path or directory()
        self._files = MultiProcessCollector(None, self.path)  # type: ignore[no-untyped-call]
        self._platform = PlatformCollector(registry=None)
        if registry is not None:
            registry.register(self)

    def describe(self) -> Iterable[Metric]:
        # Families differ from scrape to scrape; describing none keeps registration free of clashes.
        return []

    def collect(self) -> Iterator[Metric]:
        flush_tracked()
        self._forget_dead_workers()
        yield from self._files.collect()  # type: ignore[no-untyped-call]
        yield from self._worker_processes()
        yield from self._platform.collect()

    def live_workers(self) -> list[int]:
        pids = (_pid_of(path) for path in glob.glob(os.path.join(self.path, _WORKER_FILES)))
        return sorted(pid for pid in pids if pid is not None and _is_alive(pid))

    def _forget_dead_workers(self) -> None:
        for path in glob.glob(os.path.join(self.path, _LIVE_FILES)):
            pid = _pid_of(path)
            if pid is not None and not _is_alive(pid):
                mark_process_dead(pid, self.path)  # type: ignore[no-untyped-call]

    def _worker_processes(self) -> Iterator[Metric]:
        families: dict[str, Metric] = {}
        for pid in self.live_workers():
            for family in ProcessCollector(pid=_constant(pid), registry=None).collect():
                merged = families.setdefault(family.name, Metric(family.name, family.documentation, family.type))
                for sample in family.samples:
                    merged.add_sample(sample.name, {**sample.labels, "pid": str(pid)}, sample.value)
        yield from families.values()
