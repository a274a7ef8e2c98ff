"""Every exported series, driven with known traffic and read back exactly."""

from __future__ import annotations

import json
import platform
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

import guardstream
from guardstream.metrics import (
    CHAR_BUCKETS,
    CLASSIFIER_ERROR_REASONS,
    CLASSIFIER_VERDICTS,
    OUTCOMES,
    PROVIDERS,
    UPSTREAM_ERROR_REASONS,
    Metrics,
)
from guardstream.packs import load_rules
from guardstream.providers.openai_chat import OpenAIChatStream
from guardstream.providers.openai_responses import OpenAIResponsesStream
from guardstream.rules import RuleSet
from guardstream.stream import StreamModerator
from guardstream.window import Violation

PII = load_rules(["pii"]).for_direction("output")
# The contract: name -> (type, label names).
CONTRACT = {
    "guardstream_requests": ("counter", ("provider", "outcome")),
    "guardstream_request_duration_seconds": ("histogram", ("provider", "outcome")),
    "guardstream_violations": ("counter", ("rule", "category", "action", "direction")),
    "guardstream_active_streams": ("gauge", ("provider",)),
    "guardstream_release_delay_seconds": ("histogram", ("provider",)),
    "guardstream_holdback_chars": ("histogram", ("provider",)),
    "guardstream_forced_release_chars": ("counter", ("provider",)),
    "guardstream_released_chars": ("counter", ("provider",)),
    "guardstream_time_to_first_token_seconds": ("histogram", ("provider",)),
    "guardstream_first_token_added_seconds": ("histogram", ("provider",)),
    "guardstream_rule_scan_seconds": ("histogram", ()),
    "guardstream_rule_timeouts": ("counter", ("rule",)),
    "guardstream_upstream_errors": ("counter", ("provider", "reason")),
    "guardstream_upstream_ttfb_seconds": ("histogram", ("provider",)),
    "guardstream_build_info": ("gauge", ("version", "python")),
    "guardstream_config_reloads": ("counter", ("result",)),
}
CLASSIFIER_CONTRACT = {
    "guardstream_classifier_seconds": ("histogram", ("classifier",)),
    "guardstream_classifier_errors": ("counter", ("classifier", "reason")),
    "guardstream_classifier_checks": ("counter", ("classifier", "verdict")),
}


