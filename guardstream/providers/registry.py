"""Every moderated wire format, by the provider name routes resolve to."""

from __future__ import annotations

from guardstream.providers.base import Provider
from guardstream.providers.openai_chat import OPENAI_CHAT

PROVIDERS: dict[str, Provider] = {provider.name: provider for provider in (OPENAI_CHAT,)}


def provider_named(name: str) -> Provider | None:
    return PROVIDERS.get(name)
