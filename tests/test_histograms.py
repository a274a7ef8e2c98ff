"""FastHistogram exposes exactly what prometheus_client's Histogram would."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from guardstream.histograms import FastHistogram

BUCKETS = (0.00001, 0.001, 0.5, 1.0, 10.0)
VALUES = [0.0, 0.00001, 0.000011, 0.2, 0.5, 0.75, 1.0, 3.0, 10.0, 11.0, 1e9]


def exposition(histogram_type: type, values: list[float]) -> str:
    registry = CollectorRegistry()
    histogram = histogram_type("h_seconds", "help", ["provider"], buckets=BUCKETS, registry=registry)
    for value in values:
        histogram.labels("p").observe(value)
    return generate_latest(registry).decode()


def test_fast_histogram_matches_the_reference_exposition() -> None:
    reference = exposition(Histogram, VALUES)
    ours = exposition(FastHistogram, VALUES)
    # The reference also exports a _created gauge; everything else must be identical.
    assert [line for line in reference.splitlines() if "_created" not in line] == ours.splitlines()


def test_fast_histogram_is_read_by_get_sample_value() -> None:
    registry = CollectorRegistry()
    histogram = FastHistogram("d_seconds", "help", buckets=BUCKETS, registry=registry)
    histogram.observe(0.4)
    assert registry.get_sample_value("d_seconds_bucket", {"le": "0.5"}) == 1
    assert registry.get_sample_value("d_seconds_count") == 1
    assert registry.get_sample_value("d_seconds_sum") == 0.4
