"""Incremental matchers: how one rule finds its matches in text that is still arriving.

A streaming guard must tell apart two kinds of "no match yet": text where the rule can never
match (release it) and text that could still become a match once more arrives (hold it back).
Each matcher answers both questions in one `scan(text, pos, final=...)` call.

The `regex` package's `partial=True` prefers a complete match over a partial one (`\\d+` on
"abc 123" returns the complete "123" although "1234" may follow), so a complete match it reports
is not necessarily final. We therefore ask a second question with a *hold pattern*,
`(?:P)(?=[\\s\\S])(?!)`: it can never complete, so a partial search for it returns exactly the
earliest start from which an attempt of `P` runs into the end of the text. Complete matches that
start before that point are final (nothing that arrives later can change them); everything from
it on is undecided.
"""

from __future__ import annotations

import functools
import importlib
import re
import string
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

import regex

from guardstream.filters import MatchCheck

# Generous: it stops a pathological pattern, and must not trip on an honest one on a loaded machine.
DEFAULT_TIMEOUT_SECONDS = 1.0

# Characters used to work out, once at load time, which characters can begin a match and which
# literal every match starts with. Non-ASCII probes stand for whole Unicode classes (letters of
# other scripts, other digits, exotic spaces and case-folding look-alikes).
ASCII_PROBES = string.printable
UNICODE_PROBES = "éßÉ日本ΩЖ٣१\u00a0\u2003\u2028“”’—…KſİﬁĀ\uff21\u0301"
# Probes run after each of these, so that \b, \B and negative lookbehinds see every kind of context.
PROBE_CONTEXTS = ("", "a", " ")
MAX_PREFIX_LITERALS = 32
MAX_PREFIX_DEPTH = 8
SELECTIVE_FIRST_CHARS = 16
# Rules whose matches begin with a literal at least this long have a better prefilter than a
# sequence of character classes.
CLASS_SEQUENCE_BEFORE = 3
MAX_CLASS_DEPTH = 4
# Probes per position of a class sequence (each costs a few µs at load time): an IBAN's take
# ~3,100 and ~13,500 (its 109 country codes). A rule whose first character is already selective
# (a digit) gains little past two positions ("[0-9][0-9]" is in 2% of prose deltas, "[0-9]" in 5%).
MAX_CLASS_PROBES = 16_000
MAX_CLASS_PROBES_SELECTIVE = 2_000
# A positive lookbehind needs context that probing cannot enumerate; characters written into the
# pattern outside ASCII (or by escape) may be ones no probe stands for. Such patterns get no
# literal prefix (the first-character gate still lets every non-ASCII character through).
NO_PREFIX = regex.compile(r"\(\?<=|[^\x00-\x7f]|(?<!\\)(?:\\\\)*\\(?:[uUNpPX]|x\{|x[89a-fA-F])")
# Word-boundary assertions decided at the end of the text would decide too early: more text may
# follow. In the hold pattern they also accept the end of the text.
BOUNDARY = regex.compile(r"\\[bBmM]")
# A lookbehind that reads exactly one character: a class, an escape or a plain character.
ONE_CHAR_LOOKBEHIND = regex.compile(
    r"\(\?<[=!](?:\[\^?\]?(?:\\.|[^\]\\\[])*\]|\\[dDwWsS]|\\[^A-Za-z0-9]|[^\\()\[\]|?*+{}.])\)"
)
# Anything else that reads the text before a search's start, or reverses the search.
LOOKS_BACK_FURTHER = regex.compile(r"\(\?<[=!]|\(\?[a-zA-Z0-9]*[rw]|\\X")
# Hold searches memoised per matcher: word fragments repeat, and each search costs ~2-6 µs.
MAX_HOLD_MEMO = 2048
MAX_HOLD_MEMO_KEY = 64

# Case-insensitive literal checks run on a folded copy that keeps every character's position:
# ASCII letters lowered, and the only non-ASCII characters that `regex` IGNORECASE matches to an
# ASCII letter (tests/test_matchers.py checks this list against the whole of Unicode).
ASCII_LOOKALIKES = {"\u0130": "i", "\u017f": "s", "\u212a": "k"}
FOLD = str.maketrans({**{chr(c): chr(c + 32) for c in range(ord("A"), ord("Z") + 1)}, **ASCII_LOOKALIKES})


