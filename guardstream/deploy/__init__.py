"""Deployment files that come with every install: a container image definition and Kubernetes
manifests, printed by `guardstream deploy containerfile` and `guardstream deploy kubernetes`.

They are templates in this folder (`Containerfile`, `kubernetes.yaml`, and the `guardstream.toml`
and `company.toml` that the ConfigMap carries), filled with `string.Template`.
"""

from __future__ import annotations

import re
import textwrap
from dataclasses import dataclass
from importlib.resources import files
from string import Template
from typing import Literal

from guardstream.errors import ConfigError

AutoscaleOn = Literal["cpu", "active-streams"]
AUTOSCALE_ON = ("cpu", "active-streams")
# A Kubernetes object name that is also a DNS label (RFC 1123); the ConfigMap adds "-config".
NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,54}[a-z0-9])?$")
CPU_TARGET_PERCENT = 70

CPU_METRIC = """\
- type: Resource
  resource:
    name: cpu
    target:
      type: Utilization
      averageUtilization: {percent}
"""
# Served to the HPA by an adapter from Prometheus (prometheus-adapter or KEDA), from the scraped
# per-pod sum of guardstream_active_streams.
STREAMS_METRIC = """\
- type: Pods
  pods:
    metric:
      name: guardstream_active_streams
    target:
      type: AverageValue
      averageValue: "{streams}"
"""


def template(name: str) -> str:
    return files("guardstream.deploy").joinpath(name).read_text(encoding="utf-8")


def containerfile() -> str:
    from guardstream import __version__

    return Template(template("Containerfile")).substitute(version=__version__)


@dataclass(frozen=True)
class KubernetesOptions:
    """What `guardstream deploy kubernetes` fills in; `check()` says what is wrong, in one line."""

    image: str
    name: str = "guardstream"
    replicas: int = 2
    max_replicas: int = 10
    workers: int = 1
    autoscale_on: AutoscaleOn = "cpu"
    streams_per_worker: int = 200

    def check(self) -> None:
        if not NAME.match(self.name):
            raise ConfigError(
                f"--name {self.name!r} is not a Kubernetes name: lower-case letters, digits and '-', at most 56."
            )
        if not self.image or any(c.isspace() for c in self.image):
            raise ConfigError(f"--image {self.image!r} is not an image reference (no spaces, not empty).")
        if self.replicas < 1:
            raise ConfigError(f"--replicas must be at least 1 (got {self.replicas}).")
        if self.max_replicas < self.replicas:
            raise ConfigError(f"--max-replicas ({self.max_replicas}) must be at least --replicas ({self.replicas}).")
        if self.workers < 1:
            raise ConfigError(f"--workers must be at least 1 (got {self.workers}).")
        if self.autoscale_on not in AUTOSCALE_ON:
            raise ConfigError(f"--autoscale-on must be cpu or active-streams (got {self.autoscale_on!r}).")
        if self.streams_per_worker < 1:
            raise ConfigError(f"--streams-per-worker must be at least 1 (got {self.streams_per_worker}).")


def kubernetes(options: KubernetesOptions) -> str:
    """The manifests, one YAML stream: ConfigMap, Deployment, Service, HorizontalPodAutoscaler,
    PodDisruptionBudget and ServiceMonitor."""
    from guardstream import __version__

    options.check()
    if options.autoscale_on == "cpu":
        metric = CPU_METRIC.format(percent=CPU_TARGET_PERCENT)
    else:
        metric = STREAMS_METRIC.format(streams=options.streams_per_worker * options.workers)
    return Template(template("kubernetes.yaml")).substitute(
        version=__version__,
        name=options.name,
        image=options.image,
        replicas=options.replicas,
        max_replicas=options.max_replicas,
        workers=options.workers,
        # Per worker: the interpreter, the rules and the mock-free app take ~100 MiB; streams add
        # well under 1 MiB each (README "Performance").
        memory_request=f"{256 * options.workers}Mi",
        memory_limit=f"{512 * options.workers}Mi",
        config_toml=textwrap.indent(template("guardstream.toml"), "    ").rstrip("\n"),
        company_pack=textwrap.indent(template("company.toml"), "    ").rstrip("\n"),
        hpa_metric=textwrap.indent(metric, "    ").rstrip("\n"),
    )
