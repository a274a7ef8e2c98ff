"""The dashboard and the rules agree with the metrics: every query parses and names what guardstream exports."""

from __future__ import annotations

import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry

from guardstream.metrics import Metrics
from tests import render_dashboard
from tests.prometheus_stack import (
    ALERT_TESTS,
    ALERTS,
    DASHBOARD_VARIABLES,
    MAIN_PANELS,
    Query,
    console_page,
    dashboard_queries,
    grouping_labels,
    load_dashboard,
    metric_names,
    panels,
    require_tool,
    selector_labels,
)
from tests.test_metrics import exercise

DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
REQUIRED_PANELS = (
    "Requests by outcome",
    "Block ratio",
    "Active streams",
    "Top rules",
    "Violations by category and direction",
    "Violations by rule (top 5)",
    "Release delay",
    "Hold-back",
    "Forced releases",
    "Request duration",
    "Time to first token",
    "First token: guardstream's part",
    "Rule scan time",
    "Regex timeouts",
    "Classifier latency",
    "Classifier errors",
    "Upstream errors by reason",
    "Upstream error ratio",
    "Upstream time to first byte",
    "CPU",
    "Memory",
)
# Labels every scraped series gets from Prometheus.
TARGET_LABELS = {"job", "instance"}


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text(encoding="utf-8"))["groups"]
    return [rule for group in groups for rule in group["rules"]]


def recorded_labels() -> dict[str, set[str]]:
    """Recording rule name -> the labels it keeps, read from its level (`instance_provider:...`:
    job, instance, provider), as the naming convention promises."""
    found = {}
    for rule in alert_rules():
        if "record" in rule:
            level = rule["record"].split(":")[0].split("_")
            found[rule["record"]] = {("job" if part == "instance" else part) for part in level} | (
                TARGET_LABELS if "instance" in level else set()
            )
    return found


def exported_labels() -> dict[str, set[str]]:
    """Sample name -> label names, from the exposition of a live `Metrics` with every metric used."""
    registry = CollectorRegistry()
    exercise(Metrics(registry, classifiers=["judge"]))
    found: dict[str, set[str]] = {}
    for family in registry.collect():
        for sample in family.samples:
            found.setdefault(sample.name, set()).update(sample.labels)
    return {name: labels | TARGET_LABELS for name, labels in found.items()}


def rule_queries() -> list[Query]:
    return [Query(rule.get("record") or rule["alert"], "expr", rule["expr"]) for rule in alert_rules()]


def test_metric_names_finds_selectors_and_skips_functions_keywords_and_labels() -> None:
    expr = (
        'sum by (le) (rate(a_bucket{job=~"x|y", le!="+Inf"}[5m])) / ignoring (reason) group_left '
        'b:rec:rate5m > 0.5 and on (job) c offset 5m or histogram_quantile(0.9, d[1m:10s]) unless bool 1e3 + "sum"'
    )
    assert metric_names(expr) == {"a_bucket", "b:rec:rate5m", "c", "d"}
    assert selector_labels(expr) == {"a_bucket": {"job", "le"}}
    assert grouping_labels(expr) == {"le", "reason", "job"}


def test_grafana_variables_become_select_all_regexes() -> None:
    query = Query("p", "A", 'rate(x{job=~"$job", provider=~"${provider}"}[$__rate_interval])')
    assert query.promql() == 'rate(x{job=~".*", provider=~".*"}[1m])'


