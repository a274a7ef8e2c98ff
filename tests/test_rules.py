"""Rule packs load exactly as the README documents them, and refuse to load with a clear reason otherwise."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardstream.errors import RuleError
from guardstream.matchers import RegexMatcher
from guardstream.packs import builtin_pack_names, load_rules
from guardstream.rules import find_matches, redact_text
from guardstream.validators import iban, luhn

RULE = """
[[rule]]
id = "t.rule"
category = "test"
pattern = '''{pattern}'''
action = "{action}"
{extra}
"""


def write_pack(tmp_path: Path, body: str, name: str = "pack.toml") -> str:
    path = tmp_path / name
    path.write_text('[pack]\nname = "t"\n' + body, encoding="utf-8")
    return str(path)


def rule(pattern: str = "abc", action: str = "block", extra: str = "") -> str:
    return RULE.format(pattern=pattern, action=action, extra=extra)


def test_every_builtin_pack_loads_and_compiles() -> None:
    assert builtin_pack_names() == ["pii", "pii-strict", "profanity", "prompt-injection", "secrets"]
    ruleset = load_rules(builtin_pack_names())
    assert len(ruleset) > 20


def test_every_builtin_rule_has_two_examples_each_way() -> None:
    for r in load_rules(builtin_pack_names()):
        assert len(r.examples_match) >= 2, r.id
        assert len(r.examples_no_match) >= 2, r.id


def test_bad_regex_names_file_rule_and_reason(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule(pattern="a(b"))
    with pytest.raises(RuleError) as caught:
        load_rules([path])
    assert caught.value.path == path
    assert caught.value.rule_id == "t.rule"
    assert "invalid regular expression" in str(caught.value)
    assert path in str(caught.value)


def test_duplicate_id_across_packs_is_refused(tmp_path: Path) -> None:
    first = write_pack(tmp_path, rule(), "a.toml")
    second = write_pack(tmp_path, rule(), "b.toml")
    with pytest.raises(RuleError, match="duplicate rule id"):
        load_rules([first, second])


def test_unknown_action_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="unknown action 'drop'"):
        load_rules([write_pack(tmp_path, rule(action="drop"))])


def test_example_that_does_not_behave_is_refused(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule(extra='examples.match = ["xyz"]'))
    with pytest.raises(RuleError, match="'xyz' is declared to match but does not"):
        load_rules([path])


def test_no_match_example_that_matches_is_refused(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule(extra='examples.no_match = ["xabcx"]'))
    with pytest.raises(RuleError, match="declared not to match but does"):
        load_rules([path])


def test_pattern_matching_empty_string_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="matches the empty string"):
        load_rules([write_pack(tmp_path, rule(pattern="a*"))])


def test_end_anchor_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="no meaning in a stream"):
        load_rules([write_pack(tmp_path, rule(pattern=r"abc\Z"))])


def test_unknown_key_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="unknown key"):
        load_rules([write_pack(tmp_path, rule(extra='colour = "red"'))])


def test_missing_action_is_refused_with_the_rule_named(tmp_path: Path) -> None:
    # test for #11: a rule without an action is not quietly a block rule
    path = write_pack(tmp_path, '[[rule]]\nid = "t.quiet"\npattern = "abc"\n')
    with pytest.raises(RuleError, match="missing 'action'; use one of block, redact, flag") as caught:
        load_rules([path])
    assert caught.value.rule_id == "t.quiet" and caught.value.path == path


def test_unknown_pack_key_is_refused(tmp_path: Path) -> None:
    # test for #11
    path = tmp_path / "pack.toml"
    path.write_text('[pack]\nname = "t"\nversoin = "2"\n' + rule(), encoding="utf-8")
    with pytest.raises(RuleError, match=r"unknown \[pack\] key\(s\) versoin") as caught:
        load_rules([str(path)])
    assert caught.value.path == str(path)


def test_misspelled_rule_table_is_refused_not_loaded_empty(tmp_path: Path) -> None:
    # test for #11: [[rules]] instead of [[rule]] would otherwise be a pack that checks nothing
    path = write_pack(tmp_path, rule().replace("[[rule]]", "[[rules]]"))
    with pytest.raises(RuleError, match="unknown table\\(s\\) or key\\(s\\) rules"):
        load_rules([path])


def test_invalid_toml_names_the_file(tmp_path: Path) -> None:
    path = write_pack(tmp_path, "[[rule]\n")
    with pytest.raises(RuleError, match="invalid TOML") as caught:
        load_rules([path])
    assert caught.value.path == path


def test_unknown_builtin_pack_lists_the_known_ones() -> None:
    with pytest.raises(RuleError, match="Built-in packs are: pii, pii-strict, profanity"):
        load_rules(["nope"])


def test_keyword_that_is_not_whole_words_is_refused(tmp_path: Path) -> None:
    body = '[[rule]]\nid = "t.kw"\nkeywords = ["f*ck"]\naction = "redact"\n'
    with pytest.raises(RuleError, match="not made of whole words"):
        load_rules([write_pack(tmp_path, body)])


def test_charset_hint_must_cover_the_examples(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule(pattern="a-b", extra="charset = '[ab]'\nexamples.match = [\"a-b\"]"))
    with pytest.raises(RuleError, match="'charset' does not cover"):
        load_rules([path])


def test_literal_prefixes_are_derived_from_the_pattern(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule(pattern=r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"))
    matcher = load_rules([path]).rules[0].matcher
    assert isinstance(matcher, RegexMatcher)
    assert matcher.prefixes == ("AKIA", "ASIA")


def test_case_insensitive_prefixes_are_casefolded(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule(pattern="password[:=]", extra='flags = ["IGNORECASE"]'))
    matcher = load_rules([path]).rules[0].matcher
    assert isinstance(matcher, RegexMatcher)
    assert matcher.prefixes == ("password",)


def test_keywords_match_whole_words_only(tmp_path: Path) -> None:
    body = '[[rule]]\nid = "t.kw"\nkeywords = ["ass", "bad word"]\naction = "redact"\n'
    r = load_rules([write_pack(tmp_path, body)]).rules[0]
    assert find_matches(r, "class assess ass Ass.") == [(13, 16), (17, 20)]
    assert find_matches(r, "a bad  word, a bad-word, badword") == [(2, 11), (15, 23)]


def test_overlapping_redactions_merge_into_the_first(tmp_path: Path) -> None:
    body = (
        '[[rule]]\nid = "t.a"\npattern = "abcd"\naction = "redact"\nreplacement = "<A>"\n'
        '[[rule]]\nid = "t.b"\npattern = "cdef"\naction = "redact"\nreplacement = "<B>"\n'
    )
    rules = load_rules([write_pack(tmp_path, body)]).rules
    assert redact_text(rules, "xabcdefx") == "x<A>x"


def test_luhn_accepts_real_card_numbers_only() -> None:
    assert luhn("4111 1111 1111 1111")
    assert not luhn("4111 1111 1111 1112")
    assert not luhn("12345")


def test_iban_checks_mod_97() -> None:
    assert iban("GB82 WEST 1234 5698 7654 32")
    assert not iban("GB82 WEST 1234 5698 7654 33")
    assert not iban("XX")


def test_contains_hint_that_excludes_an_example_is_named(tmp_path: Path) -> None:
    path = write_pack(tmp_path, rule(pattern=r"foo\d+", extra='contains = ["bar"]\nexamples.match = ["foo12"]'))
    with pytest.raises(RuleError, match="its 'contains' hint rules the match out"):
        load_rules([path])
