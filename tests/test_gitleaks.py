"""gitleaks configurations load as packs, and what a stream cannot honour is refused (#13)."""

from __future__ import annotations

from pathlib import Path

import pytest

from guardstream.errors import RuleError
from guardstream.gitleaks import scope_inline_flags
from guardstream.packs import load_rules
from guardstream.rules import Rule, find_matches
from guardstream.window import stream_chunks

CONFIG = Path(__file__).parent / "fixtures" / "gitleaks" / "gitleaks.toml"
RULES = load_rules([f"gitleaks:{CONFIG}"]).rules


def hits(text: str) -> list[str]:
    return [r.id for r in RULES if find_matches(r, text)]


def rule(rule_id: str) -> Rule:
    return next(r for r in RULES if r.id == rule_id)


def test_rules_load_as_block_rules_for_both_directions() -> None:
    assert [r.id for r in RULES] == ["acme-api-token", "acme-deploy-key", "acme-session"]
    assert all(r.action == "block" and r.scope == "both" and r.pack == "acme scanner rules" for r in RULES)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("token acme_q8w7e6r5t4y3u2i1o9p8a7s6 here", ["acme-api-token"]),
        ('deploy_key = "Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5"', ["acme-deploy-key"]),
        ("sess-0123456789abcdef", ["acme-session"]),
        # entropy: the secret group is one repeated character
        ("acme_aaaaaaaaaaaaaaaaaaaaaaaa ", []),
        # global allowlist regex on the secret
        ("acme_q8w7e6r5t4y3example7s6 ", []),
        # the rule's own allowlist, on the whole match
        ("DEPLOYKEY: TESTm9vYmFyYmF6cXV4MTIzNDU2", []),
        # a global allowlist aimed at one rule (stop word in the secret)
        ("deploy_key=sandboxYmF6cXV4MTIzNDU2Nzg5", []),
        ("sess-deadbeef01234567", []),
    ],
)
def test_gitleaks_semantics_are_kept(text: str, expected: list[str]) -> None:
    assert hits(text) == expected


def test_keywords_are_required_in_the_match() -> None:
    assert find_matches(rule("acme-deploy-key"), "DEPLOY_KEY: Zm9vYmFyYmF6cXV4MTIzNDU2Nzg5") != []
    assert rule("acme-deploy-key").matcher.prefilter is not None


def test_streamed_gitleaks_rule_blocks_before_any_of_the_secret_leaves() -> None:
    out, _, blocked = stream_chunks(RULES, ["the key is acme_q8w7e6", "r5t4y3u2i1o9p8a7s6 ok"])
    assert blocked is not None and blocked.rule.id == "acme-api-token"
    assert out == "the key is "


