"""The README's quick-start examples for the middleware and the Python API work as written (#8)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from guardstream.servers import serve_in_thread

pytestmark = pytest.mark.anyio

README = Path(__file__).resolve().parent.parent / "README.md"
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"


def snippet(heading: str) -> str:
    section = README.read_text(encoding="utf-8").split(heading, 1)[1]
    found = re.search(r"```python\n(.*?)```", section, flags=re.S)
    assert found is not None
    return found.group(1)


def test_the_fastapi_middleware_example_cuts_a_key_and_passes_the_rest() -> None:
    async def my_model(q: str) -> AsyncIterator[str]:
        for token in ["The ", "deploy ", "key ", "is ", SECRET, " ", "ok."] if q == "key" else ["Hi ", "there."]:
            yield token

    namespace: dict[str, Any] = {"my_model": my_model}
    exec(snippet("### 2. ASGI middleware"), namespace)
    with serve_in_thread(namespace["app"]) as url:
        clean = httpx.get(f"{url}/chat", params={"q": "hello"}).text
        cut = httpx.get(f"{url}/chat", params={"q": "key"}).text
    assert '"content": "Hi "' in clean and '{"done": true}' in clean
    assert (
        "AKIA" not in cut
        and '"code":"content_filter"' in cut
        and "The deploy key is " in cut.replace('"}\n\ndata: {"content": "', "")
    )


async def test_the_python_api_example_stops_at_the_key() -> None:
    sent: list[str] = []

    class WebSocket:
        async def send_text(self, text: str) -> None:
            sent.append(text)

    async def model_tokens() -> AsyncIterator[str]:
        for token in ["Use ", "key ", SECRET[:6], SECRET[6:], " now."]:
            yield token

    code = snippet("### 3. Python")
    body = "\n".join("    " + line for line in code.splitlines())
    namespace: dict[str, Any] = {"websocket": WebSocket(), "model_tokens": model_tokens}
    exec(f"async def example():\n{body}\n    return guard.check('my key is {SECRET}').is_blocked", namespace)
    assert await namespace["example"]() is True
    assert "".join(sent) == "Use key [stopped: secrets.aws-access-key-id (credential)]"
