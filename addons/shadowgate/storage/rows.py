"""The rows shadowgate records, each a dataclass: the one definition of a table's columns.

A field is a column: `column(type, description)` gives its DuckDB type and a one-line
description, and `table_of()` derives the Table (name, (column, type) pairs, descriptions) the
writer creates and the docs list. Values go into the writer by field name (`Table.values`), so
no code depends on a column's position.

Adding an ai_requests column: a field here (plus its line in `ai_request()` when it comes from
the FlowRecord or the Outcome), and the stage that sets it. Add columns at the end; never rename
one: reports, checks and users' own SQL rely on the names. No prompt or response text, API key
or cookie ever reaches a row: keys arrive as HMAC fingerprints, and paths are stored without
their query string.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass
from typing import Any

from shadowgate.flow import FlowRecord
from shadowgate.flow import Outcome
from shadowgate.storage.store import Table
from shadowgate.storage.store import utc_from_timestamp

UNKNOWN_PROVIDER = "unknown"


def column(sql_type: str, description: str, default: Any = None) -> Any:
    """A row field that is a table column."""
    return dataclasses.field(default=default, metadata={"sql_type": sql_type, "description": description})


def table_of(name: str, row_type: type) -> Table:
    """The Table a row dataclass describes, its columns in field order."""
    fields = dataclasses.fields(row_type)
    return Table(
        name,
        tuple((f.name, f.metadata["sql_type"]) for f in fields),
        descriptions=tuple(f.metadata["description"] for f in fields),
        row_type=row_type,
    )


@dataclass(slots=True)
class AiRequest:
    """One AI call (or one AI connection that was not decrypted): a row of ai_requests."""

    ts: dt.datetime = column("TIMESTAMP", "UTC, when the request started")
    request_id: str | None = column(
        "VARCHAR", "32 hex digits, unique across instances (also on the call's telemetry span)"
    )
    client_ip: str | None = column("VARCHAR", "the client's address")
    user_name: str | None = column(
        "VARCHAR", "the person: proxy-auth user, or the attribution map's name for the address"
    )
    user_group: str | None = column("VARCHAR", "the person's group from the attribution map")
    host: str | None = column("VARCHAR", "the host the request went to (TLS SNI, else the request's host)")
    site: str | None = column("VARCHAR", "registrable domain, groups unknown endpoints")
    provider: str | None = column("VARCHAR", "catalog id, or 'unknown'")
    category: str | None = column("VARCHAR", "the catalog's category of the provider")
    wire_format: str | None = column("VARCHAR", "the API format the request was parsed as")
    operation: str | None = column("VARCHAR", "chat, embeddings, ... from the request or its route")
    method: str | None = column("VARCHAR", "HTTP method (CONNECT for a connection that was not decrypted)")
    path: str | None = column("VARCHAR", "without the query string (Gemini puts keys there)")
    model: str | None = column("VARCHAR", "requested model")
    response_model: str | None = column("VARCHAR", "the model the response names")
    streaming: bool | None = column("BOOLEAN", "the request asked for a streamed answer")
    status_code: int | None = column(
        "SMALLINT", "HTTP status of the response (none if the flow ended in an error first)"
    )
    input_tokens: int | None = column("BIGINT", "all prompt tokens, cached included")
    output_tokens: int | None = column("BIGINT", "reasoning included")
    cached_input_tokens: int | None = column("BIGINT", "prompt tokens read from the provider's cache")
    cache_creation_input_tokens: int | None = column("BIGINT", "prompt tokens written to the provider's cache")
    reasoning_tokens: int | None = column("BIGINT", "output tokens spent on reasoning")
    usage_estimated: bool | None = column("BOOLEAN", "no usage reported: tokens estimated from characters", False)
    cost_usd: float | None = column("DOUBLE", "priced off the event loop from the price list; none if unpriced")
    priced_model: str | None = column("VARCHAR", "the price list entry the cost came from")
    decision: str | None = column(
        "VARCHAR", "the policy's action: allow, block, coach, redirect, ... or would_* (observe)"
    )
    rule_id: str | None = column("VARCHAR", "the policy rule or budget that decided")
    latency_ms: float | None = column("DOUBLE", "request start to the response's end (or the error)")
    ttft_ms: float | None = column("DOUBLE", "request start to the first streamed chunk")
    request_bytes: int | None = column("BIGINT", "request body size")
    response_bytes: int | None = column("BIGINT", "response body size as received")
    key_fingerprint: str | None = column("VARCHAR", "HMAC of the API key (never the key)")
    key_kind: str | None = column("VARCHAR", "the kind of account the key's shape says it belongs to")
    account_hint: str | None = column(
        "VARCHAR", 'organisation/project/account ids the client sent, e.g. "org=...;project=..."'
    )
    inspected: bool | None = column("BOOLEAN", "false for a connection that was not decrypted", True)
    inspect_note: str | None = column("VARCHAR", "why a connection was not inspected")
    finish_reason: str | None = column("VARCHAR", "the response's finish reasons, comma-separated")
    response_id: str | None = column("VARCHAR", "the provider's id of the response")
    error_type: str | None = column("VARCHAR", "a short, groupable kind of error (timeout, reset, ...)")
    user_agent: str | None = column("VARCHAR", "the client's User-Agent, cut to 256 characters")
    proxy_overhead_us: int | None = column(
        "INTEGER", "time in shadowgate's hooks on the event loop (not per-chunk stream work)"
    )
    redirect_target: str | None = column(
        "VARCHAR", "the gateway a redirected call went to (provider stays the original)"
    )
    budget_status: str | None = column("VARCHAR", 'budgets near their limit, e.g. "daily-tokens:tokens:85%"')
    dlp_findings: str | None = column(
        "VARCHAR", 'counts per type found in the prompt, e.g. "EMAIL:2,JWT:1"; never values'
    )
    dlp_action: str | None = column("VARCHAR", "redact, block, log, or error (a scan that failed or ran out of time)")
    injection_flags: str | None = column(
        "VARCHAR", 'prompt-injection detectors that fired, e.g. "override,tool_result:indirect"; never text'
    )
    injection_action: str | None = column(
        "VARCHAR", "flag, block, would_block (observe) or error (a screen that failed or ran out of time)"
    )
    response_findings: str | None = column(
        "VARCHAR", 'what the answer carried, counts per type, e.g. "EMAIL:1,exfil_image:1"; never values'
    )
    response_action: str | None = column("VARCHAR", "log, redact, block, would_* (observe) or error")
    billed_unit: str | None = column(
        "VARCHAR", 'a call billed per unit other than tokens: "character", "image:1024x1024:hd", "audio_second", ...'
    )
    billed_units: float | None = column("DOUBLE", "how many billed_unit the call used (priced per unit_prices.yaml)")
    cache_write_1h_tokens: int | None = column(
        "BIGINT", "of cache_creation_input_tokens, those written for one hour (priced at their rate)"
    )
    service_tier: str | None = column(
        "VARCHAR", 'the service tier the answer names ("flex", "priority"): it sets the price'
    )


@dataclass(slots=True)
class PolicyEvent:
    """A policy event that is not an AI call: a user clicking "continue" on a coaching page."""

    ts: dt.datetime | None = column("TIMESTAMP", "UTC, when it happened")
    event: str | None = column("VARCHAR", "what happened, e.g. coach_continue")
    user_name: str | None = column("VARCHAR", "the person")
    user_group: str | None = column("VARCHAR", "the person's group from the attribution map")
    client_ip: str | None = column("VARCHAR", "the client's address")
    host: str | None = column("VARCHAR", "the AI host concerned")
    provider: str | None = column("VARCHAR", "catalog id of the AI service concerned")
    rule_id: str | None = column("VARCHAR", "the policy rule concerned")
    detail: str | None = column("VARCHAR", "free text")


@dataclass(slots=True)
class McpCallRow:
    """One JSON-RPC request to an MCP server (stages/mcp.py). Sizes only; arguments and results only
    when the policy opts in (mcp.store_content), after DLP, cut to mcp.store_max_chars."""

    ts: dt.datetime = column("TIMESTAMP", "UTC, when the request started")
    request_id: str | None = column("VARCHAR", "unique per call; mcp_tools rows of a tools/list answer carry it")
    user_name: str | None = column("VARCHAR", "the person")
    user_group: str | None = column("VARCHAR", "the person's group from the attribution map")
    client_ip: str | None = column("VARCHAR", "the client's address")
    host: str | None = column("VARCHAR", "the MCP server's host")
    server_name: str | None = column("VARCHAR", "serverInfo.name from the session's initialize result")
    session_id: str | None = column("VARCHAR", "Mcp-Session-Id")
    protocol_version: str | None = column("VARCHAR", "the MCP protocol version the session agreed on")
    client_name: str | None = column("VARCHAR", "clientInfo.name from initialize")
    method: str | None = column("VARCHAR", "tools/call, tools/list, resources/read, initialize, ...")
    tool_name: str | None = column("VARCHAR", "the tool called (tools/call)")
    arguments_bytes: int | None = column("BIGINT", "size of the call's arguments")
    result_bytes: int | None = column("BIGINT", "size of the result")
    is_error: bool | None = column("BOOLEAN", "a JSON-RPC error or a tool result with isError")
    latency_ms: float | None = column("DOUBLE", "request start to its answer")
    decision: str | None = column(
        "VARCHAR",
        "allow, block, filter; approved, denied, approval_timeout, abandoned (mcp.approval); or would_* (observe mode)",
    )
    rule_id: str | None = column("VARCHAR", "the policy rule that decided")
    injection_flags: str | None = column(
        "VARCHAR", 'prompt-injection signs in the result, e.g. "instruction,tag_chars,exfil_url"'
    )
    dlp_findings: str | None = column(
        "VARCHAR", 'counts per type in arguments and result, e.g. "EMAIL:2"; never values'
    )
    dlp_action: str | None = column("VARCHAR", "redact, block, log, error, or would_* (observe mode)")
    transport: str | None = column("VARCHAR", "streamable-http, or sse (the 2024-11-05 HTTP+SSE transport)")
    arguments: str | None = column("VARCHAR", "opt-in (mcp.store_content): the arguments after DLP, truncated")
    result: str | None = column("VARCHAR", "opt-in: the result after DLP, truncated")
    approver: str | None = column("VARCHAR", "who approved or denied a held call (proxy user, else client address)")


@dataclass(slots=True)
class McpToolRow:
    """A tool an MCP server advertised in a tools/list answer: one row per tool per distinct answer
    in a session, with whether the policy filtered it out for the person asking."""

    ts: dt.datetime = column("TIMESTAMP", "UTC, when the tools/list request started")
    request_id: str | None = column("VARCHAR", "the tools/list call's mcp_calls.request_id")
    user_name: str | None = column("VARCHAR", "the person who asked")
    user_group: str | None = column("VARCHAR", "the person's group from the attribution map")
    host: str | None = column("VARCHAR", "the MCP server's host")
    server_name: str | None = column("VARCHAR", "serverInfo.name from the session's initialize result")
    session_id: str | None = column("VARCHAR", "Mcp-Session-Id")
    tool_name: str | None = column("VARCHAR", "the advertised tool")
    filtered: bool | None = column("BOOLEAN", "removed from the answer by the policy (or would be, in observe mode)")
    rule_id: str | None = column("VARCHAR", "the policy rule that filtered it")


@dataclass(slots=True)
class HostSighting:
    """A TLS connection to a host the catalog does not list whose name looks like AI
    (config/ai_names.py): discovery material for `shadowgate catalog candidates`. The host and
    who connected only; no path, since the connection may not have been decrypted."""

    ts: dt.datetime = column("TIMESTAMP", "UTC, when the connection's TLS handshake began")
    host: str | None = column("VARCHAR", "the SNI, else the CONNECT target")
    site: str | None = column("VARCHAR", "registrable domain")
    reason: str | None = column("VARCHAR", "the sign that fired: tld:.ai, hosting:hf.space, word:llm, ...")
    user_name: str | None = column(
        "VARCHAR", "the person; with shadowgate_host_discovery=anonymous a keyed fingerprint (anon:...) instead"
    )
    user_group: str | None = column("VARCHAR", "the person's group from the attribution map")
    decrypted: bool | None = column("BOOLEAN", "the proxy decrypted the connection (shadowgate_intercept=all)")


@dataclass(slots=True)
class AlertRow:
    """An alert the policy's alerts: section raised (stages/siem.py), and whether it was delivered."""

    ts: dt.datetime | None = column("TIMESTAMP", "UTC, when it was raised")
    rule_id: str | None = column("VARCHAR", "the alert rule (alerts.rules[].id)")
    event: str | None = column("VARCHAR", "new_app, unknown_endpoint, unapproved_users, dlp_block, ...")
    alert_key: str | None = column("VARCHAR", "what it is about, the deduplication key (an app, a user and host)")
    summary: str | None = column("VARCHAR", "the one-line text that was sent")
    user_name: str | None = column("VARCHAR", "the person concerned, if one")
    host: str | None = column("VARCHAR", "the host concerned, if one")
    provider: str | None = column("VARCHAR", "the AI service concerned, if one")
    destinations: str | None = column("VARCHAR", "the destinations it went to, comma-separated")
    delivered: bool | None = column("BOOLEAN", "every destination accepted it")
    delivery_error: str | None = column("VARCHAR", "why a destination did not")
    suppressed: int | None = column(
        "INTEGER", "alerts with this key held back by deduplication since the last one sent"
    )


