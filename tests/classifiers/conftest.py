"""Settings for a classifier, built through the same validation as a config file."""

from __future__ import annotations

from typing import Any

from guardstream.classifiers import ClassifierSettings, parse_classifiers


def settings(kind: str, name: str = "test", **table: Any) -> ClassifierSettings:
    """One `[[classifiers]]` table, as `parse_classifiers` reads it."""
    (parsed,) = parse_classifiers([{"name": name, "kind": kind, **table}], "test.toml")
    return parsed
