"""Sans-I/O Server-Sent Events decoder and encoder that accounts for every byte.

A moderation proxy must not reformat what it does not change: SDKs disagree on whitespace, BOMs, comments and
line endings, so an untouched event is re-emitted as the exact bytes upstream sent. The decoder
therefore returns each block together with its `raw` bytes, and `b"".join(e.raw for e in events) + discarded`
is always the input. Parsing follows the WHATWG HTML spec to the letter; only the output is byte-exact.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass, replace
from itertools import repeat

__all__ = ["Event", "SSEDecoder", "encode_event", "field_lines"]

_BOM = b"\xef\xbb\xbf"
_CR = 0x0D
_COLON = 0x3A
# Only CRLF, LF and a lone CR end a line; U+2028, U+2029, U+0085, VT and FF are ordinary characters.
_EOL_SPLIT = re.compile(rb"(\r\n|\r|\n)")
_STR_EOL_SPLIT = re.compile(r"\r\n|\r|\n")
_LINE_ENDINGS = ("\n", "\r\n", "\r")


@dataclass(frozen=True, slots=True)
class Event:
    """One block of the stream: everything up to and including the blank line that ends it.

    `raw` is what the proxy re-emits when it leaves the event alone. A block that the spec would not dispatch
    (a keep-alive comment, `event: ping` without data, a stray blank line) is still returned, with
    `has_data=False`, so that no byte of the stream goes missing.
    """

    raw: bytes  # exact bytes as received: comments, the stream's BOM (first block only), the terminating blank line
    data: str = ""  # data lines joined with "\n" (the spec's data buffer minus its trailing "\n")
    event: str | None = None  # value of the last `event:` field in the block
    id: str | None = None  # value of the last `id:` field in the block; ids containing NUL are ignored (spec)
    retry: int | None = None  # only when the value is ASCII digits (spec)
    has_data: bool = False  # the spec would dispatch this block: its data buffer is non-empty (`data` alone counts)
    # Only `data:` and `event:` lines: no comment, id, retry, unknown field or BOM that a client could read
    # differently from us. A moderator relays only plain blocks byte for byte and re-encodes the others.
    is_plain: bool = False

    def encode(self, *, line_ending: str = "\n") -> bytes:
        """Bytes to send for this event: `raw` when it came off the wire, otherwise a fresh encoding.

        `line_ending` only applies to the fresh encoding; pass `SSEDecoder.line_ending` to mirror upstream.
        """
        if self.raw:
            return self.raw
        return _encode_fields(
            self.data,
            self.event,
            self.id,
            self.retry,
            has_data=self.has_data or bool(self.data),
            line_ending=line_ending,
        )


def encode_event(data: str, event: str | None = None, *, line_ending: str = "\n") -> bytes:
    """Fresh encoding: optional `event: X` line, then one `data: ` line per line of data, then a blank line.

    Data is split on CR, LF and CRLF (the only line breaks a client recognises), and each line gets exactly one
    space after the colon, because google-genai only accepts `data: `.

    ```python
    encode_event('{"type":"ping"}', "ping")  # b'event: ping\\ndata: {"type":"ping"}\\n\\n'
    ```
    """
    return _encode_fields(data, event, None, None, has_data=True, line_ending=line_ending)


def _encode_fields(
    data: str, event: str | None, id: str | None, retry: int | None, *, has_data: bool, line_ending: str
) -> bytes:
    if line_ending not in _LINE_ENDINGS:
        raise ValueError(f"line_ending must be one of '\\n', '\\r\\n' or '\\r', not {line_ending!r}.")
    lines: list[str] = []
    for name, value in (("event", event), ("id", id)):
        if value is None:
            continue
        # A line break here would start a new field and let the value inject arbitrary ones.
        if "\r" in value or "\n" in value:
            raise ValueError(f"The {name} field {value!r} contains a line break, which SSE cannot carry.")
        lines.append(f"{name}: {value}")
    if retry is not None:
        if retry < 0:
            raise ValueError(f"The retry field must be a non-negative int, not {retry!r}.")
        lines.append(f"retry: {retry}")
    if has_data:
        lines.extend(f"data: {line}" for line in _STR_EOL_SPLIT.split(data))
    lines.append("")
    lines.append("")
    return line_ending.join(lines).encode("utf-8")


class SSEDecoder:
    """Incremental `text/event-stream` decoder: feed bytes, get back the blocks they complete.

    ```python
    decoder = SSEDecoder()
    async for chunk in response.aiter_raw():
        for event in decoder.decode(chunk):
            ...
    decoder.flush()  # end of stream; an unterminated block's bytes end up in decoder.discarded
    ```
    """

    def __init__(self) -> None:
        self.discarded = b""
        # Bytes after the last complete line: a partial line, possibly ending in a CR held back in case the
        # next chunk starts with LF.
        self._tail = bytearray()
        # Where to resume looking for a line ending in `_tail`; everything before it is known to contain none,
        # so a long line arriving one byte at a time is scanned once, not once per byte.
        self._search = 0
        # Raw bytes of the complete lines of the block in progress.
        self._block: list[bytes] = []
        self._data: list[str] = []
        self._event: str | None = None
        self._id: str | None = None
        self._retry: int | None = None
        self._at_stream_start = True
        self._line_ending: str | None = None
        self._plain = True

    @property
    def line_ending(self) -> str:
        """The first line ending seen in the stream, so fresh events can mirror upstream (Gemini uses CRLF)."""
        return self._line_ending or "\n"

    @property
    def is_between_blocks(self) -> bool:
        """Nothing of a block is buffered and the stream's start is behind: the next byte begins
        a block, read exactly as if it were the first of a stream (bar a BOM)."""
        return not self._tail and not self._block and not self._at_stream_start

    @property
    def is_at_line_start(self) -> bool:
        """No partial line is buffered: a line ending next ends a block if one is in progress."""
        return not self._tail

    def decode(self, chunk: bytes) -> list[Event]:
        """Feed the next chunk of the body; returns the blocks it completes, in order."""
        tail = self._tail
        tail += chunk
        end = len(tail)
        # A CR at the very end may be the first half of a CRLF split across chunks: keep it back.
        limit = end - 1 if end and tail[end - 1] == _CR else end
        search = self._search
        if search >= limit or (tail.find(b"\n", search, limit) < 0 and tail.find(b"\r", search, limit) < 0):
            self._search = max(search, limit)
            return []
        return self._consume(limit)

    def flush(self, *, dispatch_unterminated: bool = False) -> list[Event]:
        """End of stream.

        Returns the block a held-back trailing CR completes (usually none). The spec discards an unterminated
        block ("any pending data must be discarded"); its bytes are added to `discarded` so callers can report it.
        With `dispatch_unterminated`, such a block is returned as an event instead (not plain, since its bytes
        end without the blank line); some clients read it, so a moderator must see it too.
        """
        if dispatch_unterminated and (self._tail or self._block):
            # End the partial line and the block as the upstream should have; the raw bytes then include
            # line endings it never sent, so the event is not plain and is re-encoded if relayed.
            return [replace(e, is_plain=False) for e in self.decode(b"\n\n") if e.raw.strip(b"\r\n")]
        events = self._consume(len(self._tail)) if self._tail.endswith(b"\r") else []
        self.discarded += b"".join(self._block) + bytes(self._tail)
        self._tail.clear()
        self._search = 0
        self._reset_block()
        return events

    def _consume(self, limit: int) -> list[Event]:
        """Parse every complete line in `_tail[:limit]` and return the blocks they end."""
        tail = self._tail
        cut = max(tail.rfind(b"\n", 0, limit), tail.rfind(b"\r", 0, limit)) + 1
        region = bytes(tail[:cut])
        del tail[:cut]
        self._search = limit - cut

        if not self._at_stream_start and not self._block and b"\r" not in region:
            # Nothing pending, LF line ends: the shape of nearly every read.
            if region.startswith(b"data:") and region.endswith(b"\n\n") and region.count(b"\n") == 2:
                # One `data:` line and the blank line: one event.
                value = region[5:-2]
                text = self._text(value[1:] if value[:1] == b" " else value)
                plain = self._plain
                self._plain = True
                return [Event(region, text, None, None, None, True, plain)]
            if self._plain:
                # Several such blocks at once (a network read of a fast stream): one regex pass.
                batch = _data_blocks(region)
                if batch is not None:
                    return batch

        sep_lens: Iterable[int]
        if b"\r" in region:
            parts = _EOL_SPLIT.split(region)
            lines = parts[0:-1:2]
            seps = parts[1::2]
            sep_lens = map(len, seps)
            if self._line_ending is None:
                self._line_ending = seps[0].decode("ascii")
        else:
            lines = region.split(b"\n")
            lines.pop()  # region ends with a line ending, so the last piece is empty
            sep_lens = repeat(1)
            if self._line_ending is None:
                self._line_ending = "\n"

        offset = 0  # start of the current line in `region`
        block_start = 0  # start of the block in progress in `region`
        if self._at_stream_start:
            self._at_stream_start = False
            # The spec's UTF-8 decode step strips one leading BOM; it stays in `raw`.
            if lines[0].startswith(_BOM):
                lines[0] = lines[0][3:]
                offset = 3
                self._plain = False

        events: list[Event] = []
        data = self._data
        event = self._event
        id_ = self._id
        retry = self._retry
        # https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation
        for line, sep_len in zip(lines, sep_lens, strict=False):  # sep_lens may be an endless repeat(1)
            offset += len(line) + sep_len
            if not line:
                # A blank line dispatches. The spec fires only when the data buffer is non-empty, but every
                # block is returned so its bytes are accounted for; `has_data` says whether it would fire.
                raw = region[block_start:offset]
                if self._block:
                    self._block.append(raw)
                    raw = b"".join(self._block)
                    self._block.clear()
                events.append(
                    Event(
                        raw,
                        "\n".join(data) if len(data) != 1 else data[0],
                        event,
                        id_,
                        retry,
                        bool(data),
                        self._plain,
                    )
                )
                self._plain = True
                block_start = offset
                data = []
                event = id_ = None
                retry = None
                continue
            if line[0] == _COLON:
                self._plain = False
                continue  # comment, e.g. a keep-alive
            # Field name up to the first colon; one leading U+0020 of the value is removed; no colon means
            # the whole line is the name and the value is empty. A colon byte never belongs to a multi-byte
            # UTF-8 sequence, so splitting before decoding gives the same result as decoding the whole line.
            name, _, value = line.partition(b":")
            if value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(self._text(value))
            elif name == b"event":
                event = self._text(value)
            elif name == b"id":
                self._plain = False
                if b"\0" not in value:
                    id_ = value.decode("utf-8", "replace")
            elif name == b"retry":
                self._plain = False
                if value.isdigit():  # bytes.isdigit() is ASCII-only, as the spec requires
                    retry = int(value)
            else:
                self._plain = False
            # Any other field name is ignored (names are case-sensitive: `Data` is unknown).

        if block_start < offset:
            self._block.append(region[block_start:offset])
        self._data = data
        self._event = event
        self._id = id_
        self._retry = retry
        return events

    def _text(self, value: bytes) -> str:
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            # The spec replaces invalid bytes; clients that decode strictly read something else.
            self._plain = False
            return value.decode("utf-8", "replace")

    def _reset_block(self) -> None:
        self._plain = True
        self._block = []
        self._data = []
        self._event = None
        self._id = None
        self._retry = None


_RAW_LINE = re.compile(rb"([^\r\n]*)(\r\n|\r|\n|$)")
# One `data:` line and the blank line that ends its block.
_DATA_BLOCK = re.compile(rb"data: ?([^\n]*)\n\n")


def _data_blocks(region: bytes) -> list[Event] | None:
    """The events of `region` if it is nothing but `data:`-only blocks in valid UTF-8 (LF line
    ends), else None: the general parser decides then."""
    events: list[Event] = []
    at = 0
    for m in _DATA_BLOCK.finditer(region):
        if m.start() != at:
            return None
        at = m.end()
        try:
            text = m.group(1).decode("utf-8")
        except UnicodeDecodeError:
            return None
        events.append(Event(m.group(0), text, None, None, None, True, True))
    return events if at == len(region) and events else None


def replace_data(event: Event, data: str) -> bytes:
    """`event` as it came, with only its data replaced: every other line (id, event, comments,
    unknown fields, the BOM, line endings) stays byte for byte.

    The new data goes where the first `data` line was, one `data: ` line per line of `data`.
    """
    if not event.raw:
        return encode_event(data, event.event)
    out: list[bytes] = []
    written = False
    for match in _RAW_LINE.finditer(event.raw):
        line, ending = match.group(1), match.group(2)
        if not line and not ending:
            break
        name = line.lstrip(b"\xef\xbb\xbf").split(b":", 1)[0]
        if name != b"data":
            out.append(line + ending)
        elif not written:
            written = True
            prefix = line[: len(line) - len(line.lstrip(b"\xef\xbb\xbf"))]  # a BOM stays where it was
            eol = ending or b"\n"
            for piece in re.split(r"\r\n|\r|\n", data):
                out.append(prefix + b"data: " + piece.encode("utf-8") + eol)
                prefix = b""
    return b"".join(out)


def field_lines(event: Event) -> list[tuple[str, str]] | None:
    """The block's lines other than `data:` and blank ones, in order, as (name, value): `event`,
    `id`, `retry`, or "" for a comment (its text after the colon).

    None when the block holds anything a client could read differently from us (a BOM, invalid
    UTF-8, an unknown field, an `id` with NUL, a `retry` that is not digits): such a block is never
    relayed as it came. The values are what a client reads, so a moderator can check each one.
    """
    raw = event.raw
    if raw.startswith(_BOM):
        return None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return None
    fields: list[tuple[str, str]] = []
    for line in _STR_EOL_SPLIT.split(text):
        if not line:
            continue
        if line[0] == ":":
            fields.append(("", line[1:]))
            continue
        name, _, value = line.partition(":")
        if value[:1] == " ":
            value = value[1:]
        if name == "data":
            continue
        if name not in ("event", "id", "retry"):
            return None
        if (name == "id" and "\0" in value) or (name == "retry" and not (value.isascii() and value.isdigit())):
            return None
        fields.append((name, value))
    return fields


def with_fields(block: bytes, fields: Iterable[tuple[str, str]], *, line_ending: str = "\n") -> bytes:
    """`block` (one or more events) with the first one's non-`data` lines replaced by `fields`
    ((name, value) as `field_lines` gives them), written before its data lines."""
    lines = _RAW_LINE.findall(block)
    out = [
        (f":{value}" if not name else f"{name}: {value}").encode("utf-8") + line_ending.encode()
        for name, value in fields
    ]
    first = True
    for line, ending in lines:
        if not line and not ending:
            break
        if first and line and not line.startswith(b"data"):
            continue  # a field of the first event: replaced by `fields`
        if first and not line:
            first = False
        out.append(line + ending)
    return b"".join(out)
