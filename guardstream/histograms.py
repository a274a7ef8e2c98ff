"""A histogram for the per-event hot path, exported through prometheus_client's collector API.

`prometheus_client.Histogram.observe` takes a lock per bucket and per sum (~3 µs): three of them
per event were a quarter of a stream's CPU. Here an observation is a bisect and two list updates
on plain Python numbers. The exposition (names, `le` buckets, `_sum`, `_count`) is the standard
one, so dashboards and PromQL cannot tell the difference.

Observations come from the event loop thread that runs the streams; a scrape reads the lists
as they are (a torn read can only be off by the observation in flight).

Under prometheus_client's multiprocess mode (several worker processes, `PROMETHEUS_MULTIPROC_DIR`)
observations still go to the lists, and `flush()` adds what came since the last flush to the
per-process files, under the same keys prometheus_client's own `Histogram` writes, so its
`MultiProcessCollector` sums them across workers. `guardstream.multiprocess` flushes every second
and before each scrape.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, values as prometheus_values
from prometheus_client.core import HistogramMetricFamily
from prometheus_client.registry import Collector


def is_multiprocess() -> bool:
    """prometheus_client chose its multiprocess values (PROMETHEUS_MULTIPROC_DIR was set when it
    was imported): metrics live in per-process files."""
    return bool(getattr(prometheus_values.ValueClass, "_multiprocess", False))


class HistogramChild:
    __slots__ = ("_bounds", "counts", "total", "_files", "_flushed", "_flushed_total")

    def __init__(self, bounds: tuple[float, ...], files: list[Any] | None = None) -> None:
        self._bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last slot is +Inf
        self.total = 0.0
        # Multiprocess mode: one file value per bucket, then one for the sum.
        self._files = files
        self._flushed = [0] * len(self.counts)
        self._flushed_total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect_left(self._bounds, value)] += 1
        self.total += value

    def flush(self) -> None:
        """Add what was observed since the last flush to the multiprocess files (nothing otherwise)."""
        if self._files is None:
            return
        counts, total = list(self.counts), self.total
        for file, now, then in zip(self._files, counts, self._flushed, strict=False):
            if now != then:
                file.inc(now - then)
        if total != self._flushed_total:
            self._files[-1].inc(total - self._flushed_total)
        self._flushed, self._flushed_total = counts, total


class FastHistogram(Collector):
    """A labelled histogram with `labels(...).observe(v)`, registered on `registry`."""

    def __init__(
        self,
        name: str,
        documentation: str,
        labelnames: Sequence[str] = (),
        *,
        buckets: Iterable[float],
        registry: CollectorRegistry | None,
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.labelnames = tuple(labelnames)
        self.bounds = tuple(sorted(float(b) for b in buckets))
        self.is_multiprocess = is_multiprocess()
        self._children: dict[tuple[str, ...], HistogramChild] = {}
        if registry is not None:
            registry.register(self)

    def labels(self, *values: str) -> HistogramChild:
        if len(values) != len(self.labelnames):
            raise ValueError(f"{self.name} takes labels {self.labelnames}, got {values}")
        child = self._children.get(values)
        if child is None:
            files = self._files(values) if self.is_multiprocess else None
            child = self._children[values] = HistogramChild(self.bounds, files)
        return child

    def _files(self, labelvalues: tuple[str, ...]) -> list[Any]:
        # The keys prometheus_client's Histogram uses: `_bucket` per `le` (not cumulative), then `_sum`.
        bucket_labels = (*self.labelnames, "le")
        files = [
            prometheus_values.ValueClass(
                "histogram",
                self.name,
                self.name + "_bucket",
                bucket_labels,
                (*labelvalues, _go_float(bound)),
                self.documentation,
            )
            for bound in (*self.bounds, float("inf"))
        ]
        files.append(
            prometheus_values.ValueClass(
                "histogram", self.name, self.name + "_sum", self.labelnames, labelvalues, self.documentation
            )
        )
        return files

    def flush(self) -> None:
        for child in list(self._children.values()):
            child.flush()

    def observe(self, value: float) -> None:
        self.labels().observe(value)

    def describe(self) -> Iterator[HistogramMetricFamily]:
        yield HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)

    def collect(self) -> Iterator[HistogramMetricFamily]:
        family = HistogramMetricFamily(self.name, self.documentation, labels=self.labelnames)
        for values, child in list(self._children.items()):
            cumulative = 0
            buckets: list[tuple[str, float]] = []
            for bound, count in zip((*self.bounds, float("inf")), list(child.counts), strict=True):
                cumulative += count
                buckets.append((_go_float(bound), cumulative))
            family.add_metric(list(values), buckets, child.total)
        yield family


def _go_float(value: float) -> str:
    """Bucket bounds as Prometheus writes them (`+Inf`, `0.5`, `1.0`)."""
    if value == float("inf"):
        return "+Inf"
    return repr(float(value))
