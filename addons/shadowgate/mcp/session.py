"""What the MCP addon knows about a call: the call, the POST that carried it, the HTTP+SSE session
its answer comes on, the session facts initialize reported, and the rows it becomes."""

from __future__ import annotations

import uuid
from collections import Counter
from collections import OrderedDict
from collections.abc import Iterable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from mitmproxy import http

from shadowgate.config.attribution import Person
from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import McpServer
from shadowgate.mcp.jsonrpc import POLICY_ERROR_CODE
from shadowgate.mcp.jsonrpc import encoded_size
from shadowgate.storage.rows import McpCallRow
from shadowgate.storage.rows import McpToolRow
from shadowgate.storage.store import utc_from_timestamp

STREAMABLE, SSE = "streamable-http", "sse"
# The operation of a row for a client message that is no request: the client's answer to a
# server request (elicitation, sampling, roots), or an element of no JSON-RPC kind in a batch.
RESPONSE, OTHER = "response", "(other)"
_DLP_ACTION_ORDER = ("error", "block", "would_block", "redact", "would_redact", "log")


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
    approval: str | None = None  # why the call waits for an approver (mcp/approval.py)
    approver: str | None = None  # who decided it

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


@dataclass(slots=True)
class McpExchange:
    """The requests of one POST (one, or a batch), carried in flow.metadata[MCP_KEY]."""

    calls: dict[Any, McpCall]  # by id_key
    legacy: LegacySession | None = None
    # The client's notifications and answers, each with its message as it came: nothing answers
    # them, so each is recorded once it is decided (one row per message, as for a request).
    one_way: list[tuple[McpCall, Any]] = field(default_factory=list)


@dataclass(slots=True)
class Outgoing:
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


@dataclass(slots=True)
class Origin:
    """What every message of one POST (or WebSocket message) shares: who sends it, to which
    server, on which session."""

    request: http.Request
    host: str
    person: Person
    client_ip: str
    server: McpServer | None
    observe: bool
    legacy: LegacySession | None
    sessions: Mapping[str, McpSession]


def new_call(origin: Origin, item: dict) -> McpCall:
    """The call one JSON-RPC request (with an id and a method) starts, with what its session knows."""
    raw_params = item.get("params")
    params: dict = raw_params if isinstance(raw_params, dict) else {}
    method = item["method"]
    call = _in_session(origin, item["id"], method)
    if method == "initialize":
        info = params.get("clientInfo")
        call.client_name = str(info.get("name"))[:256] if isinstance(info, dict) and info.get("name") else None
        version = params.get("protocolVersion")
        call.protocol_version = str(version)[:64] if version else call.protocol_version
    if method == "tools/call":
        name = params.get("name")
        call.tool_name = name if isinstance(name, str) else None
        call.arguments_bytes = encoded_size(params.get("arguments"))
    else:
        call.arguments_bytes = encoded_size(params) if params else None
    return call


def new_message(origin: Origin, item: Any) -> McpCall:
    """The record of a client message nothing answers: a notification (its method), the client's
    answer to a server request (RESPONSE) or anything else in a batch (OTHER). arguments_bytes
    is the size of what it carries (params, result or error; the whole element for OTHER)."""
    if isinstance(item, dict) and isinstance(item.get("method"), str):
        operation, carried = item["method"], item.get("params")
    elif isinstance(item, dict) and ("result" in item or "error" in item):
        operation, carried = RESPONSE, item.get("result", item.get("error"))
    else:
        operation, carried = OTHER, item
    record = _in_session(origin, item.get("id") if isinstance(item, dict) else None, operation)
    record.arguments_bytes = encoded_size(carried)
    record.answered = True  # nothing answers it
    record.is_error = operation == RESPONSE and "error" in item  # the client answers with an error
    return record


def _in_session(origin: Origin, rpc_id: Any, method: str) -> McpCall:
    request, legacy, server = origin.request, origin.legacy, origin.server
    call = McpCall(
        started=request.timestamp_start,
        client_ip=origin.client_ip,
        person=origin.person,
        host=origin.host,
        port=request.port,
        rpc_id=rpc_id,
        method=method,
        server=server,
        observe=origin.observe,
        transport=SSE if legacy is not None else STREAMABLE,
        session_id=legacy.session_id if legacy is not None else request.headers.get("mcp-session-id"),
    )
    session = origin.sessions.get(call.session_id) if call.session_id else None
    if session is not None:
        call.server_name, call.client_name = session.server_name, session.client_name
        call.protocol_version = session.protocol_version
    call.protocol_version = request.headers.get("mcp-protocol-version") or call.protocol_version
    if server is not None:
        call.rule_id = f"mcp:{server.id}"
    return call


def request_refusal(call: McpCall) -> str | None:
    """Why a request to a listed server is refused (setting call.rule_id), or None."""
    server = call.server
    if server is None:
        return None
    unnamed = call.method == "tools/call" and call.tool_name is None
    if unnamed and (server.allow_tools is not None or server.deny_tools):
        # No string name to check ("name": ["x"], a missing name): a lax server may still run one.
        call.rule_id = f"mcp:{server.id}:tools"
        return f"shadowgate: a tools/call without a tool name is not allowed on {server.id} (rule {call.rule_id})"
    if call.tool_name is not None and not server.tool_allowed(call.tool_name):
        call.rule_id = f"mcp:{server.id}:tools"
        return f"shadowgate: tool {call.tool_name!r} is not allowed on {server.id} (rule {call.rule_id})"
    limit = server.max_argument_bytes
    if limit is not None and call.arguments_bytes is not None and call.arguments_bytes > limit:
        call.rule_id = f"mcp:{server.id}:max_argument_bytes"
        return (
            f"shadowgate: arguments of {call.arguments_bytes} bytes exceed the limit of {limit} (rule {call.rule_id})"
        )
    return None


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


def call_row(call: McpCall, latency_ms: float | None) -> McpCallRow:
    """The mcp_calls row of a finished call."""
    return McpCallRow(
        ts=utc_from_timestamp(call.started),
        request_id=call.request_id,
        user_name=call.person.user,
        user_group=call.person.group,
        client_ip=call.client_ip,
        host=_text(call.host),
        server_name=_text(call.server_name),
        session_id=_text(call.session_id),
        protocol_version=_text(call.protocol_version, 64),
        client_name=_text(call.client_name),
        method=_text(call.method, 128),
        tool_name=_text(call.tool_name),
        arguments_bytes=call.arguments_bytes,
        result_bytes=call.result_bytes,
        is_error=call.is_error,
        latency_ms=latency_ms,
        decision=call.decision,
        rule_id=call.rule_id,
        injection_flags=",".join(call.injection_flags) or None,
        dlp_findings=call.dlp_findings,
        dlp_action=call.dlp_action,
        transport=call.transport,
        arguments=call.arguments,
        result=call.result,
        approver=_text(call.approver),
    )


def tool_rows(call: McpCall, names: Iterable[tuple[str, bool]]) -> list[McpToolRow]:
    """The mcp_tools rows of a tools/list answer: (tool name, filtered by the policy) each."""
    ts = utc_from_timestamp(call.started)
    return [
        McpToolRow(
            ts=ts,
            request_id=call.request_id,
            user_name=call.person.user,
            user_group=call.person.group,
            host=_text(call.host),
            server_name=_text(call.server_name),
            session_id=_text(call.session_id),
            tool_name=_text(name),
            filtered=filtered,
            rule_id=call.rule_id if filtered else None,
        )
        for name, filtered in names
    ]
