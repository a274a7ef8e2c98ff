"""What the rules read: the text with evasions undone, mapped back to what the model sent.

A model (or a prompt that steers it) can slip a secret past a pattern with characters a reader
does not see or does not tell apart: zero-width spaces inside a key (`AKIA\u200bZ3M…`), full-width
or other compatibility forms (`ＡＫＩＡ…`, `ｓｋ－…`). Rules therefore match on a normalised copy:
each character is mapped on its own through NFKC, and default-ignorable (invisible) code points
are removed.
What leaves is always the original text, byte for byte; only the decisions (where a match starts
and ends, how far text may be released) are made on the normalised copy and mapped back.

The map is sparse: most text is ASCII or already normal, and costs one `str.isascii()` check.
Only characters that change are recorded, so converting an offset is a bisect over them.
"""

from __future__ import annotations

import copy
import unicodedata
from bisect import bisect_right
from functools import lru_cache

import regex

# Unicode's Default_Ignorable_Code_Point property: the code points a renderer draws as nothing
# when it has no special support for them, so a reader does not see them and a key can be split
# by them: zero-width space/joiners, soft hyphen, bidi and invisible-operator controls, the
# combining grapheme joiner, Arabic letter mark, Hangul fillers, Khmer inherent vowels, Mongolian
# free variation selectors, all 256 variation selectors, shorthand format controls, musical
# beam/tie/slur formats and the whole tag plane (used to smuggle text), unassigned ones included.
# Taking the property rather than a hand-made list keeps it complete as Unicode adds to it; the
# `regex` package's lookup is also faster than a `re` character class on all but the shortest texts.
# Ordinary whitespace is not default-ignorable and stays.
INVISIBLE = regex.compile(r"\p{Default_Ignorable_Code_Point}")


@lru_cache(maxsize=4096)
def _normal_char(ch: str) -> str:
    if INVISIBLE.match(ch):
        return ""
    return unicodedata.normalize("NFKC", ch)


def needs_mapping(text: str) -> bool:
    """False for text the rules can read as it is (the common case, checked in C)."""
    if text.isascii():
        return False
    return INVISIBLE.search(text) is not None or not unicodedata.is_normalized("NFKC", text)


class OffsetMap:
    """Offsets between an original text and its normalised copy, both growing at the end.

    Each changed stretch is recorded as `(original offset, original length, normalised offset,
    normalised length)`: one character for normalising, a whole escape for `JsonTextMap`; between
    two of them the texts advance together. Offsets are absolute (they keep counting after the
    window drops old text), so the map can be trimmed from the front without changing meaning.
    """

    __slots__ = ("_orig", "_olen", "_norm", "_len", "_orig_end", "_norm_end")

    def __init__(self) -> None:
        self._orig: list[int] = []
        self._olen: list[int] = []
        self._norm: list[int] = []
        self._len: list[int] = []
        self._orig_end = 0
        self._norm_end = 0

    def copy(self) -> OffsetMap:
        twin = copy.copy(self)
        twin._orig, twin._olen = self._orig.copy(), self._olen.copy()
        twin._norm, twin._len = self._norm.copy(), self._len.copy()
        return twin

    def append(self, text: str) -> str:
        """Record `text` arriving at the end; return its normalised form."""
        if not needs_mapping(text):
            self._orig_end += len(text)
            self._norm_end += len(text)
            return text
        out: list[str] = []
        self._append_normalised(text, out)
        return "".join(out)

    def finish(self) -> str:
        """The text is complete: the normalised form of anything held back (nothing, here)."""
        return ""

    def _append_normalised(self, text: str, out: list[str]) -> None:
        """Normalise `text` character by character onto `out`, recording what changes."""
        orig, norm = self._orig_end, self._norm_end
        for ch in text:
            mapped = ch if ch.isascii() else _normal_char(ch)
            if mapped != ch:
                self._record(orig, 1, norm, len(mapped))
            out.append(mapped)
            orig += 1
            norm += len(mapped)
        self._orig_end, self._norm_end = orig, norm

    def _record(self, orig: int, orig_len: int, norm: int, norm_len: int) -> None:
        self._orig.append(orig)
        self._olen.append(orig_len)
        self._norm.append(norm)
        self._len.append(norm_len)

    def to_norm(self, orig: int) -> int:
        """Normalised offset where original offset `orig` begins (inside a recorded stretch: where
        the stretch begins)."""
        k = bisect_right(self._orig, orig) - 1
        if k < 0:
            return orig + self._shift()
        start, length = self._orig[k], self._olen[k]
        if orig < start + length:
            return self._norm[k]
        return self._norm[k] + self._len[k] + (orig - start - length)

    def release_to_orig(self, norm: int) -> int:
        """The longest original prefix whose normalised form lies within `[.., norm)`.

        A character that expands (ﬁ -> fi) or an escape (`\\u0041` -> A) is released only whole;
        an invisible character at the boundary goes with the text before it.
        """
        return self._unit_at(norm)[0]

    def span_to_orig(self, start: int, end: int) -> tuple[int, int]:
        """Original span of every visible character that contributed to normalised `[start, end)`."""
        if end <= start:
            return self._unit_at(start)[0], self._unit_at(start)[0]
        return self._unit_at(start)[0], self._unit_at(end - 1)[1]

    def trim(self, orig: int) -> None:
        """Forget changed characters before original offset `orig` (the window dropped that text)."""
        k = bisect_right(self._orig, orig - 1)
        if k:
            del self._orig[:k], self._olen[:k], self._norm[:k], self._len[:k]

    def _shift(self) -> int:
        """norm - orig before the first recorded change: identity between changes keeps it exact
        even after earlier changes were trimmed."""
        if not self._orig:
            return self._norm_end - self._orig_end
        return self._norm[0] - self._orig[0]

    def _unit_at(self, norm: int) -> tuple[int, int]:
        """The original stretch `(start, end)` whose normalised form contains offset `norm` (an
        invisible character, having no width, never does; past the end, where the next one would
        begin)."""
        k = bisect_right(self._norm, norm) - 1
        if k < 0:
            pos = norm - self._shift()
            return pos, pos + 1
        start, length = self._norm[k], self._len[k]
        if norm < start + length:
            return self._orig[k], self._orig[k] + self._olen[k]
        pos = self._orig[k] + self._olen[k] + (norm - start - length)
        return pos, pos + 1


