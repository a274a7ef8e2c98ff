"""A real Prometheus scrapes a real `guardstream serve` under mock traffic: every dashboard query has data."""

from __future__ import annotations

import html
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.prometheus_stack import (
    MAIN_PANELS,
    Prometheus,
    dashboard_queries,
    has_data,
    load_dashboard,
    monitored_guardstream,
)

NO_CLASSIFIER = "no classifier is configured (guardstream has none yet): its series do not exist, by design"
# Queries allowed to return no data, and why. Temporary ones are listed by name so that they are
# removed when they start to work: an exempt query that returns data fails the test.
EXEMPT = {
    # Lists only rules that timed out ("> 0"); the mock traffic trips no regex timeout.
    # "Regex timeouts / A", the sum over all (zero-initialised) rules, must have data.
    "Regex timeouts / B": "only rules that timed out are listed, and none does under this traffic",
    "Classifier latency / A": NO_CLASSIFIER,
    "Classifier latency / B": NO_CLASSIFIER,
    "Classifier errors / A": NO_CLASSIFIER,
}


@pytest.fixture(scope="module")
def stack(prometheus_binary: str) -> Iterator[tuple[Prometheus, str]]:
    with monitored_guardstream(prometheus_binary) as running:
        yield running


def results_once_settled(server: Prometheus) -> dict[str, list[dict[str, Any]]]:
    """Every query's result, retried for a few seconds while rules catch up with the last scrape."""
    queries = dashboard_queries(load_dashboard())
    deadline = time.monotonic() + 15
    while True:
        results = {query.name: server.query(query.promql()) for query in queries}
        missing = [name for name, result in results.items() if name not in EXEMPT and not has_data(result)]
        if not missing or time.monotonic() > deadline:
            return results
        time.sleep(0.5)


def test_the_traffic_covers_clean_redacted_blocked_and_failed_requests(stack: tuple[Prometheus, str]) -> None:
    server, _ = stack
    outcomes = {
        (series["metric"]["provider"], series["metric"]["outcome"]): float(series["value"][1])
        for series in server.query("sum by (provider, outcome) (guardstream_requests_total)")
    }
    # Two rounds of: 2 clean answers, 1 redacted, 1 blocked each way, 2 upstream failures, 1 forwarded path;
    # and one Anthropic answer, in the first round only.
    assert outcomes == {
        ("openai-chat", "passed"): 4,
        ("openai-chat", "redacted"): 2,
        ("openai-chat", "blocked_output"): 2,
        ("openai-chat", "blocked_input"): 2,
        ("openai-chat", "upstream_error"): 4,
        ("passthrough", "passed"): 2,
        ("anthropic", "passed"): 1,
    }
    violations = server.query("sum by (rule, direction) (guardstream_violations_total)")
    assert {(s["metric"]["rule"], s["metric"]["direction"]) for s in violations} == {
        ("pii.email", "output"),
        ("secrets.aws-access-key-id", "output"),
        ("secrets.aws-access-key-id", "input"),
    }


def test_every_dashboard_query_returns_data(stack: tuple[Prometheus, str]) -> None:
    server, _ = stack
    results = results_once_settled(server)
    assert set(EXEMPT) <= set(results), "an exemption names a query the dashboard does not have"
    empty = [name for name, result in results.items() if name not in EXEMPT and not has_data(result)]
    assert not empty, f"no data for {empty}"
    working = [name for name in EXEMPT if has_data(results[name])]
    assert not working, f"{working} return data now: remove them from EXEMPT"


def test_template_variables_list_this_guardstream(stack: tuple[Prometheus, str]) -> None:
    server, url = stack
    values = {}
    for query in dashboard_queries(load_dashboard()):
        if query.label is not None:
            values[query.panel] = {s["metric"][query.label] for s in server.query(query.promql())}
    assert values == {
        "variable job": {"guardstream"},
        "variable instance": {url.removeprefix("http://")},
        "variable provider": {"anthropic", "openai-chat", "passthrough"},
    }


def test_recording_and_alerting_rules_load_and_evaluate(stack: tuple[Prometheus, str]) -> None:
    server, _ = stack
    rules = server.rules()
    assert len(rules) == 19
    assert [(r["name"], r["health"], r.get("lastError", "")) for r in rules if r["health"] != "ok"] == []


def test_console_page_draws_the_main_panels(stack: tuple[Prometheus, str]) -> None:
    server, _ = stack
    page = httpx.get(f"{server.url}/consoles/guardstream.html", timeout=10)
    assert page.status_code == 200, page.text
    assert page.text.count("new PromConsole.Graph(p)") == len(MAIN_PANELS)
    for title in MAIN_PANELS:
        assert f"<h2>{html.escape(title)}" in page.text
    # The template ran (no {{ left) and legends are built from labels.
    assert "{{" not in page.text and 'p.name = [function (m) { return m["outcome"]; }]' in page.text
