"""Exceptions raised by guardstream.

```
GuardstreamError
 ├── ConfigError          a config file, flag or environment variable is wrong (refuse to start)
 │    └── RuleError       a rule pack is wrong: names the file, the rule id and the reason
 ├── ProviderError        an upstream event or body could not be understood (fail closed)
 │    └── AmbiguousJSON   JSON that parsers may read differently (duplicate keys, NaN, ...)
 └── Blocked              a rule blocked the text (the Python streaming API raises it)
```

Messages are sentences that say what to fix, because they are shown to operators at start-up
without a traceback.
"""

from __future__ import annotations


class GuardstreamError(Exception):
    """Root of every error guardstream raises on purpose."""


class ConfigError(GuardstreamError):
    """Configuration that guardstream refuses to start with."""


class RuleError(ConfigError):
    """A rule pack that cannot be loaded."""

    def __init__(self, reason: str, *, path: str | None = None, rule_id: str | None = None) -> None:
        self.reason = reason
        self.path = path
        self.rule_id = rule_id
        where = []
        if path is not None:
            where.append(path)
        if rule_id is not None:
            where.append(f"rule {rule_id!r}")
        prefix = ", ".join(where)
        super().__init__(f"{prefix}: {reason}" if prefix else reason)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(reason={self.reason!r}, path={self.path!r}, rule_id={self.rule_id!r})"


class ProviderError(GuardstreamError):
    """An upstream event that does not follow the provider's wire format."""
