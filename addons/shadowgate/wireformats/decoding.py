"""Incremental Content-Encoding decoders for stream taps.

A stream tap sees the raw wire bytes, still compressed. These decoders turn each chunk into
plain bytes for the usage parser without ever raising: a corrupt or truncated stream turns the
decoder off (usage then comes from the estimate), and the client still gets every byte untouched.
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable
from typing import Any
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


# --- whole request bodies ---------------------------------------------------------------------

# Content-coding names as RFC 9110 §8.4.1 registers them; "x-gzip" is the alias it says a
# recipient SHOULD treat as gzip. "compress" (LZW) is registered but nothing here decodes it.
_CODINGS: dict[str, Callable[[], _Decompressor]] = {
    "gzip": _FACTORIES["gzip"],
    "x-gzip": _FACTORIES["gzip"],
    "deflate": _FACTORIES["deflate"],
    "br": _FACTORIES["br"],
    "zstd": _FACTORIES["zstd"],
}
_IDENTITY = frozenset({"", "identity", "none"})
# A request body is checked against this many decoded bytes at most: a compressed body that
# expands past it is refused rather than scanned in part.
MAX_DECODED_BODY = 64 * 1024 * 1024
_BOMB_CHUNK = 4096  # with MAX_OUTPUT_PER_CHUNK, a 2048:1 ratio per chunk (deflate tops out near 1032:1)


class UndecodableBody(ValueError):
    """A request body the proxy cannot turn into the bytes the upstream will read."""


def content_codings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding value, first applied first, identity left out."""
    names = [name.strip().lower() for name in (header or "").split(",")]
    return [name for name in names if name not in _IDENTITY]


def transfer_codings(headers: Any) -> list[str]:
    """The transfer codings of a request besides chunked (RFC 9112 §6.1), first applied first.

    mitmproxy undoes only chunked: it hands a `Transfer-Encoding: gzip, chunked` body to the
    stages still gzip-coded and forwards it so, under the same header, to an upstream that may
    undo the gzip itself. No client library sends such a body; the stages refuse it on AI calls
    (Decide) rather than read what the upstream would not."""
    names = [name.strip().lower() for value in headers.get_all("transfer-encoding") for name in value.split(",")]
    return [name for name in names if name and name != "chunked"]


def decode_body(raw: bytes, content_encoding: str | None, limit: int = MAX_DECODED_BODY) -> bytes:
    """raw with every coding of its Content-Encoding undone, last applied first (RFC 9110: "gzip,
    br" was gzipped, then brotli'd). Raises UndecodableBody for an unknown coding, corrupt or
    truncated data, trailing bytes after a gzip member, or output above `limit`. mitmproxy's own
    decoder knows one coding per header only and hands back the raw bytes on any other value."""
    data = bytes(raw)
    for name in reversed(content_codings(content_encoding)):
        factory = _CODINGS.get(name)
        if factory is None:
            raise UndecodableBody(f"unknown content coding {name!r}")
        data = _undo(factory(), name, data, limit)
    return data


def _undo(stage: _Decompressor, name: str, data: bytes, limit: int) -> bytes:
    out = bytearray()
    try:
        for i in range(0, max(len(data), 1), _BOMB_CHUNK):
            out += stage.decompress(data[i : i + _BOMB_CHUNK])
            if len(out) > limit:
                raise UndecodableBody(f"the {name} body expands past {limit} bytes")
    except UndecodableBody:
        raise
    except Exception as e:
        raise UndecodableBody(f"the body is not valid {name}: {e}") from e
    if not _finished(stage):
        raise UndecodableBody(f"the {name} body is truncated or has trailing data")
    return bytes(out)


def _finished(stage: _Decompressor) -> bool:
    inner: Any = getattr(stage, "_d", None)
    if isinstance(stage, _Deflate):
        inner = getattr(inner, "_d", None)
    if inner is None:
        return isinstance(stage, _Identity)
    if hasattr(inner, "eof") and hasattr(inner, "unused_data"):  # zlib.Decompress
        return bool(inner.eof) and not inner.unused_data
    if isinstance(stage, _Brotli):
        return bool(inner.is_finished())
    return bool(getattr(inner, "eof", True))


def json_text(data: bytes) -> str:
    """The text of a JSON body as a reader that follows RFC 8259 §8.1 and RFC 4627 §3 sees it:
    UTF-8 (a BOM allowed), or UTF-16/UTF-32 told apart by a BOM or by where the zero bytes of the
    first two characters fall. Python's json.loads(bytes), and the servers built on it, accept
    all of them. Raises UnicodeDecodeError for bytes that are none of them."""
    return data.decode(json.detect_encoding(data))


def readable_content(message: Any) -> bytes:
    """A mitmproxy message's body as the upstream will read it, every content coding undone;
    b"" when it cannot be (DLP refuses such a body; metering then has nothing to read)."""
    raw = message.raw_content
    if not raw:
        return b""
    try:
        return decode_body(raw, message.headers.get("content-encoding"))
    except UndecodableBody:
        return b""
