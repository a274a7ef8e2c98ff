"""Every moderated wire format: by the provider name routes resolve to, and by how its events look."""

from __future__ import annotations

from typing import Any

from guardstream.providers.anthropic import ANTHROPIC, EVENTS as ANTHROPIC_EVENTS, AnthropicStream
from guardstream.providers.base import Provider, StreamCodec
from guardstream.providers.gemini import GEMINI, GeminiStream
from guardstream.providers.openai_chat import OPENAI_CHAT, OpenAIChatStream
from guardstream.providers.openai_completions import OPENAI_COMPLETIONS, OpenAICompletionsStream
from guardstream.providers.openai_responses import OPENAI_RESPONSES, OpenAIResponsesStream
from guardstream.sse import Event

PROVIDERS: dict[str, Provider] = {
    p.name: p for p in (OPENAI_CHAT, OPENAI_COMPLETIONS, OPENAI_RESPONSES, ANTHROPIC, GEMINI)
}


def provider_named(name: str) -> Provider | None:
    return PROVIDERS.get(name)


def sniff_codec(event: Event, payload: Any) -> StreamCodec | None:
    """The provider format a stream's first event is in, if it is one (the middleware sees no path)."""
    if not isinstance(payload, dict):
        return None
    if payload.get("object") == "chat.completion.chunk":
        return OpenAIChatStream()
    if payload.get("object") == "text_completion":
        return OpenAICompletionsStream()
    kind = payload.get("type")
    if isinstance(kind, str) and kind.startswith("response.") and event.event == kind:
        return OpenAIResponsesStream()
    if kind in ANTHROPIC_EVENTS and event.event == kind:
        return AnthropicStream()
    if "candidates" in payload and event.event is None:
        return GeminiStream()
    return None
