"""Prometheus metrics. One `Metrics` object per app, on an injected registry.

Label values come from closed sets only (the constants below, rule ids from the loaded packs,
classifier names from the config), never from request data, so cardinality is bounded and no
content can leak into them. The recording helpers refuse a value outside its set.

Per-event histograms (release delay, hold-back, rule scan) use `FastHistogram`; per-request ones
use prometheus_client's `Histogram`. Stream code binds its children once (`Metrics.stream`).
"""

from __future__ import annotations

import platform
from collections.abc import Iterable, Sequence

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from guardstream import multiprocess
from guardstream.histograms import FastHistogram, is_multiprocess
from guardstream.window import Violation

# How a request ended. `upstream_rejected` is an upstream 4xx (the client's own request was
# refused: a bad key, a rate limit), not an upstream failure; failures are `upstream_error`.
OUTCOMES = (
    "passed",
    "redacted",
    "blocked_input",
    "blocked_output",
    "upstream_rejected",
    "upstream_error",
    "client_closed",
    "shutdown",
    "bad_request",
    "unauthorized",
    "not_routed",
)
UPSTREAM_ERROR_REASONS = ("connect", "timeout", "dropped", "malformed", "status_5xx")
# Wire formats the proxy speaks, `passthrough` for forwarded paths, `none` for requests refused
# before routing, and the middleware's `json-field` and `text` formats.
PROVIDERS = (
    "openai-chat",
    "openai-completions",
    "openai-responses",
    "anthropic",
    "gemini",
    "passthrough",
    "none",
    "json-field",
    "text",
)
ACTIONS = ("block", "redact", "flag")
DIRECTIONS = ("input", "output")
CLASSIFIER_ERROR_REASONS = ("timeout", "error")
CLASSIFIER_VERDICTS = ("clear", "flagged")
RELOAD_RESULTS = ("success", "failure")

# Per event: what moderation adds is normally well under a millisecond.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
SCAN_BUCKETS = (0.00001, 0.000025, 0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05)
CHAR_BUCKETS = (0, 1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 4096)
# Per request: a model's first byte takes seconds and a long answer minutes.
REQUEST_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0)

_OUTCOMES = frozenset(OUTCOMES)
_UPSTREAM_ERROR_REASONS = frozenset(UPSTREAM_ERROR_REASONS)
_PROVIDERS = frozenset(PROVIDERS)
_DIRECTIONS = frozenset(DIRECTIONS)
_CLASSIFIER_ERROR_REASONS = frozenset(CLASSIFIER_ERROR_REASONS)
_CLASSIFIER_VERDICTS = frozenset(CLASSIFIER_VERDICTS)


def _register_standard_collectors(registry: CollectorRegistry) -> None:
    """process_*, python_info and python_gc_* on the app's registry. prometheus_client's default
    REGISTRY (which a host app may hand the middleware) has them already: one set is enough."""
    for collector in (ProcessCollector, PlatformCollector, GCCollector):
        try:
            collector(registry=registry)
        except ValueError:  # "Duplicated timeseries in CollectorRegistry"
            pass


