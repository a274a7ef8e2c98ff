"""Evasion (#6): rules see through invisible characters and look-alikes; the text stays as sent."""

from __future__ import annotations

import json
import unicodedata

import pytest
from hypothesis import given, settings, strategies as st

from guardstream.normalize import INVISIBLE, JsonTextMap, OffsetMap, needs_mapping
from guardstream.packs import load_rules
from guardstream.window import Window, moderate_text, stream_chunks

RULES = load_rules(["secrets", "pii"]).for_direction("output")
SECRET = "AKIA4HJQ7XRZ2PLWKD5N"
EMAIL = "jane.doe@example.com"
INVISIBLES = ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad"]

# One code point of each kind of default-ignorable character beyond the classic zero-width ones:
# each draws as nothing, so a key split by it is read (and copied) whole.
IGNORABLES = {
    "combining grapheme joiner": "\u034f",
    "Arabic letter mark": "\u061c",
    "Hangul choseong filler": "\u115f",
    "Hangul jungseong filler": "\u1160",
    "Hangul filler": "\u3164",
    "half-width Hangul filler": "\uffa0",
    "Khmer vowel inherent AQ": "\u17b4",
    "Khmer vowel inherent AA": "\u17b5",
    "Mongolian free variation selector one": "\u180b",
    "Mongolian free variation selector four": "\u180f",
    "Mongolian vowel separator": "\u180e",
    "variation selector-1": "\ufe00",
    "variation selector-16": "\ufe0f",
    "variation selector-17": "\U000e0100",
    "variation selector-256": "\U000e01ef",
    "shorthand format letter overlap": "\U0001bca0",
    "musical symbol begin beam": "\U0001d173",
    "tag latin small letter a": "\U000e0061",
    "unassigned default-ignorable": "\ufff0",
    "unassigned in the tag plane": "\U000e0fff",
}


def fullwidth(ch: str) -> str:
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


@st.composite
def disguised(draw: st.DrawFn, text: str) -> str:
    out = []
    for ch in text:
        if draw(st.booleans()):
            ch = fullwidth(ch)
        out.append(ch)
        if draw(st.integers(0, 3)) == 0:
            out.append(draw(st.sampled_from(INVISIBLES)))
    return "".join(out)


def chunked(text: str, cuts: list[int]) -> list[str]:
    points = sorted({c % (len(text) + 1) for c in cuts} | {0, len(text)})
    return [text[a:b] for a, b in zip(points, points[1:], strict=False)]


@settings(max_examples=150, deadline=None)
@given(
    secret=disguised(SECRET),
    before=st.sampled_from(["key: ", "ｋｅｙ ", "é日 ", ""]),
    cuts=st.lists(st.integers(0, 200)),
)
def test_a_disguised_secret_is_blocked_before_any_of_it_leaves(secret: str, before: str, cuts: list[int]) -> None:
    text = before + secret + " done"
    out, _, blocked = stream_chunks(RULES, chunked(text, cuts))
    assert blocked is not None and blocked.rule.id == "secrets.aws-access-key-id"
    assert before.startswith(out)


@settings(max_examples=150, deadline=None)
@given(email=disguised(EMAIL), cuts=st.lists(st.integers(0, 200)))
def test_a_disguised_address_is_redacted_and_the_rest_is_left_as_sent(email: str, cuts: list[int]) -> None:
    text = "write to " + email + " — ｔｈａｎｋｓ\u200b!"
    out, _, blocked = stream_chunks(RULES, chunked(text, cuts))
    assert blocked is None
    # Invisible characters after the address are not part of it, and stay where they were.
    trailing = email[len(email.rstrip("".join(INVISIBLES))) :]
    assert out == "write to [REDACTED:email]" + trailing + " — ｔｈａｎｋｓ\u200b!"


def test_text_that_needs_no_mapping_costs_no_copy() -> None:
    window = Window(RULES)
    window.push("plain ascii text ")
    window.push("und schön")
    assert window._orig is None  # the rules read the text itself
    assert not needs_mapping("und schön") and needs_mapping("ｓ") and needs_mapping("a\u200bb")


def test_normalising_can_be_switched_off() -> None:
    text = "key " + "\u200b".join(SECRET)
    assert moderate_text(RULES, text).blocked is not None
    assert moderate_text(RULES, text, normalize=False).blocked is None


def test_an_expanding_character_is_released_whole() -> None:
    offsets = OffsetMap()
    assert offsets.append("a\ufb01b") == "afib"  # ﬁ -> fi
    assert [offsets.release_to_orig(n) for n in range(5)] == [0, 1, 1, 2, 3]
    assert offsets.span_to_orig(2, 3) == (1, 2)  # the "i" of "fi" is the ligature


def test_offsets_survive_trimming() -> None:
    offsets = OffsetMap()
    offsets.append("ａｂ\u200bc")
    offsets.append("d" * 10)
    offsets.trim(4)
    assert offsets.to_norm(5) == 4 and offsets.release_to_orig(4) == 5


