"""A real monitoring stack for the dashboard tests and the dashboard PNG.

`guardstream serve --upstream mock` runs as a subprocess; a real `prometheus` (Debian's package)
scrapes it every second on loopback, with the recording rules of `dashboards/alerts.yml`, and
serves a console page that draws the dashboard's main panels with Prometheus' own graph code.
The dashboard's queries are read from `dashboards/guardstream.json` and their Grafana variables
replaced, so the same text is parsed by promtool, checked for metric names and run for data.
"""

from __future__ import annotations

import base64
import html
import json
import math
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
DASHBOARD = ROOT / "dashboards" / "guardstream.json"
ALERTS = ROOT / "dashboards" / "alerts.yml"
ALERT_TESTS = ROOT / "dashboards" / "alerts.test.yml"
INSTALL_HINT = (
    "{tool} is not installed. It comes with Debian's {package} package: "
    "`apt-get install --no-install-recommends {package}`{ci}. "
    "Set GUARDSTREAM_ALLOW_MISSING_TOOLS=1 to skip the tests that need it on a machine without it."
)
DEBIAN_PACKAGES = {"promtool": "prometheus", "prometheus": "prometheus", "chromium": "chromium"}
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
# Grafana's own variables, as ranges that cover the few seconds of one-second scrapes of a test run.
GRAFANA_INTERVALS = {"$__rate_interval": "1m", "$__range": "5m", "$__interval": "15s"}
DASHBOARD_VARIABLES = ("job", "instance", "provider")
# The panels drawn in the PNG: the questions an operator asks first.
MAIN_PANELS = (
    "Requests by outcome",
    "Block ratio",
    "Violations by category and direction",
    "Violations by rule (top 5)",
    "Release delay",
    "Hold-back",
    "Upstream errors by reason",
    "Upstream time to first byte",
    "CPU",
    "Memory",
)


class MissingToolError(RuntimeError):
    pass


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES.get(name, name)
        ci = " (.ci/run installs it)" if package == "prometheus" else ""
        raise MissingToolError(INSTALL_HINT.format(tool=name, package=package, ci=ci))
    return path


def require_tool(name: str) -> str:
    """`find_tool` for a test: a missing tool fails it (CI installs the tools), unless
    GUARDSTREAM_ALLOW_MISSING_TOOLS=1 says this machine may go without them."""
    try:
        return find_tool(name)
    except MissingToolError as exc:
        if os.environ.get("GUARDSTREAM_ALLOW_MISSING_TOOLS") == "1":
            pytest.skip(str(exc))
        pytest.fail(str(exc))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# --- the dashboard's queries ------------------------------------------------------------------------


@dataclass(frozen=True)
class Query:
    """One PromQL query of the dashboard: a panel target, or the selector of a template variable."""

    panel: str
    ref_id: str
    expr: str
    label: str | None = None  # for a template variable: the label whose values it lists

    @property
    def name(self) -> str:
        return f"{self.panel} / {self.ref_id}"

    def promql(self) -> str:
        """The expression with Grafana's variables replaced: every dashboard variable selects all."""
        expr = self.expr
        for variable, value in GRAFANA_INTERVALS.items():
            expr = expr.replace(variable, value)
        for variable in DASHBOARD_VARIABLES:
            expr = expr.replace(f'"${variable}"', '".*"').replace(f'"${{{variable}}}"', '".*"')
        if "$" in expr:
            raise ValueError(f"{self.name}: unknown Grafana variable in {expr!r}")
        return expr


def load_dashboard() -> dict[str, Any]:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return dashboard


