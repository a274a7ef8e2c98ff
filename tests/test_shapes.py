"""Events read by their shape: exactly what parsing them would give, or parsed after all."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from guardstream.checks import CheckPlan
from guardstream.classifiers import Verdict
from guardstream.errors import ProviderError
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
            "ｊａｎｅ.doe\u200b@exa",  # read normalised by the rules: full-width letters, a zero-width space
            "mple.com",
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


def _learned_chat_shapes() -> Shapes:
    shapes = Shapes()
    first = next(iter(SSEDecoder().decode(chat("Hello "))))
    parsed = OpenAIChatStream().parse(first)
    shapes.learn(first, parsed.payload, parsed.parts, list(parsed.parts), unchanged=[True] * len(parsed.parts))
    return shapes


def test_a_text_with_escapes_is_read_by_its_shape_as_json_reads_it() -> None:
    shapes = _learned_chat_shapes()
    for text in ['say "hi"', "back\\slash", "tab\there", "line\nbreak", "é", "🎉", "a/b"]:
        for ascii_only in (True, False):
            event = next(iter(SSEDecoder().decode(chat(text, ascii=ascii_only))))
            found = shapes.match(event)
            assert found is not None and found[1] == text == OpenAIChatStream().parse(event).parts[-1].text


def test_an_unpaired_surrogate_escape_is_not_read_by_a_shape_but_refused_as_malformed() -> None:
    shapes = _learned_chat_shapes()
    event = next(iter(SSEDecoder().decode(chat("\ud800 alone", ascii=True))))
    assert shapes.match(event) is None
    with pytest.raises(ProviderError, match="unpaired surrogate"):
        OpenAIChatStream().parse(event)


def test_what_is_not_one_json_string_between_the_cuts_is_parsed() -> None:
    shapes = _learned_chat_shapes()
    template = chat("Hello ")
    for inside in [b'x", "extra": "y', b"raw\x01control", b"bad \\x escape", b"short \\u12 escape", b"trailing \\"]:
        event = next(iter(SSEDecoder().decode(template.replace(b"Hello ", inside))))
        assert shapes.match(event) is None, inside
    # Text that looks like a data URL is text: read like any other.
    data_url = next(iter(SSEDecoder().decode(chat("data:image/png;base64,AAAA"))))
    assert shapes.match(data_url) is not None
    assert shapes.match(next(iter(SSEDecoder().decode(chat("fine"))))) is not None


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


# Runs: like events in one read, read straight from the bytes and released as one.


def _counting_runs(moderator: StreamModerator) -> list[int]:
    """Spy on a moderator's runs: the number of events in each run it reads."""
    shapes = moderator._shapes
    assert shapes is not None
    seen: list[int] = []
    read_run = shapes.run

    def counted(data: bytes, pos: int) -> Any:
        found = read_run(data, pos)
        if found is not None:
            seen.append(len(found.texts))
        return found

    setattr(shapes, "run", counted)  # noqa: B010 (an instance attribute, on purpose)
    return seen


def _read_after_a_first_read(codec: Any, raw: bytes, first: int) -> tuple[bytes, bytes, StreamModerator, list[int]]:
    """`raw` read in two reads, the second from byte `first` (after a shape is learned): what
    the client gets, what it gets with every event parsed, the moderator, and its runs."""
    moderator = StreamModerator(codec, RULES)
    head = moderator.feed(raw[:first])
    runs = _counting_runs(moderator)
    out = head + moderator.feed(raw[first:]) + moderator.finish()
    reference, _ = run(Unshaped(type(codec)()), raw, [first])
    return out, reference, moderator, runs


def test_like_events_in_one_read_are_read_as_one_run_and_leave_as_they_came() -> None:
    words = ["Hello ", "there, ", "my ", "dear ", "friend", ". Bye"]
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    out = [moderator.feed(chat(words[0]))]
    runs = _counting_runs(moderator)
    body = b"".join(chat(w) for w in words[1:])
    out.append(moderator.feed(body + chat(finish="stop") + b"data: [DONE]\n\n"))
    assert b"".join(out) == chat(words[0]) + body + chat(finish="stop") + b"data: [DONE]\n\n"
    assert runs == [5]


