"""Bring your own scanner rules: a gitleaks configuration file loaded as a pack.

`packs = ["gitleaks:path/to/.gitleaks.toml"]` compiles each `[[rules]]` entry into a block rule
(scope both, category "credential") that keeps gitleaks' meaning:

- `regex` (Go RE2 syntax): compiled with `regex`, with ASCII classes as in Go (`\\w`, `\\s`, `\\b`).
- `secretGroup` (unset: the first group that took part): the secret the checks below look at.
- `entropy`: the secret's Shannon entropy must be above it.
- `keywords`: a match counts only if it contains one. gitleaks skips a file without any; in a
  stream the match is the unit. They also gate the rule cheaply.
- `[[rules.allowlists]]`, `[rules.allowlist]`, `[[allowlists]]` (with `targetRules`) and
  `[allowlist]`: `regexes` on the secret or the match (`regexTarget`), `stopwords`, `condition`.

What cannot be honoured in a stream is refused with the rule named, never skipped in silence:
`path` (a stream has no file names), `required` composite rules, `regexTarget = "line"` (the
line may still be growing), `[extend]`, Go's ungreedy flag and `\\A`. Go's mid-pattern flags
(`LTAI(?i)[a-z0-9]{20}`) are scoped to the rest of their group as in Go, and `\\z` (the end of the
text) becomes a lookahead for the end of the stream. Allowlist `paths` and `commits` never match
a stream, so an allowlist made only of them (or requiring them with `condition = "AND"`) can never
apply and is dropped, which is exact.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import regex

from guardstream.errors import RuleError
from guardstream.filters import Allowlist, MatchCheck, compile_allowlist
from guardstream.matchers import RegexMatcher
from guardstream.rules import Rule
from guardstream.tomlfile import read_toml

PREFIX = "gitleaks:"
RULE_KEYS = {
    "id",
    "description",
    "regex",
    "secretGroup",
    "entropy",
    "keywords",
    "tags",
    "allowlist",
    "allowlists",
    "path",
    "required",
    "skipReport",
}
ALLOWLIST_KEYS = {"description", "condition", "commits", "paths", "regexTarget", "regexes", "stopwords", "targetRules"}
TOP_KEYS = {"title", "description", "minVersion", "rules", "allowlist", "allowlists", "extend"}
# A flag group after the start applies to the rest of its group in Go, to the whole pattern in
# `regex`; Go's U (ungreedy) has no equivalent at all.
UNGREEDY = regex.compile(r"(?<!\\)(?:\\\\)*\(\?[a-zA-Z]*U[a-zA-Z]*[:)]")
FORBIDDEN_ANCHORS = regex.compile(r"(?<!\\)(?:\\\\)*\\A")
END_OF_TEXT = regex.compile(r"(?<!\\)(?:\\\\)*\\z")


def scope_inline_flags(pattern: str) -> str:
    """Go's `X(?i)Y` sets the flag for the rest of the enclosing group, later alternatives included;
    `regex` would apply it to the whole pattern. Rewrite it as `X(?i:Y)`, closed before each `|`
    and reopened after it, and closed where the enclosing group closes."""
    out: list[str] = []
    # For each open group: the flag groups opened in it since its start or its last "|".
    scoped: list[list[str]] = [[]]
    i, in_class = 0, False
    while i < len(pattern):
        ch = pattern[i]
        if ch == "\\":
            out.append(pattern[i : i + 2])
            i += 2
            continue
        if in_class:
            in_class = ch != "]"
        elif ch == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a literal member.
            j = i + 1 + (pattern[i + 1 : i + 2] == "^")
            if pattern[j : j + 1] == "]":
                out.append(pattern[i : j + 1])
                i = j + 1
                continue
        elif ch == "(":
            flags = regex.match(r"\(\?([a-zA-Z]+)\)", pattern[i:])
            if flags is not None and out:
                out.append(f"(?{flags.group(1)}:")
                scoped[-1].append(flags.group(1))
                i += len(flags.group())
                continue
            scoped.append([])
        elif ch == "|" and scoped[-1]:
            out.append(")" * len(scoped[-1]) + "|" + "".join(f"(?{f}:" for f in scoped[-1]))
            i += 1
            continue
        elif ch == ")" and len(scoped) > 1:
            out.append(")" * len(scoped.pop()))
        out.append(ch)
        i += 1
    out.append(")" * len(scoped[0]))
    return "".join(out)


def load_gitleaks_file(path: Path, *, timeout: float) -> tuple[list[Rule], str]:
    """Compile a gitleaks configuration into rules; raise `RuleError` naming what cannot be honoured."""
    source = f"{PREFIX}{path}"
    data = read_toml(path, source)
    unknown = sorted(set(data) - TOP_KEYS)
    if unknown:
        raise RuleError(f"unknown gitleaks key(s) {', '.join(unknown)}.", path=source)
    if "extend" in data:
        raise RuleError(
            "[extend] is not supported: gitleaks' default rules are not bundled and extended files are not "
            "followed. Copy the rules you need into this file (or load the built-in 'secrets' pack).",
            path=source,
        )
    raw_rules = data.get("rules", [])
    if not isinstance(raw_rules, list) or not raw_rules or not all(isinstance(r, dict) for r in raw_rules):
        raise RuleError("the file has no [[rules]] tables.", path=source)

    def file_error(reason: str) -> RuleError:
        return RuleError(reason, path=source)

    global_tables = _tables(data.get("allowlist"), file_error) + _tables(data.get("allowlists"), file_error)
    global_allowlists = [(table, _allowlist(table, file_error, is_global=True)) for table in global_tables]
    ids = {r.get("id") for r in raw_rules}
    for table, _ in global_allowlists:
        missing = sorted(set(_strings(table.get("targetRules", []), "targetRules", file_error)) - ids)
        if missing:
            raise file_error(f"a global allowlist targets unknown rule(s) {', '.join(map(str, missing))}.")
    pack_name = str(data.get("title") or path.stem)
    rules: list[Rule] = []
    seen: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule_id = raw.get("id")
        if not isinstance(rule_id, str) or not rule_id:
            raise file_error(f"rule #{index + 1} has no 'id'.")
        if rule_id in seen:
            raise RuleError("duplicate rule id in this file.", path=source, rule_id=rule_id)
        seen.add(rule_id)
        shared = tuple(a for table, a in global_allowlists if a is not None and a.applies_to(rule_id))
        rules.append(_compile_rule(raw, rule_id, shared, pack_name, source, timeout))
    return rules, pack_name


def _compile_rule(
    raw: dict[str, Any], rule_id: str, shared: tuple[Allowlist, ...], pack: str, source: str, timeout: float
) -> Rule:
    def fail(reason: str) -> RuleError:
        return RuleError(reason, path=source, rule_id=rule_id)

    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise fail(f"unknown gitleaks rule key(s) {', '.join(unknown)}.")
    if raw.get("path"):
        raise fail("'path' restricts the rule to files, and a stream has no file names; remove it to scan everything.")
    if raw.get("required") or raw.get("skipReport"):
        raise fail("composite rules ('required', 'skipReport') cannot be honoured in a stream.")
    pattern = raw.get("regex")
    if not isinstance(pattern, str) or not pattern:
        raise fail("the rule has no 'regex'.")
    if UNGREEDY.search(pattern):
        raise fail("Go's ungreedy flag (?U) has no equivalent here; write lazy quantifiers instead.")
    pattern = scope_inline_flags(pattern)
    if FORBIDDEN_ANCHORS.search(pattern):
        raise fail(r"'\A' has no meaning in a stream that is still arriving.")
    # Go's \z is the end of the text: in a stream, of the stream, which a lookahead says as well.
    pattern = END_OF_TEXT.sub(lambda m: m.group()[:-2] + r"(?![\s\S])", pattern)
    try:
        compiled = regex.compile(pattern, regex.ASCII)
    except regex.error as exc:
        raise fail(f"invalid regular expression: {exc}.") from None
    if compiled.search("") is not None:
        raise fail("the regex matches the empty string, so it would match everywhere.")
    secret_group = raw.get("secretGroup", 0)
    if isinstance(secret_group, bool) or not isinstance(secret_group, int) or not 0 <= secret_group <= compiled.groups:
        raise fail(f"secretGroup {secret_group!r} is not a group of the regex (it has {compiled.groups}).")
    entropy = raw.get("entropy", 0.0)
    if isinstance(entropy, bool) or not isinstance(entropy, int | float) or entropy < 0:
        raise fail("'entropy' must be a non-negative number.")
    keywords = tuple(k.lower() for k in _strings(raw.get("keywords", []), "keywords", fail))
    tables = _tables(raw.get("allowlist"), fail) + _tables(raw.get("allowlists"), fail)
    own = tuple(a for a in (_allowlist(t, fail, is_global=False) for t in tables) if a is not None)
    check = MatchCheck(
        secret_group=secret_group or None,
        first_group_is_secret=not secret_group and compiled.groups > 0,
        min_entropy=float(entropy),
        is_entropy_exclusive=True,
        keywords=keywords,
        allowlists=own + shared,
    )
    description = raw.get("description", "")
    return Rule(
        id=rule_id,
        category="credential",
        action="block",
        scope="both",
        replacement=f"[REDACTED:{rule_id}]",
        matcher=RegexMatcher(compiled, check=check, contains=keywords, is_contains_folded=True, timeout=timeout),
        pack=pack,
        source=source if not description else f"{source} ({description})",
    )


def _tables(value: Any, fail: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if isinstance(value, dict):
        return [value]
    if isinstance(value, list) and all(isinstance(v, dict) for v in value):
        return cast(list[dict[str, Any]], value)
    raise fail("an allowlist must be a table or an array of tables.")


def _strings(value: Any, key: str, fail: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"'{key}' must be a list of strings.")
    return cast(list[str], value)


def _allowlist(table: dict[str, Any], fail: Any, *, is_global: bool) -> Allowlist | None:
    """One allowlist; None when only file paths or commits could satisfy it (never, in a stream)."""
    allowed = ALLOWLIST_KEYS if is_global else ALLOWLIST_KEYS - {"targetRules"}
    unknown = sorted(set(table) - allowed)
    if unknown:
        raise fail(f"unknown allowlist key(s) {', '.join(unknown)}.")
    target = table.get("regexTarget") or "secret"
    if target == "line":
        raise fail('regexTarget = "line" cannot be honoured: in a stream the line may still be growing.')
    if target not in ("secret", "match"):
        raise fail(f"regexTarget {target!r} is not one of secret, match, line.")
    condition = str(table.get("condition") or "OR").upper()
    if condition not in ("OR", "AND"):
        raise fail(f"allowlist condition {condition!r} is not one of OR, AND.")
    regexes = _strings(table.get("regexes", []), "regexes", fail)
    stopwords = _strings(table.get("stopwords", []), "stopwords", fail)
    has_files = bool(table.get("paths") or table.get("commits"))
    if (not regexes and not stopwords) or (condition == "AND" and has_files):
        return None
    try:
        return compile_allowlist(
            regexes=regexes,
            stopwords=stopwords,
            target=cast(Any, target),
            condition="and" if condition == "AND" else "or",
            rules=_strings(table.get("targetRules", []), "targetRules", fail),
            description=str(table.get("description", "")),
            flags=regex.ASCII,
        )
    except regex.error as exc:
        raise fail(f"invalid allowlist regex: {exc}.") from None
