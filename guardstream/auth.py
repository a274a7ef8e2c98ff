"""Credentials: which clients may use guardstream, and which key the upstream gets.

Clients authenticate with whatever their SDK sends as its API key (`Authorization: Bearer`,
`x-api-key`, `x-goog-api-key`, Azure's `api-key`, or Gemini's `?key=`), so no client code changes.
Keys are compared in constant time against every configured key. With a key injected for an
upstream (`[auth] upstream_key_env`), clients never hold the real key, and the credential they
sent is never forwarded.
"""

from __future__ import annotations

import hmac
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode

from guardstream.config import AuthSettings
from guardstream.errors import ConfigError

CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key", "api-key")


def client_credential(headers: Mapping[str, str], query: str) -> str | None:
    """The API key the client's SDK sent, wherever its SDK puts it."""
    authorization = headers.get("authorization", "")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    for name in ("x-api-key", "x-goog-api-key", "api-key"):
        if headers.get(name):
            return headers[name]
    for key, value in parse_qsl(query, keep_blank_values=False):
        if key == "key" and value:
            return value
    return None


def matches_any(credential: str | None, keys: Iterable[bytes]) -> bytes | None:
    """The configured key `credential` equals, compared in constant time against every key."""
    found = None
    given = (credential or "").encode()
    for key in keys:
        # Every key is compared, whether or not an earlier one matched: timing says nothing.
        if hmac.compare_digest(given, key) and credential is not None:
            found = key
    return found


@dataclass(frozen=True)
class Credentials:
    """Resolved at start-up (and on reload): keys read from the environment, never logged."""

    client_keys: tuple[bytes, ...]
    upstream_keys: Mapping[str, str]
    admin_key: bytes | None

    @property
    def requires_client_key(self) -> bool:
        return bool(self.client_keys)

    @classmethod
    def from_settings(
        cls, settings: AuthSettings, policy_keys: Sequence[str] = (), environ: Mapping[str, str] = os.environ
    ) -> Credentials:
        keys = list(settings.client_keys) + list(policy_keys)
        from_env = environ.get(settings.client_keys_env, "")
        keys += [k.strip() for k in from_env.split(",") if k.strip()]
        upstream_keys = {}
        for upstream, variable in settings.upstream_key_env.items():
            value = environ.get(variable, "")
            if not value:
                raise ConfigError(
                    f"[auth] upstream_key_env: the environment variable {variable} for the {upstream} key is not set."
                )
            upstream_keys[upstream] = value
        admin = environ.get(settings.admin_key_env, "")
        return cls(tuple(dict.fromkeys(k.encode() for k in keys)), upstream_keys, admin.encode() if admin else None)


def outgoing_headers(headers: list[tuple[str, str]], upstream: str, injected: str | None) -> list[tuple[str, str]]:
    """The upstream's request headers: the injected key in place of whatever the client sent."""
    if injected is None:
        return headers
    kept = [(k, v) for k, v in headers if k.lower() not in CREDENTIAL_HEADERS]
    if upstream == "anthropic":
        kept.append(("x-api-key", injected))
    elif upstream == "gemini":
        kept.append(("x-goog-api-key", injected))
    else:
        kept.append(("authorization", f"Bearer {injected}"))
    return kept


def outgoing_query(query: str, injected: str | None) -> str:
    """Gemini clients may send their key as `?key=`: never forwarded when one is injected."""
    if injected is None or "key=" not in query:
        return query
    return urlencode([(k, v) for k, v in parse_qsl(query, keep_blank_values=True) if k != "key"])