def test_a_run_ends_at_an_event_of_another_shape_and_resumes_after_it() -> None:
    shapes = _learned_chat_shapes()
    data = chat("a") + chat("b") + chat(finish="stop") + chat("c")
    found = shapes.run(data, 0)
    assert found is not None and found.texts == ["a", "b"] and sum(found.sizes) == len(chat("a") + chat("b"))
    assert shapes.run(data, sum(found.sizes)) is None
    later = shapes.run(data, len(data) - len(chat("c")))
    assert later is not None and later.texts == ["c"]


def test_a_run_stops_before_bytes_the_decoder_would_not_read_as_utf8() -> None:
    shapes = _learned_chat_shapes()
    data = chat("ok") + chat("é").replace("é".encode(), b"\xc3") + chat("ok")
    found = shapes.run(data, 0)
    assert found is not None and found.texts == ["ok"]


def test_a_redaction_inside_a_run_rewrites_its_events_as_one_event_at_a_time_would() -> None:
    raw = b"".join(chat(w) for w in ["mail ", "me ", "at ", "jane.doe@", "example.com", " now", " thanks"])
    raw += chat(finish="stop") + b"data: [DONE]\n\n"
    out, reference, _, runs = _read_after_a_first_read(OpenAIChatStream(), raw, len(chat("mail ")))
    assert out == reference
    assert b"jane.doe" not in out and b"[REDACTED:" in out
    assert runs and runs[0] >= 5


def test_a_secret_split_inside_a_run_is_blocked_and_the_clear_events_before_it_leave() -> None:
    pieces = ["key ", "is ", SECRET[:5], SECRET[5:12], SECRET[12:], " ok"]
    raw = b"".join(chat(w) for w in pieces) + chat(finish="stop") + b"data: [DONE]\n\n"
    first = len(chat(pieces[0]))
    out, reference, moderator, runs = _read_after_a_first_read(OpenAIChatStream(), raw, first)
    assert out == reference
    assert moderator.blocked is not None and b"AKIA" not in out and chat("is ") in out
    assert runs


def test_a_pad_that_a_rule_finds_ends_the_run_before_its_event() -> None:
    def padded(text: str, pad: str) -> bytes:
        return chat(text, extra={"obfuscation": pad})

    raw = b"".join(padded(t, p) for t, p in [("a ", "Xk3"), ("b ", "q9"), ("c ", "jo@ex.com"), ("d ", "Zz1")])
    raw += b"data: [DONE]\n\n"
    first = len(padded("a ", "Xk3"))
    out, reference, moderator, runs = _read_after_a_first_read(OpenAIChatStream(), raw, first)
    assert out == reference and b"jo@ex.com" not in out and b"[REDACTED:email]" in out
    # The events around it leave as they came: the run ended before it, and began again after.
    assert padded("b ", "q9") in out and padded("d ", "Zz1") in out
    assert runs


def test_a_run_on_a_text_block_that_another_block_follows_in_the_same_read_is_released_on_both_views() -> None:
    def delta(index: int, text: str) -> bytes:
        return anthropic("content_block_delta", index=index, delta={"type": "text_delta", "text": text})

    def start(index: int) -> bytes:
        return anthropic("content_block_start", index=index, content_block={"type": "text", "text": ""})

    message = {"id": "msg", "type": "message", "role": "assistant", "content": []}
    events = [anthropic("message_start", message=message), start(0), delta(0, "a"), delta(0, "b")]
    tail = [delta(0, "c "), delta(0, "jane."), anthropic("content_block_stop", index=0), start(1)]
    tail += [delta(1, "doe@ex"), delta(1, ".com x"), anthropic("content_block_stop", index=1)]
    tail.append(anthropic("message_stop"))
    raw = b"".join(events + tail)
    cut = len(b"".join(events))
    out, reference, moderator, runs = _read_after_a_first_read(AnthropicStream(), raw, cut)
    assert out == reference
    assert runs


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    texts=TEXTS,
    pads=st.lists(PADS, min_size=30, max_size=30),
    groups=st.lists(st.integers(1, 8), min_size=1, max_size=30),
)
def test_a_padded_chat_stream_read_in_groups_of_whole_events_leaves_as_parsed_event_by_event(
    texts: list[str], pads: list[str], groups: list[int]
) -> None:
    events = [chat(t, extra={"obfuscation": p}) for t, p in zip(texts, pads, strict=False)]
    events += [chat(finish="stop"), b"data: [DONE]\n\n"]
    offsets = [0]
    for event in events:
        offsets.append(offsets[-1] + len(event))
    index, cuts = 0, []  # cut only between events, so that reads begin where runs can
    for size in groups:
        index += size
        if index >= len(events):
            break
        cuts.append(offsets[index])
    raw = b"".join(events)
    shaped, _ = run(OpenAIChatStream(), raw, cuts)
    parsed, _ = run(Unshaped(OpenAIChatStream()), raw, cuts)
    assert shaped == parsed


