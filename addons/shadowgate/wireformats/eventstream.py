"""The AWS event stream (application/vnd.amazon.eventstream): one codec that decodes and re-encodes.

Bedrock's InvokeModelWithResponseStream and ConverseStream answer in binary messages:

    prelude:  total length u32 | headers length u32 | CRC32 of those 8 bytes
    headers:  name length u8 | name | value type u8 | value   (repeated)
    payload, then the message CRC32 of everything before it.

EventStreamCodec turns byte chunks cut anywhere into EventMessages; concatenating their `raw`
gives back the stream byte for byte, so a consumer that rewrites one message (`encode`, fresh
CRCs, the same headers) sends every other one unchanged. It never raises and holds at most
`max_buffer` bytes: a message whose prelude CRC fails means lost sync (slide one byte and retry,
at most `max_resync` bytes, then the stream is declared broken); a valid message longer than
`max_buffer` passes as raw pieces. Those, garbage and messages whose CRC fails come out
`unreadable`: a meter skips them, an inspection that must see every byte refuses them.

For InvokeModel's `chunk` events the payload is `{"bytes": base64 of the model's own JSON event,
"p": padding}`: `data` is that inner JSON and `encode()` wraps new JSON the same way, so a
consumer reads and rewrites the model's event without knowing the envelope.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import zlib
from typing import Any

MAX_BUFFER = 1 << 20  # 1 MiB
MAX_MESSAGE = 16 << 20  # the format's own limit; anything larger means we lost sync
_PRELUDE = struct.Struct(">III")
_FIXED_HEADER_SIZES = {2: 1, 3: 2, 4: 4, 5: 8, 8: 8, 9: 16}


def decode_event_stream_headers(raw: bytes) -> dict[str, Any] | None:
    """The headers of one message by name; None when they do not parse."""
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


def encode_string_headers(headers: dict[str, str]) -> bytes:
    return b"".join(
        bytes([len(name.encode())]) + name.encode() + b"\x07" + struct.pack(">H", len(value.encode())) + value.encode()
        for name, value in headers.items()
    )


def encode_message(raw_headers: bytes, payload: bytes) -> bytes:
    """One message with both CRCs computed."""
    prelude = struct.pack(">II", 12 + len(raw_headers) + len(payload) + 4, len(raw_headers))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw_headers + payload
    return body + struct.pack(">I", zlib.crc32(body))


def exception_message(exception_type: str, payload: bytes) -> bytes:
    """An exception message as AWS services send them; the SDKs raise it by its type."""
    headers = {":message-type": "exception", ":exception-type": exception_type, ":content-type": "application/json"}
    return encode_message(encode_string_headers(headers), payload)


class EventMessage:
    """One unit of the stream: a whole message (headers set), or bytes that are not one."""

    __slots__ = ("raw", "headers", "payload", "data", "ended", "_raw_headers", "_envelope")

    def __init__(self, raw: bytes, headers: dict[str, Any] | None = None, headers_len: int = 0) -> None:
        self.raw = raw
        self.headers = headers
        self.ended = headers is not None  # a whole, valid message
        self.payload = raw[12 + headers_len : -4] if headers is not None else b""
        self._raw_headers = raw[12 : 12 + headers_len]
        self._envelope: dict[str, Any] | None = None
        self.data: bytes | None = self.payload or None  # the JSON a consumer reads (see the module docstring)
        if headers is not None and headers.get(":event-type") == "chunk":
            envelope = _json(self.payload)
            inner = envelope.get("bytes") if isinstance(envelope, dict) else None
            try:
                self.data = base64.b64decode(inner, validate=True) if isinstance(inner, str) else None
                self._envelope = envelope
            except (binascii.Error, ValueError):
                self.data = None
            if self.data is None:
                self.ended = False  # a chunk whose model event cannot be read

    @property
    def unreadable(self) -> bool:
        return not self.ended

    @property
    def event(self) -> str | None:
        value = (self.headers or {}).get(":event-type")
        return value if isinstance(value, str) else None

    def encode(self, data: bytes) -> bytes:
        """This message with `data` in place of its data (re-wrapped for a chunk), headers as they came."""
        if self._envelope is not None:
            envelope = dict(self._envelope, bytes=base64.b64encode(data).decode())
            data = json.dumps(envelope, separators=(",", ":")).encode()
        return encode_message(self._raw_headers, data)


def _json(payload: bytes) -> Any:
    try:
        return json.loads(payload)
    except (ValueError, RecursionError):
        return None


class EventStreamCodec:
    """Incremental AWS event-stream splitter: bytes cut anywhere in, EventMessages out."""

    def __init__(self, max_buffer: int = MAX_BUFFER, max_resync: int = 64 * 1024) -> None:
        self._max = max_buffer
        self._max_resync = max_resync
        self._buf = bytearray()
        self._skip = 0  # bytes of an oversized message still to pass on
        self._resynced = 0  # bytes slid over since the last valid prelude
        self.broken = False

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def finish(self) -> list[EventMessage]:
        """A message cut short at EOF comes out as unreadable bytes."""
        rest, self._buf = bytes(self._buf), bytearray()
        return [EventMessage(rest)] if rest else []

    def feed(self, data: bytes) -> list[EventMessage]:
        out: list[EventMessage] = []
        if self.broken:
            return [EventMessage(bytes(data))] if data else []
        if self._skip:
            passed = min(self._skip, len(data))
            self._skip -= passed
            if passed:
                out.append(EventMessage(bytes(data[:passed])))
            data = data[passed:]
        buf = self._buf
        buf += data
        pos = junk = 0  # junk: where bytes slid over (not yet handed out) start
        n = len(buf)
        while n - pos >= 12:
            total, headers_len, prelude_crc = _PRELUDE.unpack_from(buf, pos)
            if (
                zlib.crc32(buf[pos : pos + 8]) != prelude_crc
                or total < 16
                or total > MAX_MESSAGE
                or headers_len > total - 16
            ):
                pos += 1
                self._resynced += 1
                if self._resynced > self._max_resync:
                    self.broken = True
                    out.append(EventMessage(bytes(buf[junk:])))
                    buf.clear()
                    return out
                continue
            self._resynced = 0
            if junk < pos:
                out.append(EventMessage(bytes(buf[junk:pos])))
            junk = pos
            if total > self._max:  # too long to hold: its bytes pass as they come
                end = min(n, pos + total)
                out.append(EventMessage(bytes(buf[pos:end])))
                self._skip = pos + total - end
                pos = junk = end
                continue
            if n - pos < total:
                break
            message = bytes(buf[pos : pos + total])
            pos = junk = pos + total
            out.append(self._message(message, headers_len))
        if junk < pos:
            out.append(EventMessage(bytes(buf[junk:pos])))
        del buf[:pos]
        return out

    @staticmethod
    def _message(message: bytes, headers_len: int) -> EventMessage:
        if zlib.crc32(message[:-4]) != int.from_bytes(message[-4:], "big"):
            return EventMessage(message)
        headers = decode_event_stream_headers(message[12 : 12 + headers_len])
        return EventMessage(message, headers, headers_len) if headers is not None else EventMessage(message)