def panels(dashboard: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel, rows included, with those nested in collapsed rows."""
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


def dashboard_queries(dashboard: dict[str, Any]) -> list[Query]:
    queries = []
    for panel in panels(dashboard):
        for target in panel.get("targets", []):
            queries.append(Query(panel["title"], target["refId"], target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        text = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", text.strip())
        if match is None:
            raise ValueError(f"variable {variable['name']}: expected label_values(selector, label), got {text!r}")
        queries.append(Query(f"variable {variable['name']}", "query", match[1], label=match[2]))
    return queries


# --- metric names in PromQL ---------------------------------------------------------------------------

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\[\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\(([^()]*)\)")
_IDENTIFIER = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)(?![\w:])(?!\s*\()")
_SELECTOR = re.compile(r"(?<![\w:.])([a-zA-Z_:][\w:]*)\s*\{([^{}]*)\}")
_MATCHER_LABEL = re.compile(r"(\w+)\s*(?:=~|!~|!=|=)")
_KEYWORDS = frozenset(
    {"and", "or", "unless", "by", "without", "on", "ignoring", "group_left", "group_right", "bool", "offset"}
    | {"inf", "nan", "atan2"}
)


def metric_names(expr: str) -> set[str]:
    """The metric names a (valid) PromQL expression selects: identifiers that are not functions,
    keywords, label names, grouping labels or durations."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub("", text)
    text = _RANGE.sub("", text)
    text = _GROUPING.sub("", text)
    return {name for name in _IDENTIFIER.findall(text) if name.lower() not in _KEYWORDS}


def selector_labels(expr: str) -> dict[str, set[str]]:
    """Label names used in each metric's matchers (`name{label=...}`)."""
    text = _STRING.sub('""', expr)
    used: dict[str, set[str]] = {}
    for name, matchers in _SELECTOR.findall(text):
        used.setdefault(name, set()).update(_MATCHER_LABEL.findall(matchers))
    return used


def grouping_labels(expr: str) -> set[str]:
    text = _STRING.sub('""', expr)
    return {label.strip() for group in _GROUPING.findall(text) for label in group.split(",") if label.strip()}


# --- the processes ------------------------------------------------------------------------------------


@contextmanager
def guardstream_serve(workdir: Path) -> Iterator[str]:
    """`guardstream serve --upstream mock` on a free loopback port; yields its URL."""
    port = free_port()
    log = (workdir / "guardstream.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "guardstream", "serve", "--upstream", "mock", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/healthz", server, workdir / "guardstream.log")
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


class Prometheus:
    def __init__(self, url: str, client: httpx.Client) -> None:
        self.url = url
        self.client = client

    def query(self, promql: str) -> list[dict[str, Any]]:
        """An instant query now; raises on a query error."""
        answer = self.client.get(f"{self.url}/api/v1/query", params={"query": promql}).json()
        if answer["status"] != "success":
            raise ValueError(f"{promql}: {answer.get('errorType')}: {answer.get('error')}")
        result: list[dict[str, Any]] = answer["data"]["result"]
        return result

    def rules(self) -> list[dict[str, Any]]:
        groups: list[dict[str, Any]] = self.client.get(f"{self.url}/api/v1/rules").json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def total(self, promql: str) -> float:
        result = self.query(promql)
        return float(result[0]["value"][1]) if result else 0.0


@contextmanager
def prometheus(binary: str, workdir: Path, target: str) -> Iterator[Prometheus]:
    """A real Prometheus on a free loopback port, scraping `target` (host:port) every second with
    alerts.yml's rules evaluated every second, and the dashboard's console page."""
    port = free_port()
    consoles = workdir / "consoles"
    consoles.mkdir()
    (consoles / "guardstream.html").write_text(console_page(load_dashboard()), encoding="utf-8")
    config = {
        "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(ALERTS)],
        "scrape_configs": [{"job_name": "guardstream", "static_configs": [{"targets": [target]}]}],
    }
    config_file = workdir / "prometheus.yml"
    config_file.write_text(json.dumps(config), encoding="utf-8")  # JSON is YAML
    log_path = workdir / "prometheus.log"
    log = log_path.open("wb")
    server = subprocess.Popen(
        [
            binary,
            f"--config.file={config_file}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
            f"--web.console.templates={consoles}",
            f"--web.console.libraries={consoles}",
            "--log.level=warn",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_up(f"{url}/-/ready", server, log_path)
        with httpx.Client(timeout=10) as client:
            yield Prometheus(url, client)
    finally:
        server.terminate()
        server.wait(timeout=10)
        log.close()


def _wait_until_up(url: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 30
    while True:
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not come up:\n{log.read_text(errors='replace')[-2000:]}")
        time.sleep(0.1)


# --- traffic ------------------------------------------------------------------------------------------


def chat(prompt: str, mock: dict[str, Any], *, stream: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
    """A chat request and the mock model's script for it. The script goes in `x-mock-*` headers
    (text as base64), not in the body, where input moderation would read a planted secret."""
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}], "stream": stream}
    headers = {}
    for field, value in mock.items():
        name = "x-mock-" + field.replace("_", "-")
        if isinstance(value, str):
            headers[name] = "b64:" + base64.b64encode(value.encode()).decode()
        else:
            headers[name] = json.dumps(value)
    return body, headers


# (what it shows, request body, mock script headers): clean, redacted, blocked either way, upstream failures.
TRAFFIC = (
    ("clean stream", *chat("Say hello", {"reply": "Hello! A clean answer with nothing to hide.", "chunk_chars": 3})),
    ("clean JSON answer", *chat("Say hello", {"reply": "Hello there."}, stream=False)),
    ("redacted stream", *chat("Who do I write to?", {"reply": "Write to jane.doe@example.com for details."})),
    ("blocked output", *chat("Show the config", {"reply": f"The key is {SECRET}, keep it safe."})),
    ("blocked input", *chat(f"Store my key {SECRET} please", {"reply": "Stored."})),
    ("upstream 500", *chat("Say hello", {"status": 500})),
    ("dropped mid-stream", *chat("Tell a story", {"reply": "Once upon a time there was a stream.", "drop_after": 2})),
)


def drive_traffic(url: str, rounds: int = 1) -> int:
    """Send every TRAFFIC request `rounds` times, plus a forwarded path; returns the request count."""
    count = 0
    with httpx.Client(base_url=url, timeout=30) as client:
        for _ in range(rounds):
            for _what, body, headers in TRAFFIC:
                with client.stream("POST", "/v1/chat/completions", json=body, headers=headers) as response:
                    response.read()
                count += 1
            client.get("/v1/models")
            count += 1
    return count


def idle_provider(url: str) -> int:
    """One Anthropic answer in the first round only: a provider whose series exist but stand still,
    as any provider idle for five minutes does. A ratio panel must not turn NaN for all providers
    because one of them has nothing to divide by."""
    body = {"model": "m", "max_tokens": 20, "messages": [{"role": "user", "content": "Say hello"}]}
    httpx.post(f"{url}/v1/messages", json=body, timeout=30)
    return 1


@contextmanager
def monitored_guardstream(prometheus_binary: str) -> Iterator[tuple[Prometheus, str]]:
    """guardstream under traffic, scraped by Prometheus, once every series has moved between scrapes.

    Traffic goes out twice, with a scrape in between: the first round creates the series, the
    second makes them grow, so rates and quantiles have something to say.
    """
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="guardstream-prometheus-")))
        url = stack.enter_context(guardstream_serve(workdir))
        server = stack.enter_context(prometheus(prometheus_binary, workdir, url.removeprefix("http://")))
        total = drive_traffic(url) + idle_provider(url)
        wait_for(server, "sum(guardstream_requests_total)", total)
        total += drive_traffic(url)
        wait_for(server, "sum(guardstream_requests_total)", total)
        yield server, url