def _with_a_classifier(codec: Any, reads: list[bytes]) -> bytes:
    """What the client gets when a strict classifier flags every text with "BAD" in it, each
    check answered as soon as it is asked."""
    moderator = StreamModerator(codec, RULES, plans=[CheckPlan("c", mode="strict", every_chars=20, overlap_chars=5)])
    out: list[bytes] = []

    def answer() -> None:
        while requests := moderator.take_checks():
            for request in requests:
                out.append(moderator.check_done(request, [Verdict("BAD" in text) for text in request.texts]))

    for read in reads:
        out.append(moderator.feed(read))
        answer()
    out.append(moderator.finish())
    answer()
    return b"".join(out)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(words=st.lists(st.sampled_from(["fine ", "words ", "B", "AD ", "and. ", "more"]), min_size=2, max_size=40))
def test_a_run_waits_for_a_strict_classifier_as_events_read_one_by_one_do(words: list[str]) -> None:
    events = [chat(w) for w in words] + [chat(finish="stop"), b"data: [DONE]\n\n"]
    reads = [events[0], b"".join(events[1:])]
    shaped = _with_a_classifier(OpenAIChatStream(), reads)
    assert shaped == _with_a_classifier(Unshaped(OpenAIChatStream()), reads)
    if "BAD" in "".join(words):
        released = "".join(
            json.loads(e.data)["choices"][0]["delta"].get("content", "")
            for e in SSEDecoder().decode(shaped)
            if e.data.startswith("{") and "choices" in e.data
        )
        assert "BAD" not in released


def test_a_run_whose_text_the_rules_read_normalised_is_redacted_as_one_event_at_a_time_would_be() -> None:
    # Zero-width spaces and full-width letters: the window redacts what its normalised copy matches.
    pieces = ["write to ", "ｊａｎｅ", ".doe\u200b@exa", "mple.com", " and ", "jo\u200bhn@ex", ".org ", "now"]
    raw = b"".join(chat(w) for w in pieces) + chat(finish="stop") + b"data: [DONE]\n\n"
    out, reference, _, runs = _read_after_a_first_read(OpenAIChatStream(), raw, len(chat(pieces[0])))
    assert out == reference
    assert b"[REDACTED:" in out and b"mple.com" not in out
    assert runs


class _CountedMatches:
    """A compiled pattern that counts its `match` calls."""

    def __init__(self, pattern: Any) -> None:
        self.pattern, self.calls = pattern, 0

    def match(self, *args: Any) -> Any:
        self.calls += 1
        return self.pattern.match(*args)


def test_events_that_end_runs_do_not_make_a_read_cost_more_per_event_the_longer_it_is(monkeypatch: Any) -> None:
    # Every other event cannot join a run (a pad to redact): each ends a run, and
    # the next run is read from the event after it. Work per event must not grow with the read.
    import guardstream.shapes

    counted = _CountedMatches(guardstream.shapes._STRING_BYTES)
    monkeypatch.setattr(guardstream.shapes, "_STRING_BYTES", counted)
    spoilers = [chat("pad ", extra={"obfuscation": "jo@ex.com"})]
    for spoiler in spoilers:
        per_event = []
        for events in (200, 2000):
            counted.calls = 0
            moderator = StreamModerator(OpenAIChatStream(), RULES)
            moderator.feed(chat("first "))
            moderator.feed(b"".join(chat("word ") if i % 2 else spoiler for i in range(events)))
            per_event.append(counted.calls / events)
        assert per_event[1] < 1.5 * per_event[0], (spoiler, per_event)
