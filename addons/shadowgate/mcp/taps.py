"""How the MCP addon reads a server's answers: the SSE response.stream callables, and the
message handling they share with JSON answers and WebSocket messages.

A tap hands bytes back unchanged and parses a copy; it holds back only the event it may have to
rewrite, up to a limit, beyond which it gives up and passes bytes through. An event over
SCAN_IN_THREAD_CHARS is parsed, screened and scanned on a worker thread (asyncio's default
executor, as the request-side DLP), never on the event loop every other user's traffic runs on;
it and every byte after it are held back until that work is done (order is kept), and go out
with the next chunk. mitmproxy calls a stream callable synchronously and sends what its last
call returns before any hook can wait: when the body ends while such work still runs, a hook of
ours (McpStreamEndHook) put in front of that last call awaits it, off the loop.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from mitmproxy import http
from mitmproxy.proxy import commands
from mitmproxy.proxy import events
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers.http import HttpStream
from mitmproxy.proxy.layers.http import ResponseEndOfMessage

from shadowgate.mcp.dlp import ResultCheck
from shadowgate.mcp.jsonrpc import dumps
from shadowgate.mcp.jsonrpc import encoded_size
from shadowgate.mcp.jsonrpc import is_message
from shadowgate.mcp.jsonrpc import parse_jsonrpc
from shadowgate.mcp.session import LegacySession
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.wireformats.framing import EventCodec
from shadowgate.wireformats.framing import StreamEvent

log = logging.getLogger(__name__)

# What the addon makes of one server message: its replacement, None to keep it, or the checks
# of a tool result still to run.
Outcome = dict | ResultCheck | None
OnMessage = Callable[[dict, int], Outcome]


def answer_all(msg: dict | list, on_message: OnMessage, size: int) -> list[Outcome]:
    """The outcome of each message of an answer (a message, or a batch): on the event loop."""
    if isinstance(msg, dict):
        return [on_message(msg, size)]
    return [on_message(item, encoded_size(item) or 0) if is_message(item) else None for item in msg]


def settle(msg: dict | list, outcomes: list[Outcome]) -> bytes | None:
    """Run the outcomes' result checks and encode the answer anew, or None to send it as it came.
    On any thread: it reads only the parsed answer and the calls of its checks."""
    new = [o.run() if isinstance(o, ResultCheck) else o for o in outcomes]
    if all(n is None for n in new):
        return None
    if isinstance(msg, dict):
        return dumps(new[0])
    return dumps([item if n is None else n for item, n in zip(msg, new)])


def checked(outcomes: list[Outcome]) -> None:
    """After settle(), on the event loop: what waited for the checks (a row) goes on."""
    for o in outcomes:
        if isinstance(o, ResultCheck):
            o.done()


def large(outcomes: list[Outcome]) -> bool:
    return any(isinstance(o, ResultCheck) and o.large for o in outcomes)


def rewrite(payload: bytes, on_message: OnMessage) -> bytes | None:
    """The replacement for one JSON-RPC message or batch, or None to send it as it came, all on
    the calling thread (a small payload)."""
    msg = parse_jsonrpc(payload)
    if msg is None:
        return None
    outcomes = answer_all(msg, on_message, len(payload))
    try:
        return settle(msg, outcomes)
    finally:
        checked(outcomes)


async def rewrite_off_loop(payload: bytes, on_message: OnMessage) -> bytes | None:
    """rewrite() for a large payload: parsed and checked on a worker thread, answered on the loop."""
    msg = await asyncio.to_thread(parse_jsonrpc, payload)
    if msg is None:
        return None
    outcomes = answer_all(msg, on_message, len(payload))
    try:
        return await asyncio.to_thread(settle, msg, outcomes) if large(outcomes) else settle(msg, outcomes)
    finally:
        checked(outcomes)


class _Job:
    """A function on asyncio's default executor whose end the tap can poll, wait for, or await."""

    __slots__ = ("finished", "value", "error", "future")

    def __init__(self, fn: Callable[[], Any]) -> None:
        self.finished = threading.Event()
        self.value: Any = None
        self.error: BaseException | None = None
        self.future: asyncio.Future[None] | None = None
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a unit test): run it here
            self._run(fn)
            return
        self.future = loop.run_in_executor(None, self._run, fn)

    def _run(self, fn: Callable[[], Any]) -> None:
        try:
            self.value = fn()
        except BaseException as e:  # handed to the tap, which passes the event through
            self.error = e
        finally:
            self.finished.set()

    def result(self, wait: bool) -> tuple[bool, Any]:
        """(done, value); raises what the function raised."""
        if not self.finished.is_set() and not (wait and self.finished.wait()):
            return False, None
        if self.error is not None:
            raise self.error
        return True, self.value

    async def done(self) -> None:
        if self.future is not None:
            await self.future


