"""MCP: see, allow-list and audit agents' tool calls to remote MCP servers (Streamable HTTP).

An MCP call is recognised on any decrypted host by its shape, not by a catalog: a POST whose
body is a JSON-RPC 2.0 request ({"jsonrpc": "2.0", "method": ...}), usually with the
Mcp-Session-Id and MCP-Protocol-Version headers. Only decrypted hosts are seen, so MCP servers
must be listed in the policy (`mcp.servers` hosts are decrypted) or in its `inspect` list, or
the proxy must run with shadowgate_intercept=all.

Each JSON-RPC request becomes one mcp_calls row (sizes, never arguments or results). The policy's
`mcp:` section allow-lists servers by host, allows or denies tools by glob, caps argument and
result sizes, and screens tool results for prompt-injection patterns. A refused request gets a
JSON-RPC error with the request's id over HTTP 200, so the agent's MCP client reports it instead
of hanging. tools/list answers lose the tools the policy denies.

Answers come as one JSON body or as an SSE stream. Both go through a tap that hands bytes back
unchanged and parses a copy; it only holds back the one event (or JSON body) it may have to
rewrite, up to shadowgate_max_parse_bytes, beyond which it gives up and passes bytes through.
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from mitmproxy import http

from addons.attribution import Person
from addons.identify import METADATA_KEY as AI_METADATA_KEY
from addons.policy import ALLOW
from addons.policy import BLOCK
from addons.policy import OBSERVE_PREFIX
from addons.policy import McpServer
from addons.record import MCP_CALLS
from addons.settings import ShadowgateSettings
from addons.store import utc_from_timestamp

log = logging.getLogger(__name__)

MCP_KEY = "shadowgate_mcp"
POLICY_ERROR_CODE = -32001  # implementation-defined server error range of JSON-RPC
FILTER = "filter"
MAX_SESSIONS = 4096
MAX_SCREEN_CHARS = 1024 * 1024
_SCREENED_METHODS = frozenset({"tools/call", "resources/read", "prompts/get"})

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


def parse_jsonrpc(data: bytes) -> Any:
    """The JSON-RPC message in a body, or None when it is not one."""
    head = data[:64].lstrip()
    if not head.startswith((b"{", b"[")) or b'"jsonrpc"' not in data:
        return None
    try:
        msg = json.loads(data)
    except ValueError:
        return None
    if isinstance(msg, dict) and msg.get("jsonrpc") == "2.0":
        return msg
    return None


def _size(value: Any) -> int | None:
    if value is None:
        return None
    return len(json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode())


def rpc_error(rpc_id: Any, message: str, code: int = POLICY_ERROR_CODE) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}


def _dumps(msg: dict) -> bytes:
    return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()


@dataclass(slots=True)
class McpSession:
    server_name: str | None = None
    client_name: str | None = None
    protocol_version: str | None = None


@dataclass(slots=True)
class McpCall:
    """One JSON-RPC request and what became of it, carried in flow.metadata[MCP_KEY]."""

    started: float
    client_ip: str
    person: Person
    host: str
    rpc_id: Any
    method: str
    server: McpServer | None
    observe: bool
    session_id: str | None = None
    protocol_version: str | None = None
    client_name: str | None = None
    server_name: str | None = None
    tool_name: str | None = None
    arguments_bytes: int | None = None
    result_bytes: int | None = None
    is_error: bool | None = None
    decision: str = ALLOW
    rule_id: str = "default"
    injection_flags: list[str] = field(default_factory=list)
    request_id: str = field(default_factory=lambda: uuid.uuid4().hex)

    def refuse(self, rule_id: str, action: str = BLOCK) -> bool:
        """Record a refusal; True when it is enforced (not observe mode)."""
        self.decision = OBSERVE_PREFIX + action if self.observe else action
        self.rule_id = rule_id
        return not self.observe


def mcp_call_row(call: McpCall, latency_ms: float | None) -> tuple:
    return (
        utc_from_timestamp(call.started),
        call.request_id,
        call.person.user,
        call.person.group,
        call.client_ip,
        call.host,
        call.server_name,
        call.session_id,
        call.protocol_version,
        call.client_name,
        call.method[:128],
        call.tool_name[:256] if call.tool_name else None,
        call.arguments_bytes,
        call.result_bytes,
        call.is_error,
        latency_ms,
        call.decision,
        call.rule_id,
        ",".join(call.injection_flags) or None,
    )


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
        """The replacement for one JSON-RPC message, or None to send it as it came."""
        try:
            msg = parse_jsonrpc(payload)
            new = self.on_message(msg, len(payload)) if msg is not None else None
            return None if new is None else _dumps(new)
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


_EVENT_END = re.compile(rb"\r\n\r\n|\n\n|\r\r")


class SseTap(_Tap):
    """An SSE answer: complete events go out as they come (one rewritten when needed)."""

    __slots__ = ("scan_from",)

    def __init__(self, on_message: OnMessage, limit: int) -> None:
        super().__init__(on_message, limit)
        self.scan_from = 0  # the held bytes before this hold no event end: never scanned twice

    def _feed(self, chunk: bytes) -> list[bytes]:
        if not chunk:
            return self._drain()  # a trailing partial event goes out as it came
        self.buf += chunk
        out = []
        while (m := _EVENT_END.search(self.buf, self.scan_from)) is not None:
            event, end = bytes(self.buf[: m.end()]), bytes(m.group())
            del self.buf[: m.end()]
            self.scan_from = 0
            out.append(self._event(event, end))
        self.scan_from = max(0, len(self.buf) - 3)
        if len(self.buf) > self.limit:
            out += self._give_up()
        return out

    def _event(self, event: bytes, end: bytes) -> bytes:
        lines = event[: -len(end)].splitlines()
        data = [line[5:].removeprefix(b" ") for line in lines if line.startswith(b"data:")]
        if not data:
            return event
        new = self._rewritten(b"\n".join(data))
        if new is None:
            return event
        newline = end[: len(end) // 2]
        kept = [line for line in lines if not line.startswith(b"data:")]
        return newline.join([*kept, b"data: " + new]) + end


# --- the addon ----------------------------------------------------------------------------------


class Mcp:
    name = "shadowgate_mcp"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.sessions: OrderedDict[str, McpSession] = OrderedDict()

    # requests

    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or AI_METADATA_KEY in flow.metadata:
            return
        request = flow.request
        if request.method == "DELETE" and (sid := request.headers.get("mcp-session-id")):
            self.sessions.pop(sid, None)
            return
        if request.method != "POST" or "json" not in (request.headers.get("content-type") or "").lower():
            return
        raw = request.raw_content
        if not raw or len(raw) > self.settings.max_parse_bytes:
            return
        try:
            msg = parse_jsonrpc(request.get_content(strict=False) or b"")
        except Exception:
            return
        if msg is None or not isinstance(msg.get("method"), str):
            return  # not MCP, or a client's answer to a server request
        self._call(flow, msg)

    def _call(self, flow: http.HTTPFlow, msg: dict) -> None:
        request = flow.request
        host = (flow.client_conn.sni or request.host).lower()
        policy = self.settings.policy
        mcp = policy.mcp
        server = mcp.server_for(host) if mcp else None
        if "id" not in msg:
            # A notification: no row, but an unlisted server gets nothing from this client.
            if mcp is not None and server is None and mcp.unlisted == BLOCK and not policy.observe:
                flow.response = http.Response.make(
                    403, b"shadowgate: MCP server not on the allow-list", {"content-type": "text/plain"}
                )
            return
        client_ip = str(flow.client_conn.peername[0]).removeprefix("::ffff:") if flow.client_conn.peername else ""
        proxy_user = (flow.metadata.get("proxyauth") or (None,))[0]
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        method = msg["method"]
        call = McpCall(
            started=request.timestamp_start,
            client_ip=client_ip,
            person=self.settings.directory.person(proxy_user, client_ip),
            host=host,
            rpc_id=msg["id"],
            method=method,
            server=server,
            observe=policy.observe,
            session_id=request.headers.get("mcp-session-id"),
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
        flow.metadata[MCP_KEY] = call
        if server is not None:
            call.rule_id = f"mcp:{server.id}"
        message = self._refusal(call, mcp is not None and mcp.unlisted == BLOCK)
        if message is not None and call.refuse(call.rule_id):
            call.is_error = True
            flow.response = http.Response.make(
                200, _dumps(rpc_error(call.rpc_id, message)), {"content-type": "application/json"}
            )

    @staticmethod
    def _refusal(call: McpCall, block_unlisted: bool) -> str | None:
        """Why the request is refused (setting call.rule_id), or None."""
        server = call.server
        if server is None:
            if not block_unlisted:
                return None
            call.rule_id = "mcp:unlisted"
            return f"shadowgate: MCP server {call.host} is not on the allow-list (rule {call.rule_id})"
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

    # responses

    def responseheaders(self, flow: http.HTTPFlow) -> None:
        call: McpCall | None = flow.metadata.get(MCP_KEY)
        response = flow.response
        if call is None or response is None or response.stream:
            return
        call.session_id = response.headers.get("mcp-session-id") or call.session_id
        content_type = (response.headers.get("content-type") or "").lower()
        encoding = (response.headers.get("content-encoding") or "identity").lower()
        on_message = lambda msg, size: self._answer(call, msg, size)  # noqa: E731
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
        # The tap may change the body's length: frame it without a content-length.
        if "content-length" in response.headers:
            del response.headers["content-length"]
            if flow.request.http_version.startswith("HTTP/1"):
                response.headers["transfer-encoding"] = "chunked"

    def _answer(self, call: McpCall, msg: dict, size: int) -> dict | None:
        """One JSON-RPC message from the server; returns its replacement, or None to keep it."""
        if msg.get("id") != call.rpc_id or ("result" not in msg and "error" not in msg):
            return None  # notifications and server-to-client requests pass untouched
        call.result_bytes = size
        if "error" in msg:
            call.is_error = True
            return None
        result = msg.get("result")
        if not isinstance(result, dict):
            return None
        call.is_error = bool(result.get("isError"))
        if call.method == "initialize":
            self._initialized(call, result)
            return None
        server = call.server
        if call.method == "tools/list" and server is not None and isinstance(result.get("tools"), list):
            tools = result["tools"]
            kept = [t for t in tools if not (isinstance(t, dict) and not server.tool_allowed(str(t.get("name"))))]
            if len(kept) < len(tools) and call.refuse(f"mcp:{server.id}:tools", FILTER):
                return {**msg, "result": {**result, "tools": kept}}
            return None
        if call.method not in _SCREENED_METHODS:
            return None
        call.injection_flags = screen(result)
        if server is None:
            return None
        limit = server.max_result_bytes
        if limit is not None and size > limit:
            if call.refuse(f"mcp:{server.id}:max_result_bytes"):
                call.is_error = True
                return rpc_error(
                    call.rpc_id, f"shadowgate: a result of {size} bytes exceeds the limit of {limit} (rule {call.rule_id})"
                )
            return None
        if call.injection_flags and server.injection == BLOCK:
            if call.refuse(f"mcp:{server.id}:injection"):
                call.is_error = True
                flags = ", ".join(call.injection_flags)
                return rpc_error(
                    call.rpc_id, f"shadowgate: the tool result looks like a prompt injection ({flags}; rule {call.rule_id})"
                )
        return None

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

    def response(self, flow: http.HTTPFlow) -> None:
        call: McpCall | None = flow.metadata.pop(MCP_KEY, None)
        if call is None or flow.response is None:
            return
        end = flow.response.timestamp_end or time.time()
        if call.is_error is None and flow.response.status_code >= 400:
            call.is_error = True
        self._submit(call, round((end - call.started) * 1000, 3))

    def error(self, flow: http.HTTPFlow) -> None:
        call: McpCall | None = flow.metadata.pop(MCP_KEY, None)
        if call is None:
            return
        call.is_error = True
        self._submit(call, round((time.time() - call.started) * 1000, 3))

    def _submit(self, call: McpCall, latency_ms: float) -> None:
        writer = self.settings.writer
        if writer is not None:
            writer.submit(MCP_CALLS.name, mcp_call_row(call, latency_ms))
