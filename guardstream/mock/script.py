"""What a request asks the mock to answer: a `MockScript`, from the body's `"mock"` object or `x-mock-*` headers."""

from __future__ import annotations

import base64
import binascii
import dataclasses
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from guardstream.mock.compression import CODINGS
from guardstream.mock.framing import dumps

__all__ = ["DEFAULT_REPLY", "MockScript", "MockScriptError", "MockToolCall"]

DEFAULT_REPLY = "Hello! I am the guardstream mock model."
MOCK_HEADER_PREFIX = "x-mock-"
# RFC 9110 token characters: what a header name may be made of.
HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The server frames the body itself; a scripted value for these would break HTTP framing, not test a proxy.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding"})


class MockScriptError(ValueError):
    """The mock script of a request is invalid. The mock answers HTTP 400 in the provider's error shape."""


@dataclass(frozen=True)
class MockToolCall:
    """One function call the mock model makes after its text."""

    name: str
    arguments: str


@dataclass(frozen=True)
class MockScript:
    """What the mock answers, and how: text, chunking, timing and injected faults.

    Every field can be set in the request body's `"mock"` object or with an `x-mock-<field-with-dashes>`
    header (body wins). Header values are JSON for non-text fields (`x-mock-chunk-chars: 2`); text fields
    are taken as-is, or base64 after a `b64:` prefix so non-latin-1 text fits in a header.
    Fault positions (`drop_after`, `malformed_after`, `hold_after`) count events written, from 0.

    The raw fields replace what goes on the wire for adversarial tests: `raw_events` (the body, one
    HTTP chunk per string), `raw_body` (the body in one piece), `content_type`, `headers` (extra
    response headers), `error_body` (the body of a scripted `status`) and `content_encoding`
    (`gzip`, `deflate` or `identity`, compressed as it is written). `logprobs` names alternative
    tokens listed in each token's `top_logprobs` when the request asks for logprobs.

    For benchmarks: `repeat` streams the text that many times over (a long stream from a short
    script), `events_per_chunk` writes that many events per HTTP chunk, and `stamp` puts the time
    each JSON event is written into it (CLOCK_MONOTONIC nanoseconds, which every process on one
    Linux machine shares), so a client can time each event end to end: at the start of the
    event's `obfuscation` pad where it has one (hexadecimal written with the letters `g`-`v`,
    then the pad's other characters; see `writer.stamp_pad`), so the events differ only where
    real OpenAI events do; as a leading `"mock_sent_ns"` field otherwise.
    """

    reply: str = DEFAULT_REPLY
    replies: tuple[str, ...] = ()
    chunk_chars: int = 4
    delay_ms: float = 0.0
    first_byte_delay_ms: float = 0.0
    tool_calls: tuple[MockToolCall, ...] = ()
    refusal: str | None = None
    thinking: str | None = None
    drop_after: int | None = None
    malformed_after: int | None = None
    hold_after: int | None = None
    hold_key: str | None = None
    status: int | None = None
    error_message: str | None = None
    raw_events: tuple[str, ...] | None = None
    raw_body: str | None = None
    content_type: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    error_body: str | None = None
    content_encoding: str | None = None
    logprobs: tuple[str, ...] = ()
    repeat: int = 1
    events_per_chunk: int = 1
    stamp: bool = False

    def __post_init__(self) -> None:
        for name in ("chunk_chars", "repeat", "events_per_chunk"):
            if getattr(self, name) < 1:
                raise MockScriptError(f"Mock field '{name}' has value {getattr(self, name)!r}. It must be at least 1.")
        if (self.hold_after is None) != (self.hold_key is None):
            raise MockScriptError("Mock fields 'hold_after' and 'hold_key' go together. Set both or neither.")
        if self.raw_events is not None and self.raw_body is not None:
            raise MockScriptError("Mock fields 'raw_events' and 'raw_body' both replace the body. Set one of them.")
        if self.error_body is not None and self.status is None:
            raise MockScriptError("Mock field 'error_body' is the body of an error answer. Set 'status' too.")
        if self.error_body is not None and self.error_message is not None:
            raise MockScriptError("Mock fields 'error_body' and 'error_message' both set the error. Set one of them.")

    @classmethod
    def from_request(cls, body: Mapping[str, Any], headers: Mapping[str, str]) -> MockScript:
        """Read the script from `body["mock"]` and `x-mock-*` headers; raise `MockScriptError` if invalid."""
        raw: dict[str, Any] = {}
        for header, value in headers.items():
            header = header.lower()
            if header.startswith(MOCK_HEADER_PREFIX):
                name = header.removeprefix(MOCK_HEADER_PREFIX).replace("-", "_")
                _check_field_name(name)
                raw[name] = _decode_header(name, value)
        mock = body.get("mock", {})
        if not isinstance(mock, Mapping):
            raise MockScriptError(f"The request's 'mock' key has value {mock!r}. It must be a JSON object.")
        for name, value in mock.items():
            _check_field_name(name)
            raw[name] = value
        return cls(**{name: _FIELD_VALIDATORS[name](name, value) for name, value in raw.items()})

    def reply_for(self, index: int) -> str:
        """The text of choice `index`: its entry in `replies`, else `reply`."""
        text = self.replies[index] if index < len(self.replies) else self.reply
        return text * self.repeat

    def answer_for(self, index: int) -> str:
        """The text the model streams for choice `index`: the refusal when there is one."""
        return self.refusal if self.refusal is not None else self.reply_for(index)

    def fingerprint(self) -> str:
        """A stable text naming what shapes the generated answer, from which ids are derived.

        Fields that only change how the answer is sent, or decorate it (`logprobs`), are left out, and
        so is `repeat` while it is 1, so adding one never changes the ids (and so the bytes) of answers
        that do not use it.
        """
        fields = dataclasses.fields(self)
        shown = ", ".join(
            f"{f.name}={getattr(self, f.name)!r}"
            for f in fields
            if f.name not in _NOT_IN_IDS and not (f.name == "repeat" and self.repeat == 1)
        )
        return f"{type(self).__name__}({shown})"