@given(st.text(max_size=40))
def test_mapping_agrees_with_per_character_normalisation(text: str) -> None:
    offsets = OffsetMap()
    normal = offsets.append(text)
    expected = "".join("" if INVISIBLE.match(ch) else unicodedata.normalize("NFKC", ch) for ch in text)
    assert normal == expected
    assert offsets.release_to_orig(len(normal)) == len(text)
    assert all(offsets.to_norm(i) <= offsets.to_norm(i + 1) for i in range(len(text)))


@pytest.mark.parametrize("ignorable", IGNORABLES.values(), ids=IGNORABLES.keys())
def test_a_key_split_by_any_default_ignorable_character_is_blocked(ignorable: str) -> None:
    text = f"key {SECRET[:4]}{ignorable}{SECRET[4:]} end"
    blocked = moderate_text(RULES, text).blocked
    assert blocked is not None and blocked.rule.id == "secrets.aws-access-key-id"


@settings(max_examples=150, deadline=None)
@given(
    ignorable=st.sampled_from(sorted(IGNORABLES.values())),
    at=st.integers(1, len(SECRET) - 1),
    cuts=st.lists(st.integers(0, 200)),
)
def test_a_key_split_by_a_default_ignorable_character_is_blocked_before_any_of_it_leaves(
    ignorable: str, at: int, cuts: list[int]
) -> None:
    text = "key: " + SECRET[:at] + ignorable + SECRET[at:] + " done"
    out, _, blocked = stream_chunks(RULES, chunked(text, cuts))
    assert blocked is not None and blocked.rule.id == "secrets.aws-access-key-id"
    assert "key: ".startswith(out)


def test_ordinary_whitespace_is_not_invisible() -> None:
    offsets = OffsetMap()
    spaces = " \t\n\r\u00a0\u2003\u3000"
    assert [ch for ch in spaces if INVISIBLE.match(ch)] == []
    assert len(offsets.append("a" + spaces + "b")) == len(spaces) + 2


# -- JSON text inside a string (tool-call arguments) -------------------------------------------------


def read_json_text(raw: str, cuts: list[int], *, normalize: bool = False) -> tuple[str, JsonTextMap]:
    offsets = JsonTextMap(normalize=normalize)
    decoded = "".join(offsets.append(piece) for piece in chunked(raw, cuts)) + offsets.finish()
    return decoded, offsets


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=30), ascii_only=st.booleans(), cuts=st.lists(st.integers(0, 200)))
def test_json_text_reads_as_the_clients_parser_reads_it(value: str, ascii_only: bool, cuts: list[int]) -> None:
    raw = json.dumps({"k": value}, ensure_ascii=ascii_only)
    decoded, offsets = read_json_text(raw, cuts)
    assert decoded == '{"k": "' + value + '"}'
    assert offsets.release_to_orig(len(decoded)) == len(raw)


@settings(max_examples=300, deadline=None)
@given(value=st.text(max_size=30), cuts=st.lists(st.integers(0, 200)))
def test_each_decoded_character_maps_back_to_its_whole_escape(value: str, cuts: list[int]) -> None:
    raw = json.dumps(value)  # every non-ASCII character as \uXXXX, astral ones as a surrogate pair
    decoded, offsets = read_json_text(raw, cuts)
    for at, ch in enumerate(decoded):
        start, end = offsets.span_to_orig(at, at + 1)
        assert raw[start:end] == ch or json.loads('"' + raw[start:end] + '"') == ch


@pytest.mark.parametrize("cut_off", ["\\", "\\u", "\\u00", "\\u004", "\\ud83d", "\\ud83d\\", "\\ud83d\\ude0"])
def test_an_escape_cut_off_at_the_end_is_held_until_it_is_complete(cut_off: str) -> None:
    offsets = JsonTextMap()
    assert offsets.append('{"k": "ab' + cut_off) == '{"k": "ab'
    assert offsets.release_to_orig(len('{"k": "ab')) == len('{"k": "ab')


def test_a_surrogate_pair_is_one_character_and_a_lone_half_a_replacement() -> None:
    assert JsonTextMap(normalize=False).append("\\ud83d\\ude00 \\ud83d \\ude00x") == "\U0001f600 \ufffd \ufffdx"


def test_an_escape_still_incomplete_at_the_end_is_read_as_written() -> None:
    offsets = JsonTextMap()
    assert offsets.append("ab\\u00") == "ab"
    assert offsets.finish() == "\\u00"


def test_a_decoded_escape_is_normalised_like_any_character() -> None:
    assert JsonTextMap().append("A\\u200bK\\uff29A") == "AKIA"  # zero-width space, full-width I
    assert JsonTextMap(normalize=False).append("A\\u200bK") == "A\u200bK"


def test_an_invalid_escape_stands_for_itself() -> None:
    assert JsonTextMap().append("a\\x\\u12G4") == "a\\x\\u12G4"


def test_json_text_without_escapes_costs_no_copy() -> None:
    text = '{"city": "Paris"}'
    assert JsonTextMap().append(text) is text