# Flags under which `re` reads a pattern as `regex` (version 0) does, character for character.
_SAME_AS_RE = {
    regex.IGNORECASE: re.IGNORECASE,
    regex.MULTILINE: re.MULTILINE,
    regex.DOTALL: re.DOTALL,
    regex.VERBOSE: re.VERBOSE,
    regex.ASCII: re.ASCII,
    regex.UNICODE: re.UNICODE,
}
# What `re` would read as literal text where `regex` means something else: POSIX classes
# (`[[:alpha:]]`) and fuzzy constraints (`{e<=1}`); any brace that is not a counted repeat.
_READ_OTHERWISE = re.compile(r"\[:|\{(?!\d*(?:,\d*)?\})")
_UNICODE_PROPERTY = re.compile(r"(?<!\\)\\[pP](?:\{[^{}]*\}|[A-Za-z])")
# The standard library's pattern parser (sre), `re._parser` since Python 3.11: typeshed does not
# know it, and a Python without it only loses the shortcut.
try:
    _SRE_PARSER: Any = importlib.import_module("re._parser")
except ImportError:  # pragma: no cover - every supported Python has it
    _SRE_PARSER = None


# A matcher asks twice in a row (shortest match, leading lookbehind): parsed once.
@functools.lru_cache(maxsize=1)
def _parsed_as_re(pattern: regex.Pattern[str]) -> Any | None:
    """`pattern` as the standard library's parser reads it, for the patterns `re` and `regex`
    read alike (a Unicode property read as one character); None for anything else: what `re`
    refuses (variable lookbehinds,
    duplicate group names, version 1), any flag beyond the shared ones (full case folding can
    match "ss" to one character), and what `re` would read as literal text (POSIX classes,
    fuzzy matching)."""
    re_flags = 0
    for flag in regex.RegexFlag:
        if pattern.flags & flag and flag != regex.VERSION0:
            if flag not in _SAME_AS_RE:
                return None
            re_flags |= _SAME_AS_RE[flag]
    # A Unicode property (`\p{L}`) is one character, as `\x00` is: what is read here is the
    # pattern's structure (widths, repeats, assertions), never which characters a class admits.
    source = _UNICODE_PROPERTY.sub(r"\\x00", pattern.pattern)
    if _SRE_PARSER is None or _READ_OTHERWISE.search(source):
        return None
    try:
        return _SRE_PARSER.parse(source, re_flags)
    except Exception:  # any pattern `re` cannot read
        return None


def min_match_length(pattern: regex.Pattern[str]) -> int:
    """The fewest characters a match can span (0 when unsure): a value shorter than that is
    decided without running the rule (OpenAI's per-event pads are a few to a few tens of
    characters, and a scan of a pii rule costs about as much as deciding the pad by every other
    means). `regex` does not say; the standard library's parser does (`_parsed_as_re`)."""
    parsed = _parsed_as_re(pattern)
    return 0 if parsed is None else int(parsed.getwidth()[0])


def leading_lookbehind(pattern: regex.Pattern[str]) -> str:
    """The one-character negative lookbehind that every match of `pattern` begins after, as
    pattern source (`(?<![\\w.+-])`), or "" if there is none or it is not certain to apply to
    every match (one branch of a top-level alternation).

    Digit-led rules (phone numbers, cards, SSNs) begin so, and a prefilter that knows it need not
    wake them for the digits inside a word ("v2024", a pad such as "Jg49Yi5").
    """
    found = ONE_CHAR_LOOKBEHIND.match(pattern.pattern)
    if found is None or not found.group().startswith("(?<!"):
        return ""
    parsed = _parsed_as_re(pattern)
    if parsed is None or not parsed.data:
        return ""
    op, (direction, _) = parsed.data[0]
    return found.group() if str(op) == "ASSERT_NOT" and direction == -1 else ""


def fold(text: str) -> str:
    """Lower-case ASCII letters and their look-alikes, keeping length: what IGNORECASE matches."""
    # `isascii` is O(1) on str, and `lower` is much faster than `translate`.
    return text.lower() if text.isascii() else text.translate(FOLD)


# A counted repeat: `{n}`, `{m,}`, `{,n}`, `{m,n}` (any other "{" is a literal).
REPEAT = re.compile(r"\{\d*(?:,\d*)?\}")


