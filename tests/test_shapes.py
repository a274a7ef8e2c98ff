"""Events read by their shape: exactly what parsing them would give, or parsed after all."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from guardstream.packs import load_rules
from guardstream.providers.anthropic import AnthropicStream
from guardstream.providers.openai_chat import OpenAIChatStream
from guardstream.shapes import MAX_FRUITLESS, MAX_SHAPES, Shapes
from guardstream.sse import SSEDecoder
from guardstream.stream import StreamModerator

RULES = load_rules(["secrets", "pii"]).for_direction("output")
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"


class Unshaped:
    """The same codec without `can_repeat`: every event parsed, the reference."""

    def __init__(self, codec: Any) -> None:
        self._codec = codec

    def __getattr__(self, name: str) -> Any:
        if name == "can_repeat":
            raise AttributeError(name)
        return getattr(self._codec, name)


def chat(
    content: str | None = None,
    *,
    finish: str | None = None,
    ident: str = "c",
    extra: dict[str, Any] | None = None,
    ascii: bool = False,
) -> bytes:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    payload: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": 1, "model": "m"}
    payload["choices"] = [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
    payload.update(extra or {})
    return b"data: " + json.dumps(payload, ensure_ascii=ascii).encode() + b"\n\n"


def anthropic(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


def run(codec: Any, raw: bytes, cuts: list[int] = (), rules: Any = RULES) -> tuple[bytes, StreamModerator]:  # type: ignore[assignment]
    moderator = StreamModerator(codec, rules)
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    out = [moderator.feed(raw[a:b]) for a, b in zip(points, points[1:], strict=False)]
    out.append(moderator.finish())
    return b"".join(out), moderator


def shaped_count(moderator: StreamModerator) -> int:
    shapes = moderator._shapes
    assert shapes is not None
    return sum(shape.hits for shape in shapes._known)


# Texts a shape must read as JSON would: quotes, escapes, controls, non-ASCII, data URLs, keys.
TEXTS = st.lists(
    st.sampled_from(
        [
            "Hello ",
            "wor",
            "ld. ",
            '"',
            "\\",
            "\n",
            "\x01",
            "é日🎉",
            "data:image/png;base64,AAAA",
            "content",
            SECRET[:7],
            SECRET[7:],
            "jane.doe@example.com ",
            "",
        ]
    ),
    min_size=1,
    max_size=30,
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=TEXTS, cuts=st.lists(st.integers(0, 5000), max_size=20), ascii_only=st.booleans())
def test_a_chat_stream_leaves_the_same_bytes_with_shapes_as_parsed_event_by_event(
    texts: list[str], cuts: list[int], ascii_only: bool
) -> None:
    events = [chat(t, ascii=ascii_only) for t in texts]
    raw = b"".join([*events, chat(finish="stop"), b"data: [DONE]\n\n"])
    shaped, _ = run(OpenAIChatStream(), raw, cuts)
    parsed, _ = run(Unshaped(OpenAIChatStream()), raw, cuts)
    assert shaped == parsed


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts=TEXTS, cuts=st.lists(st.integers(0, 5000), max_size=20))
def test_an_anthropic_stream_leaves_the_same_bytes_with_shapes_as_parsed_event_by_event(
    texts: list[str], cuts: list[int]
) -> None:
    events = [anthropic("message_start", message={"id": "msg", "type": "message", "role": "assistant", "content": []})]
    events.append(anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""}))
    events += [anthropic("content_block_delta", index=0, delta={"type": "text_delta", "text": t}) for t in texts]
    events += [anthropic("content_block_stop", index=0), anthropic("message_stop")]
    raw = b"".join(events)
    shaped, _ = run(AnthropicStream(), raw, cuts)
    parsed, _ = run(Unshaped(AnthropicStream()), raw, cuts)
    assert shaped == parsed


def test_plain_text_deltas_after_the_first_are_read_by_their_shape() -> None:
    raw = b"".join(
        [*(chat(w) for w in ["Hello ", "there ", "my ", "friend"]), chat(finish="stop"), b"data: [DONE]\n\n"]
    )
    out, moderator = run(OpenAIChatStream(), raw)
    assert out == raw
    assert shaped_count(moderator) == 3


def test_a_secret_split_over_shaped_events_is_still_blocked() -> None:
    raw = b"".join([chat("key "), chat(SECRET[:5]), chat(SECRET[5:12]), chat(SECRET[12:]), chat(" ok")])
    out, moderator = run(OpenAIChatStream(), raw + b"data: [DONE]\n\n")
    assert moderator.blocked is not None
    assert shaped_count(moderator) >= 2
    assert b"AKIA" not in out


def test_a_redacted_shaped_event_is_rewritten_from_its_own_data() -> None:
    raw = b"".join([chat("mail "), chat("jane.doe@"), chat("example.com"), chat(" now"), b"data: [DONE]\n\n"])
    out, moderator = run(OpenAIChatStream(), raw)
    payloads = [json.loads(e.data) for e in SSEDecoder().decode(out) if e.data != "[DONE]"]
    text = "".join(p["choices"][0]["delta"].get("content", "") for p in payloads)
    assert "jane.doe" not in text and "[REDACTED:" in text
    assert all(p["id"] == "c" for p in payloads)
    assert shaped_count(moderator) >= 2


def test_an_event_whose_other_fields_differ_is_parsed_and_its_fields_moderated() -> None:
    raw = b"".join([chat("Hello "), chat("there "), chat("friend", ident=f"c {SECRET}"), b"data: [DONE]\n\n"])
    out, moderator = run(OpenAIChatStream(), raw)
    assert moderator.blocked is not None
    assert SECRET.encode() not in out


def test_a_text_with_a_quote_or_an_escape_is_parsed() -> None:
    shapes = Shapes()
    first = next(iter(SSEDecoder().decode(chat("Hello "))))
    codec = OpenAIChatStream()
    parsed = codec.parse(first)
    shapes.learn(first, parsed.payload, parsed.parts, list(parsed.parts), unchanged=[True] * len(parsed.parts))
    for text in ['say "hi"', "back\\slash", "tab\there", "é"]:
        event = next(iter(SSEDecoder().decode(chat(text, ascii=True))))
        assert shapes.match(event) is None, text
    plain = next(iter(SSEDecoder().decode(chat("fine"))))
    assert shapes.match(plain) is not None


def test_a_text_written_twice_in_one_event_teaches_no_shape() -> None:
    shapes = Shapes()
    event = next(iter(SSEDecoder().decode(chat("m"))))  # the model is "m" too
    parsed = OpenAIChatStream().parse(event)
    shapes.learn(event, parsed.payload, parsed.parts, list(parsed.parts), unchanged=[True] * len(parsed.parts))
    assert shapes._known == []


def test_events_with_logprobs_are_always_parsed() -> None:
    codec = OpenAIChatStream()
    logprobs = {"content": [{"token": "Hi", "logprob": -0.1, "bytes": [72, 105], "top_logprobs": []}]}
    event = next(
        iter(
            SSEDecoder().decode(
                chat("Hi", extra={}).replace(b'"logprobs": null', json.dumps({"logprobs": logprobs})[1:-1].encode())
            )
        )
    )
    assert codec.can_repeat(codec.parse(event)) is False


def test_a_stream_whose_events_never_repeat_stops_learning() -> None:
    raw = b"".join(chat("word ", extra={"system_fingerprint": f"fp{i}"}) for i in range(40)) + b"data: [DONE]\n\n"
    out, moderator = run(OpenAIChatStream(), raw, rules=())
    assert out == raw
    shapes = moderator._shapes
    assert shapes is not None and not shapes.is_learning
    assert len(shapes._known) <= MAX_SHAPES
    assert MAX_FRUITLESS >= 1


def test_anthropic_block_starts_and_stops_are_parsed_so_a_finish_closes_what_is_open() -> None:
    codec = AnthropicStream()
    start = next(
        iter(SSEDecoder().decode(anthropic("content_block_start", index=0, content_block={"type": "text", "text": ""})))
    )
    assert codec.can_repeat(codec.parse(start)) is False


# Pads (OpenAI's per-event `obfuscation`): plain ones, and ones a rule must see, redact or block.
PADS = st.sampled_from(["Xk3", "p", "0aZ9qLm", "abc def", "jane.doe@example.com", SECRET, 'q"uote', "back\\", "é"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=TEXTS,
    pads=st.lists(PADS, min_size=30, max_size=30),
    cuts=st.lists(st.integers(0, 5000), max_size=20),
    pad_first=st.booleans(),
)
def test_a_chat_stream_with_pads_leaves_the_same_bytes_with_shapes_as_parsed_event_by_event(
    texts: list[str], pads: list[str], cuts: list[int], pad_first: bool
) -> None:
    def event(text: str, pad: str) -> bytes:
        payload: dict[str, Any] = {"obfuscation": pad} if pad_first else {}
        payload.update(id="c", object="chat.completion.chunk", created=1, model="m")
        payload["choices"] = [{"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": None}]
        if not pad_first:
            payload["obfuscation"] = pad
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    raw = b"".join(
        [*(event(t, p) for t, p in zip(texts, pads, strict=False)), chat(finish="stop"), b"data: [DONE]\n\n"]
    )
    shaped, _ = run(OpenAIChatStream(), raw, cuts)
    parsed, _ = run(Unshaped(OpenAIChatStream()), raw, cuts)
    assert shaped == parsed


def test_deltas_with_a_fresh_pad_each_are_read_by_their_shape() -> None:
    words = ["Hello ", "there ", "my ", "friend"]
    raw = b"".join(chat(w, extra={"obfuscation": f"p{i}Xq"}) for i, w in enumerate(words))
    out, moderator = run(OpenAIChatStream(), raw + b"data: [DONE]\n\n")
    assert out == raw + b"data: [DONE]\n\n"
    assert shaped_count(moderator) == 3


def test_an_address_in_a_pad_is_redacted_in_an_event_read_by_its_shape() -> None:
    raw = b"".join(chat(w, extra={"obfuscation": pad}) for w, pad in [("a ", "x1"), ("b ", "y2"), ("c ", "jo@ex.com")])
    out, moderator = run(OpenAIChatStream(), raw + b"data: [DONE]\n\n")
    assert shaped_count(moderator) == 2
    assert b"jo@ex.com" not in out and b"[REDACTED:email]" in out
