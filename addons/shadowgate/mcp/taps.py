"""The response.stream callables of the MCP addon. Each hands bytes back unchanged and parses a copy;
it holds back only the one event (or JSON body) it may have to rewrite, up to a limit, beyond which
it gives up and passes bytes through."""

from __future__ import annotations

import logging
from collections.abc import Callable

from mitmproxy import http

from shadowgate.mcp.jsonrpc import dumps
from shadowgate.mcp.jsonrpc import encoded_size
from shadowgate.mcp.jsonrpc import is_message
from shadowgate.mcp.jsonrpc import parse_jsonrpc
from shadowgate.mcp.session import LegacySession
from shadowgate.wireformats.framing import EventCodec
from shadowgate.wireformats.framing import StreamEvent

log = logging.getLogger(__name__)

OnMessage = Callable[[dict, int], "dict | None"]


class _Tap:
    """Base of the response.stream callables: never raises; on trouble, passes bytes through."""

    __slots__ = ("on_message", "limit", "buf", "passthrough", "response_bytes")

    def __init__(self, on_message: OnMessage, limit: int) -> None:
        self.on_message = on_message
        self.limit = limit
        self.buf = bytearray()
        self.passthrough = False
        self.response_bytes = 0

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        self.response_bytes += len(chunk)
        if self.passthrough:
            return chunk if chunk else self._drain()
        try:
            out = self._feed(chunk)
        except Exception:  # _feed keeps every byte in buf until it has handed it out
            log.debug("shadowgate: MCP response tap failed; passing bytes through", exc_info=True)
            return self._give_up()
        # An empty chunk would end a chunked HTTP/1 body early; [] holds the data back.
        return [o for o in out if o]

    def _rewritten(self, payload: bytes) -> bytes | None:
        """The replacement for one JSON-RPC message or batch, or None to send it as it came."""
        try:
            msg = parse_jsonrpc(payload)
            if msg is None:
                return None
            if isinstance(msg, dict):
                new = self.on_message(msg, len(payload))
                return None if new is None else dumps(new)
            changed = False
            out = []
            for item in msg:
                new = self.on_message(item, encoded_size(item) or 0) if is_message(item) else None
                changed = changed or new is not None
                out.append(item if new is None else new)
            return dumps(out) if changed else None
        except Exception:
            log.debug("shadowgate: MCP message handling failed; passing it through", exc_info=True)
            return None

    def _drain(self) -> list[bytes]:
        held, self.buf = bytes(self.buf), bytearray()
        return [held] if held else []

    def _give_up(self) -> list[bytes]:
        self.passthrough = True
        return self._drain()

    def _feed(self, chunk: bytes) -> list[bytes]:
        raise NotImplementedError


class JsonTap(_Tap):
    """A JSON answer: held back whole (up to the limit) so it can be rewritten, then sent."""

    __slots__ = ()

    def _feed(self, chunk: bytes) -> list[bytes]:
        if chunk:
            self.buf += chunk
            return self._give_up() if len(self.buf) > self.limit else []
        body = bytes(self.buf)
        self.buf = bytearray()
        return [(self._rewritten(body) if body else None) or body]


class SseTap(_Tap):
    """An SSE answer: complete events go out as they come (one rewritten when needed). The codec
    holds at most `limit` bytes of one event; at a longer one the tap gives up and passes the
    rest of the stream through."""

    __slots__ = ("codec",)

    def __init__(self, on_message: OnMessage, limit: int) -> None:
        super().__init__(on_message, limit)
        self.codec = EventCodec(True, limit)

    def _feed(self, chunk: bytes) -> list[bytes]:
        # At the end, a trailing partial event goes out as it came.
        events = self.codec.feed(chunk) if chunk else self.codec.finish()
        out = []
        for e in events:
            if chunk and not e.ended:  # a piece of an event too long to hold
                self.passthrough = True
            out.append(e.raw if self.passthrough or not e.ended or e.data is None else self._event(e))
        if self.passthrough:  # an event said this is no stream of ours: the rest goes as it is
            out += self._drain()
        return out

    def _drain(self) -> list[bytes]:
        held = b"".join(e.raw for e in self.codec.finish())
        return [held] if held else []

    def _event(self, event: StreamEvent) -> bytes:
        try:
            new = self._handle(event.event or "message", event.data or b"")
        except Exception:
            log.debug("shadowgate: MCP event handling failed; passing it through", exc_info=True)
            return event.raw
        return event.raw if new is None else event.encode(new)

    def _handle(self, name: str, payload: bytes) -> bytes | None:
        return self._rewritten(payload)


class LegacySseTap(SseTap):
    """The long-lived stream of the HTTP+SSE transport. Its first event must be `endpoint`;
    any other first event means it is not MCP, and the stream passes through unparsed."""

    __slots__ = ("on_endpoint", "session")

    def __init__(self, on_endpoint: Callable[[str], LegacySession | None], on_message: OnMessage, limit: int) -> None:
        super().__init__(on_message, limit)
        self.on_endpoint = on_endpoint
        self.session: LegacySession | None = None

    def _handle(self, name: str, payload: bytes) -> bytes | None:
        if self.session is not None:
            return self._rewritten(payload)
        if name == "endpoint":
            self.session = self.on_endpoint(payload.decode("utf-8", "replace").strip())
        if self.session is None:
            self.passthrough = True
        return None


def unframe(flow: http.HTTPFlow) -> None:
    """The tap may change the body's length: frame it without a content-length."""
    response = flow.response
    if response is not None and "content-length" in response.headers:
        del response.headers["content-length"]
        if flow.request.http_version.startswith("HTTP/1"):
            response.headers["transfer-encoding"] = "chunked"