@dataclass(slots=True)
class WebActivityRow:
    """One classified request (or client WebSocket frame) of a chat web app (shadowgate.webapps).
    Counts, kinds and keyed fingerprints only: never prompt text, file content, names or raw ids."""

    ts: dt.datetime = column("TIMESTAMP", "UTC, when the request started")
    request_id: str | None = column("VARCHAR", "joins ai_requests.request_id (a prompt has both rows)")
    user_name: str | None = column("VARCHAR", "the person")
    user_group: str | None = column("VARCHAR", "the person's group from the attribution map")
    client_ip: str | None = column("VARCHAR", "the client's address")
    app: str | None = column("VARCHAR", "catalog provider id of the chat app")
    host: str | None = column("VARCHAR", "the host the request went to (a storage host for file bytes)")
    endpoint: str | None = column("VARCHAR", "the catalog's endpoint id, e.g. chatgpt.prompt; visit for a page")
    activity: str | None = column("VARCHAR", "prompt, upload, download, share, login, visit, other")
    account_kind: str | None = column("VARCHAR", "corporate, other-workspace, personal, anonymous, unknown")
    account_fingerprint: str | None = column("VARCHAR", "HMAC of the workspace/org id the request named (never the id)")
    conversation_fingerprint: str | None = column("VARCHAR", "HMAC of the app's conversation id")
    model: str | None = column("VARCHAR", "the model or mode the request names, when it names one")
    temporary: bool | None = column("BOOLEAN", "a temporary / incognito chat, when the request says")
    text_chars: int | None = column("INTEGER", "characters of prompt text (the text itself is never stored)")
    file_type: str | None = column("VARCHAR", "extensions of the files the request names or carries, comma-separated")
    file_bytes: int | None = column("BIGINT", "their size")
    file_count: int | None = column("SMALLINT", "how many files")
    dlp_findings: str | None = column("VARCHAR", 'counts per type, e.g. "EMAIL:2"; never values')
    dlp_action: str | None = column("VARCHAR", "block, redact, log, error, or would_* (observe mode)")
    decision: str | None = column("VARCHAR", "the policy's action: allow, block, coach, ... or would_*")
    rule_id: str | None = column("VARCHAR", "the policy rule that decided")
    parse_status: str | None = column(
        "VARCHAR", "ok, no-text (the prompt's field was not found), unparsed (not the endpoint's format), error"
    )
    status_code: int | None = column("SMALLINT", "the HTTP status the browser got (the proxy's refusal included)")
    transport: str | None = column("VARCHAR", "http, or websocket (one row per client frame)")