# A JSON string escape and what it stands for (`\uXXXX` is read apart).
_JSON_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
_HEX = frozenset("0123456789abcdefABCDEF")
# Where an escape is incomplete for want of more text: a lone backslash, `\u` and up to three
# digits, or a high surrogate whose low half may still come.
_INCOMPLETE = -1


def _json_escape(text: str, at: int) -> tuple[str, int]:
    """The character the escape at `text[at]` (a backslash) stands for and its length in `text`;
    `("", _INCOMPLETE)` when the text ends before it is complete. An invalid escape stands for
    itself (the client's parser rejects the JSON; nothing is hidden)."""
    size = len(text)
    if at + 1 >= size:
        return "", _INCOMPLETE
    kind = text[at + 1]
    if kind != "u":
        simple = _JSON_ESCAPES.get(kind)
        return (simple, 2) if simple is not None else ("\\", 1)
    digits = text[at + 2 : at + 6]
    if not all(d in _HEX for d in digits):
        return "\\", 1
    if len(digits) < 4:
        return "", _INCOMPLETE
    code = int(digits, 16)
    if 0xD800 <= code < 0xDC00:
        # A high surrogate: a parser joins it with a low one that follows as an escape.
        low = text[at + 6 : at + 12]
        if "\\u".startswith(low[:2]) and len(low) < 6 and all(d in _HEX for d in low[2:]):
            return "", _INCOMPLETE
        if low[:2] == "\\u" and all(d in _HEX for d in low[2:]) and 0xDC00 <= int(low[2:], 16) < 0xE000:
            return chr(0x10000 + ((code - 0xD800) << 10) + (int(low[2:], 16) - 0xDC00)), 12
        return "\ufffd", 6
    if 0xDC00 <= code < 0xE000:
        return "\ufffd", 6
    return chr(code), 6


class JsonTextMap(OffsetMap):
    """`OffsetMap` for JSON text carried inside a string (tool-call arguments): the rules read it
    with its string escapes decoded, as the client's JSON parser will.

    `{"k": "\\u0041KIA…"}` leaves as written, but the client's `json.loads` turns it into `AKIA…`:
    read as written, one escape hides a key from every rule. Each escape is recorded as one
    stretch, so a match maps back onto whole escapes and none of its raw characters is released.
    An escape cut off at the end of what has arrived (`\\`, `\\u00`, a high surrogate before its
    low half) is held back undecoded, since it may still become part of a match; `finish` reads
    what is left of it as written. Decoding is not an evasion setting: it applies with
    normalising off too (`normalize=False` only leaves characters as decoded).
    """

    __slots__ = ("_tail", "_normalize")

    def __init__(self, *, normalize: bool = True) -> None:
        super().__init__()
        self._tail = ""
        self._normalize = normalize

    def append(self, text: str) -> str:
        if self._tail:
            text, self._tail = self._tail + text, ""
        elif "\\" not in text:
            if self._normalize:
                return super().append(text)
            self._orig_end += len(text)
            self._norm_end += len(text)
            return text
        out: list[str] = []
        pos, size = 0, len(text)
        while pos < size:
            at = text.find("\\", pos)
            if at < 0:
                at = size
            if at > pos:
                self._append_plain(text[pos:at], out)
            if at == size:
                break
            decoded, width = _json_escape(text, at)
            if width == _INCOMPLETE:
                self._tail = text[at:]
                break
            if self._normalize and not decoded.isascii():
                decoded = _normal_char(decoded)
            self._record(self._orig_end, width, self._norm_end, len(decoded))
            out.append(decoded)
            self._orig_end += width
            self._norm_end += len(decoded)
            pos = at + width
        return "".join(out)

    def finish(self) -> str:
        """An escape still incomplete at the end is read as written (the JSON is invalid)."""
        tail, self._tail = self._tail, ""
        if not tail:
            return ""
        out: list[str] = []
        self._append_plain(tail, out)
        return "".join(out)

    def _append_plain(self, text: str, out: list[str]) -> None:
        if self._normalize and needs_mapping(text):
            self._append_normalised(text, out)
            return
        out.append(text)
        self._orig_end += len(text)
        self._norm_end += len(text)
