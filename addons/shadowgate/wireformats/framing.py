"""Incremental stream framings: SSE, NDJSON, JSON values (Gemini arrays) and AWS event streams.

Each decoder turns byte chunks cut at arbitrary places into Frames. They never raise on bad input
and keep at most `max_buffer` bytes of any partial line/event/message: a unit larger than that is
dropped and the decoder resynchronises at the next boundary it can find.
"""

from __future__ import annotations

import json
import re
import struct
import zlib
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple
from typing import Protocol

MAX_BUFFER = 1 << 20  # 1 MiB


class Frame(NamedTuple):
    event: str | None  # SSE event name / AWS :event-type; None for plain JSON values
    data: Any  # decoded JSON, or None when the payload was not JSON
    error: str | None = None  # set when the framing itself says "error" (SSE event: error, AWS exception)


class Framing(Protocol):
    def feed(self, data: bytes) -> list[Frame]: ...

    def finish(self) -> list[Frame]: ...

    @property
    def buffered_bytes(self) -> int: ...


def loads(raw: bytes | str) -> Any:
    """json.loads that returns None instead of raising (bad UTF-8 is replaced, not fatal)."""
    try:
        if isinstance(raw, bytes | bytearray | memoryview):
            raw = bytes(raw).decode("utf-8", "replace")
        return json.loads(raw)
    except (ValueError, RecursionError, TypeError):
        return None


class _LineDecoder:
    """Splits byte chunks into lines at any boundary, holding at most max_buffer of a partial
    line; an over-long line is dropped whole and decoding resumes after its newline."""

    def __init__(self, max_buffer: int = MAX_BUFFER) -> None:
        self._max = max_buffer
        self._partial = bytearray()
        self._discarding = False  # inside an over-long line: drop bytes until the next newline

    @property
    def buffered_bytes(self) -> int:
        return len(self._partial)

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        start = 0
        while (nl := data.find(b"\n", start)) >= 0:
            piece = data[start:nl]
            start = nl + 1
            if self._discarding:
                self._discarding = False
                continue
            if self._partial:
                self._partial += piece
                piece = bytes(self._partial)
                self._partial.clear()
            self._line(piece, out)
        rest = data[start:]
        if rest and not self._discarding:
            if len(self._partial) + len(rest) > self._max:
                self._partial.clear()
                self._discarding = True
                self._line_dropped()
            else:
                self._partial += rest
        return out

    def _take_partial(self, out: list[Frame]) -> None:
        if self._partial and not self._discarding:
            line = bytes(self._partial)
            self._partial.clear()
            self._line(line, out)
        self._partial.clear()

    def _line(self, line: bytes, out: list[Frame]) -> None:
        raise NotImplementedError

    def _line_dropped(self) -> None:
        pass


class SSEDecoder(_LineDecoder):
    """Server-sent events (text/event-stream): `event:`/`data:` fields, blank line dispatches."""

    def __init__(self, max_buffer: int = MAX_BUFFER) -> None:
        super().__init__(max_buffer)
        self._event: str | None = None
        self._data: list[bytes] = []
        self._data_size = 0
        self._broken = False  # the current event lost a line; never dispatch half an event

    @property
    def buffered_bytes(self) -> int:
        return len(self._partial) + self._data_size

    def _line_dropped(self) -> None:
        self._broken = True

    def finish(self) -> list[Frame]:
        # Be lenient at EOF (the spec drops an unterminated event): a proxy sees truncated
        # streams, and the last event is where usage lives.
        out: list[Frame] = []
        self._take_partial(out)
        self._line(b"", out)
        return out

    def _line(self, line: bytes, out: list[Frame]) -> None:
        if line.endswith(b"\r"):
            line = line[:-1]
        if not line:
            self._dispatch(out)
            return
        if line[0] == 0x3A:  # ":" comment / keep-alive
            return
        name, sep, value = line.partition(b":")
        if sep and value[:1] == b" ":
            value = value[1:]
        if name == b"data":
            self._data_size += len(value) + 1
            if self._data_size > self._max:
                self._broken = True
                self._data.clear()
                self._data_size = 0
            elif not self._broken:
                self._data.append(value)
        elif name == b"event":
            self._event = value.decode("utf-8", "replace")

    def _dispatch(self, out: list[Frame]) -> None:
        event, chunks, broken = self._event, self._data, self._broken
        self._event, self._data, self._data_size, self._broken = None, [], 0, False
        if broken or (not chunks and event is None):
            return
        payload = b"\n".join(chunks)
        if payload.strip() == b"[DONE]":
            return
        error = "error" if event == "error" else None
        out.append(Frame(event, loads(payload) if payload else None, error))