def chunk(content: str | None = None, finish: str | None = None) -> bytes:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    payload = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
    payload["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def stream_through(observer: Any, rules: RuleSet | tuple[Any, ...], deltas: list[str], **options: Any) -> bytes:
    """One openai-chat stream of `deltas`, each in a read of its own, through a moderator reporting
    to `observer`; a fixed clock makes every release delay exactly 0."""
    events = [*(chunk(d) for d in deltas), chunk(finish="stop"), b"data: [DONE]\n\n"]
    moderator = StreamModerator(OpenAIChatStream(), tuple(rules), observer=observer, clock=lambda: 0.0, **options)
    return b"".join(moderator.feed(event) for event in events) + moderator.finish()


def responses_event(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def test_text_repeated_by_snapshot_events_is_counted_once() -> None:
    # Responses repeats the streamed text in `*.done` events and `response.completed`: released
    # characters count what the client was sent as new text, once.
    text = "Hello there, how are you?"
    deltas = [text[i : i + 4] for i in range(0, len(text), 4)]
    where = {"output_index": 0, "content_index": 0, "item_id": "msg_1"}
    item = {"type": "message", "id": "msg_1", "role": "assistant", "content": [{"type": "output_text", "text": text}]}
    raw = b"".join(
        [
            *(responses_event("response.output_text.delta", delta=d, **where) for d in deltas),
            responses_event("response.output_text.done", text=text, **where),
            responses_event("response.content_part.done", part={"type": "output_text", "text": text}, **where),
            responses_event("response.output_item.done", output_index=0, item=item),
            responses_event("response.completed", response={"id": "resp_1", "output": [item]}),
        ]
    )
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    moderator = StreamModerator(OpenAIResponsesStream(), PII, observer=metrics.stream("openai-responses"))
    out = moderator.feed(raw) + moderator.finish()
    assert out == raw
    provider = {"provider": "openai-responses"}
    assert registry.get_sample_value("guardstream_released_chars_total", provider) == len(text)


class Recorder:
    """A stream observer that keeps every report, to compare the metrics with."""

    def __init__(self) -> None:
        self.reports: dict[str, list[Any]] = {}

    def __getattr__(self, name: str) -> Any:
        return lambda *args: self.reports.setdefault(name, []).append(args)


def families(registry: CollectorRegistry) -> dict[str, tuple[str, tuple[str, ...]]]:
    found = {}
    for family in registry.collect():
        if family.name.startswith("guardstream_"):
            labels = next((tuple(s.labels) for s in family.samples if not s.name.endswith("_created")), ())
            found[family.name] = (family.type, tuple(label for label in labels if label != "le"))
    return found


def exercise(metrics: Metrics) -> None:
    """Give every metric one sample, so each family shows its labels."""
    metrics.record_request("openai-chat", "passed", 0.2)
    metrics.upstream_error("openai-chat", "connect")
    metrics.upstream_ttfb.labels("openai-chat").observe(0.1)
    metrics.violation(Violation(PII[0], 0, 3), "input")
    metrics.rule_timeout(PII[0].id)
    stream = metrics.stream("openai-chat")
    stream.active.inc()
    stream.on_release(3, [0.001])
    stream.on_holdback(2)
    stream.on_forced_release(1)
    stream.on_scan(0.0001)
    stream.on_first_token(0.3, 0.002)
    for name in metrics.classifiers:
        metrics.classifier(name).on_check("clear", 0.05)


def test_metrics_export_the_contract_names_types_and_labels() -> None:
    registry = CollectorRegistry()
    exercise(Metrics(registry))
    assert families(registry) == CONTRACT


def test_configured_classifiers_add_their_three_metrics() -> None:
    registry = CollectorRegistry()
    exercise(Metrics(registry, classifiers=["moderation-api"]))
    assert families(registry) == {**CONTRACT, **CLASSIFIER_CONTRACT}


def test_no_classifier_metric_exists_without_a_configured_classifier() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    assert not [f.name for f in registry.collect() if f.name.startswith("guardstream_classifier")]
    with pytest.raises(ValueError, match="classifier 'judge' is not configured"):
        metrics.classifier("judge")


def test_configured_classifier_series_start_at_zero_and_count_calls() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, classifiers=["judge"])
    for reason in CLASSIFIER_ERROR_REASONS:
        assert (
            registry.get_sample_value("guardstream_classifier_errors_total", {"classifier": "judge", "reason": reason})
            == 0
        )
    judge = metrics.classifier("judge")
    for _ in range(3):
        judge.on_check("clear", 0.02)
    judge.on_check("flagged", 0.04)
    judge.on_error("timeout", 2.0)
    judge.on_error("error", 0.01)
    judge.on_error("timeout", 2.0)

    def value(name: str, **labels: str) -> float | None:
        return registry.get_sample_value(name, {"classifier": "judge", **labels})

    assert [value("guardstream_classifier_checks_total", verdict=v) for v in CLASSIFIER_VERDICTS] == [3, 1]
    assert [value("guardstream_classifier_errors_total", reason=r) for r in CLASSIFIER_ERROR_REASONS] == [2, 1]
    assert value("guardstream_classifier_seconds_count") == 7
    assert value("guardstream_classifier_seconds_sum") == pytest.approx(4.11)
    assert value("guardstream_classifier_seconds_bucket", le="0.025") == 4  # three clear checks and one error
    with pytest.raises(ValueError, match="verdict 'maybe'"):
        judge.on_check("maybe", 0.1)
    with pytest.raises(ValueError, match="reason 'oops'"):
        judge.on_error("oops", 0.1)


def test_build_info_names_the_running_version_and_python() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    labels = {"version": guardstream.__version__, "python": platform.python_version()}
    assert registry.get_sample_value("guardstream_build_info", labels) == 1


def test_process_platform_and_gc_collectors_are_on_the_app_registry() -> None:
    registry = CollectorRegistry()
    Metrics(registry)
    assert (registry.get_sample_value("process_cpu_seconds_total") or 0) > 0
    assert (registry.get_sample_value("process_resident_memory_bytes") or 0) > 0
    info = {
        "implementation": platform.python_implementation(),
        "major": str(platform.python_version_tuple()[0]),
        "minor": str(platform.python_version_tuple()[1]),
        "patchlevel": str(platform.python_version_tuple()[2]),
        "version": platform.python_version(),
    }
    assert registry.get_sample_value("python_info", info) == 1
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None


def test_metrics_join_a_registry_that_already_has_the_process_collectors() -> None:
    # Like prometheus_client's default REGISTRY, which a host app may pass to the middleware.
    registry = CollectorRegistry()
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    GCCollector(registry=registry)
    Metrics(registry)
    assert (registry.get_sample_value("process_cpu_seconds_total") or 0) > 0
    assert (
        registry.get_sample_value(
            "guardstream_build_info", {"version": guardstream.__version__, "python": platform.python_version()}
        )
        == 1
    )


def test_record_request_counts_each_outcome_and_observes_its_duration() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for i, outcome in enumerate(OUTCOMES):
        for _ in range(i + 1):
            metrics.record_request("anthropic", outcome, 0.5)
    for i, outcome in enumerate(OUTCOMES):
        labels = {"provider": "anthropic", "outcome": outcome}
        assert registry.get_sample_value("guardstream_requests_total", labels) == i + 1
        assert registry.get_sample_value("guardstream_request_duration_seconds_count", labels) == i + 1
        assert registry.get_sample_value("guardstream_request_duration_seconds_sum", labels) == 0.5 * (i + 1)
        assert registry.get_sample_value("guardstream_request_duration_seconds_bucket", {**labels, "le": "0.25"}) == 0
        assert (
            registry.get_sample_value("guardstream_request_duration_seconds_bucket", {**labels, "le": "0.5"}) == i + 1
        )


def test_upstream_errors_count_each_reason() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for i, reason in enumerate(UPSTREAM_ERROR_REASONS):
        for _ in range(i + 1):
            metrics.upstream_error("gemini", reason)
    for i, reason in enumerate(UPSTREAM_ERROR_REASONS):
        labels = {"provider": "gemini", "reason": reason}
        assert registry.get_sample_value("guardstream_upstream_errors_total", labels) == i + 1


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda m: m.record_request("bedrock", "passed", 0.1), "provider 'bedrock'"),
        (lambda m: m.record_request("openai-chat", "failed", 0.1), "outcome 'failed'"),
        (lambda m: m.upstream_error("openai-chat", "read"), "upstream error reason 'read'"),
        (lambda m: m.upstream_error("user-supplied", "connect"), "provider 'user-supplied'"),
        (lambda m: m.violation(Violation(PII[0], 0, 1), "sideways"), "direction 'sideways'"),
        (lambda m: m.stream("openai"), "provider 'openai'"),
    ],
)
def test_label_values_outside_the_closed_sets_are_refused(call: Any, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        call(Metrics(CollectorRegistry()))


def test_every_provider_label_value_is_accepted() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for provider in PROVIDERS:
        metrics.record_request(provider, "passed", 0.1)
        metrics.stream(provider)
    total = sum(
        registry.get_sample_value("guardstream_requests_total", {"provider": p, "outcome": "passed"}) or 0
        for p in PROVIDERS
    )
    assert total == len(PROVIDERS)


def test_streams_with_planted_violations_count_exactly() -> None:
    # 3 streams, each with 2 planted e-mail addresses: exactly 6 redactions, exactly the redacted
    # text released, and exactly what the moderator reported, three times over.
    deltas = ["Write to ja", "ne@example.", "com or to b", "ob@example.org", " today."]
    one_stream = Recorder()
    stream_through(one_stream, PII, deltas)
    reports = one_stream.reports
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for _ in range(3):
        out = stream_through(metrics.stream("openai-chat"), PII, deltas)
    assert out.count(b"[REDACTED:email]") == 2
    violation = {"rule": "pii.email", "category": "pii", "action": "redact", "direction": "output"}
    assert len(reports["on_violation"]) == 2
    assert registry.get_sample_value("guardstream_violations_total", violation) == 6
    released = len("Write to [REDACTED:email] or to [REDACTED:email] today.")
    provider = {"provider": "openai-chat"}
    assert sum(chars for chars, _ in reports["on_release"]) == released
    assert registry.get_sample_value("guardstream_released_chars_total", provider) == 3 * released
    released_events = sum(len(delays) for _, delays in reports["on_release"])
    assert registry.get_sample_value("guardstream_release_delay_seconds_count", provider) == 3 * released_events
    assert registry.get_sample_value("guardstream_release_delay_seconds_sum", provider) == 0
    held = [chars for (chars,) in reports["on_holdback"]]
    assert registry.get_sample_value("guardstream_holdback_chars_count", provider) == 3 * len(held)
    assert registry.get_sample_value("guardstream_holdback_chars_sum", provider) == 3 * sum(held)
    assert sum(held) > 0  # the partial addresses were held
    assert "on_forced_release" not in reports
    assert registry.get_sample_value("guardstream_forced_release_chars_total", provider) == 0
    assert registry.get_sample_value("guardstream_rule_scan_seconds_count") == 3 * len(reports["on_scan"])


def test_held_characters_and_forced_releases_count_exactly(tmp_path: Path) -> None:
    pack = tmp_path / "ticket.toml"
    pack.write_text(
        '[pack]\nname = "ticket"\n\n[[rule]]\nid = "ticket.id"\ncategory = "confidential"\n'
        "pattern = '''TICKET-\\d{1,40};'''\naction = \"block\"\n",
        encoding="utf-8",
    )
    rules = load_rules([str(pack)]).for_direction("output")
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    # "TICKET-" and 20 digits could still become a match; a cap of 10 releases all but the last 10.
    text = "ab TICKET-12345678901234567890 cd"
    stream_through(
        metrics.stream("openai-chat"), rules, [text[i : i + 4] for i in range(0, len(text), 4)], max_holdback_chars=10
    )
    provider = {"provider": "openai-chat"}
    # Held after each delta (ends 4, 8, ... 32, 33): 1, 5, 9, then the cap of 10 four times, then nothing.
    held = [1, 5, 9, 10, 10, 10, 10, 0, 0]
    assert registry.get_sample_value("guardstream_holdback_chars_count", provider) == len(held) + 1
    assert registry.get_sample_value("guardstream_holdback_chars_sum", provider) == sum(held)
    for bound in CHAR_BUCKETS:
        expected = sum(1 for h in [*held, 0] if h <= bound)
        labels = {**provider, "le": str(float(bound))}
        assert registry.get_sample_value("guardstream_holdback_chars_bucket", labels) == expected
    # Forced out: 3, then 4 per delta while the digits go on (16 -> 6, 20 -> 10, 24 -> 14, 28 -> 18).
    assert registry.get_sample_value("guardstream_forced_release_chars_total", provider) == 15
    assert registry.get_sample_value("guardstream_released_chars_total", provider) == len(text)
    # Released past the cap and never completed: no violation.
    assert not [s for f in registry.collect() if f.name == "guardstream_violations" for s in f.samples]


def test_first_token_observes_the_wait_and_the_part_guardstream_added() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    for since_request, added in [(0.4, 0.001), (1.5, 0.003), (0.2, 0.0004)]:
        metrics.stream("gemini").on_first_token(since_request, added)
    provider = {"provider": "gemini"}
    assert registry.get_sample_value("guardstream_time_to_first_token_seconds_count", provider) == 3
    assert registry.get_sample_value("guardstream_time_to_first_token_seconds_sum", provider) == pytest.approx(2.1)
    ttft_half_second = {**provider, "le": "0.5"}
    assert registry.get_sample_value("guardstream_time_to_first_token_seconds_bucket", ttft_half_second) == 2
    assert registry.get_sample_value("guardstream_first_token_added_seconds_count", provider) == 3
    assert registry.get_sample_value("guardstream_first_token_added_seconds_bucket", {**provider, "le": "0.001"}) == 2


def test_active_streams_follow_the_bound_child() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    streams = [metrics.stream("openai-chat") for _ in range(3)]
    for stream in streams:
        stream.active.inc()
    streams[0].active.dec()
    assert registry.get_sample_value("guardstream_active_streams", {"provider": "openai-chat"}) == 2


def test_rule_timeouts_start_at_zero_for_loaded_rules_and_count_timed_out_violations() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry, rules=[rule.id for rule in PII])
    for rule in PII:
        assert registry.get_sample_value("guardstream_rule_timeouts_total", {"rule": rule.id}) == 0
    rule = PII[0]
    metrics.violation(Violation(rule, 0, 40, is_timeout=True), "output")
    metrics.violation(Violation(rule, 0, 40, is_timeout=True), "input")
    metrics.violation(Violation(rule, 0, 40), "output")
    metrics.rule_timeout("custom.unlisted")
    assert registry.get_sample_value("guardstream_rule_timeouts_total", {"rule": rule.id}) == 2
    assert registry.get_sample_value("guardstream_rule_timeouts_total", {"rule": "custom.unlisted"}) == 1
    # A timed-out search acts as a block (fail closed), and is counted as the violation it acted as.
    blocked = {"rule": rule.id, "category": rule.category, "action": "block", "direction": "output"}
    assert registry.get_sample_value("guardstream_violations_total", blocked) == 1
