"""The shared prefilters' shortcuts give the answers of the searches they stand in front of."""

from __future__ import annotations

from hypothesis import given, settings, strategies as st

from guardstream import Config, Guard
from guardstream.matchers import RegexMatcher, fold
from guardstream.packs import load_rules
from guardstream.prefilter import SharedLiterals, _longest_tail, finds_nothing, finds_nothing_in_any, group_rules

GROUPS = group_rules(load_rules(["pii", "pii-strict", "secrets"]).for_direction("output"))
CLASS_SEARCHES = [g.shared for g in GROUPS if g.shared is not None and g.shared.search is not None]
LITERAL_SEARCHES = [g.shared for g in GROUPS if g.shared is not None and g.shared.literals is not None]


def literal_tails(shared: SharedLiterals) -> set[str]:
    """The folded proper prefixes of the literals of the rules that `shared` searches for."""
    rules = [r for g in GROUPS if g.shared is shared for r in g.rules]
    return {fold(p) for r in rules if r.matcher.prefilter is not None for p in r.matcher.prefilter.tail_prefixes}


LITERAL_TAILS = sorted(set().union(*map(literal_tails, LITERAL_SEARCHES)))

# Prose, and what class sequences are made of: digits, capitals, signs, separators, non-ASCII.
class_texts = st.text(alphabet=st.sampled_from("aeZ GBDE0123456789+()-.#é٣\n"), max_size=40)
pieces = st.sampled_from(LITERAL_TAILS) | st.text(alphabet="aKsk-_ :'\"=xX", max_size=3)
literal_texts = st.lists(pieces, max_size=6).map("".join)


def test_both_kinds_of_shared_search_are_built_for_the_packs() -> None:
    assert CLASS_SEARCHES and LITERAL_SEARCHES and LITERAL_TAILS


@given(text=class_texts, pos=st.integers(0, 40))
def test_a_class_search_hits_only_where_its_trigger_does(text: str, pos: int) -> None:
    for shared in CLASS_SEARCHES:
        assert shared.trigger is not None
        if shared.search is not None and shared.search.search(text, pos) is not None:
            assert shared.trigger.search(text, pos) is not None


@given(text=class_texts)
def test_a_text_ends_with_the_start_of_a_class_sequence_only_on_a_character_that_can_end_one(text: str) -> None:
    for shared in CLASS_SEARCHES:
        assert shared.reversed_tails is not None and shared.tail_ends is not None
        if shared.reversed_tails.match(text[-shared.tail_len :][::-1]) is not None:
            assert text[-1:] in shared.tail_ends


def longest_tail_by_brute_force(shared: SharedLiterals, folded: str) -> int:
    tails = literal_tails(shared)
    return max((n for n in range(1, len(folded) + 1) if folded[-n:] in tails), default=0)


@given(text=literal_texts)
def test_the_literal_tail_is_the_longest_end_of_the_text_that_begins_a_literal(text: str) -> None:
    for shared in LITERAL_SEARCHES:
        assert shared.tail_trie is not None
        folded = fold(text)[-shared.tail_len :]
        assert _longest_tail(shared.tail_trie, folded) == longest_tail_by_brute_force(shared, folded)


NUMBER_PIECES = [
    "415-555-2671", "(415) 555-2671", "+44 20 7946 0958", "4111 1111 1111 1111", "4111111111111111",
    "078-05-1120", "GB82WEST12345698765432", "2024", "x", "Jg", "v", " ", "-", ".", "+", "(", "_", "é", "٣",
]  # fmt: skip
number_texts = st.lists(st.sampled_from(NUMBER_PIECES), max_size=6).map("".join)


@settings(max_examples=300, deadline=None)
@given(text=number_texts, pos=st.integers(0, 20))
def test_a_class_rule_that_its_own_search_does_not_wake_has_no_match_there(text: str, pos: int) -> None:
    # Its own search: the characters its matches begin with, after the lookbehind they begin
    # after (so digits inside a word, as in a pad like "Jg49Yi5", wake no number rule).
    for group in GROUPS:
        shared = group.shared
        if shared is None or shared.member_searches is None:
            continue
        for own, rule in zip(shared.member_searches, group.rules, strict=True):
            if not own.finds(text, pos):
                assert isinstance(rule.matcher, RegexMatcher)
                assert rule.matcher.pattern.search(text, pos) is None, rule.id


def test_digits_inside_a_word_wake_no_number_rule_of_pii() -> None:
    (group,) = [g for g in group_rules(load_rules(["pii"]).for_direction("output")) if g.shared and g.shared.search]
    assert not group.members_in("Jg49Yi5 v2024 abc123")
    assert {group.rules[k].id for k in group.members_in("call 415-555-2671")} >= {"pii.phone-nanp"}


@settings(max_examples=300, deadline=None)
@given(text=number_texts, pos=st.integers(0, 20))
def test_a_class_search_wakes_every_rule_with_a_match_after_its_start(text: str, pos: int) -> None:
    for group in GROUPS:
        if group.shared is None or group.shared.search is None:
            continue
        woken = set(group.members_in(text, pos))
        for k, rule in enumerate(group.rules):
            assert isinstance(rule.matcher, RegexMatcher)
            if rule.matcher.pattern.search(text, pos) is not None:
                assert k in woken, rule.id


def test_a_value_shorter_than_every_match_of_a_rule_wakes_it_in_no_group() -> None:
    groups = group_rules(load_rules(["pii"]).for_direction("output"))
    email = next(g for g in groups if [r.id for r in g.rules] == ["pii.email"])
    assert list(email.members_in("a@b.c", within=5)) == [] and list(email.members_in("a@b.co", within=6)) == [0]
    digits = next(g for g in groups if g.shared is not None and g.shared.search is not None)
    assert not digits.members_in("415 555", within=7)  # no number rule matches in 7 characters


# Several whole values asked at once (the pads of a run of events): the same answer as one by one.
RULES = load_rules(["pii", "pii-strict", "secrets"]).for_direction("output")
VALUE_PIECES = st.sampled_from(
    ["Jg49", "4kT9", "jane.doe@", "example.com", "AKIA", "4HJQ7XRZ2PLWKD5N", "sk-", "ghp_", *NUMBER_PIECES]
)
values = st.lists(st.lists(VALUE_PIECES | st.text(alphabet="aZ09@.-_ ", max_size=4), max_size=4).map("".join))


@settings(max_examples=300, deadline=None)
@given(texts=values.filter(bool))
def test_values_asked_together_find_nothing_exactly_when_each_finds_nothing_alone(texts: list[str]) -> None:
    assert finds_nothing_in_any(RULES, texts) == all(finds_nothing(RULES, text) for text in texts)


def test_an_address_in_one_of_many_values_is_found() -> None:
    pads = ["Jg49Yi", "q", "4kT9"] * 5
    assert finds_nothing_in_any(RULES, pads)
    assert not finds_nothing_in_any(RULES, [*pads, "jo@ex.com", "x"])
    assert not finds_nothing_in_any(RULES, ["x", "AKIA4HJQ7XRZ2PLWKD5N", *pads])


def test_a_lone_surrogate_in_checked_text_is_searched_around_not_a_crash() -> None:
    guard = Guard(Config())
    assert guard.check("half an emoji \ud83d and no secret").blocked is None
    blocked = guard.check("half an emoji \ud83d then the key AKIA4HJQ7XRZ2PLWKD5N").blocked
    assert blocked is not None and blocked.rule.id == "secrets.aws-access-key-id"
