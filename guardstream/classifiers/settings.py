"""`[[classifiers]]` tables to `ClassifierSettings`, refusing anything unknown or out of range.

Every error names the file, the classifier and the key, and says what would be valid, as the rest of
the config does: a typo stops start-up with one readable line.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from types import MappingProxyType
from typing import Any

from guardstream.classifiers.base import CATEGORY_NAME, ClassifierSettings
from guardstream.classifiers.openai_moderation import OPENAI_CATEGORIES
from guardstream.errors import ConfigError

# Label values and log fields carry the name: keep it to a short identifier.
CLASSIFIER_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
MODULE_REF = re.compile(r"[A-Za-z_][\w.]*:[A-Za-z_][\w.]*")
PARSERS = ("safe-unsafe", "yes-no", "score")

COMMON_KEYS = frozenset(
    {
        "name",
        "kind",
        "mode",
        "every_chars",
        "overlap_chars",
        "timeout_ms",
        "on_error",
        "max_concurrency",
        "direction",
        "category",
    }
)
_HTTP_KEYS = frozenset({"url", "api_key_env", "headers"})
KIND_KEYS: dict[str, frozenset[str]] = {
    "openai-moderation": _HTTP_KEYS | {"model", "thresholds", "batch", "max_batch", "categories"},
    "chat-judge": _HTTP_KEYS | {"model", "template", "system", "parser", "codes", "max_tokens", "threshold"},
    "http": _HTTP_KEYS | {"batch", "max_batch", "categories", "threshold"},
    "python": frozenset({"module", "batch", "max_batch", "categories", "threshold"}),
    "local-offensive": frozenset({"threshold", "max_batch"}),
}
KINDS = tuple(KIND_KEYS)
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "openai-moderation": ("url",),
    "chat-judge": ("url", "model"),
    "http": ("url",),
    "python": ("module",),
    "local-offensive": (),
}
DEFAULT_MODERATION_MODEL = "omni-moderation-latest"


class _Table:
    """One `[[classifiers]]` table being read, with the prefix every error message starts with."""

    def __init__(self, raw: dict[str, Any], where: str) -> None:
        self.raw = raw
        self.where = where

    def fail(self, key: str, value: object, reason: str) -> ConfigError:
        return ConfigError(f"{self.where}: {key} has value {value!r}. {reason}")

    def choice(self, key: str, choices: tuple[str, ...], default: str) -> str:
        value = self.raw.get(key, default)
        if value not in choices:
            raise self.fail(key, value, f"Use one of {', '.join(repr(c) for c in choices)}.")
        return str(value)

    def integer(self, key: str, default: int, minimum: int) -> int:
        value = self.raw.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(key, value, f"Not a valid int (>= {minimum}).")
        return value

    def boolean(self, key: str, default: bool) -> bool:
        value = self.raw.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, value, "Use true or false.")
        return value

    def fraction(self, key: str, value: object) -> float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
            raise self.fail(key, value, "Use a number from 0 to 1.")
        return float(value)

    def text(self, key: str, pattern: re.Pattern[str] | None = None, reason: str = "Not a valid string.") -> str | None:
        value = self.raw.get(key)
        if value is None:
            return None
        if not isinstance(value, str) or not value or (pattern is not None and not pattern.fullmatch(value)):
            raise self.fail(key, value, reason)
        return value

    def table(self, key: str, check: Callable[[str, object], object]) -> MappingProxyType[str, Any]:
        value = self.raw.get(key, {})
        if not isinstance(value, dict):
            raise self.fail(key, value, "Use a table, e.g. { name = value }.")
        return MappingProxyType({name: check(f"{key}.{name}", item) for name, item in value.items()})


def parse_classifiers(raw: list[Any], source: str) -> tuple[ClassifierSettings, ...]:
    """Validate the `[[classifiers]]` tables of config file `source`.

    ```python
    settings = parse_classifiers(tomllib.loads(text).get("classifiers", []), "guardstream.toml")
    ```
    """
    if not isinstance(raw, list):
        raise ConfigError(f"{source}: classifiers must be an array of tables ([[classifiers]]).")
    parsed: list[ClassifierSettings] = []
    seen: set[str] = set()
    for index, table in enumerate(raw, start=1):
        if not isinstance(table, dict):
            raise ConfigError(f"{source}: [[classifiers]] #{index} must be a table.")
        name = table.get("name")
        if not isinstance(name, str) or not CLASSIFIER_NAME.fullmatch(name):
            raise ConfigError(
                f"{source}: [[classifiers]] #{index}: name has value {name!r}. "
                "Every classifier needs a name of letters, digits, '_', '.' or '-' (at most 64)."
            )
        if name in seen:
            raise ConfigError(f"{source}: [[classifiers]] {name!r}: the name is used twice. Names must be unique.")
        seen.add(name)
        parsed.append(_parse_one(_Table(table, f"{source}: [[classifiers]] {name!r}"), name))
    return tuple(parsed)


def _parse_one(table: _Table, name: str) -> ClassifierSettings:
    raw = table.raw
    kind = raw.get("kind")
    if kind not in KIND_KEYS:
        raise table.fail("kind", kind, f"Use one of {', '.join(repr(k) for k in KINDS)}.")
    allowed = COMMON_KEYS | KIND_KEYS[kind]
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ConfigError(
            f"{table.where}: unknown key {unknown[0]!r} for kind {kind!r}. Known keys: {', '.join(sorted(allowed))}."
        )
    for key in REQUIRED_KEYS[kind]:
        if key not in raw:
            raise ConfigError(f"{table.where}: {key} is missing. Kind {kind!r} needs it.")
    every_chars = table.integer("every_chars", 200, 1)
    parser = table.choice("parser", PARSERS, "safe-unsafe")
    template = table.text("template")
    if template is not None and "{text}" not in template:
        raise table.fail("template", template, "The template must contain {text}, where the text goes.")
    url = table.text("url", re.compile(r"https?://\S+"), "Use an http:// or https:// URL.")
    settings = ClassifierSettings(
        name=name,
        kind=kind,
        mode=table.choice("mode", ("strict", "async"), "strict"),  # type: ignore[arg-type]
        every_chars=every_chars,
        overlap_chars=table.integer("overlap_chars", 100, 0),
        timeout_ms=table.integer("timeout_ms", 1000, 1),
        on_error=table.choice("on_error", ("block", "allow"), "block"),  # type: ignore[arg-type]
        max_concurrency=table.integer("max_concurrency", 8, 1),
        direction=table.choice("direction", ("output", "input", "both"), "output"),  # type: ignore[arg-type]
        category=table.text("category", CATEGORY_NAME, _CATEGORY_REASON),
        url=url,
        api_key_env=table.text("api_key_env", ENV_NAME, "Name an environment variable (letters, digits, '_')."),
        headers=table.table("headers", lambda key, value: _header(table, key, value)),
        model=table.text("model") or (DEFAULT_MODERATION_MODEL if kind == "openai-moderation" else None),
        thresholds=table.table("thresholds", lambda key, value: table.fraction(key, _category(table, key, value))),
        batch=table.boolean("batch", kind == "openai-moderation"),
        max_batch=table.integer("max_batch", 32, 1),
        categories=_categories(table),
        template=template,
        system=table.text("system"),
        parser=parser,
        codes=table.table("codes", lambda key, value: _code_name(table, key, value)),
        max_tokens=table.integer("max_tokens", 32, 1),
        threshold=table.fraction("threshold", raw.get("threshold", 0.5)),
        module=table.text("module", MODULE_REF, "Use 'package.module:callable'."),
    )
    if kind == "openai-moderation":
        _check_thresholded(table, settings)
    return settings


def _check_thresholded(table: _Table, settings: ClassifierSettings) -> None:
    # Only thresholded categories count, so a misspelt one (self_harm for self-harm) would leave
    # the classifier flagging nothing at all: a name must be one the endpoint can answer.
    known = {*OPENAI_CATEGORIES, *settings.categories, "*"}
    for name, value in settings.thresholds.items():
        if name not in known:
            raise table.fail(
                f"thresholds.{name}",
                value,
                f"{name!r} is no category of this classifier: use one of {', '.join(OPENAI_CATEGORIES)}, "
                "or list the endpoint's own names in categories = [...].",
            )


_CATEGORY_REASON = "A category is letters, digits, '_', '.', '/' or '-' (at most 64)."


def _category(table: _Table, key: str, value: object) -> object:
    # A threshold's key is a category name: it becomes a label value too.
    name = key.partition(".")[2]
    if name != "*" and not CATEGORY_NAME.fullmatch(name):
        raise table.fail(key, value, _CATEGORY_REASON + " '*' sets the threshold of every other category.")
    return value


def _code_name(table: _Table, key: str, value: object) -> str:
    if not isinstance(value, str) or not CATEGORY_NAME.fullmatch(value):
        raise table.fail(key, value, _CATEGORY_REASON)
    return value


def _header(table: _Table, key: str, value: object) -> str:
    name = key.partition(".")[2]
    if not HEADER_NAME.fullmatch(name):
        raise table.fail(key, value, "Not a valid header name.")
    if not isinstance(value, str) or any(ord(c) < 32 and c != "\t" or ord(c) == 127 for c in value):
        raise table.fail(key, value, "A header value is text without control characters.")
    return value


def _categories(table: _Table) -> tuple[str, ...]:
    value = table.raw.get("categories", [])
    if not isinstance(value, list) or not all(isinstance(v, str) and CATEGORY_NAME.fullmatch(v) for v in value):
        raise table.fail("categories", value, "Use a list of category names (letters, digits, '_', '.', '/', '-').")
    return tuple(value)
