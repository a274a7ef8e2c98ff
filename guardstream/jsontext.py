"""Redactions in text that is itself JSON (a tool call's arguments), kept JSON.

Sans-I/O. A tool call's arguments often stream as JSON text inside a string (Anthropic's
`partial_json`, Chat's `function.arguments`, Responses' `function_call_arguments.delta`). A rule
reads that text like any other, so it can match a number outside any string literal: redacted
as it stands, `{"card": 4539578763621486}` becomes `{"card": [REDACTED:card]}`, which is no
longer JSON, and the client's SDK fails on it with an error of its own. This module says, for
the redactions of one piece of such a text, how to write them so the document stays JSON:

* inside a string literal, the replacement is written escaped for the string (the span must not
  cut an escape sequence, nor reach past the closing quote);
* over a whole number, the replacement is written as a string literal (`"[REDACTED:card]"`),
  which the client parses like any other value.

Anything else (a span across a quote, over part of a number, over punctuation) cannot be
redacted cleanly: `fit_redactions` returns None and the caller blocks instead. A lexer state per
document (`JsonLexState`) carries what the text before a piece says about its first character.

The rules read such text with its string escapes decoded (`normalize.JsonTextMap`), but a match
maps back onto whole escapes of the raw text, and it is the raw text the client parses: spans
here always count raw characters, and are judged on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass

# Characters a JSON number is written with.
NUMBER_CHARS = frozenset("-+.eE0123456789")
# The last character before a value outside strings (`""`: the start of the document).
_BEFORE_VALUE = frozenset({"", ":", "[", ","})
_WHITESPACE = frozenset(" \t\r\n")


@dataclass(frozen=True, slots=True)
class JsonLexState:
    """Where a JSON text stands before its next character.

    `in_string`: inside a string literal; `escape`: characters of an escape sequence still to
    come (1 after a backslash, up to 4 for the hex digits of `\\u`); `last`: the last character
    outside strings that is not whitespace (`'"'` after a string); `prev`: the character just
    before, whatever it is (`""` at the start).
    """

    in_string: bool = False
    escape: int = 0
    last: str = ""
    prev: str = ""

    def step(self, ch: str) -> JsonLexState:
        if self.in_string:
            if self.escape == 1:
                return JsonLexState(True, 4 if ch == "u" else 0, self.last, ch)
            if self.escape:
                return JsonLexState(True, self.escape - 1, self.last, ch)
            if ch == "\\":
                return JsonLexState(True, 1, self.last, ch)
            if ch == '"':
                return JsonLexState(False, 0, '"', ch)
            return JsonLexState(True, 0, self.last, ch)
        if ch == '"':
            return JsonLexState(True, 0, self.last, ch)
        return JsonLexState(False, 0, self.last if ch in _WHITESPACE else ch, ch)

    def advance(self, text: str) -> JsonLexState:
        """The state after `text`: runs of plain string characters are skipped, not stepped
        through, since a tool call's arguments may be long (a file a tool writes)."""
        state = self
        pos, size = 0, len(text)
        while pos < size:
            if state.in_string and not state.escape:
                match = _PLAIN_RUN.match(text, pos)
                if match is not None:
                    pos = match.end()
                    state = JsonLexState(True, 0, state.last, text[pos - 1])
                    continue
            state = state.step(text[pos])
            pos += 1
        return state


# Characters inside a string literal that change nothing in the lexer state.
_PLAIN_RUN = re.compile(r'[^"\\]+')


def _states(text: str, start: JsonLexState) -> list[JsonLexState]:
    """The state before each character of `text`, and after the last."""
    states = [start]
    state = start
    for ch in text:
        state = state.step(ch)
        states.append(state)
    return states


def fit_redactions(
    text: str, start: JsonLexState, redactions: Sequence[tuple[int, int, str]], after: str
) -> list[tuple[int, int, str]] | None:
    """The redactions of `text` (a piece of a JSON document that begins in state `start`),
    rewritten so the document stays JSON; None if one of them cannot be.

    `redactions` are sorted, do not overlap, and count raw characters (escapes as written) from
    the start of `text`; one may begin before it or end after it (its other end is judged with
    the piece that holds it). `after` is the document's character after `text` (`""` at its
    end), needed only when a redaction ends exactly there.
    """
    states = _states(text, start)
    size = len(text)
    fitted: list[tuple[int, int, str]] = []
    for begin, end, replacement in redactions:
        lo, hi = max(begin, 0), min(end, size)
        span = states[lo : hi + 1]
        if all(s.in_string for s in span):
            # Inside one string literal: neither end may cut an escape sequence.
            if (begin >= lo and span[0].escape) or (end <= hi and span[-1].escape):
                return None
            fitted.append((begin, end, json.dumps(replacement)[1:-1]))
            continue
        if any(s.in_string for s in span) or any(ch not in NUMBER_CHARS for ch in text[lo:hi]):
            return None
        # Outside strings, over number characters only: it must be one whole number.
        if begin >= lo:
            first = states[lo]
            if first.last not in _BEFORE_VALUE or first.prev in NUMBER_CHARS:
                return None
        elif states[0].prev not in NUMBER_CHARS:
            return None
        if end <= hi:
            following = text[end] if end < size else after
            if following in NUMBER_CHARS and following:
                return None
        fitted.append((begin, end, json.dumps(replacement)))
    return fitted
