"""Zero leak on the wire (#6): a planted secret never reaches the client's bytes, in any field.

Hypothesis builds OpenAI Chat streams that carry a secret, split over several events, in any
text-bearing field (known, legacy or unknown), with logprobs on or off, any finish_reason and
index pattern, and any split of the bytes; then it reads what the client received the way a
client can: every string, concatenated per field by choice index, by position and all in a row,
logprob tokens and their bytes included. None of those may contain the secret's first four
characters, and a stream that lacked its terminator must end with an error.
"""

from __future__ import annotations

import json
from collections import defaultdict
from typing import Any

import httpx
from hypothesis import HealthCheck, given, settings, strategies as st

from guardstream.packs import load_rules
from guardstream.providers.openai_chat import OpenAIChatStream
from guardstream.sse import SSEDecoder
from guardstream.stream import StreamModerator
from tests.conftest import RunningProxy, mock_headers

RULES = load_rules(["secrets", "pii"]).for_direction("output")
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
MARK = SECRET[:4]
# Benign text never glues a word onto the secret: a rule matches a key only as a whole word.
WORDS = ["the ", "answer ", "is ", "here ", ". ", "ok ", "and ", "so ", "é ", "日本 ", "\n", "{", '"a": ', "1 ", "}"]

# Where the secret can travel: a path under the choice's delta (or the chunk itself for "top").
TEXT_FIELDS: list[tuple[str | int, ...]] = [
    ("content",),
    ("refusal",),
    ("reasoning_content",),
    ("reasoning",),
    ("tool_calls", 0, "function", "arguments"),
    ("tool_calls", 0, "function", "name"),
    ("function_call", "arguments"),
    ("audio", "transcript"),
    ("content", 0, "text"),
    ("annotations", 0, "url_citation", "title"),
    ("custom_text",),
    ("deeply", "nested", 0, "unknown"),
]
WHOLE_FIELDS: list[tuple[str | int, ...]] = [("tool_calls", 0, "id"), ("annotations", 0, "url_citation", "url")]
PLACEMENTS = ["delta", "message", "choice_text", "top"]
ENCODINGS = ["identity", "gzip", "deflate"]


def _set(target: dict[str, Any], path: tuple[str | int, ...], value: str) -> None:
    node: Any = target
    for key, nxt in zip(path, path[1:], strict=False):
        if isinstance(key, int):
            while len(node) <= key:
                node.append({} if isinstance(nxt, str) else [])
            node = node[key]
        else:
            node = node.setdefault(key, [] if isinstance(nxt, int) else {})
    last = path[-1]
    if isinstance(last, int):
        while len(node) <= last:
            node.append(None)
    node[last] = value


@st.composite
def streams(draw: st.DrawFn) -> tuple[bytes, bool]:
    """(the upstream's bytes, whether they end with the terminator)."""
    whole = draw(st.booleans())
    field = draw(st.sampled_from(WHOLE_FIELDS if whole else TEXT_FIELDS))
    placement = draw(st.sampled_from(PLACEMENTS))
    cuts = [] if whole else sorted(draw(st.lists(st.integers(1, len(SECRET) - 1), max_size=4, unique=True)))
    pieces = [SECRET[a:b] for a, b in zip([0, *cuts], [*cuts, len(SECRET)], strict=True)]
    before = draw(st.lists(st.sampled_from(WORDS), max_size=4))
    after = draw(st.lists(st.sampled_from(WORDS), max_size=4))
    index_pattern = draw(st.sampled_from(["same", "alternate", "pair"]))
    finish = draw(st.sampled_from([None, "", "stop"]))
    logprobs = draw(st.sampled_from(["off", "agree", "spell"]))
    terminated = draw(st.booleans())

    events: list[bytes] = []

    def emit(n: int, text: str, path: tuple[str | int, ...]) -> None:
        choices = []
        positions = [0, 1] if index_pattern == "pair" else [0]
        for pos in positions:
            index = (n % 2 if index_pattern == "alternate" else 0) if index_pattern != "pair" else pos
            choice: dict[str, Any] = {"index": index, "delta": {}, "finish_reason": finish if n % 3 == 2 else None}
            if pos == positions[-1]:
                if placement == "top":
                    pass
                elif placement == "choice_text":
                    _set(choice, ("text",) if path == ("content",) else ("delta", *path), text)
                else:
                    _set(choice, (placement, *path), text)
                if logprobs != "off":
                    content = choice.get("delta", {}).get("content")
                    spelled = content if logprobs == "agree" and isinstance(content, str) else text
                    tokens = [spelled[i : i + 3] for i in range(0, len(spelled), 3)]
                    entries = [
                        {"token": t, "logprob": -0.1, "bytes": list(t.encode()), "top_logprobs": []} for t in tokens
                    ]
                    choice["logprobs"] = {"content": entries}
            choices.append(choice)
        payload: dict[str, Any] = {"id": "chatcmpl-1", "object": "chat.completion.chunk", "model": "m"}
        payload["choices"] = choices
        if placement == "top":
            _set(payload, ("extra", *path), text)
        events.append(b"data: " + json.dumps(payload).encode() + b"\n\n")

    n = 0
    for word in before:
        emit(n, word, ("content",))
        n += 1
    for piece in pieces:
        emit(n, piece, field)
        n += 1
    for word in after:
        emit(n, " " + word, ("content",))
        n += 1
    if terminated:
        events.append(b"data: [DONE]\n\n")
    return b"".join(events), terminated