def _check_field_name(name: str) -> None:
    if name not in _FIELD_VALIDATORS:
        known = ", ".join(_FIELD_VALIDATORS)
        raise MockScriptError(f"Unknown mock field '{name}'. Known fields: {known}.")


def _decode_header(name: str, value: str) -> object:
    if name in _TEXT_FIELDS:
        if not value.startswith("b64:"):
            return value
        try:
            return base64.b64decode(value[4:], validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise MockScriptError(f"Header 'x-mock-{name}' is not valid base64 of UTF-8 text after 'b64:'.") from exc
    try:
        return json.loads(value)
    except ValueError as exc:
        raise MockScriptError(f"Header 'x-mock-{name}' has value {value!r}. Not valid JSON.") from exc


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a string.")
    return value


def _count(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a non-negative integer.")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not true or false.")
    return value


def _milliseconds(name: str, value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a non-negative number.")
    return float(value)


def _error_status(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 400 <= value <= 599:
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not an HTTP error status (400-599).")
    return value


def _texts(name: str, value: object) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not a list of strings.")
    return tuple(value)


def _content_coding(name: str, value: object) -> str:
    if value not in CODINGS:
        choices = ", ".join(CODINGS)
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Use one of: {choices}.")
    return str(value)


def _header_value(name: str, value: object) -> str:
    text = _text(name, value)
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        is_valid = False
    else:
        is_valid = not any(ord(char) < 32 and char != "\t" or ord(char) == 127 for char in text)
    if not is_valid:
        raise MockScriptError(
            f"Mock field '{name}' has value {value!r}. A header value must be latin-1 text without control characters."
        )
    return text


def _headers(name: str, value: object) -> tuple[tuple[str, str], ...]:
    if not isinstance(value, dict):
        raise MockScriptError(f"Mock field '{name}' has value {value!r}. Not an object of header names to values.")
    pairs = []
    for header, text in value.items():
        if not HEADER_NAME.fullmatch(header):
            raise MockScriptError(f"Mock field '{name}' names header {header!r}. Not a valid header name.")
        if header.lower() in FRAMING_HEADERS:
            raise MockScriptError(
                f"Mock field '{name}' sets {header!r}. The server frames the body itself; leave that header out."
            )
        pairs.append((header.lower(), _header_value(f"{name}.{header}", text)))
    return tuple(pairs)


def _tool_calls(name: str, value: object) -> tuple[MockToolCall, ...]:
    if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
        raise MockScriptError(f'Mock field \'{name}\' must be a list of {{"name": ..., "arguments": ...}} objects.')
    calls = []
    for item in value:
        arguments = item.get("arguments", "")
        # An object is accepted as a convenience; the wire always carries the JSON text.
        if isinstance(arguments, dict):
            arguments = dumps(arguments)
        calls.append(MockToolCall(name=_text(f"{name}.name", item.get("name")), arguments=_text(name, arguments)))
    return tuple(calls)


_TEXT_FIELDS = frozenset(
    {
        "reply",
        "refusal",
        "thinking",
        "hold_key",
        "error_message",
        "raw_body",
        "content_type",
        "error_body",
        "content_encoding",
    }
)
_NOT_IN_IDS = frozenset(
    {
        "raw_events",
        "raw_body",
        "content_type",
        "headers",
        "error_body",
        "content_encoding",
        "logprobs",
        "events_per_chunk",
        "stamp",
    }
)
_FIELD_VALIDATORS: dict[str, Callable[[str, object], Any]] = {
    "reply": _text,
    "replies": _texts,
    "chunk_chars": _count,
    "delay_ms": _milliseconds,
    "first_byte_delay_ms": _milliseconds,
    "tool_calls": _tool_calls,
    "refusal": _text,
    "thinking": _text,
    "drop_after": _count,
    "malformed_after": _count,
    "hold_after": _count,
    "hold_key": _text,
    "status": _error_status,
    "error_message": _text,
    "raw_events": _texts,
    "raw_body": _text,
    "content_type": _header_value,
    "headers": _headers,
    "error_body": _text,
    "content_encoding": _content_coding,
    "logprobs": _texts,
    "repeat": _count,
    "events_per_chunk": _count,
    "stamp": _flag,
}
