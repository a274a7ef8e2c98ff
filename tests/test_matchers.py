"""Facts about `regex` that the matchers rely on, checked rather than assumed."""

from __future__ import annotations

import pytest
import regex
from hypothesis import given, settings, strategies as st

from guardstream.matchers import (
    ASCII_LOOKALIKES,
    MAX_HOLD_MEMO,
    MAX_HOLD_MEMO_KEY,
    RegexMatcher,
    ScanTimeout,
    before_top_level_literal,
    fold,
    hold_pattern_source,
    is_linear,
    leading_lookbehind,
    min_match_length,
)
from guardstream.packs import load_rules
from guardstream.rules import Rule


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


# -- the hold-search memo --------------------------------------------------------------------------

EMAIL_LIKE = r"(?<![A-Za-z0-9._-])[A-Za-z0-9][A-Za-z0-9._-]{0,20}@[a-z]+\.[a-z]{2,}"


def _matcher(pattern: str, flags: int = 0) -> RegexMatcher:
    return RegexMatcher(regex.compile(pattern, flags))


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.text(alphabet="ab.-@ :x", min_size=1, max_size=12), st.integers(min_value=1, max_value=12)),
        min_size=1,
        max_size=30,
    )
)
def test_memoised_hold_searches_answer_what_a_fresh_search_answers(cases: list[tuple[str, int]]) -> None:
    # One matcher answers many texts, as it does for every stream: the same tail after a different
    # character before it must not reuse an answer (the lookbehind reads that character).
    matcher = _matcher(EMAIL_LIKE)
    assert matcher._hold_memo is not None
    for text, pos in cases:
        if pos < len(text):
            assert matcher._find_hold(text, pos) == matcher._search_hold(text, pos)


def test_the_same_tail_after_another_character_gets_its_own_answer() -> None:
    matcher = _matcher(EMAIL_LIKE)
    assert matcher._find_hold("say jane", 4) == 4
    # "jane" right after a letter cannot begin an address (the lookbehind), whatever was cached.
    assert matcher._find_hold("sayjane", 3) is None


@pytest.mark.parametrize(
    "pattern",
    [
        r"(?<=key: )[a-z]+@x",  # reads several characters before the search
        r"(?<!\p{L})[a-z]+@x",  # one character, but not one the memo can tell from its source
        r"\X[a-z]+@x",  # grapheme clusters
        r"(?r)[a-z]+@x",  # searches backwards
        r"(?w)\b[a-z]+@x",  # Unicode word boundaries can read further back
        r"(?V1w)\b[a-z]+@x",
    ],
)
def test_rules_that_read_further_back_are_not_memoised(pattern: str) -> None:
    assert _matcher(pattern)._hold_memo is None


def test_the_memo_stays_bounded() -> None:
    matcher = _matcher(EMAIL_LIKE)
    for n in range(MAX_HOLD_MEMO + 10):
        matcher._find_hold(f" w{n}", 1)
    assert matcher._hold_memo is not None and 0 < len(matcher._hold_memo) <= MAX_HOLD_MEMO


def test_long_tails_are_searched_not_memoised() -> None:
    matcher = _matcher(EMAIL_LIKE)
    tail = "a" * (MAX_HOLD_MEMO_KEY + 1)
    assert matcher._find_hold(" " + tail, 1) is None  # more than 21 characters cannot begin an address
    assert matcher._hold_memo == {}


# --- the shortest match a rule can make ---------------------------------------------------------

ALL_RULES = load_rules(["pii", "pii-strict", "secrets", "prompt-injection", "profanity"]).rules


@pytest.mark.parametrize(
    ("pattern", "flags", "length"),
    [
        (r"\d{3}-\d{2}-\d{4}", 0, 11),
        (r"(?<![\w.])[a-z]+@[a-z]{2,}\b", 0, 4),  # lookarounds and boundaries take no characters
        (r"ab{2,}|xyz", regex.IGNORECASE, 3),
        (r" a  b ", regex.VERBOSE, 2),  # spaces mean nothing in verbose patterns
        (r"[[:digit:]]{5}", 0, 0),  # a POSIX class: `re` would read five characters of a set
        (r"(?:abcd){e<=1}", 0, 0),  # fuzzy matching can drop one
        (r"ss", regex.IGNORECASE | regex.FULLCASE, 0),  # full case folding matches "ß"
        (r"a{3}", regex.V1, 0),
        (r"\p{Lu}{4}", 0, 4),  # a Unicode property is one character
        (r"(?P<a>x)|(?P<a>yy)", 0, 0),
    ],
)
def test_the_shortest_match_is_known_where_re_reads_the_pattern_alike(pattern: str, flags: int, length: int) -> None:
    assert min_match_length(regex.compile(pattern, flags)) == length


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if isinstance(r.matcher, RegexMatcher)], ids=lambda r: r.id)
def test_no_example_of_a_built_in_rule_is_shorter_than_its_shortest_match(rule: Rule) -> None:
    assert isinstance(rule.matcher, RegexMatcher)
    spans = [m.span() for text in rule.examples_match for m in rule.matcher.pattern.finditer(text)]
    assert spans and all(end - start >= rule.matcher.min_length for start, end in spans)


