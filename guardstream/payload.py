"""JSON payloads as moderated text: strict parsing, and every string found, not just the known ones.

Two parsers reading the same bytes must agree, or a guard checks one text while the client (or
the model) reads another. Python's `json` quietly keeps the *last* of two duplicate keys, accepts
`NaN`, turns `1e400` into infinity and rejects what other parsers accept. So a payload is only
trusted when it is unambiguous: duplicate keys, non-finite numbers, invalid UTF-8, an unpaired
surrogate escape (`"\\ud83d"`: no Unicode text, each parser makes something else of it), trailing
data and absurd nesting are refused (fail closed) instead of being read one way here and another
way there.

Default deny: `TextWalker` returns every string of a payload as text to moderate, except values
of a closed, per-format set of *structural* keys (ids, type, role, model, finish reasons), which
are still checked, each value on its own, a closed set of *opaque* fields (signatures, encrypted
reasoning) that carry no readable text, and a closed set of *media* fields whose value is skipped
only while it is well-formed base64 (see `is_base64_media`). A field a provider adds tomorrow is
moderated, not forwarded on trust.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from guardstream.errors import ProviderError

Channel = tuple[Hashable, ...]
JsonPath = tuple[str | int, ...]
Views = Callable[[str], tuple[Channel, ...]]
# A data URL with base64 data: `data:<type>/<subtype>[;param=value...];base64,<data>`.
_DATA_URL = re.compile(r"data:[a-z0-9.+-]+/[a-z0-9.+-]+(?:;[a-z0-9.+-]+=[^;,\s]*)*;base64,", re.IGNORECASE)
# Base64 (standard or URL-safe alphabet), nothing else: no space, no line break, padding only at the end.
_BASE64 = re.compile(r"[A-Za-z0-9+/]*={0,2}|[A-Za-z0-9_-]*={0,2}")


def is_base64_media(value: str, *, bare: bool) -> bool:
    """Whether `value`, found in a field that carries media, is binary data that is not moderated.

    Why anything is skipped: a base64 image or recording is megabytes that no rule can read
    (scanning it costs time for nothing), and random base64 now and then looks like a key, which
    would block a harmless picture. Why so little is: whoever writes the start of a string (a
    model told to, a user) must not decide that it goes unread. So only the *whole* value counts,
    and only in a field of the format's own media vocabulary: a base64 data URL, or (`bare`, in a
    field that is base64 by definition) base64 alone. Text that merely starts like a data URL, or
    any value of another field, is moderated as text.
    """
    match = _DATA_URL.match(value)
    if match is not None:
        data = value[match.end() :]
    elif bare:
        data = value
    else:
        return False
    return bool(data) and _BASE64.fullmatch(data) is not None


class AmbiguousJSON(ProviderError):
    """JSON that parsers may read differently (or not at all): refused rather than guessed."""


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen: set[str] = set()
        duplicate = next(key for key, _ in pairs if key in seen or seen.add(key))  # type: ignore[func-returns-value]
        raise AmbiguousJSON(f"the JSON has the key {duplicate!r} twice; parsers disagree on which one counts")
    return obj


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise AmbiguousJSON("the JSON has a number too large for a double")
    return value


def _no_constant(name: str) -> Any:
    raise AmbiguousJSON(f"the JSON has {name}, which is not JSON")


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_keys, parse_float=_finite, parse_constant=_no_constant)
# A surrogate code point: never Unicode text on its own. Once JSON is parsed, a pair of surrogate
# escapes is one character, so any surrogate left in a string was unpaired.
SURROGATE = re.compile("[\ud800-\udfff]")
# Where one could come from: an escape of one, or one already in the text.
_SURROGATE_SOURCE = re.compile(r"\\u[dD][89a-fA-F]|[\ud800-\udfff]")


def loads_strict(data: str | bytes) -> Any:
    """Parse JSON that every conforming parser reads the same way; raise `AmbiguousJSON` otherwise."""
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise AmbiguousJSON(f"the body is not valid UTF-8 (byte {exc.start})") from None
    if data.startswith("\ufeff"):
        raise AmbiguousJSON("the JSON starts with a byte-order mark")
    try:
        payload = _DECODER.decode(data)
    except AmbiguousJSON:
        raise
    except RecursionError:
        raise AmbiguousJSON("the JSON is nested too deeply") from None
    except ValueError as exc:
        # JSONDecodeError, and the int parser's limit on digit count.
        raise AmbiguousJSON(f"the body is not valid JSON ({exc})") from None
    # Only JSON that names a surrogate is looked at again (emoji escaped as pairs, mostly).
    if _SURROGATE_SOURCE.search(data) is not None and has_lone_surrogate(payload):
        raise AmbiguousJSON("the JSON has an unpaired surrogate escape, which is not Unicode text")
    return payload


def has_lone_surrogate(payload: Any) -> bool:
    """Whether a string (or object key) of a parsed payload holds an unpaired surrogate."""
    return SURROGATE.search(json.dumps(payload, ensure_ascii=False)) is not None


def dumps(payload: Any) -> str:
    # ensure_ascii keeps U+2028/U+2029/U+0085 escaped: some SDK parsers split lines on them.
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


@dataclass(slots=True)
class TextPart:
    """One string of a payload, and how it is moderated.

    A *text* part streams through one window per view (`views`): the concatenations a client may
    read (a choice by its `index`, and by its position in `choices`). A *value* part (no views:
    an id, a type, an object key) is checked on its own. `path` locates it for rewriting; with
    `is_key` the string is the last key of the path itself.
    """

    views: tuple[Channel, ...]
    text: str
    path: JsonPath
    is_key: bool = False
    # A snapshot repeating everything streamed on the view `copy_of` (Responses' `*.done` events).
    copy_of: Channel | None = None
    # Text on a view that snapshots copy: the channels remember it (its first view is the one).
    tracked: bool = False
    # JSON text inside a string (tool-call arguments): the client parses it, so the rules read it
    # with its string escapes decoded (see `normalize.JsonTextMap`). Ordinary strings need not:
    # parsing the event already decoded their escapes. A streamed piece of such a text is part of
    # one document on its first view: a redaction must leave that document JSON (see
    # `jsontext.py`), or the channel blocks.
    json_text: bool = False

    @property
    def is_value(self) -> bool:
        return not self.views and self.copy_of is None


@dataclass(frozen=True)
class TextWalker:
    """Finds every string under a node, for one wire format.

    `structural`: keys whose string values are checked on their own (never joined into a text);
    `known_keys`: object keys that need no check (the format's own vocabulary; any other key is a
    string the payload carries and is checked as a value); `opaque`: dotted field names (list
    indices left out), or their last segments, whose values are encrypted or signed data, never
    text; `media`: field names (matched the same way) that carry images, audio or files, whose
    value is skipped only while the whole of it is a base64 data URL; `base64`: media fields that
    are base64 by definition, where bare base64 is skipped too (see `is_base64_media`). A media
    field of an object that says it is text (`"type": "text"`, Anthropic's plain-text document
    source) is text. `aliases`: field names that are the same text as another (a content given as
    a list of parts is the content). `arguments`: fields (matched the same way) whose value is a
    tool call's arguments (or a tool's result) as a JSON object: numbers in it are read too (see
    `number_text`), since a tool takes `4539578763621486` as readily as `"4539578763621486"`.
    """

    structural: frozenset[str]
    known_keys: frozenset[str]
    opaque: frozenset[str] = frozenset()
    aliases: dict[str, str] | None = None
    media: frozenset[str] = frozenset()
    base64: frozenset[str] = frozenset()
    arguments: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        # A field is opaque (media) when its dotted name is, or ends with, one of `opaque` (`media`).
        object.__setattr__(self, "_opaque_suffixes", tuple("." + name for name in self.opaque))
        object.__setattr__(self, "_media_suffixes", tuple("." + name for name in self.media | self.base64))
        object.__setattr__(self, "_base64_suffixes", tuple("." + name for name in self.base64))
        object.__setattr__(self, "_arguments_suffixes", tuple("." + name for name in self.arguments))

    def is_arguments(self, field: str) -> bool:
        return field in self.arguments or field.endswith(self._arguments_suffixes)  # type: ignore[attr-defined]

    def is_opaque(self, field: str) -> bool:
        return field in self.opaque or field.endswith(self._opaque_suffixes)  # type: ignore[attr-defined]

    def is_media(self, field: str, value: str) -> bool:
        """Whether `value` at `field` is binary media, not text (see `is_base64_media`)."""
        if not (field in self.media or field in self.base64 or field.endswith(self._media_suffixes)):  # type: ignore[attr-defined]
            return False
        bare = field in self.base64 or field.endswith(self._base64_suffixes)  # type: ignore[attr-defined]
        return is_base64_media(value, bare=bare)

    def walk(
        self,
        node: Any,
        path: JsonPath,
        field: str,
        views: Views,
        out: list[TextPart],
        *,
        text_object: bool = False,
        in_arguments: bool = False,
    ) -> None:
        """Append a part for every string under `node` (at `path`; `field` is its dotted name;
        `text_object`: its object says it is text), and every number under tool arguments
        (`in_arguments`, or `field` is one of `arguments`)."""
        in_arguments = in_arguments or (bool(self.arguments) and self.is_arguments(field))
        if in_arguments and isinstance(node, int | float) and not isinstance(node, bool):
            # A value, checked on its own; redacted, it becomes a string (see `set_text`).
            out.append(TextPart((), number_text(node), path))
        elif isinstance(node, str):
            if not node or self.is_opaque(field) or (not text_object and self.is_media(field, node)):
                return
            key = field.rpartition(".")[2]
            if key in self.structural:
                out.append(TextPart((), node, path))
            else:
                name = self.aliases.get(field, field) if self.aliases else field
                out.append(TextPart(views(name), node, path))
        elif isinstance(node, dict):
            prefix = f"{field}." if field else ""
            is_text = node.get("type") == "text"
            for key, value in node.items():
                if key not in self.known_keys:
                    out.append(TextPart((), key, (*path, key), is_key=True))
                self.walk(value, (*path, key), prefix + key, views, out, text_object=is_text, in_arguments=in_arguments)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                self.walk(item, (*path, i), field, views, out, in_arguments=in_arguments)


def number_text(value: int | float) -> str:
    """A JSON number as the text rules read: an integer as written (`loads_strict` keeps every
    digit), a float as `dumps` writes it (how the client gets it once the event is rewritten,
    and how a tool prints the value it parsed: `4.539578763621486e15` reads as
    `4539578763621486.0`)."""
    return repr(value) if isinstance(value, float) else str(value)


def whole(field: str) -> tuple[Channel, ...]:
    """Views for strings that come whole in an object the client keeps whole (a tool's name, a
    citation): none, so each is a value, checked on its own as it comes. On a channel it would be
    the start of a text that may still grow, and its tail would hold every later event back."""
    return ()


def others(node: dict[str, Any], text_key: str | None) -> dict[str, Any]:
    """The fields of `node` a codec has not taken as its text: all but `text_key`, and that one
    too when it holds something other than a string (default deny: a list in a text slot is read,
    not skipped as "not text")."""
    return {k: v for k, v in node.items() if k != text_key or not isinstance(v, str)}


def read_as_one(walker: TextWalker, body: Any, joined: Channel) -> list[TextPart]:
    """Every string of a body that is read as one text (a request, an error body).

    Each string is a text of its own, so a key inside one field is judged with that field's own
    boundaries; and all of them, joined in order, are one text too, so a key split across two
    messages or two content parts is still one key.
    """
    parts: list[TextPart] = []
    walker.walk(body, (), "", lambda field: (joined,), parts)
    for part in parts:
        if part.views:
            part.views = (("part", *part.path), joined)
    return parts


def set_text(payload: Any, part: TextPart, text: str) -> None:
    """Write `text` where `part` was found (renaming the key for a key part)."""
    target = payload
    for key in part.path[:-1]:
        target = target[key]
    last = part.path[-1]
    if not part.is_key:
        # A redacted number (tool arguments) becomes this string: still JSON, with nothing of it left.
        target[last] = text
        return
    if text == last:
        return
    # Rename the key in place, keeping the order of the others.
    assert isinstance(last, str) and isinstance(target, dict)
    items = list(target.items())
    target.clear()
    for key, value in items:
        target[text if key == last else key] = value


def get_path(payload: Any, path: JsonPath) -> Any:
    target = payload
    for key in path:
        target = target[key]
    return target