class _Held:
    """A large message: parsed on a worker thread, answered on the loop, checked on a worker
    thread; then its bytes, rewritten or as they came."""

    __slots__ = ("raw", "payload", "encode", "on_message", "job", "outcomes", "data")

    def __init__(self, raw: bytes, payload: bytes, encode: Callable[[bytes], bytes], on_message: OnMessage) -> None:
        self.raw, self.payload, self.encode, self.on_message = raw, payload, encode, on_message
        self.job = _Job(lambda: parse_jsonrpc(payload))
        self.outcomes: list[Outcome] | None = None
        self.data: bytes | None = None

    def ready(self, wait: bool) -> bytes | None:
        """The message's bytes once its work is done, else None (wait: block until then)."""
        if self.data is None:
            self.data = self._advance(wait)
        return self.data

    async def settled(self) -> None:
        """Done, without holding up the event loop."""
        while self.ready(False) is None:
            await self.job.done()

    def _advance(self, wait: bool) -> bytes | None:
        try:
            done, value = self.job.result(wait)
            if not done:
                return None
            if self.outcomes is None:  # parsed: answer on the loop, then check on a thread
                if value is None:
                    return self.raw
                msg = value
                self.outcomes = outcomes = answer_all(msg, self.on_message, len(self.payload))
                self.job = _Job(lambda: settle(msg, outcomes))
                done, value = self.job.result(wait)
                if not done:
                    return None
            checked(self.outcomes)
        except Exception:
            log.debug("shadowgate: MCP message handling failed; passing it through", exc_info=True)
            if self.outcomes is not None:
                checked(self.outcomes)
            return self.raw
        return self.raw if value is None else self.encode(value)


class JsonTap:
    """A JSON answer of unknown length (chunked): held whole up to the limit, then rewritten when
    needed and sent; beyond the limit it passes through unread. (An answer with a Content-Length
    is held by mitmproxy instead and handled in the `response` hook.)"""

    __slots__ = ("on_message", "limit", "buf", "passthrough", "held")

    def __init__(self, on_message: OnMessage, limit: int) -> None:
        self.on_message = on_message
        self.limit = limit
        self.buf = bytearray()
        self.passthrough = False
        self.held: _Held | None = None

    def __call__(self, chunk: bytes) -> list[bytes]:
        if self.passthrough:
            return [chunk] if chunk else []
        if chunk:
            self.buf += chunk
            if len(self.buf) > self.limit:
                self.passthrough = True
                return [bytes(self.buf)]
            return []
        body = bytes(self.buf)
        if not body:
            return []
        if self.held is not None:  # started at the end of the body (end()): done by now
            return [self.held.ready(wait=True) or body]
        try:
            new = rewrite(body, self.on_message)
        except Exception:
            log.debug("shadowgate: MCP answer handling failed; passing it through", exc_info=True)
            new = None
        return [new or body]

    def end(self) -> bool:
        """The body is complete: a large one's work starts on a worker thread. True when there
        is work to wait for before the last call."""
        if not self.passthrough and len(self.buf) > SCAN_IN_THREAD_CHARS:
            body = bytes(self.buf)
            self.held = _Held(body, body, lambda new: new, self.on_message)
            return True
        return False

    async def finish(self) -> None:
        if self.held is not None:
            await self.held.settled()