def _check(kind: str, value: str, allowed: frozenset[str], listed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{kind} {value!r} is not one of {', '.join(listed)}; label values come from closed sets.")


class Metrics:
    """Every guardstream metric, registered on `registry` (tests pass a fresh `CollectorRegistry()`).

    `rules` are the loaded rule ids (or call `track_rules` once they are loaded): their timeout
    counters start at zero. `classifiers` are the configured classifier names; with none, no
    `guardstream_classifier_*` metric is registered at all.
    """

    def __init__(
        self, registry: CollectorRegistry, *, rules: Iterable[str] = (), classifiers: Iterable[str] = ()
    ) -> None:
        from guardstream import __version__  # not at the top: guardstream/__init__ imports this module

        self.registry = registry
        # With several worker processes (prometheus_client's multiprocess mode) every metric writes
        # to its worker's files and `WorkerMetrics` exports all workers' at once; registering the
        # metrics themselves as well would show this worker's a second time.
        self.is_multiprocess = is_multiprocess()
        own = None if self.is_multiprocess else registry
        self.classifiers = tuple(dict.fromkeys(classifiers))
        self.requests = Counter(
            "guardstream_requests_total",
            "Requests handled, by how they ended.",
            ["provider", "outcome"],
            registry=own,
        )
        self.request_duration = Histogram(
            "guardstream_request_duration_seconds",
            "Time from receiving a request to sending the last byte of its answer.",
            ["provider", "outcome"],
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self.violations = Counter(
            "guardstream_violations_total",
            "Rule matches, by rule and the action taken.",
            ["rule", "category", "action", "direction"],
            registry=own,
        )
        self.active_streams = Gauge(
            "guardstream_active_streams",
            "Streams being moderated right now.",
            ["provider"],
            registry=own,
            multiprocess_mode="livesum",
        )
        self.release_delay = FastHistogram(
            "guardstream_release_delay_seconds",
            "Time from receiving an upstream event to releasing it to the client.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.holdback = FastHistogram(
            "guardstream_holdback_chars",
            "Characters held back after each decision (one per upstream read, or burst of reads, of a window).",
            ["provider"],
            buckets=CHAR_BUCKETS,
            registry=own,
        )
        self.forced_release = Counter(
            "guardstream_forced_release_chars_total",
            "Characters released past an undecided match because max_holdback_chars was reached.",
            ["provider"],
            registry=own,
        )
        self.released_chars = Counter(
            "guardstream_released_chars_total",
            "Characters of text released to clients.",
            ["provider"],
            registry=own,
        )
        self.time_to_first_token = Histogram(
            "guardstream_time_to_first_token_seconds",
            "Time from receiving a request to releasing the first text of its answer to the client.",
            ["provider"],
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self.first_token_added = Histogram(
            "guardstream_first_token_added_seconds",
            "The part of the time to first token that guardstream added: first text received upstream to released.",
            ["provider"],
            buckets=LATENCY_BUCKETS,
            registry=own,
        )
        self.rule_scan = FastHistogram(
            "guardstream_rule_scan_seconds",
            "Rule scanning time per upstream read (the events that arrived together are scanned at once).",
            buckets=SCAN_BUCKETS,
            registry=own,
        )
        self.rule_timeouts = Counter(
            "guardstream_rule_timeouts_total",
            "Rule searches stopped by the regex timeout; the undecided text counts as a match (fail closed).",
            ["rule"],
            registry=own,
        )
        # Unregistered (registry=None) when no classifier is configured: no empty families at /metrics.
        classifier_registry = own if self.classifiers else None
        self.classifier_seconds = Histogram(
            "guardstream_classifier_seconds",
            "Classifier call latency, failed calls included.",
            ["classifier"],
            buckets=REQUEST_BUCKETS,
            registry=classifier_registry,
        )
        self.classifier_errors = Counter(
            "guardstream_classifier_errors_total",
            "Classifier calls that failed, by reason (timeout, error).",
            ["classifier", "reason"],
            registry=classifier_registry,
        )
        self.classifier_checks = Counter(
            "guardstream_classifier_checks_total",
            "Classifier calls that returned a verdict (clear, flagged).",
            ["classifier", "verdict"],
            registry=classifier_registry,
        )
        self.upstream_errors = Counter(
            "guardstream_upstream_errors_total",
            "Upstream failures (connect, timeout, dropped, malformed, status_5xx); upstream 4xx are not counted.",
            ["provider", "reason"],
            registry=own,
        )
        self.upstream_ttfb = Histogram(
            "guardstream_upstream_ttfb_seconds",
            "Time until the upstream answered with headers.",
            ["provider"],
            buckets=REQUEST_BUCKETS,
            registry=own,
        )
        self.reloads = Counter(
            "guardstream_config_reloads_total",
            "Config and rule reloads (SIGHUP or POST /-/reload), by result: a failed one keeps the old rules.",
            ["result"],
            registry=own,
        )
        for result in RELOAD_RESULTS:
            self.reloads.labels(result)
        self.build_info = Gauge(
            "guardstream_build_info",
            "Always 1; the labels say which guardstream and Python are running.",
            ["version", "python"],
            registry=own,
            multiprocess_mode="livemax",
        )
        self.build_info.labels(__version__, platform.python_version()).set(1)
        if self.is_multiprocess:
            for histogram in (self.release_delay, self.holdback, self.rule_scan):
                multiprocess.track(histogram)
            multiprocess.WorkerMetrics(registry)
        else:
            _register_standard_collectors(registry)
        self._rule_timeouts: dict[str, Counter] = {}
        self.track_rules(rules)
        self._classifiers = {name: ClassifierMetrics(self, name) for name in self.classifiers}

    def track_rules(self, rule_ids: Iterable[str]) -> None:
        """Start the timeout counter of each loaded rule at zero (Prometheus' advice for label values
        known in advance), so that `rate()` sees a rule's first timeout."""
        for rule_id in rule_ids:
            if rule_id not in self._rule_timeouts:
                self._rule_timeouts[rule_id] = self.rule_timeouts.labels(rule_id)

    def record_request(self, provider: str, outcome: str, duration_seconds: float) -> None:
        """One request ended: count it and observe its duration (once per request, never per event)."""
        _check("provider", provider, _PROVIDERS, PROVIDERS)
        _check("outcome", outcome, _OUTCOMES, OUTCOMES)
        self.requests.labels(provider, outcome).inc()
        self.request_duration.labels(provider, outcome).observe(duration_seconds)

    def upstream_error(self, provider: str, reason: str) -> None:
        _check("provider", provider, _PROVIDERS, PROVIDERS)
        _check("upstream error reason", reason, _UPSTREAM_ERROR_REASONS, UPSTREAM_ERROR_REASONS)
        self.upstream_errors.labels(provider, reason).inc()

    def violation(self, violation: Violation, direction: str) -> None:
        """A rule matched. A regex timeout is a violation too (fail closed) and is also counted as a timeout."""
        _check("direction", direction, _DIRECTIONS, DIRECTIONS)
        rule = violation.rule
        self.violations.labels(rule.id, rule.category, violation.action, direction).inc()
        if violation.is_timeout:
            self.rule_timeout(rule.id)

    def rule_timeout(self, rule_id: str) -> None:
        child = self._rule_timeouts.get(rule_id)
        if child is None:
            # Rule ids come from the loaded packs, a closed set, even when `rules=` was not given.
            child = self._rule_timeouts[rule_id] = self.rule_timeouts.labels(rule_id)
        child.inc()

    def classifier(self, name: str) -> ClassifierMetrics:
        """The bound metrics of a configured classifier."""
        try:
            return self._classifiers[name]
        except KeyError:
            configured = ", ".join(self.classifiers) or "none"
            raise ValueError(f"classifier {name!r} is not configured (configured: {configured}).") from None

    def stream(self, provider: str) -> StreamMetrics:
        _check("provider", provider, _PROVIDERS, PROVIDERS)
        return StreamMetrics(self, provider)


class StreamMetrics:
    """The metric children of one stream, bound once (a `labels()` call per event costs ~2 µs)."""

    def __init__(self, metrics: Metrics, provider: str) -> None:
        self.metrics = metrics
        self.active = metrics.active_streams.labels(provider)
        self._release_delay = metrics.release_delay.labels(provider)
        self._holdback = metrics.holdback.labels(provider)
        self._released = metrics.released_chars.labels(provider)
        self._forced = metrics.forced_release.labels(provider)
        self._scan = metrics.rule_scan.labels()
        self._time_to_first_token = metrics.time_to_first_token.labels(provider)
        self._first_token_added = metrics.first_token_added.labels(provider)

    def on_violation(self, violation: Violation) -> None:
        self.metrics.violation(violation, "output")

    def on_release(self, chars: int, delays_seconds: Sequence[float]) -> None:
        if chars:
            self._released.inc(chars)
        observe = self._release_delay.observe
        for delay in delays_seconds:
            observe(delay)

    def on_holdback(self, chars: int) -> None:
        self._holdback.observe(chars)

    def on_forced_release(self, chars: int) -> None:
        self._forced.inc(chars)

    def on_scan(self, seconds: float) -> None:
        self._scan.observe(seconds)

    def on_first_token(self, since_request_seconds: float, added_seconds: float) -> None:
        """The first text reached the client: `since_request_seconds` after the request arrived,
        `added_seconds` after that text arrived from the upstream."""
        self._time_to_first_token.observe(since_request_seconds)
        self._first_token_added.observe(added_seconds)


class ClassifierMetrics:
    """The metric children of one configured classifier, bound once."""

    def __init__(self, metrics: Metrics, name: str) -> None:
        self._seconds = metrics.classifier_seconds.labels(name)
        self._checks = {verdict: metrics.classifier_checks.labels(name, verdict) for verdict in CLASSIFIER_VERDICTS}
        self._errors = {reason: metrics.classifier_errors.labels(name, reason) for reason in CLASSIFIER_ERROR_REASONS}

    def on_check(self, verdict: str, seconds: float) -> None:
        """A call returned `verdict` (clear or flagged) after `seconds`."""
        _check("classifier verdict", verdict, _CLASSIFIER_VERDICTS, CLASSIFIER_VERDICTS)
        self._checks[verdict].inc()
        self._seconds.observe(seconds)

    def on_error(self, reason: str, seconds: float) -> None:
        """A call failed with `reason` (timeout or error) after `seconds`."""
        _check("classifier error reason", reason, _CLASSIFIER_ERROR_REASONS, CLASSIFIER_ERROR_REASONS)
        self._errors[reason].inc()
        self._seconds.observe(seconds)
