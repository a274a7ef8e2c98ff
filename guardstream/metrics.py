"""Prometheus metrics (DESIGN.md §6). One `Metrics` object per app, on an injected registry.

Label values come from closed sets only (provider names, rule ids, classifier names, fixed
reasons), never from request data, so cardinality is bounded and no content can leak into them.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from guardstream.histograms import FastHistogram
from guardstream.window import Violation

OUTCOMES = ("passed", "blocked_input", "blocked_output", "redacted", "upstream_error", "client_closed")
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCAN_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
CHAR_BUCKETS = (0, 1, 4, 16, 32, 64, 128, 256, 512, 1024, 4096)


class Metrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        self.requests = Counter(
            "guardstream_requests_total",
            "Requests handled, by how they ended.",
            ["provider", "outcome"],
            registry=registry,
        )
        self.violations = Counter(
            "guardstream_violations_total",
            "Rule matches, by rule and the action taken.",
            ["rule", "category", "action", "direction"],
            registry=registry,
        )
        self.active_streams = Gauge(
            "guardstream_active_streams", "Streams being moderated right now.", ["provider"], registry=registry
        )
        self.release_delay = FastHistogram(
            "guardstream_release_delay_seconds",
            "Time from receiving an upstream event to releasing it to the client.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.holdback = FastHistogram(
            "guardstream_holdback_chars",
            "Characters held back after each delta.",
            ["provider"],
            buckets=CHAR_BUCKETS,
            registry=registry,
        )
        self.forced_release = Counter(
            "guardstream_forced_release_chars_total",
            "Characters released past an undecided match because max_holdback_chars was reached.",
            ["provider"],
            registry=registry,
        )
        self.rule_scan = FastHistogram(
            "guardstream_rule_scan_seconds",
            "Rule scanning time per upstream event.",
            buckets=SCAN_BUCKETS,
            registry=registry,
        )
        self.classifier_seconds = Histogram(
            "guardstream_classifier_seconds", "Classifier call latency.", ["classifier"], registry=registry
        )
        self.classifier_errors = Counter(
            "guardstream_classifier_errors_total", "Classifier failures.", ["classifier", "reason"], registry=registry
        )
        self.upstream_errors = Counter(
            "guardstream_upstream_errors_total", "Upstream failures.", ["provider", "reason"], registry=registry
        )
        self.upstream_ttfb = Histogram(
            "guardstream_upstream_ttfb_seconds",
            "Time until the upstream answered with headers.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )
        self.released_chars = Counter(
            "guardstream_released_chars_total",
            "Characters of text released to clients.",
            ["provider"],
            registry=registry,
        )

    def violation(self, violation: Violation, direction: str) -> None:
        rule = violation.rule
        self.violations.labels(rule.id, rule.category, violation.action, direction).inc()

    def stream(self, provider: str) -> StreamMetrics:
        return StreamMetrics(self, provider)


class StreamMetrics:
    """The metric children of one stream, bound once (a `labels()` call per event costs ~2 µs)."""

    def __init__(self, metrics: Metrics, provider: str) -> None:
        self.metrics = metrics
        self._release_delay = metrics.release_delay.labels(provider)
        self._holdback = metrics.holdback.labels(provider)
        self._released = metrics.released_chars.labels(provider)
        self._forced = metrics.forced_release.labels(provider)
        self._scan = metrics.rule_scan.labels()

    def on_violation(self, violation: Violation) -> None:
        self.metrics.violation(violation, "output")

    def on_release(self, chars: int, delay_seconds: float) -> None:
        self._released.inc(chars)
        self._release_delay.observe(delay_seconds)

    def on_holdback(self, chars: int) -> None:
        self._holdback.observe(chars)

    def on_forced_release(self, chars: int) -> None:
        self._forced.inc(chars)

    def on_scan(self, seconds: float) -> None:
        self._scan.observe(seconds)