class SseTap:
    """An SSE answer: complete events go out as they come (one rewritten when needed). The codec
    holds at most `limit` bytes of one event; at a longer one the tap gives up and passes the
    rest of the stream through. Never raises: on trouble, bytes pass through."""

    __slots__ = ("on_message", "limit", "passthrough", "response_bytes", "codec", "queue")

    def __init__(self, on_message: OnMessage, limit: int) -> None:
        self.on_message = on_message
        self.limit = limit
        self.passthrough = False
        self.response_bytes = 0
        self.codec = EventCodec(True, limit)
        # What goes out next, in order: bytes, or an event whose work runs on a worker thread.
        self.queue: deque[bytes | _Held] = deque()

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        self.response_bytes += len(chunk)
        try:
            if self.passthrough:
                self.queue.append(chunk)
            else:
                self._feed(chunk)
        except Exception:  # _feed keeps every byte in the codec until it has queued it
            log.debug("shadowgate: MCP response tap failed; passing bytes through", exc_info=True)
            self.passthrough = True
        if self.passthrough:
            self.queue.extend(e.raw for e in self.codec.finish())
        # At the end of the body nothing can wait any longer (see the module's docstring).
        out = self._ready(wait=not chunk)
        # An empty chunk would end a chunked HTTP/1 body early; [] holds the data back.
        return [o for o in out if o]

    def _ready(self, wait: bool) -> list[bytes]:
        out: list[bytes] = []
        while self.queue:
            head = self.queue[0]
            if isinstance(head, _Held):
                data = head.ready(wait)
                if data is None:
                    break
                head = data
            out.append(head)
            self.queue.popleft()
        return out

    def _feed(self, chunk: bytes) -> None:
        # At the end, a trailing partial event goes out as it came.
        events = self.codec.feed(chunk) if chunk else self.codec.finish()
        for e in events:
            if chunk and not e.ended:  # a piece of an event too long to hold
                self.passthrough = True
            if self.passthrough or not e.ended or e.data is None:
                self.queue.append(e.raw)
            else:
                self.queue.append(self._event(e))

    def _event(self, event: StreamEvent) -> bytes | _Held:
        try:
            return self._handle(event)
        except Exception:
            log.debug("shadowgate: MCP event handling failed; passing it through", exc_info=True)
            return event.raw

    def end(self) -> bool:
        """True when an event's work still runs at the end of the stream."""
        return any(isinstance(item, _Held) and item.data is None for item in self.queue)

    async def finish(self) -> None:
        for item in list(self.queue):
            if isinstance(item, _Held):
                await item.settled()

    def _handle(self, event: StreamEvent) -> bytes | _Held:
        payload = event.data or b""
        if len(payload) > SCAN_IN_THREAD_CHARS:
            return _Held(event.raw, payload, event.encode, self.on_message)
        new = rewrite(payload, self.on_message)
        return event.raw if new is None else event.encode(new)


class LegacySseTap(SseTap):
    """The long-lived stream of the HTTP+SSE transport. Its first event must be `endpoint`;
    any other first event means it is not MCP, and the stream passes through unparsed."""

    __slots__ = ("on_endpoint", "session")

    def __init__(self, on_endpoint: Callable[[str], LegacySession | None], on_message: OnMessage, limit: int) -> None:
        super().__init__(on_message, limit)
        self.on_endpoint = on_endpoint
        self.session: LegacySession | None = None

    def _handle(self, event: StreamEvent) -> bytes | _Held:
        if self.session is not None:
            return super()._handle(event)
        if (event.event or "message") == "endpoint":
            self.session = self.on_endpoint((event.data or b"").decode("utf-8", "replace").strip())
        if self.session is None:
            self.passthrough = True
        return event.raw


@dataclass
class McpStreamEndHook(commands.StartHook):
    """The end of an MCP answer's body while its tap's work still runs on a worker thread: the
    MCP addon awaits it here, so the tap's last call has nothing left to wait for."""

    name = "shadowgate_mcp_stream_end"
    flow: http.HTTPFlow


def wait_for_taps_at_stream_end() -> None:
    """Have mitmproxy await McpStreamEndHook before it makes a tap's last call.

    mitmproxy (12.3) calls response.stream synchronously and sends what its last call returns
    before the `response` hook, so a tap cannot wait for a worker thread there. A hook is a
    command the connection's layer waits for, with the events after it queued, without holding
    up the event loop; this puts one in front of the end of the body, only for an MCP tap that
    has work running. Without the method to wrap, taps wait on the loop as before."""
    original = getattr(HttpStream, "state_stream_response_body", None)
    if original is None or getattr(original, "shadowgate_wrapped", False):
        return

    def state_stream_response_body(self: HttpStream, event: events.Event) -> layer.CommandGenerator[None]:
        response = self.flow.response
        tap = response.stream if response is not None else None
        if isinstance(event, ResponseEndOfMessage) and isinstance(tap, JsonTap | SseTap):
            try:
                running = tap.end()
            except Exception:
                log.debug("shadowgate: MCP tap end failed", exc_info=True)
                running = False
            if running:
                yield McpStreamEndHook(self.flow)
        yield from original(self, event)

    state_stream_response_body.shadowgate_wrapped = True  # type: ignore[attr-defined]
    HttpStream.state_stream_response_body = state_stream_response_body  # type: ignore[method-assign]


def unframe(flow: http.HTTPFlow) -> None:
    """The tap may change the body's length: frame it without a content-length."""
    response = flow.response
    if response is not None and "content-length" in response.headers:
        del response.headers["content-length"]
        if flow.request.http_version.startswith("HTTP/1"):
            response.headers["transfer-encoding"] = "chunked"