def test_dashboard_is_an_importable_grafana_dashboard() -> None:
    dashboard = load_dashboard()
    assert dashboard["schemaVersion"] >= 36
    assert dashboard["uid"] == "guardstream" and dashboard["title"] == "guardstream"
    assert dashboard["id"] is None  # Grafana assigns it on import
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert list(variables) == ["datasource", *DASHBOARD_VARIABLES]
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in DASHBOARD_VARIABLES:
        assert variables[name]["type"] == "query" and variables[name]["datasource"] == DATASOURCE
        assert variables[name]["includeAll"] and variables[name]["allValue"] == ".*"
    ids = [panel["id"] for panel in panels(dashboard)]
    assert len(ids) == len(set(ids))
    cells: set[tuple[int, int]] = set()
    for panel in panels(dashboard):
        grid = panel["gridPos"]
        assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, panel["title"]
        area = {(grid["x"] + dx, grid["y"] + dy) for dx in range(grid["w"]) for dy in range(grid["h"])}
        assert not area & cells, f"{panel['title']} overlaps another panel"
        cells |= area
        if panel["type"] == "row":
            continue
        assert panel["type"] in {"timeseries", "bargauge", "stat"}
        assert panel["datasource"] == DATASOURCE
        assert panel["targets"], panel["title"]
        for target in panel["targets"]:
            assert target["datasource"] == DATASOURCE
            assert target["refId"] and target["expr"]


def test_every_panel_says_what_healthy_looks_like() -> None:
    for panel in panels(load_dashboard()):
        description = panel.get("description", "")
        assert len(description) > 40, panel["title"]
        if panel["type"] != "row":
            assert "Healthy:" in description, panel["title"]


def test_dashboard_has_the_panels_operators_ask_for() -> None:
    titles = {panel["title"] for panel in panels(load_dashboard())}
    assert set(REQUIRED_PANELS) <= titles
    assert set(MAIN_PANELS) <= titles


def test_every_dashboard_query_parses_in_promtool(promtool: str, tmp_path: Path) -> None:
    # promtool parses rule expressions with Prometheus' own parser: each query becomes a recording rule.
    queries = dashboard_queries(load_dashboard())
    rules = [{"record": f"dashboard:query_{i}", "expr": q.promql()} for i, q in enumerate(queries)]
    path = tmp_path / "dashboard-queries.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    result = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(queries)} rules found" in result.stdout


def test_dashboard_and_rules_name_only_what_guardstream_exports() -> None:
    known = exported_labels().keys() | recorded_labels().keys()
    for query in [*dashboard_queries(load_dashboard()), *rule_queries()]:
        names = metric_names(query.promql())
        assert names, query.name
        assert names <= known, f"{query.name}: {sorted(names - known)} is neither exported nor recorded"


def test_every_guardstream_metric_is_on_the_dashboard_or_in_the_rules() -> None:
    used = set().union(*(metric_names(q.promql()) for q in [*dashboard_queries(load_dashboard()), *rule_queries()]))
    families = {re.sub(r"_(total|bucket|sum|count|created)$", "", name) for name in exported_labels()}
    shown = {re.sub(r"_(total|bucket|sum|count)$", "", name) for name in used}
    assert {f for f in families if f.startswith("guardstream_")} <= shown


def test_queries_use_only_labels_their_series_have() -> None:
    labels = {**exported_labels(), **recorded_labels()}
    for query in [*dashboard_queries(load_dashboard()), *rule_queries()]:
        expr = query.promql()
        for name, used in selector_labels(expr).items():
            assert used <= labels[name], f"{query.name}: {name} has no label {sorted(used - labels[name])}"
        available = set().union(*(labels[name] for name in metric_names(expr)))
        assert grouping_labels(expr) <= available, f"{query.name}: groups by a label none of its series has"
        if query.label is not None:
            assert query.label in available, query.name


def test_recording_rule_names_state_the_labels_they_keep() -> None:
    for rule in alert_rules():
        if "record" in rule:
            assert grouping_labels(rule["expr"]) - {"le"} == recorded_labels()[rule["record"]], rule["record"]


