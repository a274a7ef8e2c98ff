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

    Each changed character is recorded as `(original offset, normalised offset, normalised length)`;
    between two of them the texts advance together. Offsets are absolute (they keep counting after
    the window drops old text), so the map can be trimmed from the front without changing meaning.
    """

    __slots__ = ("_orig", "_norm", "_len", "_orig_end", "_norm_end")

    def __init__(self) -> None:
        self._orig: list[int] = []
        self._norm: list[int] = []
        self._len: list[int] = []
        self._orig_end = 0
        self._norm_end = 0

    def copy(self) -> OffsetMap:
        twin = OffsetMap()
        twin._orig, twin._norm, twin._len = self._orig.copy(), self._norm.copy(), self._len.copy()
        twin._orig_end, twin._norm_end = self._orig_end, self._norm_end
        return twin

    def append(self, text: str) -> str:
        """Record `text` arriving at the end; return its normalised form."""
        if not needs_mapping(text):
            self._orig_end += len(text)
            self._norm_end += len(text)
            return text
        out: list[str] = []
        orig, norm = self._orig_end, self._norm_end
        for ch in text:
            mapped = ch if ch.isascii() else _normal_char(ch)
            if mapped != ch:
                self._orig.append(orig)
                self._norm.append(norm)
                self._len.append(len(mapped))
            out.append(mapped)
            orig += 1
            norm += len(mapped)
        self._orig_end, self._norm_end = orig, norm
        return "".join(out)

    def to_norm(self, orig: int) -> int:
        """Normalised offset where original offset `orig` begins."""
        k = bisect_right(self._orig, orig) - 1
        if k < 0:
            return orig + self._shift()
        if self._orig[k] == orig:
            return self._norm[k]
        return self._norm[k] + self._len[k] + (orig - self._orig[k] - 1)

    def release_to_orig(self, norm: int) -> int:
        """The longest original prefix whose normalised form lies within `[.., norm)`.

        A character that expands (ﬁ -> fi) is released only whole; an invisible character at the
        boundary goes with the text before it.
        """
        k = bisect_right(self._norm, norm) - 1
        if k < 0:
            return norm - self._shift()
        start, length = self._norm[k], self._len[k]
        if norm < start + length:
            return self._orig[k]
        return self._orig[k] + 1 + (norm - start - length)

    def span_to_orig(self, start: int, end: int) -> tuple[int, int]:
        """Original span of every visible character that contributed to normalised `[start, end)`."""
        return self._char_at(start), self._char_at(end - 1) + 1 if end > start else self._char_at(start)

    def trim(self, orig: int) -> None:
        """Forget changed characters before original offset `orig` (the window dropped that text)."""
        k = bisect_right(self._orig, orig - 1)
        if k:
            del self._orig[:k], self._norm[:k], self._len[:k]

    def _shift(self) -> int:
        """norm - orig before the first recorded change: identity between changes keeps it exact
        even after earlier changes were trimmed."""
        if not self._orig:
            return self._norm_end - self._orig_end
        return self._norm[0] - self._orig[0]

    def _char_at(self, norm: int) -> int:
        """The original character whose normalised form contains offset `norm` (invisible ones,
        having no width, never do)."""
        k = bisect_right(self._norm, norm) - 1
        if k < 0:
            return norm - self._shift()
        start, length = self._norm[k], self._len[k]
        if norm < start + length:
            return self._orig[k]
        return self._orig[k] + 1 + (norm - start - length)
