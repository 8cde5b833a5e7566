"""MCP: see, allow-list and audit agents' tool calls to remote MCP servers.

An MCP call is recognised on any decrypted host by its shape, not by a catalog: a POST whose
body is a JSON-RPC 2.0 request ({"jsonrpc": "2.0", "method": ...}) or a batch of them, usually
with the Mcp-Session-Id and MCP-Protocol-Version headers. Only decrypted hosts are seen, so MCP
servers must be listed in the policy (`mcp.servers` hosts are decrypted) or in its `inspect`
list, or the proxy must run with shadowgate_intercept=all.

Each JSON-RPC request becomes one mcp_calls row (sizes; arguments and results only when the
policy opts in, after DLP), and so does each notification and answer the client sends. The
policy's `mcp:` section allow-lists servers by host and person, allows or denies tools by glob,
caps argument and result sizes, screens tool results for prompt-injection patterns, and its
`dlp:` section applies to tool results and to every message the client sends (mcp/dlp.py). A
refused request gets a JSON-RPC error with the request's id over HTTP 200, so the agent's MCP
client reports it instead of hanging. tools/list answers lose the tools the policy denies, and
the advertised tools are recorded in mcp_tools.

Two transports:
- Streamable HTTP (2025-03-26 on): the answer comes on the POST, as one JSON body or an SSE stream.
- HTTP+SSE (2024-11-05): the client GETs an event stream whose first event, `endpoint`, names the
  URL to POST to; POSTs are answered 202 and the answers arrive on that stream. Requests are
  paired with answers by the endpoint URL (which carries the session id) and the JSON-RPC id.
  A refused request there cannot be answered on the POST: it is forwarded as a `ping` (which
  every server answers, doing nothing) and the ping's answer is replaced by the refusal. Mixed
  batches, where some elements go through, are handled the same way.

WebSocket connections carrying JSON-RPC get the same decisions message by message
(mcp/websocket.py), and calls the policy names wait for an approver (mcp/approval.py).

Answers go through a tap that hands bytes back unchanged and parses a copy; it only holds back
the one event (or JSON body) it may have to rewrite, up to shadowgate_max_parse_bytes, beyond
which it gives up and passes bytes through.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from mitmproxy import http

from shadowgate.config.attribution import Person
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import Facts
from shadowgate.config.policy import McpServer
from shadowgate.enforce.hosts import identity_host
from shadowgate.flow import HOLD_ANSWER_KEY
from shadowgate.mcp.approval import Approvals
from shadowgate.mcp.dlp import ResultCheck
from shadowgate.mcp.dlp import scan_client_messages
from shadowgate.mcp.dlp import scanned_size
from shadowgate.mcp.dlp import store_arguments
from shadowgate.mcp.holding import hold_calls
from shadowgate.mcp.holding import needs_approval
from shadowgate.mcp.holding import stopped_calls
from shadowgate.mcp.hosted import check_hosted
from shadowgate.mcp.jsonrpc import INVALID_REQUEST
from shadowgate.mcp.jsonrpc import AmbiguousBody
from shadowgate.mcp.jsonrpc import ambiguous_body
from shadowgate.mcp.jsonrpc import charset_of
from shadowgate.mcp.jsonrpc import dumps
from shadowgate.mcp.jsonrpc import id_key
from shadowgate.mcp.jsonrpc import is_request
from shadowgate.mcp.jsonrpc import parse_jsonrpc
from shadowgate.mcp.jsonrpc import ping
from shadowgate.mcp.jsonrpc import request_content
from shadowgate.mcp.jsonrpc import rpc_error
from shadowgate.mcp.session import LegacySession
from shadowgate.mcp.session import McpCall
from shadowgate.mcp.session import McpExchange
from shadowgate.mcp.session import McpSession
from shadowgate.mcp.session import Origin
from shadowgate.mcp.session import Outgoing
from shadowgate.mcp.session import call_row
from shadowgate.mcp.session import new_call
from shadowgate.mcp.session import new_message
from shadowgate.mcp.session import request_refusal
from shadowgate.mcp.session import tool_rows
from shadowgate.mcp.taps import JsonTap
from shadowgate.mcp.taps import LegacySseTap
from shadowgate.mcp.taps import OnMessage
from shadowgate.mcp.taps import Outcome
from shadowgate.mcp.taps import SseTap
from shadowgate.mcp.taps import rewrite
from shadowgate.mcp.taps import rewrite_off_loop
from shadowgate.mcp.taps import unframe
from shadowgate.mcp.taps import wait_for_taps_at_stream_end
from shadowgate.mcp.websocket import McpWebSocket
from shadowgate.stages.identify import METADATA_KEY as AI_METADATA_KEY
from shadowgate.stages.identify import PARSE_INLINE_BYTES
from shadowgate.stages.identify import on_the_clock
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.decoding import content_codings
from shadowgate.wireformats.decoding import decode_body

log = logging.getLogger(__name__)

MCP_KEY = "shadowgate_mcp"  # flow.metadata of a POST: its McpExchange
LEGACY_KEY = "shadowgate_mcp_sse"  # flow.metadata of an HTTP+SSE stream: its LegacySseTap
FILTER = "filter"
MAX_SESSIONS = 4096
MAX_PENDING = 1024  # unanswered requests kept per HTTP+SSE session
MAX_TOOL_LISTS = 4096  # tools/list answers remembered, so a repeated one is not recorded again
_SCREENED_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})
_MCP_PATH = re.compile(r"(?i)/mcp(?:[/._-]|$)")  # /mcp, /mcp/, /v1/mcp-server; not any "/messages"
AMBIGUOUS_RULE = "mcp:ambiguous"
_AMBIGUOUS = (
    f"shadowgate: an MCP request that servers may read otherwise than the proxy is refused (rule {AMBIGUOUS_RULE})"
)

CallSink = Callable[[McpCall, float], None]  # a finished call and when it ended (epoch seconds)


def _ai_api_call(flow: http.HTTPFlow) -> bool:
    """An AI API call Identify recognised by its route. Another path on a provider's host is not
    one, and may be an MCP server (api.githubcopilot.com/mcp/ is GitHub's)."""
    rec = flow.metadata.get(AI_METADATA_KEY)
    return rec is not None and rec.route is not None


class Mcp:
    name = "shadowgate_mcp"

    def __init__(
        self, settings: ShadowgateSettings, on_call: CallSink | None = None, approvals: Approvals | None = None
    ) -> None:
        self.settings = settings
        self.on_call = on_call  # telemetry: every finished call, after its row
        self.approvals = approvals or Approvals()  # shared with the approval page (stages/approval.py)
        self.websocket = McpWebSocket(self)
        self.sessions: OrderedDict[str, McpSession] = OrderedDict()
        self.legacy: OrderedDict[tuple[str, str], LegacySession] = OrderedDict()
        self.tool_lists: OrderedDict[tuple, None] = OrderedDict()

    def load(self, loader: object) -> None:
        wait_for_taps_at_stream_end()

    # requests

    @on_the_clock
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or _ai_api_call(flow):
            return
        request = flow.request
        if request.stream and self.mcp_context(flow):
            # Identify streams a large body to a provider's host (api.githubcopilot.com/mcp is
            # one): an MCP call there is buffered so the policy sees it before it leaves.
            request.stream = False
        accept = (request.headers.get("accept") or "").lower()
        if "text/event-stream" in accept or "mcp-session-id" in request.headers or _MCP_PATH.search(request.path):
            # The answer must be readable (a compressed SSE stream passes unparsed: no tools/list
            # filter, no screening; a compressed JSON answer is decoded all the same).
            request.headers["accept-encoding"] = "identity"

    @on_the_clock
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error or not flow.live:
            return None
        if _ai_api_call(flow):
            return check_hosted(flow, self.settings.policy)
        rec = flow.metadata.get(AI_METADATA_KEY)
        if rec is not None and rec.ai_host and not self.mcp_context(flow):
            # An endpoint no route knows on an AI host (an Evals run, Gemini Interactions) may
            # ask its provider to call MCP servers too (red-team F102); it may also be MCP.
            pending = check_hosted(flow, self.settings.policy)
            if pending is not None:
                return self._after(pending, flow)
            if flow.response:
                return None
        return self._mcp_request(flow)

    async def _after(self, pending: Awaitable[None], flow: http.HTTPFlow) -> None:
        await pending
        if not flow.response and (rest := self._mcp_request(flow)) is not None:
            await rest

    def _mcp_request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        request = flow.request
        if request.method == "DELETE" and (sid := request.headers.get("mcp-session-id")):
            self.sessions.pop(sid, None)
        if not request.raw_content:
            return None
        # Whatever the method, content-type, size or first bytes: a lax server reads the JSON in
        # any body, so only the parsed JSON says whether it is MCP (issue 14, section 5).
        raw = request.raw_content
        encoding = request.headers.get("content-encoding")
        charset = charset_of(request.headers.get("content-type"))
        context = self.mcp_context(flow)
        session = "mcp-session-id" in request.headers or "mcp-protocol-version" in request.headers
        # A large body, or a compressed one (its size says little about what it expands to), is
        # decoded, parsed and planned on a worker thread, as the request-side DLP scans it.
        if len(raw) > PARSE_INLINE_BYTES or (content_codings(encoding) and len(raw) > 256):
            return self._read_off_loop(flow, raw, encoding, charset, context, session)
        try:
            planned = self._read(flow, raw, encoding, charset, context, session)
        except AmbiguousBody as e:
            self._refuse_ambiguous(flow, str(e))
            return None
        except Exception:
            log.warning("shadowgate: could not audit an MCP request to %s", request.host, exc_info=True)
            return None
        return self._calls(flow, planned) if planned is not None else None

    def _read(
        self, flow: http.HTTPFlow, raw: bytes, encoding: str | None, charset: str | None, context: bool, session: bool
    ) -> tuple[McpExchange, Outgoing] | None:
        """The calls of a request body and what goes on (see plan), or None when it is not MCP;
        on any thread (the body is read as the server reads it, whatever its first bytes: issue
        14, section 5). Raises AmbiguousBody for a body a server may read otherwise."""
        try:
            content = request_content(raw, encoding)
        except UndecodableBody:
            if context:
                raise AmbiguousBody("an MCP request body no decoder reads") from None
            return None
        msg = parse_jsonrpc(content, charset, context, session)
        if msg is None:
            return None
        if ambiguous_body(msg):
            raise AmbiguousBody("member names or ids a server may read differently")
        host = identity_host(flow)
        return self.plan(flow, msg, self.legacy.get((host, flow.request.path)))

    def mcp_context(self, flow: http.HTTPFlow) -> bool:
        """Whether a request belongs to MCP by more than its body: an MCP header, a known HTTP+SSE
        endpoint, a host the policy lists as an MCP server, or a path that says so."""
        request = flow.request
        if "mcp-session-id" in request.headers or "mcp-protocol-version" in request.headers:
            return True
        host = identity_host(flow)
        mcp = self.settings.policy.mcp
        if (host, request.path) in self.legacy or (mcp is not None and mcp.server_for(host) is not None):
            return True
        return _MCP_PATH.search(request.path.partition("?")[0]) is not None

    async def _read_off_loop(
        self, flow: http.HTTPFlow, raw: bytes, encoding: str | None, charset: str | None, context: bool, session: bool
    ) -> None:
        """A large body is decoded, parsed and planned on a thread, not skipped: padding must not buy a pass."""
        try:
            planned = await asyncio.to_thread(self._read, flow, raw, encoding, charset, context, session)
        except AmbiguousBody as e:
            self._refuse_ambiguous(flow, str(e))
            return
        except Exception:
            log.warning("shadowgate: could not audit an MCP request to %s", flow.request.host, exc_info=True)
            return
        if planned is not None and not (flow.response or flow.error):
            pending = self._calls(flow, planned)
            if pending is not None:
                await pending

    def _refuse_ambiguous(self, flow: http.HTTPFlow, why: str) -> None:
        """A request a server may read as another call than the proxy does: refused under an MCP
        policy (not in observe mode), since no reading of it can be trusted, and recorded as a
        call of no known method (a JSON body the proxy cannot parse leaves a row: red-team F1)."""
        log.warning("shadowgate: an MCP request to %s reads ambiguously: %s", flow.request.host, why)
        policy = self.settings.policy
        if policy.mcp is None:
            return
        request = flow.request
        host, person, client_ip, (server, _) = self._who(flow)
        call = McpCall(
            started=request.timestamp_start, client_ip=client_ip, person=person, host=host, port=request.port,
            rpc_id=None, method="(unread)", server=server, observe=policy.observe,
            session_id=request.headers.get("mcp-session-id"),
        )  # fmt: skip
        if call.refuse(AMBIGUOUS_RULE):
            body = dumps(rpc_error(None, _AMBIGUOUS, INVALID_REQUEST))
            flow.response = http.Response.make(400, body, {"content-type": "application/json"})
        self.submit(call, time.time())

    def _who(self, flow: http.HTTPFlow) -> tuple[str, Person, str, tuple[McpServer | None, McpServer | None]]:
        """(host, person, client address, McpPolicy.server_for_facts for them) of an MCP request."""
        host = identity_host(flow)
        client_ip = str(flow.client_conn.peername[0]).removeprefix("::ffff:") if flow.client_conn.peername else ""
        proxy_user = (flow.metadata.get("proxyauth") or (None,))[0]
        person = self.settings.directory.person(proxy_user, client_ip)
        mcp = self.settings.policy.mcp
        facts = Facts(host=host, user=person.user, group=person.group, client_ip=client_ip)
        return host, person, client_ip, mcp.server_for_facts(facts) if mcp else (None, None)

    def plan(
        self, flow: http.HTTPFlow, msg: dict | list, legacy: LegacySession | None, transport: str | None = None
    ) -> tuple[McpExchange, Outgoing] | None:
        """The calls of one message or batch, each decided by the policy (except DLP), and what
        goes on to the server; None when nothing in it is ours. transport: a WebSocket's."""
        request = flow.request
        policy = self.settings.policy
        mcp = policy.mcp
        host, person, client_ip, (server, listed) = self._who(flow)
        batch = isinstance(msg, list)
        messages: list[Any] = msg if isinstance(msg, list) else [msg]
        blocks_unlisted = mcp is not None and server is None and (listed is not None or mcp.unlisted == BLOCK)
        exchange = McpExchange({}, legacy)
        origin = Origin(request, host, person, client_ip, server, policy.observe, legacy, self.sessions)
        out = Outgoing(messages, batch)
        forwarded, local = out.forwarded, out.local
        for item in messages:
            if not is_request(item) or "id" not in item:
                # A notification, the client's answer to a server request, or junk: nothing
                # answers it, but it is recorded and DLP reads it (red-team F42), and a server
                # this person may not use gets nothing.
                record = new_message(origin, item)
                if transport is not None:
                    record.transport, record.started = transport, time.time()
                exchange.one_way.append((record, item))
                if blocks_unlisted and record.refuse(self._not_allowed(record, listed, host, person, client_ip)[0]):
                    continue
                forwarded.append(item)
                continue
            call = new_call(origin, item)
            if transport is not None:
                call.transport, call.started = transport, time.time()
            message: str | None
            if blocks_unlisted:
                call.rule_id, message = self._not_allowed(call, listed, host, person, client_ip)
            else:
                message = request_refusal(call)
            exchange.calls[id_key(call.rpc_id)] = call
            if message is not None and call.refuse(call.rule_id):
                if legacy is not None or (batch and not blocks_unlisted):
                    call.refusal = message
                    forwarded.append(ping(call.rpc_id))
                else:
                    local.append(rpc_error(call.rpc_id, message))
                continue
            forwarded.append(item)
            if server is not None and server.approve is not None and call.method == "tools/call":
                needs_approval(call, item, server, policy.observe)
        if not exchange.calls and not exchange.one_way:
            return None
        if blocks_unlisted and legacy is None and not policy.observe:
            forwarded.clear()  # a server this person may not use gets nothing, not even junk
        return exchange, out

    @staticmethod
    def _not_allowed(
        call: McpCall, listed: McpServer | None, host: str, person: Person, client_ip: str
    ) -> tuple[str, str]:
        """(rule, message) refusing a message to a server this person may not use."""
        if listed is not None:
            rule = f"mcp:{listed.id}:access"
            return rule, f"shadowgate: MCP server {host} is not allowed for {person.user or client_ip} (rule {rule})"
        rule = "mcp:unlisted"
        return rule, f"shadowgate: MCP server {host} is not on the allow-list (rule {rule})"

    def _calls(self, flow: http.HTTPFlow, planned: tuple[McpExchange, Outgoing]) -> Awaitable[None] | None:
        exchange, out = planned
        policy = self.settings.policy
        forwarded = out.forwarded
        flow.metadata[MCP_KEY] = exchange
        flow.request.headers["accept-encoding"] = "identity"  # the answer must be readable
        dlp = policy.dlp if forwarded else None  # nothing goes on: nothing to scan
        scan = [c for c in exchange.calls.values() if c.is_error is None]
        held = [c for c in exchange.calls.values() if c.approval is not None]
        # The body's size, or what it expands to when compressed.
        size = max(len(flow.request.raw_content or b""), scanned_size(exchange))
        big = dlp is not None and size > SCAN_IN_THREAD_CHARS
        if held or big:
            return self._scan_hold_send(flow, exchange, out, scan, dlp, big, held)
        if dlp is not None:
            scan_client_messages(scan, exchange.one_way, forwarded, dlp, policy.observe)
        self._send(flow, exchange, out)
        return None

    async def _scan_hold_send(
        self,
        flow: http.HTTPFlow,
        exchange: McpExchange,
        out: Outgoing,
        scan: list[McpCall],
        dlp: DlpPolicy | None,
        big: bool,
        held: list[McpCall],
    ) -> None:
        """Large messages are scanned off the event loop; calls that need approval wait for it
        (after DLP, so the approver sees and approves what the server will get)."""
        observe = self.settings.policy.observe
        if dlp is not None:
            if big:
                await asyncio.to_thread(scan_client_messages, scan, exchange.one_way, out.forwarded, dlp, observe)
            else:
                scan_client_messages(scan, exchange.one_way, out.forwarded, dlp, observe)
        if held:
            await hold_calls(self.approvals, self.settings.policy, flow, out, held)
        self._send(flow, exchange, out)

    def _send(self, flow: http.HTTPFlow, exchange: McpExchange, out: Outgoing) -> None:
        """Answer the refusals the proxy can answer itself; forward the rest (rewritten if needed)."""
        legacy = exchange.legacy
        messages, forwarded, local, batch = out.messages, out.forwarded, out.local, out.batch
        # A refusal decided after DLP is answered by the proxy when nothing else needs the server.
        if legacy is None and not batch:
            call = next(iter(exchange.calls.values()), None)
            if call is not None and call.refusal is not None:
                local.append(rpc_error(call.rpc_id, call.refusal))
                call.refusal = None
                forwarded.clear()
        if legacy is not None:
            for call in exchange.calls.values():
                self._await_on_stream(legacy, call)
        mcp = self.settings.policy.mcp
        if mcp is not None and mcp.store_content:
            store_arguments(exchange, forwarded, mcp)
        refused = self._one_way_sent(exchange)
        if not forwarded:
            # A refused notification or answer has no id to answer: its refusal is an error without
            # one, on an HTTP error status (Streamable HTTP's answer to input a server does not take).
            not_taken = rpc_error(None, refused[0]) if refused else None
            if not_taken is not None and not local:
                body = dumps([not_taken] if batch else not_taken)
                flow.response = http.Response.make(403, body, {"content-type": "application/json"})
            elif legacy is not None:
                flow.response = http.Response.make(202, b"Accepted", {"content-type": "text/plain"})
            elif local:
                local += [not_taken] if not_taken is not None else []
                body = dumps(local if batch else local[0])
                flow.response = http.Response.make(200, body, {"content-type": "application/json"})
            else:
                flow.response = http.Response.make(
                    403, b"shadowgate: MCP server not on the allow-list", {"content-type": "text/plain"}
                )
            return
        # Refusals in a batch that goes on were turned into pings: `local` is empty here.
        if len(forwarded) != len(messages) or any(a is not b for a, b in zip(forwarded, messages)):
            flow.request.content = dumps(forwarded if batch else forwarded[0])

    def _one_way_sent(self, exchange: McpExchange) -> list[str]:
        """Record the client's notifications and answers (decided now: nothing answers them);
        returns why those refused were."""
        now = time.time()
        for record, _ in exchange.one_way:
            self.submit(record, now)
        return [record.refusal for record, _ in exchange.one_way if record.refusal is not None]

    def _await_on_stream(self, legacy: LegacySession, call: McpCall) -> None:
        pending = legacy.pending
        pending[id_key(call.rpc_id)] = call
        while len(pending) > MAX_PENDING:
            _, dropped = pending.popitem(last=False)
            self.submit(dropped, time.time())

    # responses

    @on_the_clock
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or response.stream:
            return
        exchange: McpExchange | None = flow.metadata.get(MCP_KEY)
        if exchange is None:
            if flow.request.method == "GET" and AI_METADATA_KEY not in flow.metadata:
                self._maybe_legacy_stream(flow, response)
            return
        session_id = response.headers.get("mcp-session-id")
        if session_id and exchange.legacy is None:
            for call in exchange.calls.values():
                call.session_id = session_id
        if exchange.legacy is not None:
            return  # a 202: the answers come on the stream
        content_type = (response.headers.get("content-type") or "").lower()
        encoding = (response.headers.get("content-encoding") or "identity").lower()
        limit = self.settings.max_parse_bytes
        length = response.headers.get("content-length", "")
        held = content_type.startswith("application/json") and length.isdigit() and int(length) <= limit
        if encoding not in ("", "identity") and not held:
            # The proxy asked for identity; a compressed stream passes unparsed (no result size).
            # A compressed JSON answer of known length is held and decoded (below).
            response.stream = True
            return
        on_message = lambda msg, size: self.answer(exchange.calls, msg, size)  # noqa: E731
        if content_type.startswith("text/event-stream"):
            response.stream = SseTap(on_message, limit)
            unframe(flow)
        elif content_type.startswith("application/json"):
            if not length.isdigit():
                response.stream = JsonTap(on_message, limit)  # held by the tap, up to the limit
                unframe(flow)
            elif int(length) > limit:
                response.stream = True  # passes unread
            else:
                # Held whole by mitmproxy, as the client only reads it whole: the `response` hook
                # may wait for a worker thread, a stream callable may not.
                flow.metadata[HOLD_ANSWER_KEY] = True
        else:
            response.stream = True

    def _maybe_legacy_stream(self, flow: http.HTTPFlow, response: http.Response) -> None:
        content_type = (response.headers.get("content-type") or "").lower()
        encoding = (response.headers.get("content-encoding") or "identity").lower()
        if not content_type.startswith("text/event-stream") or encoding not in ("", "identity"):
            return
        host = identity_host(flow)
        holder: list[LegacySession] = []

        def on_endpoint(url: str) -> LegacySession | None:
            parts = urlsplit(url)
            if not parts.path:
                return None
            endpoint = parts.path + (f"?{parts.query}" if parts.query else "")
            query = parse_qs(parts.query)
            sids = query.get("sessionId") or query.get("session_id")
            sid = sids[0] if sids else None
            session = LegacySession(host, endpoint, sid)
            self.legacy[(host, endpoint)] = session
            while len(self.legacy) > MAX_SESSIONS:
                _, old = self.legacy.popitem(last=False)
                self._end_legacy(old)
            holder.append(session)
            return session

        def on_message(msg: dict, size: int) -> Outcome:
            if not holder or "id" not in msg or ("result" not in msg and "error" not in msg):
                return None
            call = holder[0].pending.pop(id_key(msg.get("id")), None)
            if call is None:
                return None
            new = self.answer({id_key(call.rpc_id): call}, msg, size)
            if isinstance(new, ResultCheck):  # the row once the result is checked
                new.then = lambda: self.submit(call, time.time())
            else:
                self.submit(call, time.time())
            return new

        tap = LegacySseTap(on_endpoint, on_message, self.settings.max_parse_bytes)
        response.stream = tap
        flow.metadata[LEGACY_KEY] = tap
        unframe(flow)

    def _end_legacy(self, session: LegacySession) -> None:
        """The stream ended: requests still waiting for their answer are recorded unanswered."""
        if self.legacy.get((session.host, session.endpoint)) is session:
            del self.legacy[(session.host, session.endpoint)]
        now = time.time()
        while session.pending:
            _, call = session.pending.popitem(last=False)
            call.is_error = True if call.is_error is None else call.is_error
            self.submit(call, now)

    def answer(self, calls: dict[Any, McpCall], msg: dict, size: int) -> Outcome:
        """One JSON-RPC message from the server; returns its replacement, None to keep it, or
        the checks of a tool result for the caller to run (on a worker thread when large)."""
        if "id" not in msg or ("result" not in msg and "error" not in msg):
            return None  # notifications and server-to-client requests pass untouched
        call = calls.get(id_key(msg.get("id")))
        if call is None or call.answered:
            return None
        call.answered = True
        if call.refusal is not None:
            return rpc_error(call.rpc_id, call.refusal)  # the answer to the ping it was sent as
        call.result_bytes = size
        if "error" in msg:
            call.is_error = True
            error = msg.get("error")
            code = error.get("code") if isinstance(error, dict) else None
            call.error_code = code if isinstance(code, int) and not isinstance(code, bool) else None
            return None
        result = msg.get("result")
        if not isinstance(result, dict):
            return None
        call.is_error = bool(result.get("isError"))
        if call.method == "initialize":
            self._initialized(call, result)
            return None
        server = call.server
        if call.method == "tools/list" and isinstance(result.get("tools"), list):
            return self._tools_listed(call, msg, result)
        if call.method not in _SCREENED_METHODS:
            return None
        limit = server.max_result_bytes if server is not None else None
        if server is not None and limit is not None and size > limit:
            if call.refuse(f"mcp:{server.id}:max_result_bytes"):
                return rpc_error(
                    call.rpc_id,
                    f"shadowgate: a result of {size} bytes exceeds the limit of {limit} (rule {call.rule_id})",
                )
            return None
        # Screening and DLP read the whole result: the caller runs them, off the loop when large.
        return ResultCheck(call, msg, result, size, self.settings.policy)

    def _tools_listed(self, call: McpCall, msg: dict, result: dict) -> dict | None:
        tools = result["tools"]
        server = call.server
        denied = {
            id(t)
            for t in tools
            if isinstance(t, dict) and server is not None and not server.tool_allowed(str(t.get("name")))
        }
        names = [(str(t.get("name"))[:256], id(t) in denied) for t in tools if isinstance(t, dict)]
        new = None
        if denied and server is not None and call.refuse(f"mcp:{server.id}:tools", FILTER):
            new = {**msg, "result": {**result, "tools": [t for t in tools if id(t) not in denied]}}
        self._record_tools(call, names)
        return new

    def _record_tools(self, call: McpCall, names: list[tuple[str, bool]]) -> None:
        """One mcp_tools row per advertised tool, once per distinct answer in a session."""
        record = self.settings.record
        key = (call.host, call.session_id, call.person.user, hash(tuple(names)))
        if record is None or key in self.tool_lists:
            return
        self.tool_lists[key] = None
        while len(self.tool_lists) > MAX_TOOL_LISTS:
            self.tool_lists.popitem(last=False)
        record.mcp_tools(tool_rows(call, names))

    def _initialized(self, call: McpCall, result: dict) -> None:
        info = result.get("serverInfo")
        if isinstance(info, dict) and info.get("name"):
            call.server_name = str(info["name"])[:256]
        if result.get("protocolVersion"):
            call.protocol_version = str(result["protocolVersion"])[:64]
        if call.session_id:
            self.sessions[call.session_id] = McpSession(call.server_name, call.client_name, call.protocol_version)
            self.sessions.move_to_end(call.session_id)
            while len(self.sessions) > MAX_SESSIONS:
                self.sessions.popitem(last=False)

    @on_the_clock
    def response(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        tap: LegacySseTap | None = flow.metadata.pop(LEGACY_KEY, None)
        if tap is not None and tap.session is not None:
            self._end_legacy(tap.session)
        exchange: McpExchange | None = flow.metadata.pop(MCP_KEY, None)
        response = flow.response
        if exchange is None or response is None:
            return None
        body = None if response.stream or exchange.legacy is not None else response.raw_content
        new = None
        if body and len(body) <= self.settings.max_parse_bytes:  # a JSON answer, held whole
            on_message = lambda msg, size: self.answer(exchange.calls, msg, size)  # noqa: E731
            encoding = response.headers.get("content-encoding")
            if len(body) > SCAN_IN_THREAD_CHARS or content_codings(encoding):
                return self._json_answer_off_loop(flow, exchange, body, encoding, on_message)
            try:
                new = rewrite(body, on_message)
            except Exception:
                log.debug("shadowgate: MCP answer handling failed; passing it through", exc_info=True)
                new = None
        self._answered(flow, exchange, new)
        return None

    async def _json_answer_off_loop(
        self, flow: http.HTTPFlow, exchange: McpExchange, body: bytes, encoding: str | None, on_message: OnMessage
    ) -> None:
        """A large or compressed JSON answer: decoded, parsed, screened and scanned on a worker
        thread. (A server may compress though the proxy asked for identity: its answer is read
        all the same, never passed unread for it.)"""
        try:
            if content_codings(encoding):
                body = await asyncio.to_thread(decode_body, body, encoding)
            new = await rewrite_off_loop(body, on_message)
        except Exception:
            log.warning("shadowgate: an MCP answer from %s could not be read; it is passed on", flow.request.host)
            log.debug("shadowgate: MCP answer handling failed", exc_info=True)
            new = None
        self._answered(flow, exchange, new)

    def _answered(self, flow: http.HTTPFlow, exchange: McpExchange, new: bytes | None) -> None:
        """The answer's body rewritten (when the policy changed it), and the calls' rows."""
        response = flow.response
        assert response is not None
        if new is not None:
            response.headers.pop("content-encoding", None)  # the new body goes plain
            response.content = new
        self._finish(exchange, response.timestamp_end or time.time(), response.status_code >= 400)

    async def shadowgate_mcp_stream_end(self, flow: http.HTTPFlow) -> None:
        """The body of a tapped answer ended while its tap's work runs on a worker thread
        (mcp/taps.py McpStreamEndHook): wait for it here, off the event loop."""
        tap = flow.response.stream if flow.response is not None else None
        if isinstance(tap, JsonTap | SseTap):
            await tap.finish()

    def error(self, flow: http.HTTPFlow) -> None:
        tap: LegacySseTap | None = flow.metadata.pop(LEGACY_KEY, None)
        if tap is not None and tap.session is not None:
            self._end_legacy(tap.session)
        exchange: McpExchange | None = flow.metadata.pop(MCP_KEY, None)
        if exchange is not None:
            self._finish(exchange, time.time(), True)

    def _finish(self, exchange: McpExchange, end: float, failed: bool) -> None:
        legacy = exchange.legacy
        for key, call in exchange.calls.items():
            if legacy is not None:
                # Answered on the stream, or still waiting there, unless the POST itself failed.
                if not failed or legacy.pending.pop(key, None) is None:
                    continue
            # A client that hangs up once it has its answer ends the flow in error: still answered.
            if failed and call.is_error is None and not call.answered:
                call.is_error = True
            self.submit(call, end)

    # WebSocket (mcp/websocket.py)

    def websocket_start(self, flow: http.HTTPFlow) -> None:
        self.websocket.start(flow)

    def websocket_message(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        return self.websocket.message(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self.websocket.end(flow)

    def done(self) -> None:
        # Calls still held for approval get no answer or error hook once the proxy stops: each is
        # recorded here, refused, before Record (later in the chain) closes the writer.
        now = time.time()
        for call in stopped_calls(self.approvals):
            self._submit(call, now)

    def submit(self, call: McpCall, end: float) -> None:
        if self.approvals.recorded and call.request_id in self.approvals.recorded:
            return  # recorded when the proxy stopped (done): one row per call
        self._submit(call, end)

    def _submit(self, call: McpCall, end: float) -> None:
        latency_ms = round(max(end - call.started, 0.0) * 1000, 3)
        if self.settings.record is not None:
            self.settings.record.mcp_call(call_row(call, latency_ms))
        if self.on_call is not None:
            self.on_call(call, end)