class NDJSONDecoder(_LineDecoder):
    """Newline-delimited JSON (application/x-ndjson): one value per line, garbage lines skipped."""

    def finish(self) -> list[Frame]:
        out: list[Frame] = []
        self._take_partial(out)
        return out

    @staticmethod
    def _line(line: bytes, out: list[Frame]) -> None:
        if line.strip():
            value = loads(line)
            if value is not None:
                out.append(Frame(None, value))


_JSON_TOKENS = re.compile(rb'[{}\[\]"\\]')


class JSONValuesDecoder:
    """Top-level JSON objects as they complete: a bare object, concatenated objects, or the
    elements of a top-level array (Gemini streamGenerateContent without alt=sse sends one
    pretty-printed array whose elements span many lines, so this cannot be line-based).

    It tracks only brace depth and string state, scanning each chunk with one C-level regex.
    """

    def __init__(self, max_buffer: int = MAX_BUFFER) -> None:
        self._max = max_buffer
        self._depth = 0
        self._in_string = False
        self._escape_pending = False  # a chunk ended on a backslash inside a string
        self._top_is_array = False
        self._capturing = False
        self._overflow = False
        self._parts: list[bytes] = []
        self._size = 0

    @property
    def buffered_bytes(self) -> int:
        return self._size

    def finish(self) -> list[Frame]:
        return []  # an unterminated value is unusable

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        skip = 1 if self._escape_pending else 0  # positions below `skip` are escaped
        self._escape_pending = False
        start = 0  # where the capture of the current element begins in this chunk
        for m in _JSON_TOKENS.finditer(data):
            pos = m.start()
            if pos < skip:
                continue
            c = data[pos]
            if self._in_string:
                if c == 0x5C:  # backslash
                    skip = pos + 2
                    if pos + 1 >= len(data):
                        self._escape_pending = True
                elif c == 0x22:
                    self._in_string = False
                continue
            if c == 0x22:
                self._in_string = True
            elif c == 0x7B or c == 0x5B:  # { [
                if self._depth == 0:
                    self._top_is_array = c == 0x5B
                if c == 0x7B and not self._capturing and self._depth == (1 if self._top_is_array else 0):
                    self._capturing, self._overflow, start = True, False, pos
                self._depth += 1
            elif c == 0x7D or c == 0x5D:  # } ]
                self._depth = max(self._depth - 1, 0)
                if self._capturing and self._depth == (1 if self._top_is_array else 0):
                    self._append(data[start : pos + 1])
                    if not self._overflow:
                        value = loads(b"".join(self._parts))
                        if value is not None:
                            out.append(Frame(None, value))
                    self._capturing, self._parts, self._size = False, [], 0
        if self._capturing:
            self._append(data[start:])
        return out

    def _append(self, piece: bytes) -> None:
        if self._overflow:
            return
        self._size += len(piece)
        if self._size > self._max:
            self._overflow, self._parts, self._size = True, [], 0
        else:
            self._parts.append(piece)


