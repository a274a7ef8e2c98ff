"""Every moderated wire format: by the provider name routes resolve to, and by how its events look."""

from __future__ import annotations

from typing import Any

from guardstream.providers.base import Provider, StreamCodec
from guardstream.providers.openai_chat import OPENAI_CHAT, OpenAIChatStream
from guardstream.sse import Event

PROVIDERS: dict[str, Provider] = {provider.name: provider for provider in (OPENAI_CHAT,)}


def provider_named(name: str) -> Provider | None:
    return PROVIDERS.get(name)


def sniff_codec(event: Event, payload: Any) -> StreamCodec | None:
    """The provider format a stream's first event is in, if it is one (the middleware sees no path)."""
    if isinstance(payload, dict) and payload.get("object") == "chat.completion.chunk":
        return OpenAIChatStream()
    return None
