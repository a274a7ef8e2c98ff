"""Reading a TOML file that guardstream loads rules from: every failure is a `RuleError` naming it."""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

from guardstream.errors import RuleError


def read_toml(path: Path, source: str) -> dict[str, Any]:
    """The file's tables; `source` is how errors name it (a pack path, or `gitleaks:` and a path)."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise RuleError(f"cannot read the file ({exc}).", path=source) from None
    except tomllib.TOMLDecodeError as exc:
        raise RuleError(f"invalid TOML: {exc}.", path=source) from None
