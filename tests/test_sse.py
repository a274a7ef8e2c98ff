from __future__ import annotations

import re
from itertools import pairwise

import pytest
from hypothesis import given, settings, strategies as st

from guardstream.sse import Event, SSEDecoder, encode_event

# (data, event, id, retry, has_data): everything an Event carries apart from its raw bytes.
Fields = tuple[str, str | None, str | None, int | None, bool]


def _fields(event: Event) -> Fields:
    return (event.data, event.event, event.id, event.retry, event.has_data)


def _decode_chunks(chunks: list[bytes]) -> tuple[list[Event], SSEDecoder]:
    decoder = SSEDecoder()
    events: list[Event] = []
    for chunk in chunks:
        events.extend(decoder.decode(chunk))
    events.extend(decoder.flush())
    return events, decoder


def _split_at(stream: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(stream)]
    return [stream[start:end] for start, end in pairwise(bounds)]


# Transcripts and the blocks they must decode to, whatever the chunking.

_OPENAI_PAYLOADS = [
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"role":"assistant","content":""}}]}',
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"Hello"}}]}',
    '{"id":"chatcmpl-1","object":"chat.completion.chunk","choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}',
    "[DONE]",
]
OPENAI = "".join(f"data: {payload}\n\n" for payload in _OPENAI_PAYLOADS).encode()
OPENAI_EVENTS: list[Fields] = [(payload, None, None, None, True) for payload in _OPENAI_PAYLOADS]

_ANTHROPIC_PAIRS = [
    ("message_start", '{"type":"message_start","message":{"id":"msg_01","content":[]}}'),
    ("content_block_start", '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'),
    ("ping", '{"type":"ping"}'),
    ("content_block_delta", '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}'),
    ("message_stop", '{"type":"message_stop"}'),
]
ANTHROPIC = "".join(f"event: {name}\ndata: {payload}\n\n" for name, payload in _ANTHROPIC_PAIRS).encode()
ANTHROPIC_EVENTS: list[Fields] = [(payload, name, None, None, True) for name, payload in _ANTHROPIC_PAIRS]

_GEMINI_PAYLOADS = [
    '{"candidates":[{"content":{"parts":[{"text":"Hel"}],"role":"model"}}]}',
    '{"candidates":[{"content":{"parts":[{"text":"lo"}],"role":"model"},"finishReason":"STOP"}]}',
]
GEMINI = "".join(f"data: {payload}\r\n\r\n" for payload in _GEMINI_PAYLOADS).encode()
GEMINI_EVENTS: list[Fields] = [(payload, None, None, None, True) for payload in _GEMINI_PAYLOADS]

LONE_CR = b"event: a\rdata: one\r\rdata: two\rdata: three\r\r"
LONE_CR_EVENTS: list[Fields] = [("one", "a", None, None, True), ("two\nthree", None, None, None, True)]

MIXED_LINE_ENDINGS = b"event: e\r\nid: 1\rdata: one\ndata: two\r\n\r\n: c\rdata: three\n\n"
MIXED_LINE_ENDINGS_EVENTS: list[Fields] = [("one\ntwo", "e", "1", None, True), ("three", None, None, None, True)]

UTF8 = 'event: réponse\ndata: {"text": "héllo wörld 日本語 🎉"}\n\ndata: 🎉🎉\n\n'.encode()
UTF8_EVENTS: list[Fields] = [
    ('{"text": "héllo wörld 日本語 🎉"}', "réponse", None, None, True),
    ("🎉🎉", None, None, None, True),
]

BOM = b"\xef\xbb\xbfdata: first\n\ndata: \xef\xbb\xbfsecond\n\n"
BOM_EVENTS: list[Fields] = [("first", None, None, None, True), ("\ufeffsecond", None, None, None, True)]

COMMENTS = b": keep-alive\n\ndata: a\n: mid-block comment\ndata: b\n\n:\n\n"
COMMENTS_EVENTS: list[Fields] = [
    ("", None, None, None, False),
    ("a\nb", None, None, None, True),
    ("", None, None, None, False),
]

MULTILINE = b"data: line one\ndata:\ndata:  indented\n\n\n"
MULTILINE_EVENTS: list[Fields] = [("line one\n\n indented", None, None, None, True), ("", None, None, None, False)]

UNKNOWN_FIELDS = b"foo: bar\nData: no\nDATA: no\ndata\nevent\n\nevent: ping\n\n"
UNKNOWN_FIELDS_EVENTS: list[Fields] = [("", "", None, None, True), ("", "ping", None, None, False)]