def hold_pattern_source(source: str) -> str:
    """The rule's pattern with every word-boundary assertion also accepting the end of the text,
    and every lazy (or possessive) quantifier made greedy.

    Which strings can begin a match does not depend on laziness, but `regex`'s partial search
    does: after a lazy repeat (`[\\w.-]{0,20}?access`) it reports a partial match running to the
    end of any text, which would hold everything after the rule's first literal. Escaped
    backslashes and character classes (where `\\b` is a backspace) are left alone.
    """
    out: list[str] = []
    i = 0
    in_class = False
    after_quantifier = False
    while i < len(source):
        ch = source[i]
        if not in_class and ch in "?+" and after_quantifier:
            # `*?`, `{m,n}?`, `??`, `*+`: the marker goes; the repeat stays, greedy.
            after_quantifier = False
            i += 1
            continue
        if not in_class and ch == "{":
            repeat = REPEAT.match(source, i)
            if repeat is not None:
                out.append(repeat.group())
                i = repeat.end()
                after_quantifier = True
                continue
        # A "?" right after "(" opens a group's syntax, not a repeat.
        after_quantifier = not in_class and (ch in "*+" or (ch == "?" and not source[i - 1 : i] == "("))
        if ch == "\\" and i + 1 < len(source):
            pair = source[i : i + 2]
            out.append(f"(?:{pair}|(?![\\s\\S]))" if not in_class and BOUNDARY.fullmatch(pair) else pair)
            i += 2
            continue
        if ch == "[" and not in_class:
            in_class = True
            # A "]" right after "[" or "[^" is a literal member, not the end of the class.
            if source[i + 1 : i + 2] == "^":
                out.append("[^")
                i += 2
            else:
                out.append("[")
                i += 1
            if source[i : i + 1] == "]":
                out.append("]")
                i += 1
            continue
        if ch == "]" and in_class:
            in_class = False
        out.append(ch)
        i += 1
    return "".join(out)


_ONE_CHARACTER = frozenset({"LITERAL", "NOT_LITERAL", "IN", "ANY", "CATEGORY"})


def is_linear(pattern: regex.Pattern[str]) -> bool:
    """Whether a search with `pattern` is certain to take time linear in the text: it parses as
    `re` reads it, has no alternation or back-reference, and at most one repeat, of a single
    character (`[A-Za-z0-9._%+-]{0,63}`). Each start then costs at most that repeat's length.

    Such a search needs no timeout. `regex` reads the process's CPU clock three times per call
    with one (a system call each, not the fast clock): ~2.4 µs of a hold search of `pii.email`
    that costs ~3.4, on a tail it reads on nearly every delta of prose (a word may still become
    an address).
    """
    parsed = _parsed_as_re(pattern)
    if parsed is None:
        return False
    repeats = 0

    def linear(nodes: Any) -> bool:
        nonlocal repeats
        for op, av in nodes:
            name = str(op)
            if name in _ONE_CHARACTER or name == "AT":
                continue
            if name in ("ASSERT", "ASSERT_NOT"):
                if not linear(av[1]):
                    return False
            elif name == "SUBPATTERN":
                if not linear(av[3]):
                    return False
            elif name in ("MAX_REPEAT", "MIN_REPEAT", "POSSESSIVE_REPEAT"):
                repeats += 1
                body = list(av[2])
                if repeats > 1 or len(body) != 1 or str(body[0][0]) not in _ONE_CHARACTER:
                    return False
            else:
                return False
        return True

    return linear(parsed)


def before_top_level_literal(source: str, literal: str) -> str | None:
    """The part of pattern `source` before its first top-level `literal` (a single character
    written plainly, outside any group, class or alternation, and not repeated), or None if it
    has no such place.

    While that character is not in the text, a search with the whole pattern cannot get past
    it: all it can try is this part (`[local part]` of an address, without the domain part).
    """
    depth = 0
    in_class = False
    found: int | None = None
    i = 0
    while i < len(source):
        ch = source[i]
        if ch == "\\":
            if source[i + 1 : i + 2] in ("Q", "E"):
                return None  # `regex` quoting: its literal text is not read by this walk
            i += 2
            continue
        if in_class:
            if ch == "]":
                in_class = False
            i += 1
            continue
        if ch == "[":
            in_class = True
            # A "]" right after "[" or "[^" is a literal member, not the end of the class.
            i += 2 if source[i + 1 : i + 2] == "^" else 1
            if source[i : i + 1] == "]":
                i += 1
            continue
        if ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif depth == 0 and ch == "|":
            return None  # another branch may reach the literal elsewhere, or never
        elif depth == 0 and ch == literal and found is None:
            if source[i + 1 : i + 2] in ("?", "*", "+", "{") or i == 0:
                return None
            found = i
        i += 1
    return None if found is None else source[:found]