def client_views(out: bytes) -> dict[tuple[Any, ...], str]:
    """Every string the client got, joined per field path: by choice index, by position, all."""
    views: dict[tuple[Any, ...], list[str]] = defaultdict(list)

    def walk(node: Any, path: tuple[str, ...], keys: tuple[Any, ...]) -> None:
        if isinstance(node, str):
            for key in keys:
                views[(key, path)].append(node)
        elif isinstance(node, dict):
            for k, v in node.items():
                views[("keys",)].append(k)
                if k == "bytes" and isinstance(v, list) and all(isinstance(b, int) for b in v):
                    for key in keys:
                        views[(key, (*path, "bytes"))].append(bytes(v).decode("utf-8", "replace"))
                else:
                    walk(v, (*path, k), keys)
        elif isinstance(node, list):
            for item in node:
                walk(item, path, keys)

    for event in SSEDecoder().decode(out):
        if not event.has_data or event.data == "[DONE]":
            continue
        payload = json.loads(event.data)
        for k, v in payload.items():
            if k == "choices":
                for pos, choice in enumerate(v):
                    walk(choice, ("choices",), (("index", choice.get("index")), ("pos", pos), ("all",)))
            else:
                walk(v, (k,), (("top",),))
    return {key: "".join(parts) for key, parts in views.items()}


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(stream=streams(), cuts=st.lists(st.integers(0, 10_000), max_size=20))
def test_a_planted_secret_never_reaches_the_client_in_any_field(stream: tuple[bytes, bool], cuts: list[int]) -> None:
    raw, terminated = stream
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    out = b"".join(moderator.feed(raw[a:b]) for a, b in zip(points, points[1:], strict=False)) + moderator.finish()
    assert MARK.encode() not in out
    for key, text in client_views(out).items():
        assert MARK not in text, key
    last = [e for e in SSEDecoder().decode(out) if e.has_data][-1]
    if not terminated or moderator.blocked is not None:
        assert "error" in json.loads(last.data)
    else:
        assert last.data == "[DONE]"


@settings(
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(stream=streams(), cuts=st.lists(st.integers(0, 10_000), max_size=8), encoding=st.sampled_from(ENCODINGS))
def test_through_the_proxy_no_secret_reaches_the_clients_bytes(
    proxy: RunningProxy, stream: tuple[bytes, bool], cuts: list[int], encoding: str
) -> None:
    """The same property over real sockets: the mock sends the bytes in pieces, compressed or not."""
    raw, terminated = stream
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    pieces = [raw[a:b].decode("utf-8", "surrogateescape") for a, b in zip(points, points[1:], strict=False)]
    if any("\udc80" <= ch <= "\udcff" for piece in pieces for ch in piece):
        pieces = [raw.decode()]  # a cut inside a character: the mock writes text, so send it whole
    script = {"raw_events": pieces, "content_encoding": encoding}
    body = {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
    response = httpx.post(f"{proxy.url}/v1/chat/completions", json=body, headers=mock_headers(script), timeout=30)
    out = response.content  # decoded, if anything was encoded on the way
    assert "content-encoding" not in response.headers
    assert MARK.encode() not in out
    for key, text in client_views(out).items():
        assert MARK not in text, key
    last = [e for e in SSEDecoder().decode(out) if e.has_data][-1]
    assert last.data == "[DONE]" or "error" in json.loads(last.data)
    if not terminated:
        assert last.data != "[DONE]"
