"""What the event loop hands the exporter thread: small immutable copies of a finished AI call
(TelemetryEvent) or MCP request (McpEvent), names and counts only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import NamedTuple

from mitmproxy import http

from shadowgate.storage.schema import FlowRecord
from shadowgate.storage.schema import Outcome
from shadowgate.telemetry import semconv as sc

if TYPE_CHECKING:
    from shadowgate.mcp.session import McpCall


class TelemetryEvent(NamedTuple):
    """What one AI call becomes on its way to the exporter thread: plain values, no live objects."""

    request_id: str
    start: float  # epoch seconds: the request's first byte
    end: float  # epoch seconds: the response's last byte, or the error
    operation: str
    provider_name: str  # gen_ai.provider.name
    pricing_provider: str | None
    category: str | None
    request_model: str | None
    response_model: str | None
    streaming: bool | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cache_creation_input_tokens: int | None
    reasoning_tokens: int | None
    usage_estimated: bool
    finish_reasons: tuple[str, ...]
    response_id: str | None
    ttft_ms: float | None
    server_address: str
    server_port: int | None
    status_code: int | None
    error_type: str | None
    user: str | None
    decision: str
    rule_id: str
    inspected: bool
    # Only with content capture on: the raw request body and its Content-Encoding.
    request_body: bytes | None = None
    content_encoding: str | None = None
    # DLP findings by type (counts from FlowRecord.dlp_findings; never values).
    dlp_findings: tuple[tuple[str, int], ...] = ()


# input, output, cached input, cache creation input, reasoning: in TelemetryEvent's order.
_Tokens = tuple[int | None, int | None, int | None, int | None, int | None]


def telemetry_event(flow: http.HTTPFlow, rec: FlowRecord, out: Outcome, end: float, capture: bool) -> TelemetryEvent:
    provider, route, facts, resp = rec.provider, rec.route, rec.facts, out.response
    usage = resp.usage if resp is not None else None
    if usage is None:
        tokens: _Tokens = (None, None, None, None, None)
    else:
        tokens = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_creation_input_tokens,
            usage.reasoning_tokens,
        )
    body = flow.request.raw_content if capture else None
    return TelemetryEvent(
        rec.request_id,
        rec.started,
        end,
        (facts.operation if facts else None) or (route.operation if route else None) or sc.OPERATION_UNKNOWN,
        provider.otel_provider if provider else (route.wire_format if route else "unknown"),
        provider.pricing_provider if provider else None,
        provider.category if provider else None,
        facts.model if facts else None,
        resp.model if resp else None,
        facts.streaming if facts else None,
        *tokens,
        out.usage_estimated,
        tuple(resp.finish_reasons) if resp else (),
        resp.response_id if resp else None,
        out.ttft_ms,
        # The server behind the proxy: the company gateway when the policy redirected the call.
        flow.request.host if rec.redirect_target else rec.host,
        flow.request.port,
        out.status_code,
        out.error_type or (resp.error_type if resp else None),
        rec.person.user,
        rec.decision.action,
        rec.decision.rule_id,
        rec.inspected,
        body,
        flow.request.headers.get("content-encoding") if body else None,
        dlp_findings=_dlp_counts(rec.dlp_findings),
    )


class McpEvent(NamedTuple):
    """One finished MCP request on its way to the exporter thread: names and codes, no content."""

    request_id: str  # mcp_calls.request_id
    start: float
    end: float
    method: str
    tool_name: str | None
    rpc_id: str | None
    session_id: str | None
    protocol_version: str | None
    server_address: str
    server_port: int | None
    server_name: str | None
    transport: str
    error_type: str | None
    error_code: int | None  # the JSON-RPC error code, ours (-32001) for refusals
    user: str | None
    decision: str
    rule_id: str
    dlp_findings: tuple[tuple[str, int], ...] = ()


def mcp_event(call: McpCall, end: float) -> McpEvent:
    error_type = None
    if call.is_error:
        if call.error_code is not None:
            error_type = str(call.error_code)
        elif call.method == "tools/call" and call.answered:
            error_type = sc.ERROR_TYPE_TOOL
        else:
            error_type = sc.ERROR_TYPE_OTHER
    rpc_id = call.rpc_id
    return McpEvent(
        call.request_id,
        call.started,
        end,
        call.method,
        call.tool_name,
        None if rpc_id is None else str(rpc_id),
        call.session_id,
        call.protocol_version,
        call.host,
        call.port,
        call.server_name,
        call.transport,
        error_type,
        call.error_code,
        call.person.user,
        call.decision,
        call.rule_id,
        _dlp_counts(call.dlp_findings),
    )


def _dlp_counts(findings: str | None) -> tuple[tuple[str, int], ...]:
    """ "EMAIL:2,JWT:1" (the ai_requests column) as ((type, count), ...): counts, never values."""
    if not findings:
        return ()
    pairs = (item.rpartition(":") for item in findings.split(","))
    return tuple((kind, int(count)) for kind, _, count in pairs if count.isdigit())