class ScanTimeout(Exception):
    """A rule's regex ran out of time; the window treats this as a violation (fail closed)."""


@dataclass(slots=True)
class ScanResult:
    """What one scan decided.

    `matches` are final `(start, end)` spans, in order. `hold` is the earliest position from
    which a match may still form (None: nothing undecided). `resume` is where the next scan of
    this rule must start; it can lie before `hold` when a rule needs to re-read a word that is
    still growing, without holding it back.
    """

    matches: list[tuple[int, int]]
    hold: int | None
    resume: int
    scanned: int


@dataclass(frozen=True, slots=True)
class Prefilter:
    """What probing found out about where a rule's matches can begin.

    `literals`: every match begins with one of these (empty: no such literal); `tail_prefixes`:
    their proper prefixes, folded, which at the very end of the text must be held briefly;
    `first_chars`: the ASCII characters a match can begin with (non-ASCII always pass);
    `is_selective`: few enough of them that a shared character search is worth it.
    """

    literals: tuple[str, ...]
    tail_prefixes: tuple[str, ...]
    first_chars: frozenset[str]
    is_selective: bool
    # For rules without a long literal: the characters each of the first few positions can hold,
    # when some position rules out letters and spaces (an IBAN's `[A-Z][A-Z][0-9]`, a phone
    # number's `[(+0-9][0-9][0-9]`), which prose rarely has: every match begins with one
    # character of each, in order. Empty: no such sequence.
    classes: tuple[frozenset[str], ...] = ()


class Matcher(Protocol):
    # None: nothing is known about where matches begin; the rule scans every delta.
    prefilter: Prefilter | None

    def scan(self, text: str, pos: int, *, final: bool) -> ScanResult | None:
        """Decide `text[pos:]`; None is the fast answer "nothing here, resume at the end"."""


Validator = Callable[[str], bool]


def _probe_partial(hold_pattern: regex.Pattern[str], text: str, contexts: Sequence[str] = PROBE_CONTEXTS) -> bool:
    """True if, after some context, an attempt at the start of `text` runs into its end."""
    return any(hold_pattern.match(ctx + text, len(ctx), partial=True) is not None for ctx in contexts)