def test_every_alert_explains_itself_and_has_a_firing_and_a_quiet_test() -> None:
    alerts = [rule for rule in alert_rules() if "alert" in rule]
    names = {rule["alert"] for rule in alerts}
    assert names == {
        "GuardstreamBlockRateSpike",
        "GuardstreamUpstreamErrors",
        "GuardstreamReleaseDelayHigh",
        "GuardstreamRegexTimeouts",
        "GuardstreamReloadFailed",
        "GuardstreamClassifierErrors",
        "GuardstreamNoTraffic",
    }
    for rule in alerts:
        assert set(rule["annotations"]) == {"summary", "description", "runbook"}, rule["alert"]
        assert rule["labels"]["severity"] in {"warning", "critical"}
    checks = [
        check
        for test in yaml.safe_load(ALERT_TESTS.read_text(encoding="utf-8"))["tests"]
        for check in test.get("alert_rule_test", [])
    ]
    for name in names:
        assert any(c["alertname"] == name and c.get("exp_alerts") for c in checks), f"{name} never fires"
        assert any(c["alertname"] == name and not c.get("exp_alerts") for c in checks), f"{name} is never quiet"


def test_alert_rules_pass_promtool_check(promtool: str) -> None:
    result = subprocess.run([promtool, "check", "rules", str(ALERTS)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass_in_promtool(promtool: str) -> None:
    result = subprocess.run([promtool, "test", "rules", str(ALERT_TESTS)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_missing_tool_fails_the_test_with_install_instructions(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.delenv("GUARDSTREAM_ALLOW_MISSING_TOOLS", raising=False)
    with pytest.raises(pytest.fail.Exception, match=r"promtool is not installed.*apt-get install"):
        require_tool("promtool")


def test_a_missing_tool_skips_only_where_allowed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    monkeypatch.setenv("GUARDSTREAM_ALLOW_MISSING_TOOLS", "1")
    with pytest.raises(pytest.skip.Exception, match="prometheus is not installed"):
        require_tool("prometheus")


def test_console_page_turns_grafana_legends_into_label_functions() -> None:
    page = console_page(load_dashboard())
    assert 'p.name = [function (m) { return m["rule"] + " (" + m["action"] + ")"; }];' in page
    assert 'function (m) { return "all blocks"; }' in page
    # Prometheus' template engine reads {{ }}: the page may use it for the path prefix only.
    assert page.count("{{") == 1 and '"{{ pathPrefix }}"' in page


def test_render_command_screenshots_the_console_page_after_traffic(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The real run (a minute of traffic, Chromium) is `python -m tests.render_dashboard`; here its wiring.
    calls: list[tuple[str, Any]] = []

    @contextmanager
    def fake_stack(binary: str) -> Iterator[tuple[Any, str]]:
        calls.append(("stack", binary))
        yield type("Server", (), {"url": "http://prometheus"})(), "http://guardstream"

    def fake_traffic(url: str, rounds: int) -> int:
        calls.append(("traffic", url))
        return 0

    monkeypatch.setattr(render_dashboard, "find_tool", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(render_dashboard, "monitored_guardstream", fake_stack)
    monkeypatch.setattr(render_dashboard, "drive_traffic", fake_traffic)
    monkeypatch.setattr(render_dashboard, "render_png", lambda page, out: calls.append(("png", (page, out))))
    monkeypatch.setattr(time, "sleep", lambda seconds: None)
    render_dashboard.main(["--out", str(tmp_path / "d.png"), "--seconds", "0.01"])
    assert calls[0] == ("stack", "/usr/bin/prometheus")
    assert ("traffic", "http://guardstream") in calls
    page = "http://prometheus/consoles/guardstream.html#pctc%7B%22duration%22%3A%2030%2C%20%22endTime%22%3A%200%7D"
    assert calls[-1] == ("png", (page, tmp_path / "d.png"))


def test_readme_explains_every_panel_and_alert() -> None:
    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Operating guardstream", 1)[1].split("\n## ", 1)[0]
    for panel in panels(load_dashboard()):
        if panel["type"] != "row":
            assert panel["title"] in section, panel["title"]
    for rule in alert_rules():
        if "alert" in rule:
            assert f"`{rule['alert']}` ({rule['labels']['severity']})" in section, rule["alert"]