@pytest.mark.parametrize(
    ("body", "rule_id", "reason"),
    [
        ("[[rules]]\nid = 'p'\npath = '''\\.env$'''\nregex = 'x'\n", "p", "a stream has no file names"),
        ("[[rules]]\nid = 'c'\nregex = 'x'\n[[rules.required]]\nid = 'p'\n", "c", "composite rules"),
        (
            "[[rules]]\nid = 'l'\nregex = 'x'\n[[rules.allowlists]]\nregexTarget = 'line'\nregexes = ['y']\n",
            "l",
            'regexTarget = "line"',
        ),
        ("[[rules]]\nid = 'u'\nregex = '(?U)a+'\n", "u", "ungreedy"),
        ("[[rules]]\nid = 'z'\nregex = '\\Aa'\n", "z", "has no meaning in a stream"),
        ("[[rules]]\nid = 'g'\nregex = '(a)'\nsecretGroup = 2\n", "g", "secretGroup 2"),
        ("[[rules]]\nid = 'n'\ndescription = 'no regex'\n", "n", "has no 'regex'"),
        ("[[rules]]\nid = 'b'\nregex = '('\n", "b", "invalid regular expression"),
        ("[[rules]]\nid = 'e'\nregex = 'a*'\n", "e", "empty string"),
        ("[[rules]]\nid = 'h'\nregex = 'a'\nentropy = -1\n", "h", "'entropy' must be"),
        ("[[rules]]\nid = 'k'\nregex = 'a'\nkeywords = 'a'\n", "k", "'keywords' must be a list"),
        ("[[rules]]\nid = 'x'\nregex = 'a'\nseverity = 'high'\n", "x", "unknown gitleaks rule key(s) severity"),
        ("[[rules]]\nid = 'a'\nregex = 'a'\n[rules.allowlist]\nregexes = ['(']\n", "a", "invalid allowlist regex"),
        ("[[rules]]\nid = 'w'\nregex = 'a'\n[rules.allowlist]\nregexes = ['b']\nnope = 1\n", "w", "allowlist key(s)"),
        ("[[rules]]\nid = 'y'\nregex = 'a'\nallowlist = 3\n", "y", "table or an array of tables"),
        ("[[rules]]\nid = 'o'\nregex = 'a'\n[rules.allowlist]\nregexes = ['b']\ncondition = 'XOR'\n", "o", "XOR"),
        ("[[rules]]\nid = 't'\nregex = 'a'\n[rules.allowlist]\nregexes = ['b']\nregexTarget = 'file'\n", "t", "file"),
    ],
)
def test_what_cannot_be_honoured_is_refused_with_the_rule_named(
    tmp_path: Path, body: str, rule_id: str, reason: str
) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RuleError) as info:
        load_rules([f"gitleaks:{path}"])
    assert info.value.rule_id == rule_id and info.value.path == f"gitleaks:{path}"
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        ("[extend]\nuseDefault = true\n[[rules]]\nid = 'a'\nregex = 'a'\n", "[extend] is not supported"),
        ("title = 'x'\n", "no [[rules]]"),
        ("rules = 3\n", "no [[rules]]"),
        ("colour = 'x'\n[[rules]]\nid = 'a'\nregex = 'a'\n", "unknown gitleaks key(s) colour"),
        ("[[rules]]\nregex = 'a'\n", "rule #1 has no 'id'"),
        ("[[rules]]\nid = 'a'\nregex = 'a'\n[[rules]]\nid = 'a'\nregex = 'b'\n", "duplicate rule id"),
        ("[[allowlists]]\ntargetRules = ['nope']\nregexes = ['a']\n[[rules]]\nid = 'a'\nregex = 'a'\n", "nope"),
        ("[[rules]\n", "invalid TOML"),
    ],
)
def test_bad_files_are_refused(tmp_path: Path, body: str, reason: str) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text(body, encoding="utf-8")
    with pytest.raises(RuleError, match=None) as info:
        load_rules([f"gitleaks:{path}"])
    assert reason in str(info.value)


@pytest.mark.parametrize(
    ("go", "ours"),
    [
        (r"(?i)abc", r"(?i)abc"),
        (r"\b(LTAI(?i)[a-z0-9]{4})", r"\b(LTAI(?i:[a-z0-9]{4}))"),
        (r"(?:a(?i)b|c)d", r"(?:a(?i:b)|(?i:c))d"),
        (r"[(?i)]x", r"[(?i)]x"),
        (r"a\(b(?s)c", r"a\(b(?s:c)"),
    ],
)
def test_go_inline_flags_are_scoped_to_the_rest_of_their_group(go: str, ours: str) -> None:
    assert scope_inline_flags(go) == ours


def test_late_flags_and_end_of_text_keep_their_go_meaning(tmp_path: Path) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text("[[rules]]\nid = 'k'\nregex = '\\b(LTAI(?i)[a-z0-9]{8})(?:[^a-z0-9]|\\z)'\n", encoding="utf-8")
    (only,) = load_rules([f"gitleaks:{path}"]).rules
    assert find_matches(only, "id LTAIaBcD1234 ok") != []
    assert find_matches(only, "ltaiabcd1234 ") == []
    # \z is the end of the stream: decided only once the stream ends.
    assert stream_chunks([only], ["key LTAIaBcD12", "34"])[2] is not None


def test_missing_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(RuleError, match="does not exist"):
        load_rules([f"gitleaks:{tmp_path / 'nope.toml'}"])


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(RuleError, match="cannot read"):
        load_rules([f"gitleaks:{path}"])


def test_allowlists_that_only_files_could_satisfy_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "gitleaks.toml"
    path.write_text(
        "[[rules]]\nid = 'a'\nregex = 'tok-[0-9]{4}'\n"
        "[[rules.allowlists]]\ncondition = 'AND'\npaths = ['x']\nregexes = ['.']\n",
        encoding="utf-8",
    )
    (only,) = load_rules([f"gitleaks:{path}"]).rules
    assert find_matches(only, "tok-1234") == [(0, 8)]
