"""Incremental stream framings: SSE, NDJSON, JSON values (Gemini arrays) and AWS event streams.

Each decoder turns byte chunks cut at arbitrary places into Frames. They never raise on bad input
and keep at most `max_buffer` bytes of any partial line/event/message: a unit larger than that is
dropped and the decoder resynchronises at the next boundary it can find.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any
from typing import NamedTuple
from typing import Protocol

from .eventstream import EventStreamCodec

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


class StreamEvent:
    """One unit of a text stream as it came: an SSE event, an NDJSON line, or bytes passed unparsed.

    Concatenating the `raw` of every unit a codec hands out gives back the stream byte for byte,
    so a consumer that rewrites one event sends every other one unchanged.
    """

    __slots__ = ("raw", "event", "data", "ended", "_lines", "_newline", "_end", "_lead")

    def __init__(
        self,
        raw: bytes,
        event: str | None = None,
        data: bytes | None = None,
        ended: bool = False,
        lines: tuple[bytes, ...] = (),
        newline: bytes = b"\n",
        end: bytes = b"",
        lead: bytes = b"",
    ) -> None:
        self.raw = raw
        self.event = event  # the SSE `event:` field
        self.data = data  # SSE: the `data:` lines joined with "\n"; NDJSON: the line. None: none
        # True for a whole event (SSE: a blank line ended it; NDJSON: a line). False for what was
        # left at EOF and for the pieces of an event too long to hold (those have no data).
        self.ended = ended
        self._lines = lines
        self._newline = newline
        self._end = end
        self._lead = lead  # the LF of a CRLF whose CR ended the previous event

    def encode(self, data: bytes) -> bytes:
        """This (ended) event with `data` in place of its data, other fields and line endings as they came."""
        if self._end == b"":  # NDJSON: the line is the data
            return self._lead + data + self._newline
        new = [b"data: " + line for line in _LINE_END.split(data)]
        out: list[bytes] = []
        for line in self._lines:
            if line.partition(b":")[0] != b"data":
                out.append(line)
            elif new:
                out += new
                new = []
        out += new
        return self._lead + self._newline.join(out) + self._newline + self._end


_LINE_END = re.compile(rb"\r\n|\r|\n")  # SSE: CRLF, CR or LF ends a line
_LF = re.compile(rb"\r?\n")  # NDJSON: a CR inside a value is JSON whitespace, not a line end


class EventCodec:
    """Incremental SSE or NDJSON splitter: bytes cut anywhere in, StreamEvents out.

    It holds at most `max_buffer` bytes of one event; the bytes of a longer event are handed
    out as unparsed pieces as they come, and parsing resumes with the event after it. It never
    raises and never holds a byte past the feed() that completes its event, so a consumer may
    hold back only what it chooses to.
    """

    def __init__(self, sse: bool = True, max_buffer: int = MAX_BUFFER) -> None:
        self._sse = sse
        self._pattern = _LINE_END if sse else _LF
        self._max = max_buffer
        self._buf = bytearray()  # the current event's bytes (from its first byte, lead included)
        self._line_at = 0  # where the current, unterminated line starts in _buf
        self._lines: list[bytes] = []
        self._newline = b"\n"
        self._lead = b""
        self._cr = False  # the last line ended on a CR at the end of a chunk: an LF may follow
        self._discarding = False  # inside an over-long event: its bytes pass as unparsed pieces
        self._midline = False  # (discarding) bytes of the current line went out already

    @property
    def buffered_bytes(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[StreamEvent]:
        out: list[StreamEvent] = []
        if not data:
            return out
        held = self._buf
        scan = len(held) if self._sse else max(len(held) - 1, 0)  # NDJSON: a CR may precede the LF
        # Nothing held (an event per chunk, the usual case): slice the chunk itself, no copies.
        buf: bytes | bytearray = data if not held else held
        if held:
            held += data
        line_at = self._line_at
        if self._cr and buf[line_at : line_at + 1] == b"\n":  # the rest of a CRLF cut between chunks
            line_at += 1
            if self._lines:
                self._newline = b"\r\n"
            elif not self._discarding:
                self._lead = b"\n"
        start = 0  # the first byte of _buf not yet handed out
        sse, lines = self._sse, self._lines
        for m in self._pattern.finditer(buf, max(scan, line_at)):
            line, line_end, line_at = buf[line_at : m.start()], m.group(), m.end()
            if line and sse and not self._discarding:  # the common case: a field line
                lines.append(bytes(line))
                self._newline = line_end
            elif self._discarding:
                blank = not line and not self._midline
                self._midline = False
                if blank or not self._sse:  # the over-long event (or NDJSON line) ends here
                    out.append(StreamEvent(bytes(buf[start:line_at])))
                    start, self._discarding = line_at, False
            elif not sse:
                if line.strip():
                    out.append(StreamEvent(bytes(buf[start:line_at]), None, bytes(line), True, newline=line_end))
                    start = line_at
                # a blank NDJSON line goes out with the next line
            else:
                out.append(self._event(bytes(buf[start:line_at]), True, line_end))
                lines = self._lines
                start = line_at
        self._cr = self._sse and line_at == len(buf) and buf.endswith(b"\r")
        if self._discarding:
            if len(buf) > start:
                self._midline = self._midline or line_at < len(buf)
                out.append(StreamEvent(bytes(buf[start:])))
                start = line_at = len(buf)
        elif len(buf) - start > self._max:  # an event too long to hold: pass it on unparsed
            self._midline = line_at < len(buf)
            out.append(StreamEvent(bytes(buf[start:])))
            start = line_at = len(buf)
            self._lines, self._lead = [], b""
            # An SSE event runs to its blank line; an NDJSON line to its newline, if it is cut.
            self._discarding = self._sse or self._midline
        if held:
            del held[:start]
        elif start < len(data):
            held += data[start:]
        self._line_at = line_at - start
        return out

    def finish(self) -> list[StreamEvent]:
        """What is left at EOF: a last event without its blank line (or newline), as it came."""
        buf, self._buf = bytes(self._buf), bytearray()
        tail = buf[self._line_at :]
        self._line_at, self._cr = 0, False
        if not buf:
            return []
        if self._discarding:
            self._discarding = self._midline = False
            return [StreamEvent(buf)]
        if self._sse:
            if tail:
                self._lines.append(tail)
            return [self._event(buf, False, b"")]
        return [StreamEvent(buf, None, tail.strip() or None, False)]

    def _event(self, raw: bytes, ended: bool, end: bytes) -> StreamEvent:
        lines, self._lines = tuple(self._lines), []
        lead, self._lead = self._lead, b""
        event: str | None = None
        data: list[bytes] = []
        for line in lines:
            if line[0] == 0x3A:  # ":" comment / keep-alive
                continue
            name, sep, value = line.partition(b":")
            if sep and value[:1] == b" ":
                value = value[1:]
            if name == b"data":
                data.append(value)
            elif name == b"event":
                event = value.decode("utf-8", "replace")
        joined = b"\n".join(data) if data else None
        return StreamEvent(raw, event, joined, ended, lines, self._newline, end, lead)


def codec_for(content_type: str, max_buffer: int = MAX_BUFFER) -> EventCodec | None:
    """A re-encoding codec for a text stream of this Content-Type, or None (JSON arrays and AWS
    event streams are not rewritten event by event)."""
    decoder = _FRAMINGS.get(content_type.split(";", 1)[0].strip().lower())
    if decoder is SSEDecoder:
        return EventCodec(True, max_buffer)
    if decoder is NDJSONDecoder:
        return EventCodec(False, max_buffer)
    return None


class _CodecDecoder:
    """A Framing over an EventCodec: whole events become Frames, unparsed pieces are dropped."""

    def __init__(self, codec: EventCodec) -> None:
        self._codec = codec

    @property
    def buffered_bytes(self) -> int:
        return self._codec.buffered_bytes

    def feed(self, data: bytes) -> list[Frame]:
        return self._frames(self._codec.feed(data))

    def finish(self) -> list[Frame]:
        # Lenient at EOF (SSE drops an unterminated event): a proxy sees truncated streams, and
        # the last event is where usage lives.
        return self._frames(self._codec.finish())

    def _frames(self, events: list[StreamEvent]) -> list[Frame]:
        return [f for e in events if (f := self._frame(e)) is not None]

    @staticmethod
    def _frame(e: StreamEvent) -> Frame | None:
        raise NotImplementedError


class SSEDecoder(_CodecDecoder):
    """Server-sent events (text/event-stream): `event:`/`data:` fields, blank line dispatches."""

    def __init__(self, max_buffer: int = MAX_BUFFER) -> None:
        super().__init__(EventCodec(True, max_buffer))

    @staticmethod
    def _frame(e: StreamEvent) -> Frame | None:
        if e.data is None:
            return None if e.event is None else Frame(e.event, None, "error" if e.event == "error" else None)
        if e.data.strip() == b"[DONE]":
            return None
        return Frame(e.event, loads(e.data) if e.data else None, "error" if e.event == "error" else None)


class NDJSONDecoder(_CodecDecoder):
    """Newline-delimited JSON (application/x-ndjson): one value per line, garbage lines skipped."""

    def __init__(self, max_buffer: int = MAX_BUFFER) -> None:
        super().__init__(EventCodec(False, max_buffer))

    @staticmethod
    def _frame(e: StreamEvent) -> Frame | None:
        value = loads(e.data) if e.data else None
        return None if value is None else Frame(None, value)


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


class EventStreamDecoder:
    """AWS binary event stream (eventstream.py's codec): whole, valid messages become Frames;
    garbage, messages whose CRC fails and messages over `max_buffer` are skipped."""

    def __init__(self, max_buffer: int = MAX_BUFFER, max_resync: int = 64 * 1024) -> None:
        self._codec = EventStreamCodec(max_buffer, max_resync)

    @property
    def buffered_bytes(self) -> int:
        return self._codec.buffered_bytes

    def finish(self) -> list[Frame]:
        return []

    def feed(self, data: bytes) -> list[Frame]:
        return [self._frame(m.headers, m.payload) for m in self._codec.feed(data) if m.headers is not None]

    @staticmethod
    def _frame(headers: dict[str, Any], payload: bytes) -> Frame:
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


# Content types that are streams whatever the request said (application/json is one only when
# the request asked for a stream). Meter decides "streamed" from these.
STREAM_CONTENT_TYPES: tuple[str, ...] = tuple(t for t in _FRAMINGS if t != "application/json")


def framing_for(headers: Mapping[str, str] | Any, default: str = "text/event-stream") -> Framing:
    """Pick the framing from the response Content-Type, else the parser's usual one."""
    ctype = (header(headers, "content-type") or "").split(";", 1)[0].strip().lower()
    return _FRAMINGS.get(ctype, _FRAMINGS.get(default, SSEDecoder))()
