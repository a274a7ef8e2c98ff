"""The mock model under uvicorn on 127.0.0.1, and the official SDK clients pointed at it."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Mapping

import anthropic
import anyio
import httpx
import openai
import pytest
from google import genai
from starlette.types import Message, Scope

from guardstream.mock import create_mock_app
from guardstream.servers import serve_in_thread


@pytest.fixture(scope="package")
def mock_url() -> Iterator[str]:
    with serve_in_thread(create_mock_app()) as url:
        yield url


@pytest.fixture
def openai_client(mock_url: str) -> Iterator[openai.OpenAI]:
    with openai.OpenAI(base_url=f"{mock_url}/v1", api_key="test", max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture
def anthropic_client(mock_url: str) -> Iterator[anthropic.Anthropic]:
    with anthropic.Anthropic(base_url=mock_url, api_key="test", max_retries=0, timeout=5) as client:
        yield client


@pytest.fixture
def genai_client(mock_url: str) -> Iterator[genai.Client]:
    with genai.Client(api_key="test", http_options={"base_url": mock_url, "timeout": 5000}) as client:
        yield client


@pytest.fixture
def http(mock_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=mock_url, timeout=5) as client:
        yield client


AsgiCall = Callable[..., Awaitable[list[Message]]]


@pytest.fixture
def call_asgi() -> AsgiCall:
    """Call a fresh mock app directly and return every message it sends: one body message is one HTTP chunk."""

    async def call(path: str, body: object, headers: Mapping[str, str] | None = None) -> list[Message]:
        requests = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
        sent: list[Message] = []

        async def receive() -> Message:
            if requests:
                return requests.pop()
            await anyio.sleep_forever()
            raise AssertionError("unreachable")  # pragma: no cover

        async def send(message: Message) -> None:
            sent.append(message)

        raw_path, _, query = path.partition("?")
        scope: Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.4"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": raw_path,
            "raw_path": raw_path.encode(),
            "query_string": query.encode(),
            "root_path": "",
            "headers": [(b"content-type", b"application/json")]
            + [(name.encode(), value.encode()) for name, value in (headers or {}).items()],
            "client": ("127.0.0.1", 1234),
            "server": ("127.0.0.1", 80),
        }
        with anyio.fail_after(2):
            await create_mock_app()(scope, receive, send)
        return sent

    return call
