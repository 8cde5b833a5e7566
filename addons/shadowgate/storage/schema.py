"""Record: what one AI request becomes in the ai_requests table.

The column names below are a contract that reports, checks and users' own SQL rely on. Add
columns at the end; never rename one. No prompt or response text, API key or cookie ever reaches
a row: keys arrive as HMAC fingerprints, and paths are stored without their query string.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import Any
from dataclasses import dataclass
from dataclasses import field

from shadowgate.config.attribution import KeySighting
from shadowgate.config.attribution import Person
from shadowgate.config.catalog import Provider
from shadowgate.config.policy import DEFAULT_DECISION
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.storage.store import Rollup
from shadowgate.storage.store import Table
from shadowgate.storage.store import utc_from_timestamp
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Route

AI_REQUESTS = Table(
    "ai_requests",
    (
        ("ts", "TIMESTAMP"),  # UTC, when the request started
        ("request_id", "VARCHAR"),
        ("client_ip", "VARCHAR"),
        ("user_name", "VARCHAR"),
        ("user_group", "VARCHAR"),
        ("host", "VARCHAR"),
        ("site", "VARCHAR"),  # registrable domain, groups unknown endpoints
        ("provider", "VARCHAR"),  # catalog id, or 'unknown'
        ("category", "VARCHAR"),
        ("wire_format", "VARCHAR"),
        ("operation", "VARCHAR"),
        ("method", "VARCHAR"),
        ("path", "VARCHAR"),  # without the query string (Gemini puts keys there)
        ("model", "VARCHAR"),  # requested model
        ("response_model", "VARCHAR"),
        ("streaming", "BOOLEAN"),
        ("status_code", "SMALLINT"),
        ("input_tokens", "BIGINT"),  # all prompt tokens, cached included
        ("output_tokens", "BIGINT"),  # reasoning included
        ("cached_input_tokens", "BIGINT"),
        ("cache_creation_input_tokens", "BIGINT"),
        ("reasoning_tokens", "BIGINT"),
        ("usage_estimated", "BOOLEAN"),
        ("cost_usd", "DOUBLE"),
        ("priced_model", "VARCHAR"),  # the price list entry the cost came from
        ("decision", "VARCHAR"),
        ("rule_id", "VARCHAR"),
        ("latency_ms", "DOUBLE"),
        ("ttft_ms", "DOUBLE"),
        ("request_bytes", "BIGINT"),
        ("response_bytes", "BIGINT"),
        ("key_fingerprint", "VARCHAR"),
        ("key_kind", "VARCHAR"),
        ("account_hint", "VARCHAR"),
        ("inspected", "BOOLEAN"),
        ("inspect_note", "VARCHAR"),
        ("finish_reason", "VARCHAR"),
        ("response_id", "VARCHAR"),
        ("error_type", "VARCHAR"),
        ("user_agent", "VARCHAR"),
        ("proxy_overhead_us", "INTEGER"),  # time in shadowgate's hooks on the event loop (not per-chunk stream work)
        ("redirect_target", "VARCHAR"),  # the gateway a redirected call went to (provider stays the original)
        ("budget_status", "VARCHAR"),  # budgets near their limit, e.g. "daily-tokens:tokens:85%"
        ("dlp_findings", "VARCHAR"),  # counts per type found in the prompt, e.g. "EMAIL:2,JWT:1"; never values
        ("dlp_action", "VARCHAR"),  # redact, block, log, or error (a scan that failed or ran out of time)
    ),
)

# Daily totals of ai_requests by every dimension the weekly report groups by. They outlive the
# detail when shadowgate_retention_days drops it, and the report reads them instead of the detail.
_REQUEST_TOTALS = {  # column -> (type, SQL over one ai_requests row); the BIGINT/DOUBLE ones from "requests" on are summed
    "user_name": ("VARCHAR", "coalesce(user_name, client_ip, '?')"),  # the person, else the client IP
    "user_group": ("VARCHAR", "coalesce(user_group, '-')"),
    "host": ("VARCHAR", "host"),
    "site": ("VARCHAR", "site"),
    "provider": ("VARCHAR", "provider"),
    "category": ("VARCHAR", "category"),
    "wire_format": ("VARCHAR", "wire_format"),
    "model": ("VARCHAR", "coalesce(model, response_model)"),  # requested model, else the response's
    "decision": ("VARCHAR", "decision"),
    "rule_id": ("VARCHAR", "rule_id"),
    "key_fingerprint": ("VARCHAR", "key_fingerprint"),
    "key_kind": ("VARCHAR", "key_kind"),
    "account_hint": ("VARCHAR", "account_hint"),
    "inspected": ("BOOLEAN", "inspected"),
    "inspect_note": ("VARCHAR", "inspect_note"),
    "budget_status": ("VARCHAR", "budget_status"),
    "dlp_findings": ("VARCHAR", "dlp_findings"),
    "dlp_action": ("VARCHAR", "dlp_action"),
    "requests": ("BIGINT", "1"),
    "errors": ("BIGINT", "coalesce(status_code >= 400 OR error_type IS NOT NULL, false)"),
    "input_tokens": ("BIGINT", "input_tokens"),
    "output_tokens": ("BIGINT", "output_tokens"),
    "cached_input_tokens": ("BIGINT", "cached_input_tokens"),
    "reasoning_tokens": ("BIGINT", "reasoning_tokens"),
    "cost_usd": ("DOUBLE", "cost_usd"),
    "unpriced": ("BIGINT", "cost_usd IS NULL AND coalesce(input_tokens, 0) + coalesce(output_tokens, 0) > 0"),
    "latency_ms": ("DOUBLE", "latency_ms"),  # summed: divide by requests for the mean
}


def _daily(name: str, source: str, columns: dict[str, tuple[str, str]], first_measure: str) -> Rollup:
    """A rollup from {column: (type, SQL over one detail row)}; the columns from `first_measure` on are summed."""
    names = list(columns)
    return Rollup(
        Table(name, tuple((c, typ) for c, (typ, _) in columns.items())),
        source=source,
        expressions={c: expr for c, (_, expr) in columns.items()},
        measures=frozenset(names[names.index(first_measure) :]),
    )


# Daily totals of ai_requests by every dimension the weekly report groups by. They outlive the
# detail when shadowgate_retention_days drops it; the report reads them for days without detail.
AI_REQUESTS_DAILY = _daily("ai_requests_daily", "ai_requests", _REQUEST_TOTALS, first_measure="requests")

# Policy events that are not AI calls: a user clicking "continue" on a coaching page.
POLICY_EVENTS = Table(
    "policy_events",
    (
        ("ts", "TIMESTAMP"),
        ("event", "VARCHAR"),
        ("user_name", "VARCHAR"),
        ("user_group", "VARCHAR"),
        ("client_ip", "VARCHAR"),
        ("host", "VARCHAR"),
        ("provider", "VARCHAR"),
        ("rule_id", "VARCHAR"),
        ("detail", "VARCHAR"),
    ),
)

# One row per JSON-RPC request to an MCP server (addons/shadowgate/stages/mcp.py). Sizes only; arguments and results
# only when the policy opts in (mcp.store_content), after DLP, cut to mcp.store_max_chars.
MCP_CALLS = Table(
    "mcp_calls",
    (
        ("ts", "TIMESTAMP"),  # UTC, when the request started
        ("request_id", "VARCHAR"),
        ("user_name", "VARCHAR"),
        ("user_group", "VARCHAR"),
        ("client_ip", "VARCHAR"),
        ("host", "VARCHAR"),
        ("server_name", "VARCHAR"),  # serverInfo.name from the session's initialize result
        ("session_id", "VARCHAR"),  # Mcp-Session-Id
        ("protocol_version", "VARCHAR"),
        ("client_name", "VARCHAR"),  # clientInfo.name from initialize
        ("method", "VARCHAR"),  # tools/call, tools/list, resources/read, initialize, ...
        ("tool_name", "VARCHAR"),
        ("arguments_bytes", "BIGINT"),
        ("result_bytes", "BIGINT"),
        ("is_error", "BOOLEAN"),  # a JSON-RPC error or a tool result with isError
        ("latency_ms", "DOUBLE"),
        ("decision", "VARCHAR"),  # allow, block, or would_block (observe mode)
        ("rule_id", "VARCHAR"),
        ("injection_flags", "VARCHAR"),  # e.g. "instruction,tag_chars,exfil_url"
        ("dlp_findings", "VARCHAR"),  # counts per type in arguments and result, e.g. "EMAIL:2"; never values
        ("dlp_action", "VARCHAR"),  # redact, block, log, error, or would_* (observe mode)
        ("transport", "VARCHAR"),  # streamable-http, or sse (the 2024-11-05 HTTP+SSE transport)
        ("arguments", "VARCHAR"),  # opt-in (mcp.store_content): the arguments after DLP, truncated
        ("result", "VARCHAR"),  # opt-in: the result after DLP, truncated
    ),
)

# Daily totals of mcp_calls, kept when retention drops the detail (sessions and latency
# percentiles need the detail, so the report's MCP section reads only that).
MCP_CALLS_DAILY = _daily(
    "mcp_calls_daily",
    "mcp_calls",
    {
        "user_name": ("VARCHAR", "coalesce(user_name, client_ip, '?')"),
        "user_group": ("VARCHAR", "coalesce(user_group, '-')"),
        "host": ("VARCHAR", "host"),
        "server_name": ("VARCHAR", "server_name"),
        "client_name": ("VARCHAR", "client_name"),
        "transport": ("VARCHAR", "transport"),
        "method": ("VARCHAR", "method"),
        "tool_name": ("VARCHAR", "tool_name"),
        "decision": ("VARCHAR", "decision"),
        "rule_id": ("VARCHAR", "rule_id"),
        "injection_flags": ("VARCHAR", "injection_flags"),
        "dlp_findings": ("VARCHAR", "dlp_findings"),
        "dlp_action": ("VARCHAR", "dlp_action"),
        "calls": ("BIGINT", "1"),
        "errors": ("BIGINT", "coalesce(is_error, false)"),
        "arguments_bytes": ("BIGINT", "arguments_bytes"),
        "result_bytes": ("BIGINT", "result_bytes"),
        "latency_ms": ("DOUBLE", "latency_ms"),  # summed: divide by calls for the mean
    },
    first_measure="calls",
)

# The tools an MCP server advertised in a tools/list answer: one row per tool per distinct answer
# in a session, with whether the policy filtered it out for the person asking.
MCP_TOOLS = Table(
    "mcp_tools",
    (
        ("ts", "TIMESTAMP"),
        ("request_id", "VARCHAR"),  # the tools/list call's mcp_calls.request_id
        ("user_name", "VARCHAR"),
        ("user_group", "VARCHAR"),
        ("host", "VARCHAR"),
        ("server_name", "VARCHAR"),
        ("session_id", "VARCHAR"),
        ("tool_name", "VARCHAR"),
        ("filtered", "BOOLEAN"),  # removed from the answer by the policy (or would be, in observe mode)
        ("rule_id", "VARCHAR"),
    ),
)

_COLUMN_INDEX = {name: i for i, name in enumerate(AI_REQUESTS.column_names)}
PROVIDER_COLUMN = _COLUMN_INDEX["provider"]
MODEL_COLUMN = _COLUMN_INDEX["model"]
RESPONSE_MODEL_COLUMN = _COLUMN_INDEX["response_model"]
COST_COLUMN = _COLUMN_INDEX["cost_usd"]
PRICED_MODEL_COLUMN = _COLUMN_INDEX["priced_model"]
TOKEN_COLUMNS = tuple(
    _COLUMN_INDEX[c]
    for c in ("input_tokens", "output_tokens", "cached_input_tokens", "cache_creation_input_tokens")
)

UNKNOWN_PROVIDER = "unknown"


# 32 hex digits like a UUID4's, unique across processes by the random prefix; a counter instead
# of uuid4() spares a getrandom() system call per request.
_REQUEST_ID_PREFIX = os.urandom(8).hex()
_request_counter = itertools.count()


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):016x}"


@dataclass(slots=True)
class FlowRecord:
    """Everything shadowgate learns about one flow, carried in flow.metadata between hooks."""

    started: float
    client_ip: str
    person: Person
    host: str
    site: str
    provider: Provider | None
    route: Route | None
    method: str
    path: str
    user_agent: str | None = None
    facts: RequestFacts | None = None
    key: KeySighting | None = None
    account_hint: str | None = None
    decision: Decision = DEFAULT_DECISION
    request_bytes: int = 0
    inspected: bool = True
    inspect_note: str | None = None
    overhead_ns: int = 0
    redirect_target: str | None = None
    budget_status: str | None = None
    dlp_findings: str | None = None
    dlp_action: str | None = None
    # Reversible DLP: turns the model's answer back into the user's values (memory only).
    restore: Callable[[str], str] | None = None
    placeholders: Any = None  # the request's shadowgate.dlp.Placeholders, for event-wise stream restoring
    # Identify's parse of the request body, keyed by the raw bytes it came from: DLP reuses it
    # unless a stage has rewritten the body since (memory only, never recorded).
    parsed_body: tuple[bytes, Any] | None = None
    request_id: str = field(default_factory=lambda: new_request_id())

    def policy_facts(self) -> Facts:
        """What the policy can match this request on."""
        return Facts(
            host=self.host,
            provider=self.provider.id if self.provider else None,
            category=self.provider.category if self.provider else None,
            wire_format=self.route.wire_format if self.route else None,
            model=self.facts.model if self.facts else None,
            user=self.person.user,
            group=self.person.group,
            client_ip=self.client_ip,
        )


@dataclass(slots=True)
class Outcome:
    status_code: int | None = None
    response: ResponseFacts | None = None
    usage_estimated: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    response_bytes: int | None = None
    error_type: str | None = None


def ai_request_row(rec: FlowRecord, out: Outcome) -> tuple:
    provider = rec.provider
    facts = rec.facts
    resp = out.response
    usage = resp.usage if resp else None
    return (
        utc_from_timestamp(rec.started),
        rec.request_id,
        rec.client_ip,
        rec.person.user,
        rec.person.group,
        rec.host,
        rec.site,
        provider.id if provider else UNKNOWN_PROVIDER,
        provider.category if provider else None,
        rec.route.wire_format if rec.route else None,
        (facts.operation if facts else None) or (rec.route.operation if rec.route else None),
        rec.method,
        rec.path,
        facts.model if facts else None,
        resp.model if resp else None,
        facts.streaming if facts else None,
        out.status_code,
        usage.input_tokens if usage else None,
        usage.output_tokens if usage else None,
        usage.cached_input_tokens if usage else None,
        usage.cache_creation_input_tokens if usage else None,
        usage.reasoning_tokens if usage else None,
        out.usage_estimated,
        None,  # cost_usd: priced by the writer thread, off the event loop
        None,  # priced_model
        rec.decision.action,
        rec.decision.rule_id,
        out.latency_ms,
        out.ttft_ms,
        rec.request_bytes,
        out.response_bytes,
        rec.key.fingerprint if rec.key else None,
        rec.key.kind if rec.key else None,
        rec.account_hint,
        rec.inspected,
        rec.inspect_note,
        ",".join(resp.finish_reasons) if resp and resp.finish_reasons else None,
        resp.response_id if resp else None,
        out.error_type or (resp.error_type if resp else None),
        rec.user_agent,
        rec.overhead_ns // 1000,
        rec.redirect_target,
        rec.budget_status,
        rec.dlp_findings,
        rec.dlp_action,
    )
