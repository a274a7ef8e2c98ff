"""Content-Encoding for scripted answers, applied as the body is written.

The compressor is flushed (`Z_SYNC_FLUSH`) after every chunk, so each event can be decoded as soon
as it arrives, as from a real server that compresses a stream: a proxy that buffers the whole body
before it decodes shows up in tests as a stream that arrives all at once.
"""

from __future__ import annotations

import zlib

# gzip is RFC 1952; HTTP's "deflate" is the zlib format (RFC 1950), not a raw deflate stream.
WINDOW_BITS = {"gzip": 31, "deflate": 15}
CODINGS = ("gzip", "deflate", "identity")


class BodyEncoder:
    """Encodes a body chunk by chunk in one content coding (`None` or `"identity"`: bytes pass unchanged)."""

    def __init__(self, coding: str | None) -> None:
        bits = WINDOW_BITS.get(coding or "identity")
        self._compressor = None if bits is None else zlib.compressobj(wbits=bits)

    def chunk(self, data: bytes) -> bytes:
        """`data` encoded, flushed so that everything written so far can be decoded."""
        if self._compressor is None:
            return data
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_SYNC_FLUSH)

    def last(self, data: bytes) -> bytes:
        """`data` encoded, and the end of the encoded stream (the gzip trailer)."""
        if self._compressor is None:
            return data
        return self._compressor.compress(data) + self._compressor.flush(zlib.Z_FINISH)
