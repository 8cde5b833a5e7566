"""A bounded MessagePack reader and writer: enough for SignalR hub messages, with no dependency.

`unpackb(data)` reads one value that must span all of `data`; `unpack_from(data, pos)` reads one
value from `pos` and says where it ended. Every family of the format is read (msgpack spec.md):
nil, booleans, integers, floats, str (strict UTF-8), bin (bytes), arrays (lists), maps (dicts;
a map that repeats a key keeps the earlier values for DLP, see common.DuplicateKeys) and ext
(Ext, kept opaque). Hostile input fails fast with MsgPackError, never by allocating or recursing
without bound: nesting deeper than MAX_DEPTH, a length longer than what is left of the data (so a
declared 2^32-item array costs nothing), the never-used byte 0xc1, invalid UTF-8 in a str, and a
map key that is an array or a map. `packb()` writes each value in its shortest form.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any

from .common import DuplicateKeys

MAX_DEPTH = 32


class MsgPackError(ValueError):
    """Bytes that are not one well-formed MessagePack value (within the limits)."""


@dataclass(frozen=True, slots=True)
class Ext:
    """An extension value (a timestamp, an application type): its type code and raw data."""

    code: int
    data: bytes


_FIXED = {0xC4: 1, 0xC5: 2, 0xC6: 4, 0xC7: 1, 0xC8: 2, 0xC9: 4, 0xD9: 1, 0xDA: 2, 0xDB: 4, 0xDC: 2, 0xDD: 4,
          0xDE: 2, 0xDF: 4}  # fmt: skip
_INTS = {0xCC: ">B", 0xCD: ">H", 0xCE: ">I", 0xCF: ">Q", 0xD0: ">b", 0xD1: ">h", 0xD2: ">i", 0xD3: ">q"}
_FIXEXT = {0xD4: 1, 0xD5: 2, 0xD6: 4, 0xD7: 8, 0xD8: 16}


class _Reader:
    __slots__ = ("data", "pos")

    def __init__(self, data: bytes, pos: int) -> None:
        self.data = data
        self.pos = pos

    def take(self, n: int) -> bytes:
        end = self.pos + n
        if end > len(self.data):
            raise MsgPackError(f"truncated: {n} bytes wanted at {self.pos}, {len(self.data) - self.pos} left")
        chunk = self.data[self.pos : end]
        self.pos = end
        return chunk

    def length(self, size: int) -> int:
        return int.from_bytes(self.take(size), "big")

    def count(self, n: int, per_item: int) -> int:
        # Every item takes at least one byte: a count the rest of the data cannot hold is a lie.
        if n * per_item > len(self.data) - self.pos:
            raise MsgPackError(f"{n} items declared at {self.pos}, but only {len(self.data) - self.pos} bytes left")
        return n

    def value(self, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise MsgPackError(f"nested deeper than {MAX_DEPTH}")
        b = self.take(1)[0]
        if b <= 0x7F:
            return b
        if b >= 0xE0:
            return b - 0x100
        if 0xA0 <= b <= 0xBF:
            return self.text(b & 0x1F)
        if 0x90 <= b <= 0x9F:
            return self.array(b & 0x0F, depth)
        if 0x80 <= b <= 0x8F:
            return self.map(b & 0x0F, depth)
        if b == 0xC0:
            return None
        if b in (0xC2, 0xC3):
            return b == 0xC3
        if b in _INTS:
            fmt = _INTS[b]
            return struct.unpack(fmt, self.take(struct.calcsize(fmt)))[0]
        if b == 0xCA:
            return struct.unpack(">f", self.take(4))[0]
        if b == 0xCB:
            return struct.unpack(">d", self.take(8))[0]
        if b in _FIXEXT:
            code = struct.unpack(">b", self.take(1))[0]
            return Ext(code, self.take(_FIXEXT[b]))
        if b in _FIXED:
            n = self.length(_FIXED[b])
            if b <= 0xC6:
                return self.take(n)
            if b <= 0xC9:
                code = struct.unpack(">b", self.take(1))[0]
                return Ext(code, self.take(n))
            if b <= 0xDB:
                return self.text(n)
            if b <= 0xDD:
                return self.array(n, depth)
            return self.map(n, depth)
        raise MsgPackError(f"byte 0x{b:02x} at {self.pos - 1} starts no MessagePack value")

    def text(self, n: int) -> str:
        try:
            return self.take(n).decode("utf-8")
        except UnicodeDecodeError as e:
            raise MsgPackError(f"a str that is not UTF-8 before {self.pos}") from e

    def array(self, n: int, depth: int) -> list[Any]:
        return [self.value(depth + 1) for _ in range(self.count(n, 1))]

    def map(self, n: int, depth: int) -> dict[Any, Any]:
        pairs = []
        for _ in range(self.count(n, 2)):
            key = self.value(depth + 1)
            if isinstance(key, list | dict):
                raise MsgPackError(f"a map key that is an array or a map, before {self.pos}")
            pairs.append((key, self.value(depth + 1)))
        obj = dict(pairs)
        return obj if len(obj) == len(pairs) else DuplicateKeys(pairs)


def unpack_from(data: bytes, pos: int = 0) -> tuple[Any, int]:
    """The value that starts at data[pos], and the offset just after it."""
    reader = _Reader(data, pos)
    return reader.value(0), reader.pos


def unpackb(data: bytes) -> Any:
    """The one value that `data` holds; trailing bytes are an error."""
    value, end = unpack_from(data)
    if end != len(data):
        raise MsgPackError(f"{len(data) - end} bytes after the value")
    return value


def packb(value: Any) -> bytes:
    out = bytearray()
    _pack(value, out, 0)
    return bytes(out)


def _header(out: bytearray, n: int, fix: int | None, fix_max: int, codes: tuple[int, ...]) -> None:
    """A length header: the fix form when it fits, else the 8/16/32-bit form (codes in that order)."""
    if fix is not None and n <= fix_max:
        out.append(fix | n)
        return
    for code, size in zip(codes, (1, 2, 4)[-len(codes) :], strict=True):
        if n < 1 << (8 * size):
            out.append(code)
            out += n.to_bytes(size, "big")
            return
    raise MsgPackError(f"a length of {n} is too long for MessagePack")


def _pack(value: Any, out: bytearray, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise MsgPackError(f"nested deeper than {MAX_DEPTH}")
    if value is None:
        out.append(0xC0)
    elif value is True or value is False:
        out.append(0xC3 if value else 0xC2)
    elif isinstance(value, int):
        _pack_int(value, out)
    elif isinstance(value, float):
        out.append(0xCB)
        out += struct.pack(">d", value)
    elif isinstance(value, str):
        data = value.encode("utf-8")
        _header(out, len(data), 0xA0, 31, (0xD9, 0xDA, 0xDB))
        out += data
    elif isinstance(value, bytes | bytearray | memoryview):
        data = bytes(value)
        _header(out, len(data), None, 0, (0xC4, 0xC5, 0xC6))
        out += data
    elif isinstance(value, list | tuple):
        _header(out, len(value), 0x90, 15, (0xDC, 0xDD))
        for item in value:
            _pack(item, out, depth + 1)
    elif isinstance(value, dict):
        _header(out, len(value), 0x80, 15, (0xDE, 0xDF))
        for key, item in value.items():
            _pack(key, out, depth + 1)
            _pack(item, out, depth + 1)
    elif isinstance(value, Ext):
        fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}.get(len(value.data))
        if fixed is not None:
            out.append(fixed)
        else:
            _header(out, len(value.data), None, 0, (0xC7, 0xC8, 0xC9))
        out += struct.pack(">b", value.code) + value.data
    else:
        raise MsgPackError(f"cannot write a {type(value).__name__} as MessagePack")


def _pack_int(value: int, out: bytearray) -> None:
    if 0 <= value <= 0x7F or -32 <= value < 0:
        out += struct.pack(">b" if value < 0 else ">B", value)
        return
    formats = (0xCC, 0xCD, 0xCE, 0xCF) if value >= 0 else (0xD0, 0xD1, 0xD2, 0xD3)
    for code in formats:
        fmt = _INTS[code]
        try:
            packed = struct.pack(fmt, value)
        except struct.error:
            continue
        out.append(code)
        out += packed
        return
    raise MsgPackError(f"the integer {value} does not fit in 64 bits")
