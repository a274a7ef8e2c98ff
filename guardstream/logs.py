"""Structured logs: one line per request, one per block, redaction and upstream failure.

Every field comes from a closed set (rule ids, provider names, outcomes, reasons, host names,
numbers) or is made here (request ids). No line ever carries a credential, a message text or a
matched value: callers pass fields, never free text, and `log_event` refuses unknown fields.

```text
2026-12-01T12:00:00.123Z info request request_id=gs-3f2a… provider=openai-chat
  route="POST /v1/chat/completions" status=200 outcome=blocked_output
  rules=secrets.aws-access-key-id ttfb_ms=12 duration_ms=230 held_chars=20     (one line)
```
"""

from __future__ import annotations

import json
import logging
import secrets
import sys
import time
from typing import Any

LOGGER = logging.getLogger("guardstream")
# What a line may say. Anything else is a programming error, caught by the tests.
FIELDS = frozenset(
    {
        "request_id",
        "provider",
        "route",
        "status",
        "outcome",
        "rules",
        "classifiers",
        "ttfb_ms",
        "duration_ms",
        "held_chars",
        "rule",
        "category",
        "action",
        "direction",
        "is_timeout",
        "upstream",
        "reason",
        "count",
        "packs",
        "rule_count",
        "config",
        "result",
        "error",
        "streams",
        "signal",
    }
)


def new_request_id() -> str:
    return "gs-" + secrets.token_hex(8)


def log_event(event: str, *, level: int = logging.INFO, **fields: Any) -> None:
    unknown = set(fields) - FIELDS
    if unknown:  # pragma: no cover - guarded by the tests' use of every event
        raise ValueError(f"log fields {sorted(unknown)} are not in the closed set")
    if LOGGER.isEnabledFor(level):
        LOGGER.log(level, event, extra={"guardstream": {k: v for k, v in fields.items() if v is not None}})


class _Formatter(logging.Formatter):
    def fields(self, record: logging.LogRecord) -> dict[str, Any]:
        return dict(getattr(record, "guardstream", {}))

    def timestamp(self, record: logging.LogRecord) -> str:
        seconds = time.gmtime(record.created)
        return time.strftime("%Y-%m-%dT%H:%M:%S", seconds) + f".{int(record.msecs):03d}Z"


class TextFormatter(_Formatter):
    """`<time> <level> <event> key=value ...`: readable, still one line and greppable."""

    def format(self, record: logging.LogRecord) -> str:
        parts = [self.timestamp(record), record.levelname.lower(), record.getMessage()]
        for key, value in self.fields(record).items():
            text = ",".join(map(str, value)) if isinstance(value, list | tuple) else str(value)
            parts.append(f"{key}={json.dumps(text) if ' ' in text or not text else text}")
        return " ".join(parts)


class JsonFormatter(_Formatter):
    """One JSON object per line, for log pipelines."""

    def format(self, record: logging.LogRecord) -> str:
        line = {"ts": self.timestamp(record), "level": record.levelname.lower(), "event": record.getMessage()}
        line.update(self.fields(record))
        return json.dumps(line, separators=(",", ":"), default=str)


def configure_logging(level: str = "info", format: str = "text") -> None:
    """Send guardstream's lines to stderr in the chosen format (called by `guardstream serve`)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if format == "json" else TextFormatter())
    LOGGER.handlers[:] = [handler]
    LOGGER.setLevel(level.upper())
    LOGGER.propagate = False
