"""The HTTP side of the network kinds: one JSON POST to a classifier's URL, with its key and headers.

Errors become `ClassifierError`s that name the classifier and the failure (status, transport error,
unreadable body), never the text sent or the body received: an endpoint may echo the text back.
"""

from __future__ import annotations

import asyncio
import json
import os
import weakref
from collections.abc import Mapping
from typing import Any

import httpx

from guardstream.classifiers.base import ClassifierError, ClassifierSettings
from guardstream.errors import ConfigError

# Past timeout_ms the policy has already given up; the extra second only stops a request used
# without the policy from hanging for ever.
REQUEST_GRACE_SECONDS = 1.0


def api_key_headers(settings: ClassifierSettings, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The request headers: `Authorization: Bearer $api_key_env` when set, then the configured `headers`."""
    headers: dict[str, str] = {}
    if settings.api_key_env is not None:
        key = environ.get(settings.api_key_env)
        if not key:
            raise ConfigError(
                f"classifier {settings.name!r}: api_key_env names {settings.api_key_env!r}, "
                "which is not set in the environment. Set it, or remove api_key_env."
            )
        headers["authorization"] = f"Bearer {key}"
    headers.update({name.lower(): value for name, value in settings.headers.items()})
    return headers


class LoopClients:
    """An `httpx.AsyncClient` per event loop, for classifiers whose owner gave them no client.

    A client's pooled connections belong to the loop that opened them. `Guard.stream_sync` runs
    its checks on a loop of its own, and a script may call `asyncio.run` around `Guard.stream`
    more than once: one client shared across those loops would hand a later loop a connection of
    a closed one, and the check would fail ("Event loop is closed"), blocking benign text under
    `on_error = "block"` or letting flagged text through under `"allow"`.
    """

    def __init__(self) -> None:
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, httpx.AsyncClient] = (
            weakref.WeakKeyDictionary()
        )
        self._other: httpx.AsyncClient | None = None  # under an event loop that is not asyncio's (trio)

    def _client(self) -> httpx.AsyncClient:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            if self._other is None:
                self._other = httpx.AsyncClient()
            return self._other
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = httpx.AsyncClient()
        return client

    @property
    def is_closed(self) -> bool:
        """No client is open (the next call opens one for its loop)."""
        return not self._clients and self._other is None

    async def post(self, url: str, **kwargs: Any) -> httpx.Response:
        return await self._client().post(url, **kwargs)

    async def aclose(self) -> None:
        """Close the current loop's client (another loop's connections cannot be closed from here;
        they go when that loop and its client are collected)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        client = self._clients.pop(loop, None) if loop is not None else self._other
        if loop is None:
            self._other = None
        if client is not None:
            await client.aclose()


# What the network kinds post with: the proxy's own client, or clients made per event loop.
Client = httpx.AsyncClient | LoopClients


class Endpoint:
    """POSTs JSON to one classifier's URL on a shared client and returns the decoded answer."""

    def __init__(self, settings: ClassifierSettings, client: Client) -> None:
        assert settings.url is not None, "parse_classifiers requires a url for this kind"
        self.name = settings.name
        self.url = settings.url
        self.client = client
        self.headers = api_key_headers(settings)
        self.timeout = httpx.Timeout(settings.timeout_ms / 1000 + REQUEST_GRACE_SECONDS)

    async def post(self, body: object) -> object:
        try:
            response = await self.client.post(self.url, json=body, headers=self.headers, timeout=self.timeout)
        except httpx.TimeoutException:
            raise
        except httpx.HTTPError as exc:
            raise ClassifierError(self.name, f"request failed ({type(exc).__name__}).") from exc
        if response.status_code != 200:
            raise ClassifierError(self.name, f"the endpoint answered HTTP {response.status_code}.")
        try:
            return json.loads(response.content)
        except ValueError:
            raise ClassifierError(self.name, "the endpoint's answer is not JSON.") from None


def field(value: object, key: str, classifier: str) -> object:
    """`value[key]` of a decoded answer, or a `ClassifierError` saying what the answer lacks."""
    if not isinstance(value, dict) or key not in value:
        raise ClassifierError(classifier, f"the endpoint's answer has no {key!r}.")
    return value[key]