AI_REQUESTS = table_of("ai_requests", AiRequest)
POLICY_EVENTS = table_of("policy_events", PolicyEvent)
MCP_CALLS = table_of("mcp_calls", McpCallRow)
MCP_TOOLS = table_of("mcp_tools", McpToolRow)
HOST_SIGHTINGS = table_of("host_sightings", HostSighting)
ALERTS = table_of("alerts", AlertRow)
WEB_ACTIVITY = table_of("web_activity", WebActivityRow)


def ai_request(rec: FlowRecord, out: Outcome) -> AiRequest:
    """The row for one AI call. cost_usd and priced_model are filled on the writer thread.

    Runs on the event loop for every call: the row is allocated bare and every field assigned
    by name, which costs a third of a 45-keyword constructor call (~1 us against ~3.4 us). A
    field left out here fails tests/test_record_stage.py, not a write.
    """
    provider = rec.provider
    facts = rec.facts
    resp = out.response
    usage = resp.usage if resp else None
    row = object.__new__(AiRequest)
    row.ts = utc_from_timestamp(rec.started)
    row.request_id = rec.request_id
    row.client_ip = rec.client_ip
    row.user_name = rec.person.user
    row.user_group = rec.person.group
    row.host = rec.host
    row.site = rec.site
    row.provider = provider.id if provider else UNKNOWN_PROVIDER
    row.category = provider.category if provider else None
    row.wire_format = rec.route.wire_format if rec.route else None
    row.operation = (facts.operation if facts else None) or (rec.route.operation if rec.route else None)
    row.method = rec.method
    row.path = rec.path
    row.model = facts.model if facts else None
    row.response_model = resp.model if resp else None
    row.streaming = facts.streaming if facts else None
    row.status_code = out.status_code
    row.input_tokens = usage.input_tokens if usage else None
    row.output_tokens = usage.output_tokens if usage else None
    row.cached_input_tokens = usage.cached_input_tokens if usage else None
    row.cache_creation_input_tokens = usage.cache_creation_input_tokens if usage else None
    row.reasoning_tokens = usage.reasoning_tokens if usage else None
    row.cache_write_1h_tokens = resp.cache_write_1h_tokens if resp and usage else None
    row.service_tier = resp.service_tier if resp else None
    row.usage_estimated = out.usage_estimated
    row.cost_usd = None
    row.priced_model = None
    row.decision = rec.decision.action
    row.rule_id = rec.decision.rule_id
    row.latency_ms = out.latency_ms
    row.ttft_ms = out.ttft_ms
    row.request_bytes = rec.request_bytes
    row.response_bytes = out.response_bytes
    row.key_fingerprint = rec.key.fingerprint if rec.key else None
    row.key_kind = rec.key.kind if rec.key else None
    row.account_hint = rec.account_hint
    row.inspected = rec.inspected
    row.inspect_note = rec.inspect_note
    row.finish_reason = ",".join(resp.finish_reasons) if resp and resp.finish_reasons else None
    row.response_id = resp.response_id if resp else None
    row.error_type = out.error_type or (resp.error_type if resp else None)
    row.user_agent = rec.user_agent
    row.proxy_overhead_us = rec.overhead_ns // 1000
    row.redirect_target = rec.redirect_target
    row.budget_status = rec.budget_status
    row.dlp_findings = rec.dlp_findings
    row.dlp_action = rec.dlp_action
    row.injection_flags = rec.injection_flags
    row.injection_action = rec.injection_action
    row.response_findings = rec.response_findings
    row.response_action = rec.response_action
    row.billed_unit = facts.billed_unit if facts else None
    row.billed_units = (
        resp.billed_units if resp and resp.billed_units is not None else facts.billed_units if facts else None
    )
    return row
