"""MCP over WebSocket: JSON-RPC in WebSocket messages gets the policy, DLP and records of the HTTP
transports.

WebSocket is not an MCP transport of the specification, but clients and servers speak it (the
`mcp` subprotocol of the earlier SDKs, in-house gateways), and an agent could use it to go around
the HTTP controls. Every WebSocket on a decrypted host is watched; each client message, text or
binary (a lax server reads JSON from either), is parsed as JSON whatever its first bytes, and a
JSON-RPC message or batch in it is decided as a POST body is (stages/mcp.py `plan`). mitmproxy
hands a message over whole, after joining its fragments.

- A refused request is not forwarded: the message is dropped and the JSON-RPC error with its id
  is sent back to the client as a message of its own. In a batch that otherwise goes on, it
  travels as a `ping` whose answer is replaced by the refusal, as on HTTP.
- DLP redacts the message in place or refuses the call; results are screened and scanned in the
  server's messages, which are paired with the calls by JSON-RPC id. The client's notifications
  and answers to server requests are scanned too; one refused is not sent, and an error without
  an id goes back.
- A call that needs approval: the message is dropped at once (so the connection keeps flowing
  both ways while it waits) and, once approved, sent to the server as it was; refused, the error
  goes to the client.
- Each call, notification and answer is one mcp_calls row with transport `websocket`; calls
  still unanswered when the connection closes are recorded as errors.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

from mitmproxy import ctx
from mitmproxy import http
from mitmproxy import websocket
from mitmproxy.utils.asyncio_utils import create_task

from shadowgate.mcp.dlp import ResultCheck
from shadowgate.mcp.dlp import scan_client_messages
from shadowgate.mcp.dlp import scanned_size
from shadowgate.mcp.dlp import store_arguments
from shadowgate.mcp.holding import hold_calls
from shadowgate.mcp.jsonrpc import INVALID_REQUEST
from shadowgate.mcp.jsonrpc import AmbiguousBody
from shadowgate.mcp.jsonrpc import ambiguous_body
from shadowgate.mcp.jsonrpc import dumps
from shadowgate.mcp.jsonrpc import id_key
from shadowgate.mcp.jsonrpc import parse_jsonrpc
from shadowgate.mcp.jsonrpc import rpc_error
from shadowgate.mcp.session import McpCall
from shadowgate.mcp.session import McpExchange
from shadowgate.mcp.session import Outgoing
from shadowgate.mcp.taps import OnMessage
from shadowgate.mcp.taps import Outcome
from shadowgate.mcp.taps import rewrite
from shadowgate.mcp.taps import rewrite_off_loop
from shadowgate.stages.identify import PARSE_INLINE_BYTES
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS

if TYPE_CHECKING:
    from shadowgate.stages.mcp import Mcp

log = logging.getLogger(__name__)

WS_KEY = "shadowgate_mcp_ws"
WEBSOCKET = "websocket"
MAX_PENDING = 1024  # unanswered calls kept per connection
_AMBIGUOUS = "shadowgate: an MCP message that servers may read otherwise than the proxy is refused (rule mcp:ambiguous)"
_FAILED = "shadowgate: the MCP message could not be checked, and is not sent (rule mcp:error)"


@dataclass(slots=True)
class WsSession:
    """One WebSocket connection: whether it is MCP by more than its messages, and its open calls."""

    context: bool
    pending: OrderedDict[Any, McpCall] = field(default_factory=OrderedDict)
    server_name: str | None = None
    client_name: str | None = None
    protocol_version: str | None = None


class McpWebSocket:
    def __init__(self, stage: Mcp) -> None:
        self.stage = stage

    def start(self, flow: http.HTTPFlow) -> None:
        offered = (flow.request.headers.get("sec-websocket-protocol") or "").lower()
        context = "mcp" in (p.strip() for p in offered.split(",")) or self.stage.mcp_context(flow)
        flow.metadata[WS_KEY] = WsSession(context)

    def end(self, flow: http.HTTPFlow) -> None:
        session: WsSession | None = flow.metadata.pop(WS_KEY, None)
        if session is None:
            return
        now = time.time()
        while session.pending:
            _, call = session.pending.popitem(last=False)
            if call.is_error is None:
                call.is_error = True  # never answered
            self.stage.submit(call, now)

    def message(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        session: WsSession | None = flow.metadata.get(WS_KEY)
        ws = flow.websocket
        if session is None or ws is None or not ws.messages:
            return None
        message = ws.messages[-1]
        del ws.messages[:-1]  # mitmproxy keeps every message of a connection otherwise
        if message.injected or message.dropped:
            return None  # ours (an approved call, a refusal), or refused by an earlier stage
        try:
            if not message.from_client:
                return self._server_message(session, message)
            if len(message.content) > PARSE_INLINE_BYTES:
                return self._parse_off_loop(flow, session, message)
            parsed = parse_jsonrpc(message.content, None, session.context, session.context)
            return self._client_message(flow, session, message, parsed)
        except AmbiguousBody:
            self._refuse_frame(flow, message, _AMBIGUOUS, INVALID_REQUEST)
        except Exception:
            log.exception("shadowgate: an MCP WebSocket message to %s could not be handled", flow.request.host)
            if message.from_client:
                self._refuse_frame(flow, message, _FAILED)
        return None

    async def _parse_off_loop(
        self, flow: http.HTTPFlow, session: WsSession, message: websocket.WebSocketMessage
    ) -> None:
        """A large message is parsed on a thread, not skipped: padding must not buy a pass."""
        try:
            parsed = await asyncio.to_thread(parse_jsonrpc, message.content, None, session.context, session.context)
            pending = self._client_message(flow, session, message, parsed)
            if pending is not None:
                await pending
        except AmbiguousBody:
            self._refuse_frame(flow, message, _AMBIGUOUS, INVALID_REQUEST)
        except Exception:
            log.exception("shadowgate: an MCP WebSocket message to %s could not be handled", flow.request.host)
            self._refuse_frame(flow, message, _FAILED)

    def _refuse_frame(
        self, flow: http.HTTPFlow, message: websocket.WebSocketMessage, text: str, code: int = -32001
    ) -> None:
        """Under an MCP policy (not in observe mode), a message the proxy cannot vouch for is not sent."""
        policy = self.stage.settings.policy
        if policy.mcp is None or policy.observe:
            return
        message.drop()
        _inject(flow, True, dumps(rpc_error(None, text, code)), True)

    def _client_message(
        self, flow: http.HTTPFlow, session: WsSession, message: websocket.WebSocketMessage, parsed: dict | list | None
    ) -> Awaitable[None] | None:
        if parsed is None:
            return None
        if ambiguous_body(parsed):
            raise AmbiguousBody("member names a server may read differently")
        planned = self.stage.plan(flow, parsed, None, WEBSOCKET)
        if planned is None:
            return None
        exchange, out = planned
        for call in exchange.calls.values():
            call.server_name = call.server_name or session.server_name
            call.client_name = call.client_name or session.client_name
            call.protocol_version = call.protocol_version or session.protocol_version
            self._await_answer(session, call)
        policy = self.stage.settings.policy
        dlp = policy.dlp
        unrefused = [c for c in exchange.calls.values() if c.is_error is None]
        scan = unrefused if dlp is not None and out.forwarded else None
        held = [c for c in exchange.calls.values() if c.approval is not None]
        if held:
            message.drop()  # sent later, if approved: the connection goes on meanwhile
            later = self._finish_later(flow, session, message, exchange, out, scan, True)
            create_task(later, name="shadowgate mcp hold", keep_ref=True)
            return None
        if scan is not None and dlp is not None:
            if max(len(message.content), scanned_size(exchange)) > SCAN_IN_THREAD_CHARS:
                return self._finish_later(flow, session, message, exchange, out, scan, False)
            scan_client_messages(scan, exchange.one_way, out.forwarded, dlp, policy.observe)
        self._send(flow, session, message, exchange, out)
        return None

    async def _finish_later(
        self,
        flow: http.HTTPFlow,
        session: WsSession,
        message: websocket.WebSocketMessage,
        exchange: McpExchange,
        out: Outgoing,
        scan: list[McpCall] | None,
        held: bool,
    ) -> None:
        """Large messages scanned off the event loop; held calls waiting for their decision.
        scan: the calls to scan, None when DLP has nothing to read."""
        try:
            policy = self.stage.settings.policy
            if scan is not None and policy.dlp is not None:
                dlp, observe = policy.dlp, policy.observe
                await asyncio.to_thread(scan_client_messages, scan, exchange.one_way, out.forwarded, dlp, observe)
            if held:
                waiting = [c for c in exchange.calls.values() if c.approval is not None]
                await hold_calls(self.stage.approvals, policy, flow, out, waiting)
            self._send(flow, session, message, exchange, out, later=held)
        except Exception:
            log.exception("shadowgate: an MCP WebSocket message to %s failed; it is not sent", flow.request.host)
            self._refuse_frame(flow, message, _FAILED)

    def _await_answer(self, session: WsSession, call: McpCall) -> None:
        pending = session.pending
        pending[id_key(call.rpc_id)] = call
        while len(pending) > MAX_PENDING:
            _, dropped = pending.popitem(last=False)
            self.stage.submit(dropped, time.time())

    def _send(
        self,
        flow: http.HTTPFlow,
        session: WsSession,
        message: websocket.WebSocketMessage,
        exchange: McpExchange,
        out: Outgoing,
        later: bool = False,
    ) -> None:
        """Answer the refusals to the client; send the rest on (rewritten if needed). later: the
        message was held (and dropped), so what goes on is sent as a message of the proxy's."""
        forwarded, local, batch = out.forwarded, out.local, out.batch
        if not batch:
            call = next(iter(exchange.calls.values()), None)
            if call is not None and call.refusal is not None:
                local.append(rpc_error(call.rpc_id, call.refusal))
                call.refusal = None
                forwarded.clear()
        mcp = self.stage.settings.policy.mcp
        if mcp is not None and mcp.store_content:
            store_arguments(exchange, forwarded, mcp)
        now = time.time()
        for record, _ in exchange.one_way:  # decided now: nothing answers them
            self.stage.submit(record, now)
        refused = [record.refusal for record, _ in exchange.one_way if record.refusal is not None]
        if refused and not forwarded:
            local.append(rpc_error(None, refused[0]))  # a notification or answer: no id to answer
        for answer in local:  # answered by the proxy: done
            call = session.pending.pop(id_key(answer.get("id")), None)
            if call is not None:
                call.answered = True
                self.stage.submit(call, now)
        closed = flow.websocket is None or flow.websocket.timestamp_end is not None
        if local and not closed:
            _inject(flow, True, dumps(local if batch else local[0]), True)
        if not forwarded:
            message.drop()
            return
        changed = len(forwarded) != len(out.messages) or any(a is not b for a, b in zip(forwarded, out.messages))
        if later:
            if not closed:
                data = dumps(forwarded if batch else forwarded[0]) if changed else message.content
                _inject(flow, False, data, message.is_text)
        elif changed:
            message.content = dumps(forwarded if batch else forwarded[0])

    def _server_message(self, session: WsSession, message: websocket.WebSocketMessage) -> Awaitable[None] | None:
        if not session.pending or len(message.content) > self.stage.settings.max_parse_bytes:
            return None  # as the HTTP taps: a message too long to hold passes unparsed
        content = message.content
        on_message = lambda item, size: self._answer(session, item, size)  # noqa: E731
        if len(content) > SCAN_IN_THREAD_CHARS:
            return self._server_message_off_loop(message, content, on_message)
        new = rewrite(content, on_message)
        if new is not None:
            message.content = new
        return None

    async def _server_message_off_loop(
        self, message: websocket.WebSocketMessage, content: bytes, on_message: OnMessage
    ) -> None:
        """A large server message: parsed, screened and scanned on a worker thread, while the
        message waits (mitmproxy sends it on once the hook returns)."""
        try:
            new = await rewrite_off_loop(content, on_message)
        except Exception:
            log.exception("shadowgate: an MCP WebSocket answer could not be handled; it is passed on")
            return
        if new is not None:
            message.content = new

    def _answer(self, session: WsSession, item: dict, size: int) -> Outcome:
        """One server message: the stage's answer, and the call's row once it is known."""
        call = session.pending.get(id_key(item.get("id"))) if "id" in item else None
        if call is None:
            return None
        new = self.stage.answer(session.pending, item, size)
        if not call.answered:
            return new

        def answered() -> None:
            session.pending.pop(id_key(call.rpc_id), None)
            if call.method == "initialize":
                session.server_name = call.server_name
                session.protocol_version = call.protocol_version
                session.client_name = call.client_name
            self.stage.submit(call, time.time())

        if isinstance(new, ResultCheck):
            new.then = answered
        else:
            answered()
        return new


def _inject(flow: http.HTTPFlow, to_client: bool, data: bytes, is_text: bool) -> None:
    ctx.master.commands.call("inject.websocket", flow, to_client, data, is_text)
