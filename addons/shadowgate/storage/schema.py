"""The tables shadowgate records and their daily rollups.

Every detail table is defined by its row dataclass in storage/rows.py (columns, types, a
description each); the rollups here are SQL over those columns. The column names are a contract that reports, checks
and users' own SQL rely on. Add columns at the end; never rename one.
"""

from __future__ import annotations

from shadowgate.flow import FlowRecord
from shadowgate.flow import Outcome
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import ALERTS
from shadowgate.storage.rows import HOST_SIGHTINGS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import MCP_TOOLS
from shadowgate.storage.rows import POLICY_EVENTS
from shadowgate.storage.rows import UNKNOWN_PROVIDER
from shadowgate.storage.rows import WEB_ACTIVITY
from shadowgate.storage.store import Rollup
from shadowgate.storage.store import Table

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

# Daily totals of web_activity (chat web apps), kept when retention drops the detail.
WEB_ACTIVITY_DAILY = _daily(
    "web_activity_daily",
    "web_activity",
    {
        "user_name": ("VARCHAR", "coalesce(user_name, client_ip, '?')"),
        "user_group": ("VARCHAR", "coalesce(user_group, '-')"),
        "app": ("VARCHAR", "app"),
        "endpoint": ("VARCHAR", "endpoint"),
        "activity": ("VARCHAR", "activity"),
        "account_kind": ("VARCHAR", "account_kind"),
        "decision": ("VARCHAR", "decision"),
        "rule_id": ("VARCHAR", "rule_id"),
        "dlp_findings": ("VARCHAR", "dlp_findings"),
        "dlp_action": ("VARCHAR", "dlp_action"),
        "parse_status": ("VARCHAR", "parse_status"),
        "transport": ("VARCHAR", "transport"),
        "requests": ("BIGINT", "1"),
        "text_chars": ("BIGINT", "text_chars"),
        "file_bytes": ("BIGINT", "file_bytes"),
        "file_count": ("BIGINT", "file_count"),
    },
    first_measure="requests",
)

ALL_TABLES = (AI_REQUESTS, POLICY_EVENTS, MCP_CALLS, MCP_TOOLS, HOST_SIGHTINGS, ALERTS, WEB_ACTIVITY)
ALL_ROLLUPS = (AI_REQUESTS_DAILY, MCP_CALLS_DAILY, WEB_ACTIVITY_DAILY)

# FlowRecord and Outcome moved to shadowgate.flow; kept importable here for older imports.
__all__ = [
    "AI_REQUESTS",
    "AI_REQUESTS_DAILY",
    "ALERTS",
    "ALL_ROLLUPS",
    "ALL_TABLES",
    "HOST_SIGHTINGS",
    "MCP_CALLS",
    "MCP_CALLS_DAILY",
    "MCP_TOOLS",
    "POLICY_EVENTS",
    "UNKNOWN_PROVIDER",
    "WEB_ACTIVITY",
    "WEB_ACTIVITY_DAILY",
    "FlowRecord",
    "Outcome",
]