def test_a_final_scan_of_text_shorter_than_any_match_finds_nothing_without_searching() -> None:
    matcher = _matcher(r"\d{3}-\d{2}-\d{4}")
    assert matcher.min_length == 11
    assert matcher.scan("078-05-112", 0, final=True) is None
    found = matcher.scan("078-05-1120", 0, final=True)
    assert found is not None and found.matches == [(0, 11)]


@pytest.mark.parametrize(
    ("pattern", "lookbehind"),
    [
        (r"(?<![\w.+-])[0-9]{3}", r"(?<![\w.+-])"),
        (r"(?<![\w.-])(?<![=+][ ]?)[0-9]{3}", r"(?<![\w.-])"),  # the first of several
        (r"(?<!\d)(?:12|34)", r"(?<!\d)"),
        (r"(?<![\w])12|34", ""),  # one branch of a top-level alternation: not every match
        (r"(?<=[ ])12", ""),  # positive: says where matches may begin, not where they may not
        (r"(?<!ab)12", ""),  # reads two characters
        (r"12(?<!x)", ""),  # not where a match begins
        (r"[[:digit:]](?<![x])", ""),
    ],
)
def test_the_lookbehind_every_match_begins_after(pattern: str, lookbehind: str) -> None:
    assert leading_lookbehind(regex.compile(pattern)) == lookbehind


# -- hold searches without a timeout ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("pattern", "before"),
    [
        (r"(?<![a-z])[a-z][a-z.]{0,20}@[a-z]+\.[a-z]{2,}", r"(?<![a-z])[a-z][a-z.]{0,20}"),
        (r"(?<!(?<!mailto):)[a-z]+@(?:x|y)", r"(?<!(?<!mailto):)[a-z]+"),
        (r"[@]?[a-z]+\@x@y", r"[@]?[a-z]+\@x"),  # in a class, or escaped, it is not the literal
    ],
)
def test_the_part_of_a_pattern_before_its_required_literal(pattern: str, before: str) -> None:
    assert before_top_level_literal(pattern, "@") == before


@pytest.mark.parametrize(
    "pattern",
    [
        r"[a-z]+@x|@y",  # another branch
        r"(?:[a-z]+@x)",  # inside a group
        r"[a-z]+@?x",  # optional
        r"[a-z]+@+x",  # repeated
        r"@x",  # first: nothing comes before it
        r"[a-z]+x",  # absent
    ],
)
def test_no_part_before_a_literal_that_is_not_plainly_at_the_top_level(pattern: str) -> None:
    assert before_top_level_literal(pattern, "@") is None


@pytest.mark.parametrize(
    ("pattern", "linear"),
    [
        (r"(?<![A-Za-z0-9._%+/-])(?<!(?<!mailto):)[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}(?=[\s\S])(?!)", True),
        (r"(?<![\w.+/-])0[0-9]{1,3}", True),
        (r"[a-z]+[0-9]+", False),  # two repeats: each start may try every split
        (r"(?:a|aa)+", False),  # alternation
        (r"(a+)+", False),  # a repeat of a repeat
        (r"(a)\1+", False),  # back-reference
        (r"\p{L}+", True),  # a Unicode property is one character
        (r"(?<!(?<!ab|c):)x", False),  # a look-behind of two widths: `re` cannot read it, nothing is known
    ],
)
def test_linear_patterns_are_those_with_at_most_one_repeat_of_one_character(pattern: str, linear: bool) -> None:
    assert is_linear(regex.compile(pattern)) is linear


def test_an_address_rule_searches_its_hold_without_a_timeout_until_an_at_sign_comes() -> None:
    # `regex` reads the process's CPU clock three times per call with a timeout (system calls):
    # the hold search of the e-mail rule runs on nearly every delta of prose.
    email = next(r for r in load_rules(["pii"]).rules if r.id == "pii.email").matcher
    assert isinstance(email, RegexMatcher)
    assert email.early_hold_timeout is None and email.timeout is not None


def test_a_rule_that_can_backtrack_before_its_required_literal_keeps_its_timeout() -> None:
    slow = RegexMatcher(regex.compile(r"(?:a|aa)+@x"), contains=["@"], timeout=0.001)
    assert slow.early_hold_timeout == 0.001
    with pytest.raises(ScanTimeout):
        slow.scan("a" * 40 + "c", 0, final=False)
