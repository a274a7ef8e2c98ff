"""Strict JSON and default-deny text extraction (#6)."""

from __future__ import annotations

import pytest

from guardstream.payload import AmbiguousJSON, TextPart, TextWalker, loads_strict, set_text

WALKER = TextWalker(structural=frozenset({"id", "type"}), known_keys=frozenset({"id", "type", "text", "items"}))


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b'{"a": 1, "a": 2}', "twice"),
        (b'{"a": NaN}', "NaN"),
        (b'{"a": Infinity}', "Infinity"),
        (b'{"a": 1e400}', "too large"),
        (b'{"a": 1} trailing', "not valid JSON"),
        (b'{"a": "\xff"}', "not valid UTF-8"),
        (b"[" * 100_000, "nested too deeply"),
        (b'{"a": ' + b"1" * 4301 + b"}", "not valid JSON"),
        (b'\xef\xbb\xbf{"a": 1}', "byte-order mark"),
        (b'{"a": "x\\ud83d y"}', "unpaired surrogate"),
        (b'{"a": "x\\udc00"}', "unpaired surrogate"),
        (b'{"a": "\\udf89\\ud83c"}', "unpaired surrogate"),
        (b'{"\\uD83D": 1}', "unpaired surrogate"),
    ],
)
def test_ambiguous_json_is_refused_with_the_reason(body: bytes, reason: str) -> None:
    with pytest.raises(AmbiguousJSON, match=reason):
        loads_strict(body)


def test_plain_json_parses_and_keeps_big_integers_exact() -> None:
    assert loads_strict('{"n": 123456789012345678901234567890}') == {"n": 123456789012345678901234567890}


def test_a_surrogate_pair_is_one_character_and_an_escaped_backslash_no_escape() -> None:
    assert loads_strict(b'{"a": "\\ud83c\\udf89"}') == {"a": "\U0001f389"}
    assert loads_strict(b'{"a": "\\\\ud83d"}') == {"a": "\\ud83d"}


def walk(node: object) -> list[TextPart]:
    parts: list[TextPart] = []
    WALKER.walk(node, (), "", lambda field: (("f", field),), parts)
    return parts


def test_every_string_is_text_unless_its_key_is_structural() -> None:
    parts = walk({"id": "x1", "text": "hello", "items": [{"text": "a"}, {"text": "b"}], "new_field": "tomorrow"})
    assert [(p.text, p.views, p.is_key) for p in parts] == [
        ("x1", (), False),
        ("hello", (("f", "text"),), False),
        ("a", (("f", "items.text"),), False),
        ("b", (("f", "items.text"),), False),
        ("new_field", (), True),
        ("tomorrow", (("f", "new_field"),), False),
    ]


def test_a_data_url_in_a_text_field_is_read_as_text() -> None:
    assert [p.text for p in walk({"text": "data:image/png;base64,AAAA"})] == ["data:image/png;base64,AAAA"]


def test_a_whole_base64_data_url_in_a_media_field_is_not_read() -> None:
    walker = TextWalker(frozenset(), frozenset({"image", "url"}), media=frozenset({"image.url"}))
    parts: list[TextPart] = []
    walker.walk({"image": {"url": "data:image/png;base64,AAAA"}}, (), "", lambda field: (("f", field),), parts)
    assert parts == []


def test_a_key_is_renamed_in_place() -> None:
    payload = {"a": 1, "secret-key": {"text": "x"}, "z": 2}
    (key,) = [p for p in walk(payload) if p.is_key and p.text == "secret-key"]
    set_text(payload, key, "[REDACTED]")
    assert list(payload) == ["a", "[REDACTED]", "z"]
