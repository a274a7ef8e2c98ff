from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import replace
from typing import Any

import httpx
import pytest
from prometheus_client import CollectorRegistry

from guardstream.config import Config, ModerationSettings, RouteSettings, ServerSettings, Timeouts, Upstreams
from guardstream.mock import create_mock_app
from guardstream.proxy import create_app
from guardstream.servers import serve_in_thread
from tests.prometheus_stack import require_tool


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def mock_headers(script: dict[str, Any]) -> dict[str, str]:
    """A mock script as `x-mock-*` headers. guardstream moderates every string of a request body,
    so a script whose reply plants a secret cannot travel in the body; text goes base64-encoded."""
    headers = {}
    for name, value in script.items():
        header = "x-mock-" + name.replace("_", "-")
        if isinstance(value, str):
            headers[header] = "b64:" + base64.b64encode(value.encode()).decode()
        else:
            headers[header] = json.dumps(value)
    return headers


class MockModel:
    """The built-in mock model, served on 127.0.0.1, with its request log."""

    def __init__(self, url: str) -> None:
        self.url = url

    def requests(self) -> list[dict[str, Any]]:
        log: list[dict[str, Any]] = httpx.get(f"{self.url}/_mock/requests").json()
        return log

    def clear(self) -> None:
        httpx.delete(f"{self.url}/_mock/requests")

    def release(self, key: str) -> None:
        httpx.post(f"{self.url}/_mock/release/{key}")


@pytest.fixture(scope="session")
def mock_server() -> Iterator[MockModel]:
    with serve_in_thread(create_mock_app()) as url:
        yield MockModel(url)


@pytest.fixture
def mock_model(mock_server: MockModel) -> MockModel:
    mock_server.clear()
    return mock_server


class RunningProxy:
    def __init__(self, url: str, registry: CollectorRegistry) -> None:
        self.url = url
        self.registry = registry

    def metric(self, name: str, **labels: str) -> float:
        """A sample's value once it is settled: the server counts a stream after its last byte,
        which can be a moment after the client has seen that byte."""
        deadline = time.monotonic() + 2
        value = self.registry.get_sample_value(name, labels) or 0.0
        while not value and time.monotonic() < deadline:
            time.sleep(0.01)
            value = self.registry.get_sample_value(name, labels) or 0.0
        return value


ProxyFactory = Callable[..., AbstractContextManager[RunningProxy]]


@pytest.fixture
def start_proxy(mock_server: MockModel) -> ProxyFactory:
    """Start guardstream under uvicorn in front of the mock model, with moderation overrides."""

    @contextmanager
    def start(
        upstream: str | None = None,
        timeout: float | None = None,
        timeouts: Timeouts | None = None,
        routes: RouteSettings | None = None,
        server: ServerSettings | None = None,
        **moderation: Any,
    ) -> Iterator[RunningProxy]:
        url = upstream or mock_server.url
        config = Config(
            server=server or ServerSettings(),
            upstreams=Upstreams(url, url, url),
            moderation=replace(ModerationSettings(), **moderation),
            timeouts=timeouts or Timeouts(),
            routes=routes or RouteSettings(),
        )
        registry = CollectorRegistry()
        client = httpx.AsyncClient(timeout=timeout) if timeout is not None else None
        with serve_in_thread(create_app(config, client=client, registry=registry)) as proxy_url:
            yield RunningProxy(proxy_url, registry)

    return start


@pytest.fixture
def proxy(start_proxy: ProxyFactory, mock_model: MockModel) -> Iterator[RunningProxy]:
    with start_proxy() as running:
        yield running


@pytest.fixture(scope="session")
def promtool() -> str:
    return require_tool("promtool")


@pytest.fixture(scope="session")
def prometheus_binary() -> str:
    return require_tool("prometheus")
