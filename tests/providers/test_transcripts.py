"""Recorded transcripts of every wire format (#7), through every chunk boundary.

Each transcript is fed whole, one byte at a time (every boundary at once) and split at random
(hypothesis). Benign answers leave byte for byte; an e-mail address is redacted in place; a key,
in the text or in a tool call's arguments, never reaches the client in any string, and the
stream ends with the terminal event that format's SDK raises on.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from guardstream.packs import load_rules
from guardstream.providers.registry import PROVIDERS
from guardstream.sse import SSEDecoder
from guardstream.stream import StreamModerator

TRANSCRIPTS = Path(__file__).parent.parent / "fixtures" / "transcripts"
RULES = load_rules(["pii", "secrets"]).for_direction("output")
FORMATS = sorted(PROVIDERS)
TERMINAL: dict[str, Callable[[Any, str | None], bool]] = {
    "openai-chat": lambda payload, name: "error" in payload,
    "openai-completions": lambda payload, name: "error" in payload,
    "openai-responses": lambda payload, name: name == "error" and payload["error"]["code"] == "content_filter",
    "anthropic": lambda payload, name: name == "error" and payload["error"]["type"] == "invalid_request_error",
    "gemini": lambda payload, name: next(iter(payload)) == "error" and payload["error"]["code"] == 400,
}


def transcript(provider: str, name: str) -> bytes:
    return (TRANSCRIPTS / f"{provider}.{name}.sse").read_bytes()


def moderate(provider: str, raw: bytes, cuts: list[int]) -> bytes:
    moderator = StreamModerator(PROVIDERS[provider].stream_codec(), RULES)
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    out = [moderator.feed(raw[a:b]) for a, b in zip(points, points[1:], strict=False)]
    return b"".join(out) + moderator.finish()


def strings_read(out: bytes) -> dict[str, str]:
    """Every string the client got, joined per field path (list positions left out), in order."""
    views: dict[str, list[str]] = defaultdict(list)

    def walk(node: Any, path: str) -> None:
        if isinstance(node, str):
            views[path].append(node)
            views["*"].append(node)
        elif isinstance(node, dict):
            for key, value in node.items():
                views["keys"].append(key)
                walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for item in node:
                walk(item, path)

    for event in SSEDecoder().decode(out):
        if event.has_data and event.data != "[DONE]":
            walk(json.loads(event.data), event.event or "")
    return {path: "".join(parts) for path, parts in views.items()}


def last_event(out: bytes) -> tuple[Any, str | None]:
    event = [e for e in SSEDecoder().decode(out) if e.has_data][-1]
    return (json.loads(event.data) if event.data != "[DONE]" else None), event.event


def check(provider: str, name: str, out: bytes) -> None:
    raw = transcript(provider, name)
    if name == "benign":
        assert out == raw
        return
    if name == "email":
        assert b"jane" not in out and b"[REDACTED:email]" in out
        return
    assert b"AKIA" not in out
    for path, text in strings_read(out).items():
        assert "AKIA" not in text, path
        # A JSON-escaped or decoded copy of the tool arguments must not carry it either.
        assert "AKIA" not in text.encode().decode("unicode_escape", "ignore"), path
    payload, event_name = last_event(out)
    assert TERMINAL[provider](payload, event_name)


CASES = [
    (p, n) for p in FORMATS for n in ("benign", "email", "secret", "tool") if (TRANSCRIPTS / f"{p}.{n}.sse").exists()
]


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_transcript_whole(provider: str, name: str) -> None:
    check(provider, name, moderate(provider, transcript(provider, name), []))


@pytest.mark.parametrize(("provider", "name"), CASES)
def test_transcript_one_byte_at_a_time(provider: str, name: str) -> None:
    raw = transcript(provider, name)
    check(provider, name, moderate(provider, raw, list(range(len(raw)))))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=st.sampled_from(CASES), cuts=st.lists(st.integers(0, 10_000), max_size=40))
def test_transcripts_hold_under_any_split(case: tuple[str, str], cuts: list[int]) -> None:
    provider, name = case
    check(provider, name, moderate(provider, transcript(provider, name), cuts))


def test_every_format_has_transcripts() -> None:
    assert {p for p, _ in CASES} == set(FORMATS)