ID_AND_RETRY = (
    b"id: 1\nretry: 3000\ndata: x\n\n"
    b"id: a\0b\nretry: +5\nretry:  9\nretry: \xef\xbc\x95\nretry:\ndata: y\n\n"
    b"id\nretry: 12a\nretry: 7\nid: 2\nid: 3\ndata: z\n\n"
)
ID_AND_RETRY_EVENTS: list[Fields] = [
    ("x", None, "1", 3000, True),
    ("y", None, None, None, True),
    ("z", None, "3", 7, True),
]

TRANSCRIPTS = pytest.mark.parametrize(
    ("transcript", "expected"),
    [
        pytest.param(OPENAI, OPENAI_EVENTS, id="openai"),
        pytest.param(ANTHROPIC, ANTHROPIC_EVENTS, id="anthropic"),
        pytest.param(GEMINI, GEMINI_EVENTS, id="gemini-crlf"),
        pytest.param(LONE_CR, LONE_CR_EVENTS, id="lone-cr"),
        pytest.param(MIXED_LINE_ENDINGS, MIXED_LINE_ENDINGS_EVENTS, id="mixed-line-endings"),
        pytest.param(UTF8, UTF8_EVENTS, id="multibyte-utf8"),
        pytest.param(BOM, BOM_EVENTS, id="bom"),
        pytest.param(COMMENTS, COMMENTS_EVENTS, id="comments"),
        pytest.param(MULTILINE, MULTILINE_EVENTS, id="multiline-data"),
        pytest.param(UNKNOWN_FIELDS, UNKNOWN_FIELDS_EVENTS, id="unknown-fields"),
        pytest.param(ID_AND_RETRY, ID_AND_RETRY_EVENTS, id="id-and-retry"),
    ],
)


@TRANSCRIPTS
def test_decode_is_independent_of_chunk_boundaries(transcript: bytes, expected: list[Fields]) -> None:
    for split in range(len(transcript) + 1):
        events, decoder = _decode_chunks([transcript[:split], transcript[split:]])
        assert [_fields(event) for event in events] == expected, f"split at {split}"
        assert b"".join(event.raw for event in events) == transcript, f"split at {split}"
        assert decoder.discarded == b""


@TRANSCRIPTS
def test_decode_one_byte_at_a_time(transcript: bytes, expected: list[Fields]) -> None:
    events, decoder = _decode_chunks([transcript[i : i + 1] for i in range(len(transcript))])
    assert [_fields(event) for event in events] == expected
    assert b"".join(event.raw for event in events) == transcript
    assert decoder.discarded == b""


def test_decode_returns_each_block_with_its_raw_bytes() -> None:
    events, _ = _decode_chunks([COMMENTS])
    assert [event.raw for event in events] == [
        b": keep-alive\n\n",
        b"data: a\n: mid-block comment\ndata: b\n\n",
        b":\n\n",
    ]


def test_decode_keeps_bom_in_first_raw_only() -> None:
    events, _ = _decode_chunks([b"\xef", b"\xbb", b"\xbfdata: x\n\n", b"data: y\n\n"])
    assert [event.raw for event in events] == [b"\xef\xbb\xbfdata: x\n\n", b"data: y\n\n"]
    assert events[0].data == "x"


