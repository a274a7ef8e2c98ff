"""Rule packs: TOML files of regex and keyword rules, compiled once at start-up.

A pack that cannot be trusted must stop guardstream from starting, so every problem (bad regex,
duplicate id, unknown action, an example that does not behave as declared) raises `RuleError`
naming the file, the rule and the reason.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any, cast

import regex

from guardstream.errors import RuleError
from guardstream.filters import Allowlist, MatchCheck, compile_allowlist, group_exists
from guardstream.gitleaks import PREFIX as GITLEAKS_PREFIX, load_gitleaks_file
from guardstream.matchers import DEFAULT_TIMEOUT_SECONDS, KeywordMatcher, Matcher, RegexMatcher, Validator
from guardstream.rules import ACTIONS, SCOPES, Action, Rule, RuleSet, Scope, find_matches
from guardstream.tomlfile import read_toml
from guardstream.validators import VALIDATORS
from guardstream.window import check_rule_examples

RULE_KEYS = {
    "id",
    "category",
    "pattern",
    "keywords",
    "case_sensitive",
    "flags",
    "action",
    "scope",
    "replacement",
    "validator",
    "contains",
    "charset",
    "examples",
    "description",
    "secret_group",
    "redact_group",
    "min_entropy",
    "min_char_classes",
    "allowlist",
    "confirm",
}
REGEX_ONLY_KEYS = {
    "secret_group",
    "redact_group",
    "min_entropy",
    "min_char_classes",
    "allowlist",
    "validator",
    "confirm",
}
PACK_FILE_KEYS = {"pack", "rule", "allowlist"}
PACK_KEYS = {"name", "description"}
ALLOWLIST_KEYS = {"regexes", "stopwords", "target", "condition", "rules", "description"}
REGEX_FLAGS = ("IGNORECASE", "MULTILINE", "DOTALL", "VERBOSE", "ASCII", "UNICODE")
FORBIDDEN_ANCHORS = regex.compile(r"(?<!\\)(?:\\\\)*(?:\\[AZz])")
# A lazy quantifier followed directly by a lookbehind: `regex` then reports no partial match when
# the text ends inside the quantifier (`ab.{0,9}?(?<!x)c` on "ab1d"), so the window would release
# the start of a match. A character class instead of the lookbehind avoids it.
LAZY_LOOKBEHIND = regex.compile(r"(?:[*+?]|\})\?(?:\s*\(\?:)*\s*\(\?<[!=]")


def builtin_packs_dir() -> Path:
    """Where the built-in packs live: `rules/` in a checkout, `guardstream/_packs` in a wheel."""
    here = Path(__file__).resolve().parent
    bundled = here / "_packs"
    return bundled if bundled.is_dir() else here.parent / "rules"


def builtin_pack_names() -> list[str]:
    return sorted(p.stem for p in builtin_packs_dir().glob("*.toml"))


def resolve_pack(name: str) -> Path:
    """A built-in pack name (`pii`) or a path to a TOML file."""
    path = Path(name)
    if path.suffix == ".toml" or "/" in name or "\\" in name:
        if not path.is_file():
            raise RuleError(f"rule pack file {name!r} does not exist.", path=name)
        return path
    candidate = builtin_packs_dir() / f"{name}.toml"
    if not candidate.is_file():
        known = ", ".join(builtin_pack_names())
        raise RuleError(
            f"unknown built-in rule pack {name!r}. Built-in packs are: {known}; or give a path to a .toml file."
        )
    return candidate


def load_rules(
    packs: Iterable[str] | str, *, timeout: float = DEFAULT_TIMEOUT_SECONDS, check_examples: bool = True
) -> RuleSet:
    """Load and compile packs by built-in name or path; raise `RuleError` on the first problem.

    `packs` is a list of names (`["pii", "secrets"]`) or one comma-separated string (`"pii,secrets"`).
    """
    if isinstance(packs, str):
        packs = [name.strip() for name in packs.split(",") if name.strip()]
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    names: list[str] = []
    for name in packs:
        if name.startswith(GITLEAKS_PREFIX):
            path = Path(name[len(GITLEAKS_PREFIX) :])
            if not path.is_file():
                raise RuleError(f"gitleaks configuration file {str(path)!r} does not exist.", path=name)
            pack_rules, pack_name = load_pack_file(
                path, timeout=timeout, check_examples=check_examples, is_gitleaks=True
            )
        else:
            path = resolve_pack(name)
            pack_rules, pack_name = load_pack_file(path, timeout=timeout, check_examples=check_examples)
        for rule in pack_rules:
            if rule.id in seen:
                raise RuleError(
                    f"duplicate rule id; it is already defined in {seen[rule.id]}.", path=str(path), rule_id=rule.id
                )
            seen[rule.id] = str(path)
        rules.extend(pack_rules)
        names.append(pack_name)
    return RuleSet(tuple(rules), tuple(names))


_PACK_CACHE: dict[tuple[str, int, int, float, bool, bool], tuple[list[Rule], str]] = {}


def load_pack_file(
    path: Path, *, timeout: float = DEFAULT_TIMEOUT_SECONDS, check_examples: bool = True, is_gitleaks: bool = False
) -> tuple[list[Rule], str]:
    """Compile one pack; an unchanged file is compiled once per process (rules are immutable)."""
    try:
        stat = path.stat()
    except OSError as exc:
        raise RuleError(f"cannot read the file ({exc}).", path=str(path)) from None
    key = (str(path.resolve()), stat.st_mtime_ns, stat.st_size, timeout, check_examples, is_gitleaks)
    cached = _PACK_CACHE.get(key)
    if cached is None:
        if is_gitleaks:
            cached = load_gitleaks_file(path, timeout=timeout)
        else:
            cached = _compile_pack_file(path, timeout=timeout, check_examples=check_examples)
        _PACK_CACHE[key] = cached
    return list(cached[0]), cached[1]


def _compile_pack_file(path: Path, *, timeout: float, check_examples: bool) -> tuple[list[Rule], str]:
    source = str(path)
    data = read_toml(path, source)
    unknown = sorted(set(data) - PACK_FILE_KEYS)
    if unknown:
        # A typo such as [[rules]] would otherwise load a pack that quietly checks nothing.
        raise RuleError(
            f"unknown table(s) or key(s) {', '.join(unknown)}. A pack has [pack], [[rule]] and [[allowlist]].",
            path=source,
        )
    pack = data.get("pack", {})
    if not isinstance(pack, dict):
        raise RuleError("[pack] must be a table.", path=source)
    unknown = sorted(set(pack) - PACK_KEYS)
    if unknown:
        raise RuleError(
            f"unknown [pack] key(s) {', '.join(unknown)}. Known keys: {', '.join(sorted(PACK_KEYS))}.", path=source
        )
    pack_name = str(pack.get("name", path.stem))
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list) or not raw_rules:
        raise RuleError("the pack has no [[rule]] entries.", path=source)
    pack_allowlists = _allowlists(data.get("allowlist", []), lambda reason: RuleError(reason, path=source))
    rule_ids = {raw.get("id") for raw in raw_rules if isinstance(raw, dict)}
    for allowlist in pack_allowlists:
        unknown = sorted(set(allowlist.rules) - rule_ids)
        if unknown:
            raise RuleError(f"[[allowlist]] names rule(s) the pack does not have: {', '.join(unknown)}.", path=source)
    rules = []
    ids: set[str] = set()
    for index, raw in enumerate(raw_rules):
        rule = _compile_rule(
            raw, index=index, pack=pack_name, source=source, timeout=timeout, pack_allowlists=pack_allowlists
        )
        if rule.id in ids:
            raise RuleError("duplicate rule id in this pack.", path=source, rule_id=rule.id)
        ids.add(rule.id)
        if check_examples:
            _check_examples(rule)
            _check_hints(rule)
        rules.append(rule)
    return rules, pack_name


def _compile_rule(
    raw: Any, *, index: int, pack: str, source: str, timeout: float, pack_allowlists: tuple[Allowlist, ...] = ()
) -> Rule:
    if not isinstance(raw, dict):
        raise RuleError(f"rule #{index + 1} must be a table.", path=source)
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id:
        raise RuleError(f"rule #{index + 1} has no 'id'.", path=source)

    def fail(reason: str) -> RuleError:
        return RuleError(reason, path=source, rule_id=rule_id)

    unknown = sorted(set(raw) - RULE_KEYS)
    if unknown:
        raise fail(f"unknown key(s) {', '.join(unknown)}. Known keys: {', '.join(sorted(RULE_KEYS))}.")
    if "action" not in raw:
        # What happens on a match is the one decision a rule cannot leave to a default.
        raise fail(f"missing 'action'; use one of {', '.join(ACTIONS)}.")
    action = raw["action"]
    if action not in ACTIONS:
        raise fail(f"unknown action {action!r}; use one of {', '.join(ACTIONS)}.")
    scope = raw.get("scope", "output")
    if scope not in SCOPES:
        raise fail(f"unknown scope {scope!r}; use one of {', '.join(SCOPES)}.")
    category = raw.get("category", "uncategorized")
    if not isinstance(category, str):
        raise fail("'category' must be a string.")
    replacement = raw.get("replacement", f"[REDACTED:{rule_id}]")
    if not isinstance(replacement, str):
        raise fail("'replacement' must be a string.")
    has_pattern, has_keywords = "pattern" in raw, "keywords" in raw
    if has_pattern == has_keywords:
        raise fail("give exactly one of 'pattern' or 'keywords'.")
    matcher: Matcher
    if has_pattern:
        allowlists = tuple(a for a in pack_allowlists if a.applies_to(rule_id))
        matcher = _compile_regex_matcher(raw, fail, timeout, allowlists)
    else:
        regex_only = sorted(REGEX_ONLY_KEYS & set(raw))
        if regex_only:
            raise fail(f"{', '.join(regex_only)} apply to 'pattern' rules only.")
        if any(rule_id in a.rules for a in pack_allowlists):
            raise fail("a pack [[allowlist]] names this keyword rule, but allowlists apply to 'pattern' rules only.")
        matcher = _compile_keyword_matcher(raw, fail)
    examples = raw.get("examples", {})
    if not isinstance(examples, dict):
        raise fail("'examples' must be a table with 'match' and 'no_match' lists.")
    return Rule(
        id=rule_id,
        category=category,
        action=cast(Action, action),
        scope=cast(Scope, scope),
        replacement=replacement,
        matcher=matcher,
        pack=pack,
        source=source,
        examples_match=tuple(_string_list(examples.get("match", []), "examples.match", fail)),
        examples_no_match=tuple(_string_list(examples.get("no_match", []), "examples.no_match", fail)),
    )


def _string_list(value: Any, key: str, fail: Any) -> list[str]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise fail(f"'{key}' must be a list of strings.")
    return cast(list[str], value)


def _compile_regex_matcher(
    raw: dict[str, Any], fail: Any, timeout: float, pack_allowlists: tuple[Allowlist, ...] = ()
) -> RegexMatcher:
    pattern = raw["pattern"]
    if not isinstance(pattern, str) or not pattern:
        raise fail("'pattern' must be a non-empty string.")
    flags = 0
    for name in _string_list(raw.get("flags", []), "flags", fail):
        value = getattr(regex, name.upper(), None)
        if not isinstance(value, int) or name.upper() not in REGEX_FLAGS:
            raise fail(f"unknown regex flag {name!r}; use IGNORECASE, MULTILINE, DOTALL, VERBOSE, ASCII or UNICODE.")
        flags |= value
    try:
        compiled = regex.compile(pattern, flags)
    except regex.error as exc:
        raise fail(f"invalid regular expression: {exc}.") from None
    if FORBIDDEN_ANCHORS.search(pattern):
        raise fail(r"'\A', '\Z' and '\z' have no meaning in a stream that is still arriving; use lookarounds instead.")
    if compiled.search("") is not None:
        raise fail("the pattern matches the empty string, so it would match everywhere.")
    if LAZY_LOOKBEHIND.search(pattern):
        raise fail(
            "a lazy quantifier is directly followed by a lookbehind, which hides partial matches at the end of "
            "a chunk (the window could release the start of a match); use a character class instead."
        )
    validator = _validator(raw, "validator", fail)
    confirm = _validator(raw, "confirm", fail)
    check = MatchCheck(
        secret_group=_group(compiled, raw.get("secret_group"), "secret_group", fail),
        redact_group=_group(compiled, raw.get("redact_group"), "redact_group", fail),
        min_entropy=_number(raw.get("min_entropy", 0.0), "min_entropy", 0.0, 8.0, fail),
        min_char_classes=int(_number(raw.get("min_char_classes", 0), "min_char_classes", 0, 4, fail)),
        validator=validator,
        confirm=confirm,
        allowlists=_allowlists(raw.get("allowlist", []), fail) + pack_allowlists,
    )
    contains = _string_list(raw.get("contains", []), "contains", fail)
    charset, wide_charset = _charset(raw.get("charset"), fail)
    try:
        return RegexMatcher(
            compiled, check=check, contains=contains, charset=charset, wide_charset=wide_charset, timeout=timeout
        )
    except regex.error as exc:  # pragma: no cover - the hold pattern wraps an already valid pattern
        raise fail(f"invalid regular expression: {exc}.") from None


def _validator(raw: dict[str, Any], key: str, fail: Any) -> Validator | None:
    name = raw.get(key)
    if name is None:
        return None
    validator = VALIDATORS.get(name) if isinstance(name, str) else None
    if validator is None:
        raise fail(f"unknown {key} {name!r}; use one of {', '.join(sorted(VALIDATORS))}.")
    return validator


def _group(pattern: regex.Pattern[str], value: Any, key: str, fail: Any) -> int | str | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise fail(f"'{key}' must be a group name or number.")
    if not group_exists(pattern, value):
        raise fail(f"'{key}' names group {value!r}, which the pattern does not have.")
    return value


def _number(value: Any, key: str, low: float, high: float, fail: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value <= high:
        raise fail(f"'{key}' must be a number from {low:g} to {high:g}.")
    return float(value)


def _allowlists(value: Any, fail: Any) -> tuple[Allowlist, ...]:
    """Allowlist tables: `regexes`, `stopwords`, `target` (secret | match), `condition` (or | and)."""
    if isinstance(value, dict):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise fail("'allowlist' must be a table or a list of tables.")
    allowlists = []
    for table in value:
        unknown = sorted(set(table) - ALLOWLIST_KEYS)
        if unknown:
            raise fail(
                f"unknown allowlist key(s) {', '.join(unknown)}. Known keys: {', '.join(sorted(ALLOWLIST_KEYS))}."
            )
        target = table.get("target", "secret")
        if target not in ("secret", "match"):
            raise fail(f"allowlist target {target!r} is not one of secret, match.")
        condition = str(table.get("condition", "or")).lower()
        if condition not in ("or", "and"):
            raise fail(f"allowlist condition {condition!r} is not one of or, and.")
        description = table.get("description", "")
        if not isinstance(description, str):
            raise fail("allowlist 'description' must be a string.")
        try:
            allowlists.append(
                compile_allowlist(
                    regexes=_string_list(table.get("regexes", []), "allowlist.regexes", fail),
                    stopwords=_string_list(table.get("stopwords", []), "allowlist.stopwords", fail),
                    target=target,
                    condition=cast(Any, condition),
                    rules=_string_list(table.get("rules", []), "allowlist.rules", fail),
                    description=description,
                )
            )
        except regex.error as exc:
            raise fail(f"invalid allowlist regex: {exc}.") from None
        except ValueError:
            raise fail("an allowlist needs 'regexes' or 'stopwords'.") from None
    return tuple(allowlists)


def _charset(value: Any, fail: Any) -> tuple[str, str | None]:
    """The ASCII characters of a `charset` class such as `[A-Za-z0-9._%+@-]`, and the class itself
    when it admits other characters too (`[\\p{L}._-]`)."""
    if value is None:
        return "", None
    if not isinstance(value, str):
        raise fail("'charset' must be a regex character class string such as '[A-Za-z0-9._-]'.")
    try:
        char_class = regex.compile(value)
    except regex.error as exc:
        raise fail(f"invalid 'charset': {exc}.") from None
    chars = "".join(chr(i) for i in range(128) if char_class.fullmatch(chr(i)))
    if not chars:
        raise fail("'charset' admits no character.")
    if not regex.fullmatch(r"\[(?:[^\[\]\\]|\\.|\\p\{\w+\})+\]", value):
        raise fail("'charset' must be one character class, such as '[A-Za-z0-9._-]'.")
    wide = any(char_class.fullmatch(c) for c in "éß日٣\u00a0")
    return chars, value if wide else None


def _compile_keyword_matcher(raw: dict[str, Any], fail: Any) -> KeywordMatcher:
    keywords = _string_list(raw["keywords"], "keywords", fail)
    if not keywords:
        raise fail("'keywords' is empty.")
    for keyword in keywords:
        if not regex.fullmatch(r"\w+(?:[\s\-]+\w+)*", keyword.strip()):
            raise fail(f"keyword {keyword!r} is not made of whole words; use a 'pattern' rule for it.")
    case_sensitive = raw.get("case_sensitive", False)
    if not isinstance(case_sensitive, bool):
        raise fail("'case_sensitive' must be true or false.")
    return KeywordMatcher(keywords, case_sensitive=case_sensitive)


def _check_examples(rule: Rule) -> None:
    def fail(reason: str) -> RuleError:
        return RuleError(reason, path=rule.source, rule_id=rule.id)

    matcher = rule.matcher
    for example in rule.examples_match:
        spans = find_matches(rule, example)
        if not spans:
            if isinstance(matcher, RegexMatcher) and matcher.accepted_matches(example):
                raise fail(f"example {example!r} matches the pattern, but its 'contains' hint rules the match out.")
            if isinstance(matcher, RegexMatcher) and matcher.pattern.search(example):
                raise fail(
                    f"example {example!r} matches the pattern, but its checks (allowlist, entropy, character "
                    "classes or validator) reject the match."
                )
            raise fail(f"example {example!r} is declared to match but does not.")
        # The window trusts the speed hints, so check them wherever we can (on the whole match:
        # a rule that reports only its value still reads the label).
        if isinstance(matcher, RegexMatcher):
            for m in matcher.accepted_matches(example):
                found = m.group()
                if matcher.charset and not matcher.covers(found):
                    raise fail(f"'charset' does not cover the match {found!r} of example {example!r}.")
                if matcher.contains and not any(lit in matcher.fold_contains(found) for lit in matcher.contains):
                    raise fail(f"the match {found!r} of example {example!r} contains none of 'contains'.")
    for example in rule.examples_no_match:
        if find_matches(rule, example):
            raise fail(f"example {example!r} is declared not to match but does.")


def _check_hints(rule: Rule) -> None:
    """A speed hint the window trusts must not change what it decides: stream every example split
    at every position and compare (a `charset` that misses a character a lookahead reads shows
    up here as a match released too early)."""
    matcher = rule.matcher
    if not isinstance(matcher, RegexMatcher) or not (matcher.charset or matcher.contains):
        return
    problems = check_rule_examples(rule)
    if problems:
        raise RuleError(
            f"its speed hints ('charset'/'contains') change the result: {problems[0].split(': ', 1)[1]}. "
            "'charset' must cover every character an attempt reads, lookaheads included.",
            path=rule.source,
            rule_id=rule.id,
        )
