"""StreamModerator: the window's guarantees hold end to end, through SSE framing and the codec."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from hypothesis import HealthCheck, example, given, settings, strategies as st

from guardstream.channels import PartState
from guardstream.packs import load_rules
from guardstream.providers.anthropic import AnthropicStream
from guardstream.providers.openai_chat import OpenAIChatStream
from guardstream.rules import find_matches, redact_text
from guardstream.sse import SSEDecoder
from guardstream.stream import MALFORMED_MESSAGE, StreamModerator

RULES = load_rules(["secrets", "pii"]).for_direction("output")
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
PIECES = ["Hello ", "world. ", "mail jane.doe@example.com ", "call (415) 555-2671 ", SECRET, " ok ", "é日🎉 ", "\n"]
# Benign English with planted addresses, numbers and a key, in any order.
TEXTS = st.lists(st.sampled_from(PIECES), max_size=12).map("".join)


def chunk(
    content: str | None = None, finish: str | None = None, index: int = 0, ident: str = "c", pad: str | None = None
) -> bytes:
    delta: dict[str, Any] = {} if content is None else {"content": content}
    payload: dict[str, Any] = {"id": ident, "object": "chat.completion.chunk", "created": 1, "model": "m"}
    if pad is not None:  # OpenAI's per-event `obfuscation`
        payload["obfuscation"] = pad
    payload["choices"] = [{"index": index, "delta": delta, "logprobs": None, "finish_reason": finish}]
    return b"data: " + json.dumps(payload).encode() + b"\n\n"


def transcript(text: str, size: int) -> bytes:
    body = [chunk(text[i : i + size]) for i in range(0, len(text), size)]
    return b"".join([*body, chunk(finish="stop"), b"data: [DONE]\n\n"])


def run(raw: bytes, cuts: list[int], **options: Any) -> tuple[bytes, StreamModerator]:
    moderator = StreamModerator(OpenAIChatStream(), RULES, **options)
    points = sorted({c % (len(raw) + 1) for c in cuts} | {0, len(raw)})
    out = []
    for a, b in zip(points, points[1:], strict=False):
        out.append(moderator.feed(raw[a:b]))
        if moderator.is_done:
            break
    out.append(moderator.finish())
    return b"".join(out), moderator


def client_view(out: bytes) -> tuple[str, list[dict[str, Any]]]:
    """What an SDK sees: the concatenated content, and every parsed payload."""
    payloads = [json.loads(e.data) for e in SSEDecoder().decode(out) if e.has_data and e.data != "[DONE]"]
    text = "".join(c["delta"].get("content") or "" for p in payloads for c in p.get("choices", []))
    return text, payloads


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=TEXTS,
    size=st.integers(1, 12),
    cuts=st.lists(st.integers(0, 5000), max_size=30),
)
def test_client_sees_exactly_the_redacted_prefix_however_bytes_are_split(text: str, size: int, cuts: list[int]) -> None:
    out, moderator = run(transcript(text, size), cuts)
    seen, payloads = client_view(out)
    expected = redact_text(RULES, text)
    blocks = [start for r in RULES if r.action == "block" for start, _ in find_matches(r, text)]
    if blocks:
        # Nothing from the first match on: what arrived is the redacted text before it, or less.
        assert moderator.blocked is not None
        assert len(seen) <= len(redact_text(RULES, text[: min(blocks)]))
        assert expected.startswith(seen)
        assert payloads[-1]["error"]["code"] == "content_filter"
        assert not out.endswith(b"data: [DONE]\n\n")
    else:
        assert seen == expected
        assert out.endswith(b"data: [DONE]\n\n")


def test_untouched_stream_is_byte_identical() -> None:
    raw = transcript("A harmless answer with nothing to hide.", 5)
    out, _ = run(raw, list(range(0, len(raw), 7)))
    assert out == raw


def test_finish_reason_does_not_end_the_window_while_the_stream_goes_on() -> None:
    # test for #6: a finish_reason (even "") used to flush the choice, so a key split around it passed.
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    out = moderator.feed(chunk("key AKIA4HJQ", finish="") + chunk("7XRZ2PLWKD5N", finish="stop"))
    out += moderator.feed(b"data: [DONE]\n\n")
    seen, payloads = client_view(out)
    assert "AKIA" not in seen
    assert payloads[-1]["error"]["code"] == "content_filter"


def test_held_text_is_decided_at_the_stream_terminator() -> None:
    raw = chunk("text ends with a number 12") + chunk(finish="stop")
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    assert moderator.feed(raw) == b""  # "12" could still start a phone number
    assert moderator.feed(b"data: [DONE]\n\n") == raw + b"data: [DONE]\n\n"


def test_event_waits_while_its_text_is_held_and_leaves_once_decided() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    assert moderator.feed(chunk("write to jane.doe@exa")) == b""
    out = moderator.feed(chunk("mple.com now") + chunk(finish="stop") + b"data: [DONE]\n\n")
    seen, _ = client_view(out)
    assert seen == "write to [REDACTED:email] now"


def test_malformed_event_fails_closed_with_a_terminal_error() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    out = moderator.feed(chunk("fine ") + b'data: {"broken": \n\n')
    _, payloads = client_view(out)
    assert payloads[-1]["error"]["type"] == "server_error"
    assert "malformed" in payloads[-1]["error"]["message"]
    assert moderator.is_done


def test_upstream_failure_drops_held_text() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    moderator.feed(chunk("key AKIA"))
    out = moderator.fail("upstream broke off")
    seen, payloads = client_view(out)
    assert "AKIA" not in seen
    assert payloads[-1]["error"]["message"] == "upstream broke off"


def test_graceful_finish_closes_every_open_choice() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES, on_violation="finish")
    out = moderator.feed(chunk("a", index=0) + chunk("b", index=1) + chunk(f"x {SECRET} ", index=0))
    _, payloads = client_view(out)
    finishes = {c["index"]: c["finish_reason"] for p in payloads for c in p["choices"] if c["finish_reason"]}
    assert finishes == {0: "content_filter", 1: "content_filter"}
    assert out.endswith(b"data: [DONE]\n\n")


def test_unhashable_choice_index_fails_closed() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    out = moderator.feed(b'data: {"choices":[{"index":[0],"delta":{"content":"hi"}}]}\n\n')
    assert moderator.is_done and b'"code":"upstream_error"' in out


def test_deeply_nested_event_fails_closed() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    out = moderator.feed(b"data: " + b"[" * 100_000 + b"\n\n")
    assert moderator.is_done and b'"code":"upstream_error"' in out


def test_redacted_event_is_re_encoded_without_fields_outside_its_data() -> None:
    # test for #6: comments, ids and unknown fields reach the client only through our own encoding.
    moderator = StreamModerator(OpenAIChatStream(), RULES)
    raw = b"id: 42\r\n: note\r\n" + chunk("mail jane.doe@example.com now", "stop").replace(b"\n\n", b"\r\n\r\n")
    out = moderator.feed(raw + b"data: [DONE]\r\n\r\n") + moderator.finish()
    assert out.startswith(b"data: ") and b"id:" not in out and b"note" not in out
    assert out.endswith(b"\r\n\r\n")
    (event,) = [e for e in SSEDecoder().decode(out) if e.has_data and e.data != "[DONE]"]
    assert "[REDACTED:email]" in event.data


def test_choice_blocked_at_its_own_finish_reason_reports_content_filter_not_stop() -> None:
    moderator = StreamModerator(OpenAIChatStream(), RULES, on_violation="finish")
    out = moderator.feed(chunk("key " + SECRET, "stop") + b"data: [DONE]\n\n") + moderator.finish()
    _, payloads = client_view(out)
    reasons = [c["finish_reason"] for p in payloads for c in p["choices"]]
    assert SECRET not in out.decode()
    assert reasons[-1] == "content_filter" and "stop" not in reasons


class CountingObserver:
    def __init__(self) -> None:
        self.scans = 0

    def on_scan(self, seconds: float) -> None:
        self.scans += 1

    def on_release(self, chars: int, delays_seconds: Sequence[float]) -> None: ...

    def on_violation(self, violation: Any) -> None: ...

    def on_holdback(self, chars: int) -> None: ...

    def on_forced_release(self, chars: int) -> None: ...


def test_events_that_arrive_in_one_read_are_scanned_once() -> None:
    observer = CountingObserver()
    moderator = StreamModerator(OpenAIChatStream(), RULES, observer=observer)
    text = "Hello there, mail me at jane.doe@example.com today. " * 4
    moderator.feed(b"".join(chunk(text[i : i + 4]) for i in range(0, len(text), 4)))
    assert observer.scans == 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=TEXTS,
    size=st.integers(1, 12),
    groups=st.lists(st.integers(1, 6), max_size=40),
)
def test_events_read_together_leave_as_they_would_one_read_at_a_time(text: str, size: int, groups: list[int]) -> None:
    events = [chunk(text[i : i + size]) for i in range(0, len(text), size)]
    events += [chunk(finish="stop"), b"data: [DONE]\n\n"]
    one_by_one = StreamModerator(OpenAIChatStream(), RULES)
    expected = b"".join(one_by_one.feed(e) for e in events) + one_by_one.finish()
    assert fed_in_reads(StreamModerator(OpenAIChatStream(), RULES), events, groups) == expected


def test_a_value_redacted_mid_string_is_counted_as_a_redaction() -> None:
    raw = chunk("Hi", ident="run for jane.doe@example.com today") + b"data: [DONE]\n\n"
    out, moderator = run(raw, [])
    assert b"jane.doe" not in out
    assert moderator.is_redacted
    assert [v.rule.id for v in moderator.violations] == ["pii.email"]


def test_every_answer_counts_the_violations_of_a_value_decided_before() -> None:
    raw = chunk("Hi", ident="run for jane.doe@example.com today") + b"data: [DONE]\n\n"
    for _ in range(2):
        out, moderator = run(raw, [])
        assert b"jane.doe" not in out
        assert moderator.is_redacted and len(moderator.violations) == 1


def fed_in_reads(moderator: StreamModerator, events: list[bytes], reads: Sequence[int]) -> bytes:
    """What `moderator` gives out for `events` arriving `reads[i]` at a time (the rest in one
    read), then at the end of the stream."""
    out, at = [], 0
    for size in [*reads, len(events)]:
        out.append(moderator.feed(b"".join(events[at : at + size])))
        at += size
    out.append(moderator.finish())
    return b"".join(out)


def anthropic_event(kind: str, **fields: Any) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **fields})}\n\n".encode()


ANTHROPIC_BLOCKS = {
    "text": ({"type": "text", "text": ""}, "text_delta", "text"),
    "thinking": ({"type": "thinking", "thinking": "", "signature": ""}, "thinking_delta", "thinking"),
    "tool_use": (
        {"type": "tool_use", "id": "toolu_1", "name": "lookup", "input": {}},
        "input_json_delta",
        "partial_json",
    ),
}


def anthropic_blocks(*blocks: list[str], kinds: Sequence[str] = ()) -> list[bytes]:
    """A message of these blocks (text blocks unless `kinds` names each one's type), each
    streamed in the deltas given, then `message_stop`."""
    events = [
        anthropic_event("message_start", message={"id": "m", "type": "message", "role": "assistant", "content": []})
    ]
    for index, deltas in enumerate(blocks):
        block, delta_type, key = ANTHROPIC_BLOCKS[kinds[index] if kinds else "text"]
        events.append(anthropic_event("content_block_start", index=index, content_block=block))
        events += [
            anthropic_event("content_block_delta", index=index, delta={"type": delta_type, key: d}) for d in deltas
        ]
        events.append(anthropic_event("content_block_stop", index=index))
    return [*events, anthropic_event("message_stop")]


def anthropic_text(out: bytes, key: str = "text") -> str:
    payloads = [json.loads(e.data) for e in SSEDecoder().decode(out) if e.has_data]
    return "".join(p["delta"].get(key, "") for p in payloads if p["type"] == "content_block_delta")


def test_the_answer_after_a_thinking_block_streams_before_the_message_ends() -> None:
    # The thinking ends inside a word that could still become an address: once the text block
    # begins, the thinking can grow no more, and the answer must not wait for message_stop.
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(
        ["The user wants the weather."], ["Sunny ", "today. ", "Warm."], kinds=["thinking", "text"]
    )
    out = b"".join(moderator.feed(e) for e in events[:-1])
    assert anthropic_text(out, "thinking") == "The user wants the weather."
    assert anthropic_text(out).startswith("Sunny today. ")


def test_a_tool_call_after_thinking_streams_before_the_message_ends() -> None:
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(["I should look that up."], ['{"city": ', '"Paris"}'], kinds=["thinking", "tool_use"])
    out = b"".join(moderator.feed(e) for e in events[:-1])
    assert anthropic_text(out, "thinking") == "I should look that up."
    assert anthropic_text(out, "partial_json").startswith('{"city": ')


def test_a_key_split_across_text_blocks_with_a_tool_call_between_is_still_caught() -> None:
    # `text_stream` prints the text of every text block as one: the row of text blocks is never
    # ended by a block of another type.
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(
        [f"key {SECRET[:10]}"], ['{"q": 1}'], [f"{SECRET[10:]} ok"], kinds=["text", "tool_use", "text"]
    )
    out = b"".join(moderator.feed(e) for e in events) + moderator.finish()
    assert SECRET[:4] not in anthropic_text(out) and moderator.blocked is not None


def test_text_of_another_type_than_its_block_ends_the_stream_as_malformed() -> None:
    # Thinking on a text block would go on the row of thinking, which the text block just ended.
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks([f"x {SECRET[:10]}"], ["ok "], kinds=["thinking", "text"])
    wrong = anthropic_event("content_block_delta", index=1, delta={"type": "thinking_delta", "thinking": SECRET[10:]})
    out = b"".join(moderator.feed(e) for e in [*events[:-2], wrong, *events[-2:]]) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET not in out.decode()


def test_a_row_of_thinking_stays_open_while_a_thinking_block_is() -> None:
    # Two thinking blocks open at once, then a text block: the row of thinking cannot end while
    # the second one may still add to it.
    thinking = ANTHROPIC_BLOCKS["thinking"][0]
    events = [
        anthropic_event("message_start", message={"id": "m", "type": "message", "role": "assistant", "content": []}),
        anthropic_event("content_block_start", index=0, content_block=thinking),
        anthropic_event("content_block_start", index=1, content_block=thinking),
        anthropic_event(
            "content_block_delta", index=0, delta={"type": "thinking_delta", "thinking": f"x {SECRET[:10]}"}
        ),
        anthropic_event("content_block_stop", index=0),
        anthropic_event("content_block_start", index=2, content_block=ANTHROPIC_BLOCKS["text"][0]),
        anthropic_event(
            "content_block_delta", index=1, delta={"type": "thinking_delta", "thinking": f"{SECRET[10:]} y"}
        ),
        anthropic_event("content_block_stop", index=1),
        anthropic_event("content_block_stop", index=2),
        anthropic_event("message_stop"),
    ]
    moderator = StreamModerator(AnthropicStream(), RULES)
    out = b"".join(moderator.feed(e) for e in events) + moderator.finish()
    assert SECRET[:4] not in anthropic_text(out, "thinking") and moderator.blocked is not None


def test_an_event_for_a_stopped_block_ends_the_stream_as_malformed() -> None:
    # The block's text was decided as complete when it stopped: a delta after that would be read
    # without the tail before it (and the SDK would add it to the block all the same).
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks([f"key {SECRET[:10]}"], ["hi "])
    late = anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": f"{SECRET[10:]} "})
    out = b"".join(moderator.feed(e) for e in [*events[:-2], late, *events[-2:]]) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET not in out.decode()


def test_an_address_split_across_two_text_blocks_is_redacted_on_the_view_that_joins_them() -> None:
    # Block 0 waits on its own window while block 1's text is rendered on the joined view first.
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(["write to jane.doe@"], ["example.com today"])
    out = b"".join(moderator.feed(e) for e in events) + moderator.finish()
    assert [v.rule.id for v in moderator.violations] == ["pii.email"]
    text = anthropic_text(out)
    assert "jane.doe" not in text and "example.com" not in text and "[REDACTED:" in text


def test_an_address_split_across_choice_positions_is_redacted_on_the_index_view() -> None:
    def chunk_of(*choices: tuple[int, str]) -> bytes:
        payload = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m"}
        payload["choices"] = [
            {"index": i, "delta": {"content": t}, "logprobs": None, "finish_reason": None} for i, t in choices
        ]
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    moderator = StreamModerator(OpenAIChatStream(), RULES)
    events = [chunk_of((1, "x"), (0, "jane.doe@")), chunk_of((0, "example.com ")), b"data: [DONE]\n\n"]
    out = b"".join(moderator.feed(e) for e in events) + moderator.finish()
    assert any(v.rule.id == "pii.email" for v in moderator.violations)
    assert b"jane.doe" not in out


def test_a_held_block_survives_a_long_next_block_on_the_joined_view() -> None:
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(["write to jane.doe@"], ["lorem ipsum "] * 400)
    out = b"".join(moderator.feed(e) for e in events) + moderator.finish()
    assert anthropic_text(out) == "write to jane.doe@" + "lorem ipsum " * 400


# Every planted address, number and key ends at a space: whole matches, whichever blocks hold them.
SPACED = [piece if piece.endswith((" ", "\n")) else piece + " " for piece in PIECES]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    text=st.lists(st.sampled_from(SPACED), max_size=12).map("".join),
    cuts=st.lists(st.integers(0, 400), max_size=12),
    block_cuts=st.lists(st.integers(0, 400), max_size=3),
    reads=st.lists(st.integers(1, 4), max_size=30),
)
@example(text="write to jane.doe@example.com today ", cuts=[], block_cuts=[18], reads=[1] * 10)
def test_no_match_leaks_however_an_answer_is_split_into_text_blocks(
    text: str, cuts: list[int], block_cuts: list[int], reads: list[int]
) -> None:
    # Each block is a view of its own and all blocks in a row are one more: a key or an address
    # split across blocks is caught on the joined view, and no view releases any of it.
    edges = sorted({c % (len(text) + 1) for c in block_cuts} | {0, len(text)})
    blocks = []
    for lo, hi in zip(edges, edges[1:], strict=False):
        points = sorted({lo, hi} | {c for c in cuts if lo < c < hi})
        blocks.append([text[a:b] for a, b in zip(points, points[1:], strict=False)])
    events = anthropic_blocks(*blocks)
    out = fed_in_reads(StreamModerator(AnthropicStream(), RULES), events, reads)
    seen = anthropic_text(out)
    assert "jane.doe" not in seen and "@example.com" not in seen and "555-2671" not in seen
    assert SECRET[:4] not in seen


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    blocks=st.lists(
        st.tuples(
            st.sampled_from(sorted(ANTHROPIC_BLOCKS)),
            st.lists(st.sampled_from(SPACED), min_size=1, max_size=4).map("".join),
            st.lists(st.integers(0, 120), max_size=6),
        ),
        min_size=1,
        max_size=5,
    ),
    reads=st.lists(st.integers(1, 4), max_size=30),
)
def test_no_match_leaks_from_blocks_of_any_kind_decided_as_they_end(
    blocks: list[tuple[str, str, list[int]]], reads: list[int]
) -> None:
    # Blocks of mixed types, each decided when it stops (and its joined view when a block of
    # another type begins): a match inside any block never leaves, however its deltas are cut.
    kinds = [kind for kind, _, _ in blocks]
    deltas = []
    for _, text, cuts in blocks:
        points = sorted({0, len(text)} | {c % (len(text) + 1) for c in cuts})
        deltas.append([text[a:b] for a, b in zip(points, points[1:], strict=False) if b > a])
    events = anthropic_blocks(*deltas, kinds=kinds)
    out = fed_in_reads(StreamModerator(AnthropicStream(), RULES), events, reads)
    seen = "".join(anthropic_text(out, key) for key in ("text", "thinking", "partial_json"))
    assert "jane.doe" not in seen and "@example.com" not in seen and "555-2671" not in seen
    assert SECRET[:4] not in seen


def test_work_per_event_stays_flat_however_many_events_one_read_brings(monkeypatch: Any) -> None:
    # A fast upstream (or one that sends a whole answer in one HTTP chunk) brings thousands of
    # events at once; each event's render must not walk all the others still pending.
    looks = 0
    is_released = PartState.is_released

    def counted(state: PartState) -> bool:
        nonlocal looks
        looks += 1
        return bool(is_released.fget(state))  # type: ignore[attr-defined]

    monkeypatch.setattr(PartState, "is_released", property(counted))
    pii = load_rules(["pii"]).for_direction("output")
    for events in (200, 2000):
        looks = 0
        moderator = StreamModerator(OpenAIChatStream(), pii)
        out = moderator.feed(b"".join(chunk("word ") for _ in range(events)) + b"data: [DONE]\n\n")
        assert out.count(b"word") == events
        assert looks < 20 * events, events


VALUE_PIECES = [
    "abc", "XyZ9", "0", "415", "555-2671", "@", "jane.doe", "example.com", "sk-", "ghp_", "AKIA",
    "IOSFODNN7", "Q7", "password=", "hunter2hunter2", " ", "_", "-", ".", "é", "\u200b", "ＡＫＩＡ", SECRET,
    # Numbers around the shortest a pii rule can match (a value shorter than that is not scanned).
    "+1 ", "(415) ", "4111 1111 1111 1111", "078-05-1120", "GB82WEST12345698765432", "12",
    "Jg49", "Yi5",  # digits inside a word, as in a pad
]  # fmt: skip


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(VALUE_PIECES), min_size=1, max_size=6).map("".join))
def test_a_value_that_no_rule_finds_is_decided_without_a_window_and_the_same(value: str) -> None:
    # Short values that never repeat (OpenAI's per-event `obfuscation` pad) are decided by the
    # shared prefilters and one scan of the rules they wake; the answer must be a window's.
    from guardstream.channels import TextChannels
    from guardstream.normalize import needs_mapping
    from guardstream.payload import TextPart
    from guardstream.prefilter import finds_nothing
    from guardstream.window import Window

    window = Window(RULES, max_holdback_chars=len(value) + 1)
    window.append(value)
    verdict = window.flush()
    clean = not verdict.violations and window.render(0, verdict.released) == value
    if not needs_mapping(value):  # what the rules read is the value itself: the shortcut applies
        assert finds_nothing(RULES, value) == clean
    # Either way, the channels decide the value as the window does (normalising ones go to it).
    rendered, blocked = TextChannels(RULES)._check_value(TextPart((), value, ("obfuscation",)))
    assert (rendered == value and blocked is None) == clean


def test_a_secret_in_a_per_event_pad_still_ends_the_stream() -> None:
    pads = [f"pad{i}" for i in range(5)] + [SECRET]
    raw = b"".join(chunk("word ", pad=pad) for pad in pads)
    out, moderator = run(raw + b"data: [DONE]\n\n", [])
    assert SECRET.encode() not in out and moderator.blocked is not None


def test_values_that_never_repeat_do_not_grow_an_answers_memory() -> None:
    from guardstream.channels import MAX_STREAM_VALUES

    raw = b"".join(chunk("word ", pad=f"p{i}x") for i in range(600))
    out, moderator = run(raw + b"data: [DONE]\n\n", [])
    assert out.count(b"obfuscation") == 600
    channels = moderator.channels
    assert len(channels._values) <= MAX_STREAM_VALUES and len(channels._value_states) <= MAX_STREAM_VALUES


def test_pads_read_by_a_shape_are_not_remembered() -> None:
    # Every event of a real OpenAI stream has a new pad: remembering them cost ~0.5 KiB per event
    # of an answer (up to the caches' bound) and pushed out the values that do repeat.
    raw = b"".join(chunk("word ", pad=f"p{i}x") for i in range(100))
    _, moderator = run(raw + b"data: [DONE]\n\n", [])
    remembered = [text for text, _ in [*moderator.channels._values, *moderator.channels._value_states]]
    assert sum(text.startswith("p") and text.endswith("x") for text in remembered) <= 10


def test_a_tool_calls_input_streams_before_its_block_ends() -> None:
    # The tool's name and id come whole in content_block_start: they are values, not the start
    # of a text that could grow, and the input after them must not wait for content_block_stop.
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(['{"city": ', '"Paris", ', '"unit": "c"}'], kinds=["tool_use"])
    out = b"".join(moderator.feed(e) for e in events[:-2])
    assert anthropic_text(out, "partial_json").startswith('{"city": "Paris", ')


def citation(cited_text: str) -> dict[str, Any]:
    return {
        "type": "char_location",
        "cited_text": cited_text,
        "document_index": 0,
        "document_title": "Nature Guide",
        "start_char_index": 0,
        "end_char_index": len(cited_text),
    }


def test_the_text_after_a_citation_streams_before_its_block_ends() -> None:
    # A citation comes whole (the SDK keeps it in a list): its quoted text ending inside a word
    # must not hold the rest of the block back.
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(["The grass ", "is green. ", "It grows."])
    cite = anthropic_event(
        "content_block_delta", index=0, delta={"type": "citations_delta", "citation": citation("grass is green")}
    )
    out = b"".join(moderator.feed(e) for e in [*events[:2], cite, *events[2:-3]])
    assert anthropic_text(out) == "The grass is green. "


def test_a_key_in_a_citation_is_still_caught() -> None:
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(["Sure. "])
    delta = {"type": "citations_delta", "citation": citation(f"the key {SECRET} is")}
    cite = anthropic_event("content_block_delta", index=0, delta=delta)
    out = b"".join(moderator.feed(e) for e in [*events[:2], cite, *events[2:]]) + moderator.finish()
    assert SECRET not in out.decode() and moderator.blocked is not None


def test_a_key_in_a_tools_name_is_still_caught() -> None:
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(['{"q": 1}'], kinds=["tool_use"])
    events[1] = events[1].replace(b'"name": "lookup"', f'"name": "{SECRET}"'.encode())
    out = b"".join(moderator.feed(e) for e in events) + moderator.finish()
    assert SECRET not in out.decode() and moderator.blocked is not None


def test_a_text_slot_that_holds_a_list_is_still_moderated() -> None:
    # Default deny: a text field of the wrong type is not skipped as "not text".
    moderator = StreamModerator(AnthropicStream(), RULES)
    events = anthropic_blocks(["Sure. "])
    odd = anthropic_event("content_block_delta", index=0, delta={"type": "text_delta", "text": [SECRET]})
    out = b"".join(moderator.feed(e) for e in [*events[:2], odd, *events[2:]]) + moderator.finish()
    assert SECRET not in out.decode()


def test_a_block_begun_out_of_order_ends_the_stream_as_malformed() -> None:
    # The SDK appends blocks as they begin and routes a delta by its index: with block 1 begun
    # first, block 0's deltas would extend it, joining text read apart here.
    events = anthropic_blocks([f"x {SECRET[:10]}"], [f"{SECRET[10:]} y"])
    start_1 = next(e for e in events if b'"content_block_start"' in e and b'"index": 1' in e)
    reordered = [events[0], start_1, *(e for e in events[1:] if e is not start_1)]
    moderator = StreamModerator(AnthropicStream(), RULES)
    out = b"".join(moderator.feed(e) for e in reordered) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET not in out.decode()


def test_a_message_that_starts_with_content_ends_the_stream_as_malformed() -> None:
    message = {"id": "m", "type": "message", "role": "assistant", "content": [{"type": "text", "text": SECRET[:10]}]}
    events = [anthropic_event("message_start", message=message), *anthropic_blocks([SECRET[10:]])[1:]]
    moderator = StreamModerator(AnthropicStream(), RULES)
    out = b"".join(moderator.feed(e) for e in events) + moderator.finish()
    assert moderator.failure == MALFORMED_MESSAGE and SECRET[10:] not in out.decode()