def test_decode_strips_only_one_bom() -> None:
    events, _ = _decode_chunks([b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n"])
    # The second BOM is part of the field name, which makes it an unknown field.
    assert _fields(events[0]) == ("", None, None, None, False)


# The examples of https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
# (§9.2.6), copied verbatim.


def test_decode_whatwg_example_multiline_data() -> None:
    events, _ = _decode_chunks([b"data: YHOO\ndata: +2\ndata: 10\n\n"])
    assert [_fields(event) for event in events] == [("YHOO\n+2\n10", None, None, None, True)]


def test_decode_whatwg_example_comment_and_ids() -> None:
    stream = b": test stream\n\ndata: first event\nid: 1\n\ndata:second event\nid\n\ndata:  third event\n\n"
    events, _ = _decode_chunks([stream])
    assert [_fields(event) for event in events] == [
        ("", None, None, None, False),
        ("first event", None, "1", None, True),
        ("second event", None, "", None, True),
        (" third event", None, None, None, True),
    ]


def test_decode_whatwg_example_empty_data_and_unterminated_block() -> None:
    events, decoder = _decode_chunks([b"data\n\ndata\ndata\n\ndata:"])
    assert [_fields(event) for event in events] == [("", None, None, None, True), ("\n", None, None, None, True)]
    assert decoder.discarded == b"data:"


def test_decode_whatwg_example_space_after_colon_is_optional() -> None:
    events, _ = _decode_chunks([b"data:test\n\ndata: test\n\n"])
    assert [_fields(event) for event in events] == [("test", None, None, None, True)] * 2


def test_flush_discards_unterminated_block() -> None:
    decoder = SSEDecoder()
    assert [event.data for event in decoder.decode(b"data: kept\n\nevent: x\ndata: lost\ndata: part")] == ["kept"]
    assert decoder.flush() == []
    assert decoder.discarded == b"event: x\ndata: lost\ndata: part"


def test_flush_discards_block_without_blank_line() -> None:
    events, decoder = _decode_chunks([b"data: a\n\n", b"data: b\n"])
    assert [event.data for event in events] == ["a"]
    assert decoder.discarded == b"data: b\n"


def test_flush_dispatches_block_ended_by_held_cr() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r\r") == []  # the last CR might be half of a CRLF
    assert [event.raw for event in decoder.flush()] == [b"data: a\r\r"]
    assert decoder.discarded == b""


def test_decode_treats_crlf_split_across_chunks_as_one_line_ending() -> None:
    decoder = SSEDecoder()
    assert decoder.decode(b"data: a\r") == []
    assert decoder.decode(b"\n\r") == []
    events = decoder.decode(b"\n")
    assert [(event.raw, event.data) for event in events] == [(b"data: a\r\n\r\n", "a")]
    assert decoder.line_ending == "\r\n"


@pytest.mark.parametrize(
    ("stream", "line_ending"),
    [
        (b"", "\n"),
        (b"data: a\n\n", "\n"),
        (GEMINI, "\r\n"),
        (LONE_CR, "\r"),
        (b"data: a\n\r\n", "\n"),
    ],
)
def test_line_ending_is_first_seen(stream: bytes, line_ending: str) -> None:
    _, decoder = _decode_chunks([stream])
    assert decoder.line_ending == line_ending


@pytest.mark.parametrize("char", ["\u2028", "\u2029", "\x85", "\x0b", "\x0c"])
def test_decode_unicode_line_separators_are_not_line_breaks(char: str) -> None:
    stream = f'data: {{"t":"a{char}b"}}\n\n'.encode()
    events, _ = _decode_chunks([stream])
    assert [event.data for event in events] == [f'{{"t":"a{char}b"}}']


def test_decode_replaces_invalid_utf8() -> None:
    events, _ = _decode_chunks([b"data: a\xff\xe6\x97b\n\n"])
    assert events[0].data == "a\ufffd\ufffdb"


def test_event_encode_returns_raw_for_decoded_event() -> None:
    stream = b"\xef\xbb\xbf: hi\r\nevent:x\r\ndata:  spaced\r\n\r\n"
    events, _ = _decode_chunks([stream])
    assert events[0].encode() == stream
    assert events[0].encode(line_ending="\r") == stream


def test_event_encode_fresh_without_raw() -> None:
    assert Event(b"", data="a\nb", event="e").encode() == b"event: e\ndata: a\ndata: b\n\n"
    assert Event(b"", data="", has_data=True).encode(line_ending="\r\n") == b"data: \r\n\r\n"
    assert Event(b"", id="7", retry=10).encode() == b"id: 7\nretry: 10\n\n"


def test_encode_event_with_crlf_line_ending() -> None:
    assert encode_event("a\nb", "msg", line_ending="\r\n") == b"event: msg\r\ndata: a\r\ndata: b\r\n\r\n"


def test_encode_event_splits_data_on_cr_lf_and_crlf_only() -> None:
    assert encode_event("a\rb\r\nc\nd\u2028e") == "data: a\ndata: b\ndata: c\ndata: d\u2028e\n\n".encode()


def test_encode_event_rejects_line_break_in_event_name() -> None:
    with pytest.raises(ValueError, match="line break"):
        encode_event("x", "evil\ndata: injected")


def test_event_encode_rejects_negative_retry() -> None:
    with pytest.raises(ValueError, match="retry"):
        Event(b"", retry=-1).encode()


def test_encode_event_rejects_unknown_line_ending() -> None:
    with pytest.raises(ValueError, match="line_ending"):
        encode_event("x", line_ending="\n\n")


# Properties.

_EVENT_NAMES = st.none() | st.text(st.characters(codec="utf-8", exclude_characters="\r\n"), max_size=12)
_DATA = st.text(st.characters(codec="utf-8"), max_size=40) | st.sampled_from(["", "\n", "\r\n", "a\rb", "\u2028"])


@settings(database=None, max_examples=300)
@given(
    events=st.lists(st.tuples(_DATA, _EVENT_NAMES), max_size=8),
    line_ending=st.sampled_from(["\n", "\r\n", "\r"]),
    data=st.data(),
)
def test_decode_round_trips_encode_event(
    events: list[tuple[str, str | None]], line_ending: str, data: st.DataObject
) -> None:
    stream = b"".join(encode_event(text, name, line_ending=line_ending) for text, name in events)
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    decoded, decoder = _decode_chunks(_split_at(stream, points))
    # Line breaks inside data travel as separate data lines and come back as "\n".
    assert [(event.data, event.event) for event in decoded] == [
        (re.sub(r"\r\n|\r", "\n", text), name) for text, name in events
    ]
    assert all(event.has_data for event in decoded)
    assert b"".join(event.raw for event in decoded) == stream
    assert decoder.discarded == b""


def _reference_decode(stream: bytes) -> list[Fields]:
    """A deliberately naive, whole-stream reading of the WHATWG algorithm, to check the incremental decoder."""
    text = stream.decode("utf-8", "replace").removeprefix("\ufeff")
    *lines, _unterminated = re.split(r"\r\n|\r|\n", text)
    blocks: list[Fields] = []
    data: list[str] = []
    event: str | None = None
    id_: str | None = None
    retry: int | None = None
    for line in lines:
        if line == "":
            blocks.append(("\n".join(data), event, id_, retry, bool(data)))
            data, event, id_, retry = [], None, None, None
        elif line.startswith(":"):
            pass
        else:
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "data":
                data.append(value)
            elif name == "event":
                event = value
            elif name == "id" and "\0" not in value:
                id_ = value
            elif name == "retry" and value.isascii() and value.isdigit():
                retry = int(value)
    return blocks


_STREAM_PIECES = [
    b"\r", b"\n", b"\r\n", b"data", b"event", b"id", b"retry", b":", b" ", b"x", b"12",
    b"\xef\xbb\xbf", b"\xe6\x97\xa5", b"\xe6", b"\xff", b"\x00", b"\xe2\x80\xa8", b"\xc2\x85",
]  # fmt: skip


@settings(database=None, max_examples=500)
@given(pieces=st.lists(st.sampled_from(_STREAM_PIECES), max_size=40), data=st.data())
def test_decode_matches_reference_and_accounts_for_every_byte(pieces: list[bytes], data: st.DataObject) -> None:
    stream = b"".join(pieces)
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    events, decoder = _decode_chunks(_split_at(stream, points))
    assert [_fields(event) for event in events] == _reference_decode(stream)
    assert b"".join(event.raw for event in events) + decoder.discarded == stream


_BLOCKS = [
    b"data: plain\n\n", b"data:no space\n\n", b"data:  two spaces\n\n", b"data: \xe6\x97\xa5\n\n",
    b"data: bad \xff\n\n", b"data: a\ndata: b\n\n", b": keep-alive\n\n", b"id: 7\ndata: x\n\n",
    b"data: crlf\r\n\r\n", b"event: e\ndata: y\n\n", b"data: {\"a\":1}\n\n", b"\n",
]  # fmt: skip


@settings(database=None, max_examples=300)
@given(blocks=st.lists(st.sampled_from(_BLOCKS), min_size=1, max_size=30), data=st.data())
def test_reads_of_many_blocks_decode_as_one_block_at_a_time(blocks: list[bytes], data: st.DataObject) -> None:
    # Reads that hold many whole blocks take a one-pass path for data-only blocks; each event
    # (bytes, fields and whether it may be relayed as it came) must be what byte-by-byte reading gives.
    stream = b"data: first\n\n" + b"".join(blocks)
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=4))
    batched, _ = _decode_chunks(_split_at(stream, points))
    single, _ = _decode_chunks([stream[i : i + 1] for i in range(len(stream))])
    assert [(e.raw, _fields(e), e.is_plain) for e in batched] == [(e.raw, _fields(e), e.is_plain) for e in single]