class RegexMatcher:
    """A compiled `regex` pattern with literal prefilters derived from the pattern itself."""

    def __init__(
        self,
        pattern: regex.Pattern[str],
        *,
        validator: Validator | None = None,
        check: MatchCheck | None = None,
        contains: Sequence[str] = (),
        is_contains_folded: bool = False,
        charset: str = "",
        wide_charset: str | None = None,
        timeout: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.pattern = pattern
        self.hold_pattern = regex.compile(rf"(?:{hold_pattern_source(pattern.pattern)})(?=[\s\S])(?!)", pattern.flags)
        # Without word-boundary assertions the empty context is the most permissive one (negative
        # lookbehinds all hold at the start of a text), so probing needs no other: a third of the
        # load time of a large pack.
        self.probe_contexts = PROBE_CONTEXTS if BOUNDARY.search(pattern.pattern) else ("",)
        if validator is not None:
            check = MatchCheck(validator=validator) if check is None else replace(check, validator=validator)
        # What a complete match must pass to count, and which part of it is reported.
        self.check = None if check is None or check.is_trivial else check
        self.timeout = timeout
        self.min_length = min_match_length(pattern)
        self.leading_lookbehind = leading_lookbehind(pattern)
        self.is_casefolded = bool(pattern.flags & regex.IGNORECASE)
        # Literals a case-insensitive rule (or keyword check) requires are compared folded.
        self.is_contains_folded = self.is_casefolded or is_contains_folded
        self.contains = tuple(self.fold_contains(lit) for lit in contains)
        # The hold search's timeout while none of the required literals has come: none where the
        # pattern before that literal is linear (`before_top_level_literal`, `is_linear`).
        self.early_hold_timeout: float | None = timeout
        if len(self.contains) == 1 and len(self.contains[0]) == 1 and not self.contains[0].isalnum():
            early = before_top_level_literal(pattern.pattern, self.contains[0])
            if early is not None and not pattern.flags & regex.VERBOSE:
                try:
                    if is_linear(regex.compile(hold_pattern_source(early), pattern.flags)):
                        self.early_hold_timeout = None
                except regex.error:
                    pass
        # `re` is faster than `regex` at plain literal search, and a class beats an alternation;
        # case-insensitive rules compare folded text with folded literals.
        if not contains:
            self.contains_gate: re.Pattern[str] | None = None
        elif all(len(lit) == 1 for lit in self.contains):
            self.contains_gate = re.compile("[" + "".join(re.escape(lit) for lit in self.contains) + "]")
        else:
            self.contains_gate = re.compile("|".join(re.escape(lit) for lit in self.contains))
        # Every character of every match is one of these: an undecided start then lies in the
        # text's trailing run of them, which bounds the (slow) partial search to that run.
        self.charset = charset
        # A class that admits letters beyond ASCII (an e-mail's local part, RFC 6531): `rstrip`
        # stops at the first of them, and a reverse search takes the run on from there.
        self.charset_run = regex.compile(rf"(?r)(?:{wide_charset})+\Z") if wide_charset else None
        # The earliest undecided start in a short tail depends only on that tail and the one
        # character before it, unless the rule looks further back: then hold searches are
        # memoised by that text. The memo keeps word fragments of recent streams (at most
        # MAX_HOLD_MEMO of MAX_HOLD_MEMO_KEY characters), like any window does while it holds them.
        looks_back = LOOKS_BACK_FURTHER.search(ONE_CHAR_LOOKBEHIND.sub("", pattern.pattern))
        if looks_back is None and not pattern.flags & (regex.REVERSE | regex.WORD):
            self._hold_memo: dict[str, int] | None = {}
        else:
            self._hold_memo = None
        first_chars, prefixes = self._derive_prefilters()
        # A match (or an undecided start) needs one of these characters in the scanned region;
        # non-ASCII characters always pass, since probing cannot enumerate them.
        if first_chars is None:
            self.first_chars = regex.compile(r"[\s\S]")
        else:
            escaped = "".join(regex.escape(c) for c in sorted(first_chars))
            self.first_chars = regex.compile(f"[{escaped}]|" + r"[^\x00-\x7f]" if escaped else r"[^\x00-\x7f]")
        self.prefixes = tuple(prefixes)
        self.max_prefix = max((len(p) for p in self.prefixes), default=0)
        # `gate`: nothing can happen in `text[pos:]` unless it finds something there, or (for a
        # rule whose matches begin with a literal) the text ends with a proper prefix of it.
        if self.prefixes:
            literals = "|".join(regex.escape(p) for p in self.prefixes)
            self.gate = regex.compile(literals, regex.IGNORECASE if self.is_casefolded else 0)
            folded = {fold(p)[:i] for p in self.prefixes for i in range(1, len(p))}
            self.tail_prefixes: tuple[str, ...] = tuple(sorted(folded))
        else:
            self.gate = self.first_chars
            self.tail_prefixes = ()
        # Selective gates rarely fire on prose, so the window checks them all in one search.
        is_selective = first_chars is not None and len(first_chars) <= SELECTIVE_FIRST_CHARS
        classes = (
            ()
            if self.max_prefix >= CLASS_SEQUENCE_BEFORE
            else self._derive_classes(MAX_CLASS_PROBES_SELECTIVE if is_selective else MAX_CLASS_PROBES)
        )
        self.prefilter: Prefilter | None = Prefilter(
            self.prefixes, self.tail_prefixes, frozenset(first_chars or ()), is_selective, classes
        )

    def fold(self, text: str) -> str:
        return fold(text) if self.is_casefolded else text

    def fold_contains(self, text: str) -> str:
        return fold(text) if self.is_contains_folded else text

    def _derive_prefilters(self) -> tuple[set[str] | None, list[str]]:
        """Probe which characters can start a match, and the literal every match begins with.

        The literal is the deepest set of at most `MAX_PREFIX_LITERALS` strings such that every
        attempt that gets that far has read one of them (e.g. `AKIA`/`ASIA` for AWS key ids).
        It lets a scan skip the regex entirely when neither the literal nor a proper prefix of
        it at the very end of the text is present. `None` first characters mean "any".

        Probes run at position 0 with nothing before them, which is the most permissive context
        for word boundaries, `^` and negative lookbehinds; a positive lookbehind or a non-boundary needs context we
        cannot enumerate, so such patterns get no prefilter at all.
        """
        if "(?<=" in self.pattern.pattern:
            return None, []
        alphabet = ASCII_PROBES + UNICODE_PROBES
        live = self._viable_firsts
        if not live:
            return None, []
        first_chars = {c for c in live if c.isascii()}
        if NO_PREFIX.search(self.pattern.pattern):
            return first_chars, []
        if self.is_casefolded:
            # Prefix checks compare folded text, so a look-alike such as the Kelvin sign that
            # IGNORECASE matches to an ASCII letter is covered by that letter; a case-sensitive
            # part inside an IGNORECASE pattern shows up as a folded probe that no longer matches.
            folded = sorted({fold(c) for c in live})
            if not all(self._is_viable(c) for c in folded):
                return first_chars, []
            live = folded
        if any(not c.isascii() for c in live):
            return first_chars, []
        best: list[str] = []
        depth = 1
        while live and len(live) <= MAX_PREFIX_LITERALS and depth <= MAX_PREFIX_DEPTH:
            best = list(live)
            if any(self._matches_exactly(p) for p in live):
                break  # a literal that is itself a whole match: no longer prefix to find
            extended: set[str] = set()
            for p in live:
                for c in alphabet:
                    if self._ends_within(p, c):
                        return first_chars, best  # a match can end within `p`: no longer literal is sure
                    if self.is_casefolded and c != fold(c):
                        continue
                    viable = self._is_viable(p + c)
                    upper = c.upper()
                    if self.is_casefolded and len(upper) == 1 and upper != c and self._is_viable(p + upper) != viable:
                        return first_chars, best  # case matters from here on: stop at what is sure
                    if viable:
                        if not c.isascii():
                            return first_chars, best
                        extended.add(p + c)
                if len(extended) > MAX_PREFIX_LITERALS:
                    break
            live = sorted(extended)
            depth += 1
        return first_chars, best

    def _derive_classes(self, max_probes: int) -> tuple[frozenset[str], ...]:
        """Probe the characters each of the first positions of a match can hold (see `Prefilter`).

        Only for what probing can settle: ASCII characters, and no word-boundary assertions
        (whose context probing from position 0 alone does not cover). The sequence stops where a
        complete match could already have ended (a match shorter than it must not be missed),
        and where the strings to probe get too many.
        """
        if self.probe_contexts != ("",) or NO_PREFIX.search(self.pattern.pattern):
            return ()
        alphabet = ASCII_PROBES + UNICODE_PROBES
        live = self._viable_firsts
        if not live or any(not c.isascii() for c in live):
            return ()
        classes = [frozenset(live)]
        while len(classes) < MAX_CLASS_DEPTH and len(live) * len(alphabet) <= max_probes:
            extended = self._extensions(live, alphabet)
            if not extended or any(not p[-1].isascii() for p in extended):
                break
            classes.append(frozenset(p[-1] for p in extended))
            live = extended
        if len(classes) < 2 or not any(
            len(chars) <= SELECTIVE_FIRST_CHARS and not any(c.isalpha() or c.isspace() for c in chars)
            for chars in classes
        ):
            return ()
        return tuple(classes)

    def _extensions(self, live: list[str], alphabet: str) -> list[str]:
        """Every viable one-character extension of `live`; none at all if a match can end within
        one of them (no deeper position is then sure)."""
        extended: list[str] = []
        for p in live:
            for c in alphabet:
                if self._ends_within(p, c):
                    return []
                if self._is_viable(p + c):
                    extended.append(p + c)
        return extended

    @functools.cached_property
    def _viable_firsts(self) -> list[str]:
        """The probes an attempt can begin with (literal and class probing both start here)."""
        return [c for c in ASCII_PROBES + UNICODE_PROBES if self._is_viable(c)]

    def _ends_within(self, head: str, after: str) -> bool:
        """Can a complete match end within `head` when `after` follows it?

        Then no prefilter may ask for more than `head` (`AB(?=x)|ABC[0-9]+` matches "AB" in
        "ABx": a literal "ABC" would never wake the rule). `after` matters to lookaheads and
        word boundaries at the match's end; the contexts, to those at its start.
        """
        for ctx in self.probe_contexts:
            found = self.pattern.match(ctx + head + after, len(ctx))
            if found is not None and found.end() <= len(ctx) + len(head):
                return True
        return False

    def _is_viable(self, text: str) -> bool:
        """Can an attempt at position 0 read all of `text` (and still go on, or end there)?"""
        return _probe_partial(self.hold_pattern, text, self.probe_contexts) or self._matches_exactly(text)

    def _matches_exactly(self, text: str) -> bool:
        m = self.pattern.match(text)
        return m is not None and m.end() == len(text)

    def scan(self, text: str, pos: int, *, final: bool) -> ScanResult | None:
        end = len(text)
        if final and end - pos < self.min_length:
            return None  # too short to hold a match, and nothing more can come
        try:
            if self.contains_gate is not None and (
                self.contains_gate.search(fold(text[pos:])) is None
                if self.is_contains_folded
                else self.contains_gate.search(text, pos) is None
            ):
                # None of the required literals yet: no complete match, only (before the end of
                # the stream) an undecided start, which lies in the trailing run of `charset`.
                if final:
                    return None
                start = self._tail_start(text, pos)
                hold = self._find_hold(text, start, early=True)
                if hold is None:
                    return None
                return ScanResult([], hold, hold, end - start)
            if self.gate.search(text, pos) is None:
                # Nothing can start here, except (for a rule whose matches begin with a literal)
                # a proper prefix of that literal at the very end.
                if final or not self.tail_prefixes:
                    return None
                if not fold(text[-self.max_prefix :]).endswith(self.tail_prefixes):
                    return None
                start = max(pos, end - self.max_prefix)
                hold = self._find_hold(text, start)
                return ScanResult([], hold, end if hold is None else hold, end - start)
            if final:
                found = (self._accept(m) for m in self.pattern.finditer(text, pos, timeout=self.timeout))
                return ScanResult([s for s in found if s is not None], None, end, end - pos)
            return self._scan_open(text, pos)
        except TimeoutError as exc:
            raise ScanTimeout(self.pattern.pattern) from exc

    def _accept(self, m: regex.Match[str]) -> tuple[int, int] | None:
        """The span a complete, final match reports, or None if its checks reject it."""
        if self.check is None:
            return m.span() if m.end() > m.start() else None
        return self.check.accept(m, self.timeout)

    def accepted_matches(self, text: str) -> list[regex.Match[str]]:
        """The whole-text matches that count, as full matches (hint checks need the label too)."""
        return [m for m in self.pattern.finditer(text, timeout=self.timeout) if self._accept(m) is not None]

    def _tail_start(self, text: str, pos: int) -> int:
        if not self.charset:
            return pos
        # `rstrip` reads only the run it strips, from the end.
        start = len(text.rstrip(self.charset))
        if self.charset_run is not None and start > pos and not text[start - 1].isascii():
            run = self.charset_run.search(text, pos, start)
            if run is not None:
                start = run.start()
        return start if start > pos else pos

    def covers(self, found: str) -> bool:
        """Whether every character of `found` is in `charset` (the loader checks examples with it)."""
        if self.charset_run is not None:
            return self.charset_run.fullmatch(found) is not None
        return not found.strip(self.charset)

    def _find_hold(self, text: str, pos: int, *, early: bool = False) -> int | None:
        """The earliest start from `pos` on where a match may still form. `early`: the required
        literal is not in the text, so the search cannot get past it (`early_hold_timeout`)."""
        end = len(text)
        if pos >= end:
            return None
        memo = self._hold_memo
        if memo is None or pos == 0 or end - pos > MAX_HOLD_MEMO_KEY:
            return self._search_hold(text, pos, early)
        key = text[pos - 1 :]
        found = memo.get(key)
        if found is None:
            hold = self._search_hold(text, pos, early)
            found = -1 if hold is None else hold - pos
            if len(memo) >= MAX_HOLD_MEMO:
                memo.clear()
            memo[key] = found
        return None if found < 0 else pos + found

    def _search_hold(self, text: str, pos: int, early: bool = False) -> int | None:
        # Positional arguments: keyword parsing costs a third of this call, which runs on nearly every delta.
        timeout = self.early_hold_timeout if early else self.timeout
        m = self.hold_pattern.search(text, pos, None, None, True, timeout)
        if m is None or m.start() >= len(text):
            return None
        start: int = m.start()
        return start

    def _scan_open(self, text: str, pos: int) -> ScanResult:
        matches: list[tuple[int, int]] = []
        scanned = 0
        while True:
            hold = self._find_hold(text, self._tail_start(text, pos))
            limit = len(text) if hold is None else hold
            scanned += len(text) - pos
            moved = False
            for m in self.pattern.finditer(text, pos, timeout=self.timeout):
                if m.start() >= limit:
                    break
                span = self._accept(m)
                if span is not None:
                    matches.append(span)
                pos = m.end()
                moved = True
            # The undecided start can sit inside a final match that the scan skips over (matches
            # never overlap within a rule); then ask again from the end of that match.
            if not moved or hold is None or hold >= pos:
                resume = len(text) if hold is None else max(hold, pos)
                return ScanResult(matches, None if hold is None else resume, resume, scanned)


# Tokenising is the keyword matcher's hot loop; the standard library's `re` does it ~2x faster.
WORD = re.compile(r"\w+")
LAST_WORD = re.compile(r"(?<!\w)\w+\Z")
GAP = re.compile(r"[\s\-]+")


class KeywordMatcher:
    """Whole-word keyword lists: token lookups in sets, so thousands of keywords cost no more
    than ten (`regex`'s `\\L<list>` compiles to an alternation that slows down with list size).

    A keyword of several words matches text whose words are separated by whitespace or hyphens.
    """

    def __init__(self, keywords: Iterable[str], *, case_sensitive: bool = False) -> None:
        # Token lookups are already cheaper than any shared literal search would be.
        self.prefilter: Prefilter | None = None
        self.case_sensitive = case_sensitive
        self.phrases: set[str] = set()
        self.prefixes: set[str] = set()
        self.first_words: set[str] = set()
        self.first_word_prefixes: set[str] = set()
        self.max_words = 1
        for keyword in keywords:
            words = [self._norm(w) for w in WORD.findall(keyword)]
            phrase = " ".join(words)
            self.phrases.add(phrase)
            self.prefixes.update(phrase[:i] for i in range(1, len(phrase) + 1))
            self.first_words.add(words[0])
            self.first_word_prefixes.update(words[0][:i] for i in range(1, len(words[0]) + 1))
            self.max_words = max(self.max_words, len(words))

    def _norm(self, word: str) -> str:
        return word if self.case_sensitive else fold(word).casefold()

    def scan(self, text: str, pos: int, *, final: bool) -> ScanResult | None:
        end = len(text)
        words = WORD.findall(self._norm(text[pos:]))
        if not words:
            return None
        if self.first_words.isdisjoint(words):
            # Fast path, all in C: no keyword starts here. Only the last word, if it touches the
            # end, may still grow into one.
            last = LAST_WORD.search(text, pos)
            if final or last is None or last.end() != end:
                return None
            hold = last.start() if words[-1] in self.first_word_prefixes else None
            return ScanResult([], hold, last.start(), end - pos)
        tokens = [(m.start(), m.end(), self._norm(m.group())) for m in WORD.finditer(text, pos)]
        matches: list[tuple[int, int]] = []
        n = len(tokens)
        i = 0
        while i < n:
            start = tokens[i][0]
            if not final and n - i <= self.max_words and self._is_open(text, tokens, i):
                return ScanResult(matches, start, start, end - pos)
            best = self._longest_match(text, tokens, i, final)
            if best:
                matches.append((start, tokens[i + best - 1][1]))
                i += best
            else:
                i += 1
        # A word touching the end may still grow ("damn" -> "damnation"): re-read it next time.
        resume = tokens[-1][0] if tokens and tokens[-1][1] == end and not final else end
        return ScanResult(matches, None, resume, end - pos)

    def _is_open(self, text: str, tokens: list[tuple[int, int, str]], i: int) -> bool:
        """Could the words from token `i` to the end still grow into (a longer) keyword?"""
        words = [tokens[i][2]]
        for j in range(i + 1, len(tokens)):
            if not GAP.fullmatch(text, tokens[j - 1][1], tokens[j][0]):
                return False
            words.append(tokens[j][2])
        tail_gap_start = tokens[-1][1]
        phrase = " ".join(words)
        if tail_gap_start < len(text):
            if not GAP.fullmatch(text, tail_gap_start, len(text)):
                return False
            phrase += " "
        return phrase in self.prefixes

    def _longest_match(self, text: str, tokens: list[tuple[int, int, str]], i: int, final: bool) -> int:
        best = 0
        phrase = ""
        for k in range(self.max_words):
            j = i + k
            if j >= len(tokens):
                break
            if k and not GAP.fullmatch(text, tokens[j - 1][1], tokens[j][0]):
                break
            phrase = tokens[j][2] if not k else f"{phrase} {tokens[j][2]}"
            if phrase not in self.prefixes:
                break
            if phrase in self.phrases and (final or tokens[j][1] < len(text)):
                best = k + 1
        return best
