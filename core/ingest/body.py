"""A request body in bounded memory: chunks in, decompressed incrementally, refused past the limit.

A gzip bomb never expands beyond ``limit`` + one chunk: each chunk is inflated with
``max_length`` set to what is left of the limit.
"""

from __future__ import annotations

import zlib

MAX_BODY_BYTES = 10 * 1024 * 1024  # after decompression
CHUNK = 64 * 1024


class BodyError(ValueError):
    """A body that cannot be read; ``status`` is the HTTP answer (400, 413, 415)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyReader:
    """Feed the raw chunks as they arrive, then ``finish()`` for the whole decoded body."""

    def __init__(self, content_encoding: str | None, limit: int = MAX_BODY_BYTES) -> None:
        encoding = (content_encoding or "identity").strip().lower()
        if encoding in ("", "identity"):
            self._inflater = None
        elif encoding in ("gzip", "x-gzip"):
            self._inflater = zlib.decompressobj(wbits=16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._inflater = zlib.decompressobj()
        else:
            raise BodyError(415, f"Content-Encoding {content_encoding!r} is not supported (use gzip or none)")
        self.limit = limit
        self._parts: list[bytes] = []
        self._size = 0
        self._raw = 0

    def _too_large(self) -> BodyError:
        return BodyError(413, f"the body is over the limit of {self.limit:,} bytes (after decompression)")

    def _add(self, data: bytes) -> None:
        self._size += len(data)
        if self._size > self.limit:
            raise self._too_large()
        if data:
            self._parts.append(data)

    def feed(self, chunk: bytes) -> None:
        if not chunk:
            return
        self._raw += len(chunk)
        if self._raw > self.limit:  # compressed data is never larger than this in any sane request
            raise self._too_large()
        if self._inflater is None:
            self._add(chunk)
            return
        try:
            data = self._inflater.decompress(chunk, self.limit - self._size + 1)
            self._add(data)
            while self._inflater.unconsumed_tail:
                data = self._inflater.decompress(self._inflater.unconsumed_tail, self.limit - self._size + 1)
                if not data:
                    break
                self._add(data)
        except zlib.error as exc:
            raise BodyError(400, f"the body is not valid gzip data ({exc})") from None

    def finish(self) -> bytes:
        if self._inflater is not None:
            try:
                self._add(self._inflater.flush())
            except zlib.error as exc:
                raise BodyError(400, f"the body is not valid gzip data ({exc})") from None
            if not self._inflater.eof and self._raw:
                raise BodyError(400, "the body is not valid gzip data (truncated stream)")
        return b"".join(self._parts)
