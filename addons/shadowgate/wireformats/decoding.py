"""Incremental Content-Encoding decoders for stream taps.

A stream tap sees the raw wire bytes, still compressed. These decoders turn each chunk into
plain bytes for the usage parser without ever raising: a corrupt or truncated stream turns the
decoder off (usage then comes from the estimate), and the client still gets every byte untouched.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Protocol

import brotli

try:  # Python 3.14 has zstd in the standard library; mitmproxy ships the backport before that.
    from compression import zstd
except ImportError:  # pragma: no cover - depends on the interpreter
    from backports import zstd

# A decompression bomb must not blow up memory: cap the output of one chunk.
MAX_OUTPUT_PER_CHUNK = 8 * 1024 * 1024


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class _Identity:
    def decompress(self, data: bytes) -> bytes:
        return data


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    def decompress(self, data: bytes) -> bytes:
        out = self._d.decompress(data, MAX_OUTPUT_PER_CHUNK)
        if self._d.unconsumed_tail:
            raise ValueError("decompression bomb: one chunk expands past the cap")
        return out


class _Deflate:
    """HTTP 'deflate' is meant to be zlib-wrapped, but servers also send raw deflate."""

    def __init__(self) -> None:
        self._d: _Zlib | None = None
        self._head = b""

    def decompress(self, data: bytes) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 2:
                return b""  # the zlib header is two bytes; wait for the second
            data, self._head = self._head, b""
            wrapped = (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._d = _Zlib(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._d.decompress(data)


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        return self._d.process(data)


class _Zstd:
    def __init__(self) -> None:
        self._d = zstd.ZstdDecompressor()

    def decompress(self, data: bytes) -> bytes:
        if self._d.eof:  # a new frame may follow the previous one
            self._d = zstd.ZstdDecompressor()
        out = self._d.decompress(data, MAX_OUTPUT_PER_CHUNK)
        if not self._d.needs_input and not self._d.eof:
            raise ValueError("decompression bomb: one chunk expands past the cap")
        return out


_FACTORIES: dict[str, Callable[[], _Decompressor]] = {
    "": _Identity,
    "identity": _Identity,
    "gzip": lambda: _Zlib(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _Zlib(16 + zlib.MAX_WBITS),
    "deflate": _Deflate,
    "br": _Brotli,
    "zstd": _Zstd,
}


class StreamDecoder:
    """Decodes one response body chunk by chunk; failed is set instead of raising."""

    __slots__ = ("_stages", "failed")

    def __init__(self, content_encoding: str | None) -> None:
        self.failed = False
        # "gzip, br" means gzip was applied first, so undo the last one first.
        names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
        self._stages: list[_Decompressor] = []
        for name in reversed(names):
            factory = _FACTORIES.get(name)
            if factory is None:
                self.failed = True
                return
            self._stages.append(factory())

    def decode(self, chunk: bytes) -> bytes:
        if self.failed:
            return b""
        try:
            for stage in self._stages:
                chunk = stage.decompress(chunk)
            return chunk
        except Exception:
            self.failed = True
            return b""
