"""The mock model under uvicorn on 127.0.0.1, and the official SDK clients pointed at it."""

from __future__ import annotations

from collections.abc import Iterator

import anthropic
import httpx
import openai
import pytest
from google import genai

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
