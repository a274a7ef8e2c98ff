"""Every moderated wire format: by the provider name routes resolve to, and by how its events look."""

from __future__ import annotations

from typing import Any

from guardstream.providers.base import Provider, StreamCodec
from guardstream.providers.openai_chat import OPENAI_CHAT, OpenAIChatStream
from guardstream.providers.openai_responses import OPENAI_RESPONSES, OpenAIResponsesStream
from guardstream.sse import Event

PROVIDERS: dict[str, Provider] = {provider.name: provider for provider in (OPENAI_CHAT, OPENAI_RESPONSES)}


def provider_named(name: str) -> Provider | None:
    return PROVIDERS.get(name)


def sniff_codec(event: Event, payload: Any) -> StreamCodec | None:
    """The provider format a stream's first event is in, if it is one (the middleware sees no path)."""
    if not isinstance(payload, dict):
        return None
    if payload.get("object") == "chat.completion.chunk":
        return OpenAIChatStream()
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith("response.") and event.event == kind:
        return OpenAIResponsesStream()
    return None