def wait_for(server: Prometheus, promql: str, value: float, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while (seen := server.total(promql)) != value:
        if time.monotonic() > deadline:
            raise TimeoutError(f"{promql} is {seen} after {timeout} s, expected {value}")
        time.sleep(0.2)


def has_data(result: list[dict[str, Any]]) -> bool:
    """At least one series with a number (NaN is what a quantile of nothing gives: no data)."""
    return any(math.isfinite(float(series["value"][1])) for series in result)


# --- the console page (the PNG) -------------------------------------------------------------------------


def console_page(dashboard: dict[str, Any]) -> str:
    """A Prometheus console template drawing MAIN_PANELS with Prometheus' own PromConsole.Graph.

    The time range comes from the page's `#pctc{"duration": seconds, "endTime": 0}` hash (default: 1 hour).
    """
    by_title = {panel["title"]: panel for panel in panels(dashboard)}
    graphs = []
    for i, title in enumerate(MAIN_PANELS):
        panel = by_title[title]
        queries = [Query(title, t["refId"], t["expr"]) for t in panel["targets"]]
        legends = ", ".join(_console_legend(t.get("legendFormat", "")) for t in panel["targets"])
        unit = panel["fieldConfig"]["defaults"].get("unit", "")
        params = {
            "expr": [q.promql() for q in queries],
            "height": 170,
            "width": 560,
            "yUnits": {"s": "s", "bytes": "B", "reqps": "/s", "ops": "/s"}.get(unit, ""),
            "yTitle": "",
            "xTitle": "",
        }
        graphs.append(
            f'<div class="panel"><h2>{html.escape(title)}{_UNIT_NOTE.get(unit, "")}</h2><div id="graph{i}"></div>'
            f"<script>var p = {json.dumps(params)}; p.node = document.getElementById('graph{i}'); p.name = [{legends}];"
            f"{_FORMATTER.get(unit, '')} new PromConsole.Graph(p);</script></div>"
        )
    static = "/classic/static"
    return (
        "<!DOCTYPE html>\n<html><head><meta charset='utf-8'><title>guardstream</title>\n"
        f"<link rel='stylesheet' href='{static}/rickshaw/rickshaw.min.css'>\n"
        f"<link rel='stylesheet' href='{static}/css/prom_console.css'>\n"
        # prom_console.js builds its query URLs on PATH_PREFIX, which Prometheus fills in here.
        '<script>var PATH_PREFIX = "{{ pathPrefix }}";</script>\n'
        f"<script src='{static}/jquery/jquery.min.js'></script>\n"
        f"<script src='{static}/d3/d3.min.js'></script>\n"
        f"<script src='{static}/rickshaw/rickshaw.min.js'></script>\n"
        f"<script src='{static}/js/prom_console.js'></script>\n"
        f"<style>{_STYLE}</style></head><body>\n"
        "<h1>guardstream: main dashboard panels</h1>\n"
        "<p class='note'>Drawn by Prometheus from the queries of dashboards/guardstream.json "
        "(all jobs, instances and providers; mock traffic).</p>\n"
        f"<div class='grid'>{''.join(graphs)}</div>\n</body></html>\n"
    )


def _console_legend(legend: str) -> str:
    """Grafana's `{{label}} (x)` as a JS function of the series' labels. (The console's own `[[label]]`
    drops text after the last label, and Prometheus' template engine would read `{{ }}`.)"""
    parts = re.split(r"\{\{\s*(\w+)\s*\}\}", legend)
    terms = [json.dumps(part) if i % 2 == 0 else f"m[{json.dumps(part)}]" for i, part in enumerate(parts) if part]
    return f"function (m) {{ return {' + '.join(terms) or json.dumps('')}; }}"


_UNIT_NOTE = {"s": " (seconds)", "bytes": " (bytes)", "reqps": " (per second)", "ops": " (per second)"}
_FORMATTER = {
    "percentunit": "p.yAxisFormatter = p.yHoverFormatter = function (y) { return (100 * y).toFixed(1) + '%'; };",
    "bytes": "p.yAxisFormatter = p.yHoverFormatter = PromConsole.NumberFormatter.humanize1024;",
}
_STYLE = (
    "body{font-family:sans-serif;margin:16px;background:#fff}h1{font-size:20px;margin:0 0 4px}"
    ".note{color:#555;margin:0 0 12px;font-size:13px}.grid{display:grid;grid-template-columns:repeat(2,640px);gap:12px}"
    ".panel{border:1px solid #ccc;border-radius:4px;padding:6px 8px}h2{font-size:15px;margin:0 0 4px}"
    ".prom_graph_link,.prom_graph_ytitle,.prom_graph_xtitle{display:none}"
)


def render_png(console_url: str, out: Path, *, width: int = 1340, height: int = 1370) -> None:
    """Screenshot a page with Debian's headless Chromium, after its queries have been answered."""
    chromium = find_tool("chromium")
    with tempfile.TemporaryDirectory(prefix="guardstream-chromium-") as profile:
        subprocess.run(
            [
                chromium,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--hide-scrollbars",
                f"--user-data-dir={profile}",
                f"--window-size={width},{height}",
                "--virtual-time-budget=15000",
                f"--screenshot={out}",
                console_url,
            ],
            check=True,
            capture_output=True,
            timeout=120,
            env={**os.environ, "DBUS_SESSION_BUS_ADDRESS": "disabled:"},
        )