# AWS event stream (application/vnd.amazon.eventstream): each message is
#   prelude: total length u32 | headers length u32 | CRC32 of those 8 bytes
#   headers: name length u8 | name | value type u8 | value
#   payload, then CRC32 of everything before it.
_PRELUDE = struct.Struct(">III")
_MAX_AWS_MESSAGE = 16 << 20  # the format's own limit; anything larger means we lost sync
_FIXED_HEADER_SIZES = {2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def decode_event_stream_headers(raw: bytes) -> dict[str, Any] | None:
    headers: dict[str, Any] = {}
    i, n = 0, len(raw)
    while i < n:
        name_len = raw[i]
        name = raw[i + 1 : i + 1 + name_len].decode("utf-8", "replace")
        i += 1 + name_len
        if i >= n:
            return None
        kind = raw[i]
        i += 1
        value: Any
        if kind in (0, 1):
            value = kind == 0
        elif kind in _FIXED_HEADER_SIZES:
            size = _FIXED_HEADER_SIZES[kind]
            if i + size > n:
                return None
            value = raw[i : i + size] if kind == 9 else int.from_bytes(raw[i : i + size], "big", signed=True)
            i += size
        elif kind in (6, 7):
            if i + 2 > n:
                return None
            size = int.from_bytes(raw[i : i + 2], "big")
            i += 2
            if i + size > n:
                return None
            value = raw[i : i + size]
            if kind == 7:
                value = value.decode("utf-8", "replace")
            i += size
        else:
            return None
        headers[name] = value
    return headers


class EventStreamDecoder:
    """AWS binary event stream. Messages whose prelude CRC fails are treated as lost sync (slide
    one byte and retry); valid messages over `max_buffer` are skipped without being buffered.

    Sliding costs a CRC per byte in Python, so after `max_resync` bytes without a valid prelude
    the stream is declared broken and the rest is ignored: garbage must not stall the event loop.
    """

    def __init__(self, max_buffer: int = MAX_BUFFER, max_resync: int = 64 * 1024) -> None:
        self._max = max_buffer
        self._max_resync = max_resync
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized message still to discard
        self._resynced = 0  # bytes slid over since the last valid prelude
        self._dead = False

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def finish(self) -> list[Frame]:
        return []

    def feed(self, data: bytes) -> list[Frame]:
        out: list[Frame] = []
        if self._dead:
            return out
        if self._skip:
            dropped = min(self._skip, len(data))
            self._skip -= dropped
            data = data[dropped:]
        buf = self._buf
        buf += data
        pos, n = 0, len(buf)
        while n - pos >= 12:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf, pos)
            if (
                zlib.crc32(buf[pos : pos + 8]) != prelude_crc
                or total < 16
                or total > _MAX_AWS_MESSAGE
                or headers_len > total - 16
            ):
                pos += 1
                self._resynced += 1
                if self._resynced > self._max_resync:
                    self._dead = True
                    buf.clear()
                    return out
                continue
            self._resynced = 0
            if total > self._max:
                if n - pos >= total:
                    pos += total
                    continue
                self._skip = total - (n - pos)
                pos = n
                break
            if n - pos < total:
                break
            message = bytes(buf[pos : pos + total])
            pos += total
            frame = self._frame(message, headers_len)
            if frame is not None:
                out.append(frame)
        del buf[:pos]
        return out

    @staticmethod
    def _frame(message: bytes, headers_len: int) -> Frame | None:
        if zlib.crc32(message[:-4]) != int.from_bytes(message[-4:], "big"):
            return None
        headers = decode_event_stream_headers(message[12 : 12 + headers_len])
        if headers is None:
            return None
        payload = message[12 + headers_len : -4]
        data = loads(payload) if payload else None
        kind = headers.get(":message-type")
        if kind == "exception":
            name = _str(headers.get(":exception-type")) or "exception"
            return Frame(name, data, name)
        if kind == "error":
            return Frame(None, data, _str(headers.get(":error-code")) or "error")
        return Frame(_str(headers.get(":event-type")), data)


def _str(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


def header(headers: Mapping[str, str] | Any, name: str) -> str | None:
    """Case-insensitive header lookup that tolerates any mapping (or junk)."""
    try:
        value = headers.get(name)
        if value is None:
            lname = name.lower()
            value = next((v for k, v in headers.items() if isinstance(k, str) and k.lower() == lname), None)
    except Exception:  # headers is not a mapping at all
        return None
    return value if isinstance(value, str) else None


_FRAMINGS: dict[str, type[SSEDecoder | NDJSONDecoder | JSONValuesDecoder | EventStreamDecoder]] = {
    "text/event-stream": SSEDecoder,
    "application/x-ndjson": NDJSONDecoder,
    "application/ndjson": NDJSONDecoder,
    "application/json-lines": NDJSONDecoder,
    "application/jsonl": NDJSONDecoder,
    "application/vnd.amazon.eventstream": EventStreamDecoder,
    # A streamed application/json body is either Gemini's array stream or an error envelope.
    "application/json": JSONValuesDecoder,
}


def framing_for(headers: Mapping[str, str] | Any, default: str = "text/event-stream") -> Framing:
    """Pick the framing from the response Content-Type, else the parser's usual one."""
    ctype = (header(headers, "content-type") or "").split(";", 1)[0].strip().lower()
    return _FRAMINGS.get(ctype, _FRAMINGS.get(default, SSEDecoder))()
