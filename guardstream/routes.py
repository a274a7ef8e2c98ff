"""Which provider a request path belongs to (DESIGN.md §3, contract)."""

from __future__ import annotations

import re

GEMINI_PATH = re.compile(r"^/[^/]+/models/[^/]+:(?:streamGenerateContent|generateContent)$")
AZURE_CHAT_PATH = re.compile(r"^/openai/deployments/[^/]+/chat/completions$")


def route_for(method: str, path: str) -> tuple[str | None, str]:
    """(provider name or None for untouched forwarding, upstream key in `Upstreams`)."""
    if method == "POST":
        if path == "/v1/chat/completions" or AZURE_CHAT_PATH.match(path):
            return "openai-chat", "openai"
        if path == "/v1/responses":
            return "openai-responses", "openai"
        if path == "/v1/messages":
            return "anthropic", "anthropic"
        if GEMINI_PATH.match(path):
            return "gemini", "gemini"
    return None, "openai"
