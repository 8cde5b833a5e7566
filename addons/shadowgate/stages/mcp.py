"""MCP: see, allow-list and audit agents' tool calls to remote MCP servers.

An MCP call is recognised on any decrypted host by its shape, not by a catalog: a POST whose
body is a JSON-RPC 2.0 request ({"jsonrpc": "2.0", "method": ...}) or a batch of them, usually
with the Mcp-Session-Id and MCP-Protocol-Version headers. Only decrypted hosts are seen, so MCP
servers must be listed in the policy (`mcp.servers` hosts are decrypted) or in its `inspect`
list, or the proxy must run with shadowgate_intercept=all.

Each JSON-RPC request becomes one mcp_calls row (sizes; arguments and results only when the
policy opts in, after DLP). The policy's `mcp:` section allow-lists servers by host and person,
allows or denies tools by glob, caps argument and result sizes, screens tool results for
prompt-injection patterns, and its `dlp:` section applies to tool arguments and results. A
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

Answers go through a tap that hands bytes back unchanged and parses a copy; it only holds back
the one event (or JSON body) it may have to rewrite, up to shadowgate_max_parse_bytes, beyond
which it gives up and passes bytes through.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
import uuid
from collections import Counter
from collections import OrderedDict
from collections.abc import Awaitable
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from mitmproxy import http

from shadowgate.config.attribution import Person
from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import Facts
from shadowgate.config.policy import McpPolicy
from shadowgate.config.policy import McpServer
from shadowgate.dlp import Placeholders
from shadowgate.stages.identify import METADATA_KEY as AI_METADATA_KEY
from shadowgate.stages.identify import on_the_clock
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.stages.redact import ScanFailed
from shadowgate.stages.redact import dlp_verdict
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.storage.store import utc_from_timestamp
from shadowgate.wireformats.framing import EventCodec
from shadowgate.wireformats.framing import StreamEvent

log = logging.getLogger(__name__)

MCP_KEY = "shadowgate_mcp"  # flow.metadata of a POST: its McpExchange
LEGACY_KEY = "shadowgate_mcp_sse"  # flow.metadata of an HTTP+SSE stream: its LegacySseTap
POLICY_ERROR_CODE = -32001  # implementation-defined server error range of JSON-RPC
FILTER = "filter"
STREAMABLE, SSE = "streamable-http", "sse"
MAX_SESSIONS = 4096
MAX_PENDING = 1024  # unanswered requests kept per HTTP+SSE session
MAX_TOOL_LISTS = 4096  # tools/list answers remembered, so a repeated one is not recorded again
MAX_SCREEN_CHARS = 1024 * 1024
# Results are scanned on the event loop (inside the response tap); bigger ones fail the scan.
MAX_RESULT_SCAN_CHARS = 1024 * 1024
_SCREENED_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})
_DLP_ACTION_ORDER = ("error", "block", "would_block", "redact", "would_redact", "log")

# --- injection screening ------------------------------------------------------------------------

_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
    r"(?:previous|prior|above|earlier|preceding|system)\s+(?:instructions?|prompts?|messages?|context|rules)"
    r"|\byou\s+are\s+now\s+(?:a|an|in)\b"
    r"|\bnew\s+instructions?\s*:"
    r"|<\s*/?\s*(?:system|important|instructions?)\s*>"
    r"|\bdo\s+not\s+(?:tell|inform|mention\s+(?:this\s+)?to)\s+the\s+user\b",
    re.IGNORECASE,
)
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]")
# A URL whose query carries a long base64/hex value: the classic markdown-image exfiltration.
_EXFIL_URL = re.compile(
    r"https?://[^\s\"'<>()]+\?[^\s\"'<>()]*?=(?:[A-Za-z0-9+/_-]{24,}={0,2}|[0-9a-fA-F]{32,})(?:[&#\s\"'<>()]|$)"
)


def injection_flags(text: str) -> list[str]:
    """Which injection patterns a tool result carries: instruction, tag_chars, exfil_url."""
    text = text[:MAX_SCREEN_CHARS]
    flags = []
    if _INSTRUCTION.search(text):
        flags.append("instruction")
    if _TAG_CHARS.search(text):
        flags.append("tag_chars")
    if _EXFIL_URL.search(text):
        flags.append("exfil_url")
    return flags


def _strings(value: Any, out: list[str], budget: list[int]) -> None:
    """Every string in a JSON value (keys too), up to a character budget."""
    if budget[0] <= 0:
        return
    if isinstance(value, str):
        out.append(value)
        budget[0] -= len(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(k, out, budget)
            _strings(v, out, budget)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out, budget)


def screen(result: Any) -> list[str]:
    texts: list[str] = []
    _strings(result, texts, [MAX_SCREEN_CHARS])
    return injection_flags("\n".join(texts))


# --- JSON-RPC -----------------------------------------------------------------------------------


def parse_jsonrpc(data: bytes) -> dict | list | None:
    """The JSON-RPC message (or batch) in a body, or None when it is not one."""
    head = data[:64].lstrip()
    if not head.startswith((b"{", b"[")) or b'"jsonrpc"' not in data:
        return None
    try:
        msg = json.loads(data)
    except ValueError:
        return None
    if _is_message(msg):
        return msg
    if isinstance(msg, list) and any(_is_message(m) for m in msg):
        return msg
    return None


def _is_message(value: Any) -> bool:
    return isinstance(value, dict) and value.get("jsonrpc") == "2.0"


def id_key(rpc_id: Any) -> Any:
    """A hashable key for a JSON-RPC id (1 and "1" are different ids)."""
    if isinstance(rpc_id, bool) or not isinstance(rpc_id, (int, str)):
        return ("json", json.dumps(rpc_id, sort_keys=True, default=str))
    return (type(rpc_id).__name__, rpc_id)


def _size(value: Any) -> int | None:
    if value is None:
        return None
    return len(_dumps(value))


def rpc_error(rpc_id: Any, message: str, code: int = POLICY_ERROR_CODE) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}


def _dumps(msg: Any) -> bytes:
    try:
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate ("\udcff" in the JSON): keep it escaped
        return json.dumps(msg, separators=(",", ":")).encode()


@dataclass(slots=True)
class McpSession:
    server_name: str | None = None
    client_name: str | None = None
    protocol_version: str | None = None


@dataclass(slots=True)
class McpCall:
    """One JSON-RPC request and what became of it."""

    started: float
    client_ip: str
    person: Person
    host: str
    port: int
    rpc_id: Any
    method: str
    server: McpServer | None
    observe: bool
    transport: str = STREAMABLE
    session_id: str | None = None
    protocol_version: str | None = None
    client_name: str | None = None
    server_name: str | None = None
    tool_name: str | None = None
    arguments_bytes: int | None = None
    result_bytes: int | None = None
    is_error: bool | None = None
    error_code: int | None = None  # the JSON-RPC error code of the answer (ours for refusals)
    decision: str = ALLOW
    rule_id: str = "default"
    injection_flags: list[str] = field(default_factory=list)
    dlp_counts: Counter | None = None
    dlp_actions: set[str] = field(default_factory=set)
    arguments: str | None = None  # stored content (policy opt-in), after DLP
    result: str | None = None
    # Set when the request is refused but forwarded as a ping: its answer is replaced by this.
    refusal: str | None = None
    answered: bool = False
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def refuse(self, rule_id: str, action: str = BLOCK) -> bool:
        """Record a refusal; True when it is enforced (not observe mode)."""
        self.decision = OBSERVE_PREFIX + action if self.observe else action
        self.rule_id = rule_id
        enforced = not self.observe
        if enforced and action == BLOCK:
            self.is_error, self.error_code = True, POLICY_ERROR_CODE
        return enforced

    def add_dlp(self, counts: Counter, action: str) -> None:
        self.dlp_counts = counts if self.dlp_counts is None else self.dlp_counts + counts
        self.dlp_actions.add(action)

    @property
    def dlp_action(self) -> str | None:
        return next((a for a in _DLP_ACTION_ORDER if a in self.dlp_actions), None)

    @property
    def dlp_findings(self) -> str | None:
        if not self.dlp_counts:
            return None
        return ",".join(f"{t}:{n}" for t, n in sorted(self.dlp_counts.items()))


def _text(value: str | None, limit: int = 256) -> str | None:
    """A string fit for a row: cut, and without lone surrogates (a JSON "\udcff", a non-UTF-8
    header byte), which the writer cannot encode: one such row would hold up its whole table."""
    if value is None:
        return None
    value = value[:limit]
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-8", "replace").decode()
    return value


def mcp_call_row(call: McpCall, latency_ms: float | None) -> tuple:
    return (
        utc_from_timestamp(call.started),
        call.request_id,
        call.person.user,
        call.person.group,
        call.client_ip,
        _text(call.host),
        _text(call.server_name),
        _text(call.session_id),
        _text(call.protocol_version, 64),
        _text(call.client_name),
        _text(call.method, 128),
        _text(call.tool_name),
        call.arguments_bytes,
        call.result_bytes,
        call.is_error,
        latency_ms,
        call.decision,
        call.rule_id,
        ",".join(call.injection_flags) or None,
        call.dlp_findings,
        call.dlp_action,
        call.transport,
        call.arguments,
        call.result,
    )


@dataclass(slots=True)
class McpExchange:
    """The requests of one POST (one, or a batch), carried in flow.metadata[MCP_KEY]."""

    calls: dict[Any, McpCall]  # by id_key
    legacy: LegacySession | None = None


@dataclass(slots=True)
class _Outgoing:
    """What a POST's body becomes: the elements that go on to the server (refused ones as pings)
    and the refusals the proxy answers itself."""

    messages: list[Any]
    batch: bool
    forwarded: list[Any] = field(default_factory=list)
    local: list[dict] = field(default_factory=list)


@dataclass(slots=True)
class LegacySession:
    """An HTTP+SSE (2024-11-05) session: its answers arrive on the GET stream, not on the POSTs."""

    host: str
    endpoint: str  # the path (and query) the client POSTs to
    session_id: str | None
    pending: OrderedDict[Any, McpCall] = field(default_factory=OrderedDict)


# --- DLP ----------------------------------------------------------------------------------------


def _stored(value: Any, dlp_actions: set[str], max_chars: int) -> str | None:
    """What opt-in storage keeps of arguments or a result: already redacted by the caller.

    Content with findings that DLP only logs (or, in observe mode, would redact) still holds
    the values, and values never reach the database: such content is not stored.
    """
    if value is None:
        return None
    if dlp_actions & {"log", "would_redact", "would_block", "error"}:
        return "[not stored: DLP findings left in the clear]"
    return _dumps(value).decode()[:max_chars]


# --- response taps ------------------------------------------------------------------------------

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
                return None if new is None else _dumps(new)
            changed = False
            out = []
            for item in msg:
                new = self.on_message(item, _size(item) or 0) if _is_message(item) else None
                changed = changed or new is not None
                out.append(item if new is None else new)
            return _dumps(out) if changed else None
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


# --- the addon ----------------------------------------------------------------------------------

CallSink = Callable[[McpCall, float], None]  # a finished call and when it ended (epoch seconds)


class Mcp:
    name = "shadowgate_mcp"

    def __init__(self, settings: ShadowgateSettings, on_call: CallSink | None = None) -> None:
        self.settings = settings
        self.on_call = on_call  # telemetry: every finished call, after its row
        self.sessions: OrderedDict[str, McpSession] = OrderedDict()
        self.legacy: OrderedDict[tuple[str, str], LegacySession] = OrderedDict()
        self.tool_lists: OrderedDict[tuple, None] = OrderedDict()

    # requests

    @on_the_clock
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        if flow.response or flow.error or not flow.live or AI_METADATA_KEY in flow.metadata:
            return None
        request = flow.request
        if request.method == "DELETE" and (sid := request.headers.get("mcp-session-id")):
            self.sessions.pop(sid, None)
            return None
        if request.method != "POST" or "json" not in (request.headers.get("content-type") or "").lower():
            return None
        raw = request.raw_content
        if not raw or len(raw) > self.settings.max_parse_bytes:
            return None
        try:
            msg = parse_jsonrpc(request.get_content(strict=False) or b"")
        except Exception:
            return None
        if msg is None:
            return None
        try:
            return self._calls(flow, msg)
        except Exception:
            # Odd input must never cost the request: it goes on, unaudited, and the log says so.
            log.warning("shadowgate: could not audit an MCP request to %s", request.host, exc_info=True)
            return None

    def _calls(self, flow: http.HTTPFlow, msg: dict | list) -> Awaitable[None] | None:
        request = flow.request
        host = (flow.client_conn.sni or request.host).lower()
        policy = self.settings.policy
        mcp = policy.mcp
        client_ip = str(flow.client_conn.peername[0]).removeprefix("::ffff:") if flow.client_conn.peername else ""
        proxy_user = (flow.metadata.get("proxyauth") or (None,))[0]
        person = self.settings.directory.person(proxy_user, client_ip)
        facts = Facts(host=host, user=person.user, group=person.group, client_ip=client_ip)
        server, listed = mcp.server_for_facts(facts) if mcp else (None, None)
        legacy = self.legacy.get((host, request.path))
        batch = isinstance(msg, list)
        messages: list[Any] = msg if isinstance(msg, list) else [msg]
        blocks_unlisted = mcp is not None and server is None and (listed is not None or mcp.unlisted == BLOCK)
        exchange = McpExchange({}, legacy)
        out = _Outgoing(messages, batch)
        forwarded, local = out.forwarded, out.local
        for item in messages:
            if not _is_message(item) or not isinstance(item.get("method"), str):
                forwarded.append(item)  # a client's answer to a server request, or junk: not ours
                continue
            if "id" not in item:
                # A notification: no row, but a server this person may not use gets nothing.
                if not (blocks_unlisted and not policy.observe):
                    forwarded.append(item)
                continue
            call = self._call(flow, item, host, person, client_ip, server, policy.observe, legacy)
            message: str | None
            if blocks_unlisted:
                if listed is not None:
                    call.rule_id = f"mcp:{listed.id}:access"
                    message = f"shadowgate: MCP server {host} is not allowed for {person.user or client_ip} (rule {call.rule_id})"
                else:
                    call.rule_id = "mcp:unlisted"
                    message = f"shadowgate: MCP server {host} is not on the allow-list (rule {call.rule_id})"
            else:
                message = self._refusal(call)
            exchange.calls[id_key(call.rpc_id)] = call
            if message is not None and call.refuse(call.rule_id):
                if legacy is not None or (batch and not blocks_unlisted):
                    call.refusal = message
                    forwarded.append({"jsonrpc": "2.0", "id": call.rpc_id, "method": "ping"})
                else:
                    local.append(rpc_error(call.rpc_id, message))
                continue
            forwarded.append(item)
        if not exchange.calls and len(forwarded) == len(messages):
            return None  # nothing of ours in it: untouched
        if blocks_unlisted and legacy is None and not policy.observe:
            forwarded.clear()  # a server this person may not use gets nothing, not even junk
        flow.metadata[MCP_KEY] = exchange
        dlp = policy.dlp
        scan = [c for c in exchange.calls.values() if c.is_error is None and c.method == "tools/call"]
        if dlp is not None and scan and forwarded:
            if sum(c.arguments_bytes or 0 for c in scan) > SCAN_IN_THREAD_CHARS:
                return self._scan_then_send(flow, exchange, out, scan, dlp)
            self._scan_arguments(scan, forwarded, dlp)
        self._send(flow, exchange, out)
        return None

    def _call(
        self,
        flow: http.HTTPFlow,
        item: dict,
        host: str,
        person: Person,
        client_ip: str,
        server: McpServer | None,
        observe: bool,
        legacy: LegacySession | None,
    ) -> McpCall:
        request = flow.request
        raw_params = item.get("params")
        params: dict = raw_params if isinstance(raw_params, dict) else {}
        method = item["method"]
        call = McpCall(
            started=request.timestamp_start,
            client_ip=client_ip,
            person=person,
            host=host,
            port=request.port,
            rpc_id=item["id"],
            method=method,
            server=server,
            observe=observe,
            transport=SSE if legacy is not None else STREAMABLE,
            session_id=legacy.session_id if legacy is not None else request.headers.get("mcp-session-id"),
        )
        session = self.sessions.get(call.session_id) if call.session_id else None
        if session is not None:
            call.server_name, call.client_name = session.server_name, session.client_name
            call.protocol_version = session.protocol_version
        call.protocol_version = request.headers.get("mcp-protocol-version") or call.protocol_version
        if method == "initialize":
            info = params.get("clientInfo")
            call.client_name = str(info.get("name"))[:256] if isinstance(info, dict) and info.get("name") else None
            version = params.get("protocolVersion")
            call.protocol_version = str(version)[:64] if version else call.protocol_version
        if method == "tools/call":
            name = params.get("name")
            call.tool_name = name if isinstance(name, str) else None
            call.arguments_bytes = _size(params.get("arguments"))
        else:
            call.arguments_bytes = _size(params) if params else None
        if server is not None:
            call.rule_id = f"mcp:{server.id}"
        return call

    @staticmethod
    def _refusal(call: McpCall) -> str | None:
        """Why a request to a listed server is refused (setting call.rule_id), or None."""
        server = call.server
        if server is None:
            return None
        if call.tool_name is not None and not server.tool_allowed(call.tool_name):
            call.rule_id = f"mcp:{server.id}:tools"
            return f"shadowgate: tool {call.tool_name!r} is not allowed on {server.id} (rule {call.rule_id})"
        limit = server.max_argument_bytes
        if limit is not None and call.arguments_bytes is not None and call.arguments_bytes > limit:
            call.rule_id = f"mcp:{server.id}:max_argument_bytes"
            return (
                f"shadowgate: arguments of {call.arguments_bytes} bytes exceed the limit of {limit} "
                f"(rule {call.rule_id})"
            )
        return None

    async def _scan_then_send(
        self, flow: http.HTTPFlow, exchange: McpExchange, out: _Outgoing, scan: list[McpCall], dlp: DlpPolicy
    ) -> None:
        """Large arguments are scanned off the event loop."""
        await asyncio.to_thread(self._scan_arguments, scan, out.forwarded, dlp)
        self._send(flow, exchange, out)

    def _scan_arguments(self, calls: list[McpCall], forwarded: list[Any], dlp: DlpPolicy) -> None:
        """DLP on tools/call arguments: redacted in the forwarded message, or the call refused."""
        by_key = {id_key(c.rpc_id): c for c in calls}
        observe = self.settings.policy.observe
        for index, item in enumerate(forwarded):
            call = by_key.get(id_key(item.get("id"))) if _is_message(item) and "id" in item else None
            if call is None or item.get("method") != "tools/call":
                continue
            params = item.get("params")
            arguments = params.get("arguments") if isinstance(params, dict) else None
            if arguments is None:
                continue
            try:
                cleaned, counts, actions = scan_json(
                    arguments, shared_scanner(), Placeholders(), dlp, every_string=True
                )
            except Exception as e:
                cleaned, counts, actions = arguments, Counter(), set()
                if not isinstance(e, ScanFailed):
                    log.exception("shadowgate: DLP scan of MCP tool arguments failed")
                call.dlp_actions.add("error")
                if dlp.on_error != ALLOW and call.refuse(_dlp_rule(call)):
                    call.refusal = f"shadowgate: the tool arguments could not be scanned, and DLP fails closed (rule {call.rule_id})"
                    forwarded[index] = {"jsonrpc": "2.0", "id": call.rpc_id, "method": "ping"}
                    continue
            if counts:
                _, action, blocking = dlp_verdict(counts, actions, dlp, observe)
                call.add_dlp(counts, action)
                if blocking and call.refuse(_dlp_rule(call)):
                    call.refusal = (
                        f"shadowgate: the tool arguments contain {', '.join(blocking)}; company policy does not "
                        f"allow sending them to {call.host} (rule {call.rule_id})"
                    )
                    forwarded[index] = {"jsonrpc": "2.0", "id": call.rpc_id, "method": "ping"}
                    continue
                if action == "redact":
                    forwarded[index] = {**item, "params": {**params, "arguments": cleaned}}

    def _send(self, flow: http.HTTPFlow, exchange: McpExchange, out: _Outgoing) -> None:
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
            self._store_arguments(exchange, forwarded, mcp)
        if not forwarded:
            if legacy is not None:
                flow.response = http.Response.make(202, b"Accepted", {"content-type": "text/plain"})
            elif local:
                body = _dumps(local if batch else local[0])
                flow.response = http.Response.make(200, body, {"content-type": "application/json"})
            else:
                flow.response = http.Response.make(
                    403, b"shadowgate: MCP server not on the allow-list", {"content-type": "text/plain"}
                )
            return
        # Refusals in a batch that goes on were turned into pings: `local` is empty here.
        if len(forwarded) != len(messages) or any(a is not b for a, b in zip(forwarded, messages)):
            flow.request.content = _dumps(forwarded if batch else forwarded[0])

    @staticmethod
    def _store_arguments(exchange: McpExchange, forwarded: list[Any], mcp: McpPolicy) -> None:
        """Opt-in storage: the arguments as they are sent on (after DLP); refused calls keep none."""
        for item in forwarded:
            if not _is_message(item) or item.get("method") != "tools/call" or "id" not in item:
                continue
            call = exchange.calls.get(id_key(item["id"]))
            params = item.get("params")
            if call is not None and call.refusal is None and isinstance(params, dict):
                call.arguments = _stored(params.get("arguments"), call.dlp_actions, mcp.store_max_chars)

    def _await_on_stream(self, legacy: LegacySession, call: McpCall) -> None:
        pending = legacy.pending
        pending[id_key(call.rpc_id)] = call
        while len(pending) > MAX_PENDING:
            _, dropped = pending.popitem(last=False)
            self._submit(dropped, time.time())

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
        on_message = lambda msg, size: self._answer(exchange.calls, msg, size)  # noqa: E731
        limit = self.settings.max_parse_bytes
        if encoding not in ("", "identity"):
            response.stream = True  # compressed: passed through unparsed (no result size)
            return
        if content_type.startswith("text/event-stream"):
            response.stream = SseTap(on_message, limit)
        elif content_type.startswith("application/json"):
            response.stream = JsonTap(on_message, limit)
        else:
            response.stream = True
            return
        _unframe(flow)

    def _maybe_legacy_stream(self, flow: http.HTTPFlow, response: http.Response) -> None:
        content_type = (response.headers.get("content-type") or "").lower()
        encoding = (response.headers.get("content-encoding") or "identity").lower()
        if not content_type.startswith("text/event-stream") or encoding not in ("", "identity"):
            return
        host = (flow.client_conn.sni or flow.request.host).lower()
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

        def on_message(msg: dict, size: int) -> dict | None:
            if not holder or "id" not in msg or ("result" not in msg and "error" not in msg):
                return None
            call = holder[0].pending.pop(id_key(msg.get("id")), None)
            if call is None:
                return None
            new = self._answer({id_key(call.rpc_id): call}, msg, size)
            self._submit(call, time.time())
            return new

        tap = LegacySseTap(on_endpoint, on_message, self.settings.max_parse_bytes)
        response.stream = tap
        flow.metadata[LEGACY_KEY] = tap
        _unframe(flow)

    def _end_legacy(self, session: LegacySession) -> None:
        """The stream ended: requests still waiting for their answer are recorded unanswered."""
        if self.legacy.get((session.host, session.endpoint)) is session:
            del self.legacy[(session.host, session.endpoint)]
        now = time.time()
        while session.pending:
            _, call = session.pending.popitem(last=False)
            call.is_error = True if call.is_error is None else call.is_error
            self._submit(call, now)

    def _answer(self, calls: dict[Any, McpCall], msg: dict, size: int) -> dict | None:
        """One JSON-RPC message from the server; returns its replacement, or None to keep it."""
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
        call.injection_flags = screen(result)
        if server is not None:
            limit = server.max_result_bytes
            if limit is not None and size > limit:
                if call.refuse(f"mcp:{server.id}:max_result_bytes"):
                    return rpc_error(
                        call.rpc_id,
                        f"shadowgate: a result of {size} bytes exceeds the limit of {limit} (rule {call.rule_id})",
                    )
                return None
            if call.injection_flags and server.injection == BLOCK:
                if call.refuse(f"mcp:{server.id}:injection"):
                    flags = ", ".join(call.injection_flags)
                    return rpc_error(
                        call.rpc_id,
                        f"shadowgate: the tool result looks like a prompt injection ({flags}; rule {call.rule_id})",
                    )
        return self._scan_result(call, msg, result, size)

    def _scan_result(self, call: McpCall, msg: dict, result: dict, size: int) -> dict | None:
        policy = self.settings.policy
        dlp, mcp = policy.dlp, policy.mcp
        # None when opt-in content storage is off.
        store_max_chars = mcp.store_max_chars if mcp is not None and mcp.store_content else None
        if dlp is None:
            if store_max_chars is not None:
                call.result = _stored(result, call.dlp_actions, store_max_chars)
            return None
        cleaned, new = result, None
        try:
            if size > MAX_RESULT_SCAN_CHARS:
                raise ScanFailed("the result is too large to scan")
            cleaned, counts, actions = scan_json(result, shared_scanner(), Placeholders(), dlp, is_text=True)
        except Exception as e:
            if not isinstance(e, ScanFailed):
                log.exception("shadowgate: DLP scan of an MCP tool result failed")
            call.dlp_actions.add("error")
            if dlp.on_error != ALLOW and call.refuse(_dlp_rule(call)):
                return rpc_error(
                    call.rpc_id,
                    f"shadowgate: the tool result could not be scanned, and DLP fails closed (rule {call.rule_id})",
                )
            counts = Counter()
        if counts:
            _, action, blocking = dlp_verdict(counts, actions, dlp, policy.observe)
            call.add_dlp(counts, action)
            if blocking and call.refuse(_dlp_rule(call)):
                return rpc_error(
                    call.rpc_id, f"shadowgate: the tool result contains {', '.join(blocking)} (rule {call.rule_id})"
                )
            if action == "redact":
                new = {**msg, "result": cleaned}
        if store_max_chars is not None:
            call.result = _stored(cleaned, call.dlp_actions, store_max_chars)
        return new

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
        ts = utc_from_timestamp(call.started)
        record.mcp_tools(
            (ts, call.request_id, call.person.user, call.person.group, _text(call.host), _text(call.server_name),
             _text(call.session_id), _text(name), filtered, call.rule_id if filtered else None)
            for name, filtered in names
        )  # fmt: skip

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
    def response(self, flow: http.HTTPFlow) -> None:
        tap: LegacySseTap | None = flow.metadata.pop(LEGACY_KEY, None)
        if tap is not None and tap.session is not None:
            self._end_legacy(tap.session)
        exchange: McpExchange | None = flow.metadata.pop(MCP_KEY, None)
        if exchange is None or flow.response is None:
            return
        end = flow.response.timestamp_end or time.time()
        failed = flow.response.status_code >= 400
        self._finish(exchange, end, failed)

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
            self._submit(call, end)

    def _submit(self, call: McpCall, end: float) -> None:
        latency_ms = round(max(end - call.started, 0.0) * 1000, 3)
        if self.settings.record is not None:
            self.settings.record.mcp_call(mcp_call_row(call, latency_ms))
        if self.on_call is not None:
            self.on_call(call, end)


def _dlp_rule(call: McpCall) -> str:
    return f"mcp:{call.server.id}:dlp" if call.server is not None else "mcp:dlp"


def _unframe(flow: http.HTTPFlow) -> None:
    """The tap may change the body's length: frame it without a content-length."""
    response = flow.response
    if response is not None and "content-length" in response.headers:
        del response.headers["content-length"]
        if flow.request.http_version.startswith("HTTP/1"):
            response.headers["transfer-encoding"] = "chunked"
