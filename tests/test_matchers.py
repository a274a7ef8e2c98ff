"""Facts about `regex` that the matchers rely on, checked rather than assumed."""

from __future__ import annotations

import regex

from guardstream.matchers import ASCII_LOOKALIKES, fold, hold_pattern_source


def test_ascii_lookalikes_are_every_non_ascii_character_ignorecase_matches_to_ascii() -> None:
    letter = regex.compile(r"(?i)[a-z]")
    found = {chr(cp) for cp in range(0x80, 0x30000) if letter.match(chr(cp))}
    assert found == set(ASCII_LOOKALIKES)


def test_fold_keeps_length_and_maps_lookalikes() -> None:
    text = "İgnore ſecret Key ÉÀ"
    assert fold(text) == "ignore secret key ÉÀ"
    assert len(fold(text)) == len(text)


def test_hold_pattern_relaxes_boundaries_outside_classes_only() -> None:
    assert hold_pattern_source(r"\bab\B") == r"(?:\b|(?![\s\S]))ab(?:\B|(?![\s\S]))"
    assert hold_pattern_source(r"[\b]\\b") == r"[\b]\\b"
    assert hold_pattern_source(r"[]\b]x\b") == r"[]\b]x(?:\b|(?![\s\S]))"


def test_partial_matching_prefers_complete_matches() -> None:
    # Why the window asks a separate hold pattern: "123" is reported complete though "1234" may follow.
    m = regex.compile(r"\d+").search("abc 123", partial=True)
    assert m is not None and not m.partial


def test_hold_patterns_make_lazy_and_possessive_repeats_greedy() -> None:
    assert hold_pattern_source(r"a{0,20}?b*?c+?d??(?:e)??f*+") == r"a{0,20}b*c+d?(?:e)?f*"
    # Escaped characters, classes and group syntax are not repeats.
    assert hold_pattern_source(r"\??x[?*]+?(?:y)\{1,2}?") == r"\??x[?*]+(?:y)\{1,2}?"


def test_a_rule_with_a_lazy_repeat_holds_nothing_after_its_complete_match() -> None:
    # `regex`'s partial search ran every attempt after a lazy repeat into the end of the text: the
    # rule held all that followed its literal, and past the hold-back cap it was forced out.
    from guardstream.packs import load_rules
    from guardstream.window import Window

    rule = next(r for r in load_rules(["secrets"]).rules if r.id == "secrets.sumologic-access-id")
    window = Window([rule])
    verdict = window.push('sumologic.accessId = "suXZBYgSox7WeA" and then ' + "a long answer " * 60)
    assert verdict.blocked is not None and verdict.forced_chars == 0
