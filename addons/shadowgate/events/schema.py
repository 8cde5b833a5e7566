"""One SIEM event per decision that matters, built from the row Record submits.

The field names are a contract (docs/siem.md lists them): ECS names where ECS has one
(`@timestamp`, `event.action`, `user.name`, `source.ip`, `destination.domain`, `url.path`,
`http.response.status_code`, `rule.id`, ...), OTel GenAI names for the model and tokens
(`gen_ai.request.model`, `gen_ai.usage.input_tokens`), and the rest under `shadowgate.*`.
Fields with no value are left out. Never renamed; new ones are added.

`wanted()` runs on the event loop for every submitted row, so it only reads a few attributes;
`event_of()` builds the dictionary on the feed's thread.
"""

from __future__ import annotations

import datetime as dt
import socket
from typing import Any

from shadowgate import __version__
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import ALERTS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import MCP_TOOLS
from shadowgate.storage.rows import POLICY_EVENTS
from shadowgate.storage.rows import AiRequest
from shadowgate.storage.rows import AlertRow
from shadowgate.storage.rows import McpCallRow
from shadowgate.storage.rows import McpToolRow
from shadowgate.storage.rows import PolicyEvent

SCHEMA_VERSION = "1"
PINNED_PASSED_NOTE = "client pins certificates: passed through"
ALLOW = "allow"
# event.action -> severity 0..10 (CEF's scale; syslog's is derived from it in formats.py).
SEVERITY = {
    "block": 7,
    "rate_limit": 6,
    "dlp_block": 8,
    "mcp_block": 7,
    "mcp_tool_filtered": 5,
    "mcp_injection": 7,
    "redirect": 4,
    "coach": 4,
    "coach_continue": 5,
    "host_mismatch": 7,
    "dlp_redact": 5,
    "dlp_log": 4,
    "dlp_error": 6,
    "pinned_passthrough": 5,
    "passthrough": 3,
    "not_inspected": 3,
    "budget_near": 4,
    "allow": 1,
}
ALERT_SEVERITY = 6
HOSTNAME = socket.gethostname()


def wanted(table: str, row: Any, every_call: bool) -> bool:
    """Whether a submitted row is a decision that matters (every_call: every AI call too)."""
    if table == AI_REQUESTS.name:
        return (
            every_call
            or row.decision != ALLOW
            or row.dlp_action is not None
            or not row.inspected
            or (row.budget_status is not None)
        )
    if table == MCP_CALLS.name:
        return (
            every_call
            or (row.decision is not None and row.decision != ALLOW)
            or row.dlp_action is not None
            or bool(row.injection_flags)
        )
    if table == MCP_TOOLS.name:
        return bool(row.filtered)
    return table == POLICY_EVENTS.name


def action_of(table: str, row: Any) -> str:
    """event.action: the one word a SIEM rule keys on (observe mode keeps its would_ prefix)."""
    if table == AI_REQUESTS.name:
        if row.decision and row.decision != ALLOW:
            return row.decision
        if row.dlp_action:
            action = row.dlp_action
            if action.startswith("would_"):
                return "would_dlp_" + action.removeprefix("would_")
            return "dlp_" + action
        if not row.inspected:
            if row.inspect_note == PINNED_PASSED_NOTE:
                return "pinned_passthrough"
            return "passthrough" if row.inspect_note == "not decrypted by policy" else "not_inspected"
        return "budget_near" if row.budget_status else ALLOW
    if table == MCP_CALLS.name:
        if row.decision and row.decision != ALLOW:
            return "mcp_" + row.decision
        if row.dlp_action:
            return "mcp_dlp_" + row.dlp_action
        return "mcp_injection" if row.injection_flags else "mcp_allow"
    if table == MCP_TOOLS.name:
        return "mcp_tool_filtered"
    if table == ALERTS.name:
        return f"alert_{row.event}"
    return str(row.event)


def severity_of(action: str) -> int:
    if action.startswith("alert_"):
        return ALERT_SEVERITY
    return SEVERITY.get(action.removeprefix("would_"), 3 if action.startswith("would_") else 4)


def _ts(value: dt.datetime | None) -> str:
    value = value or dt.datetime.now(dt.UTC).replace(tzinfo=None)
    return value.isoformat(timespec="milliseconds") + "Z"


def _put(doc: dict[str, Any], dotted: str, value: Any) -> None:
    if value is None or value == "":
        return
    *parents, leaf = dotted.split(".")
    node = doc
    for key in parents:
        node = node.setdefault(key, {})
    node[leaf] = value


def _outcome(action: str) -> str:
    plain = action.removeprefix("mcp_")
    if action.startswith("would_") or plain in ("allow", "passthrough", "not_inspected", "budget_near"):
        return "success"
    if plain in ("block", "rate_limit", "dlp_block", "tool_filtered", "host_mismatch"):
        return "failure"
    return "unknown"


def event_of(table: str, row: Any) -> dict[str, Any]:
    """The event for one row (nested, ECS style); see docs/siem.md."""
    action = action_of(table, row)
    doc: dict[str, Any] = {"@timestamp": _ts(row.ts)}
    kind = {MCP_CALLS.name: "mcp", MCP_TOOLS.name: "mcp", POLICY_EVENTS.name: "policy", AI_REQUESTS.name: "ai"}.get(
        table, table.removesuffix("s")
    )
    doc["event"] = {
        "kind": "alert" if table == ALERTS.name else "event",
        "category": ["network"],
        "type": ["denied"] if _outcome(action) == "failure" else ["info"],
        "action": action,
        "outcome": _outcome(action),
        "severity": severity_of(action),
        "dataset": f"shadowgate.{kind}",
        "module": "shadowgate",
    }
    _put(doc, "observer.vendor", "shadowgate")
    _put(doc, "observer.product", "shadowgate")
    _put(doc, "observer.type", "proxy")
    _put(doc, "observer.version", __version__)
    _put(doc, "observer.hostname", HOSTNAME)
    _put(doc, "ecs.version", "8.11")
    _put(doc, "shadowgate.schema", SCHEMA_VERSION)
    _put(doc, "user.name", row.user_name)
    _put(doc, "user.group.name", getattr(row, "user_group", None))
    _put(doc, "source.ip", getattr(row, "client_ip", None))
    _put(doc, "destination.domain", row.host)
    _put(doc, "rule.id", row.rule_id)
    if isinstance(row, AiRequest):
        _ai_fields(doc, row)
    elif isinstance(row, McpCallRow):
        _put(doc, "event.id", row.request_id)
        _put(doc, "shadowgate.decision", row.decision)
        _put(doc, "shadowgate.mcp.server", row.server_name)
        _put(doc, "shadowgate.mcp.method", row.method)
        _put(doc, "shadowgate.mcp.tool", row.tool_name)
        _put(doc, "shadowgate.mcp.session_id", row.session_id)
        _put(doc, "shadowgate.mcp.injection_flags", row.injection_flags)
        _put(doc, "shadowgate.dlp.action", row.dlp_action)
        _put(doc, "shadowgate.dlp.findings", row.dlp_findings)
    elif isinstance(row, McpToolRow):
        _put(doc, "event.id", row.request_id)
        _put(doc, "shadowgate.mcp.server", row.server_name)
        _put(doc, "shadowgate.mcp.tool", row.tool_name)
        _put(doc, "shadowgate.mcp.session_id", row.session_id)
    elif isinstance(row, PolicyEvent):
        _put(doc, "shadowgate.provider", row.provider)
        _put(doc, "event.reason", row.detail)
    elif isinstance(row, AlertRow):
        _alert_fields(doc, row)
        return doc
    doc["message"] = message_of(doc)
    return doc


def _alert_fields(doc: dict[str, Any], row: AlertRow) -> None:
    _put(doc, "shadowgate.provider", row.provider)
    _put(doc, "shadowgate.alert.event", row.event)
    _put(doc, "shadowgate.alert.key", row.alert_key)
    _put(doc, "shadowgate.alert.destinations", row.destinations.split(",") if row.destinations else None)
    _put(doc, "shadowgate.alert.delivered", row.delivered)
    _put(doc, "shadowgate.alert.suppressed", row.suppressed or None)
    doc["message"] = row.summary or f"alert {row.event}: {row.alert_key}"


def alert_event(row: AlertRow, alert_id: str, request_id: str | None = None) -> dict[str, Any]:
    """An alert as an event (kind `alert`, action `alert_<event>`): the same one goes to a syslog
    destination and into the SIEM feed, under one event.id. request_id: the call behind it."""
    doc = event_of(ALERTS.name, row)
    _put(doc, "event.id", alert_id)
    _put(doc, "shadowgate.alert.request_id", request_id)
    return doc


def _ai_fields(doc: dict[str, Any], row: AiRequest) -> None:
    _put(doc, "event.id", row.request_id)
    _put(doc, "destination.registered_domain", row.site)
    _put(doc, "url.path", row.path)
    _put(doc, "http.request.method", row.method)
    _put(doc, "http.response.status_code", row.status_code)
    _put(doc, "user_agent.original", row.user_agent)
    _put(doc, "gen_ai.request.model", row.model)
    _put(doc, "gen_ai.response.model", row.response_model)
    _put(doc, "gen_ai.operation.name", row.operation)
    _put(doc, "gen_ai.usage.input_tokens", row.input_tokens)
    _put(doc, "gen_ai.usage.output_tokens", row.output_tokens)
    _put(doc, "shadowgate.provider", row.provider)
    _put(doc, "shadowgate.category", row.category)
    _put(doc, "shadowgate.decision", row.decision)
    _put(doc, "shadowgate.inspected", row.inspected)
    _put(doc, "shadowgate.inspect_note", row.inspect_note)
    _put(doc, "shadowgate.redirect_target", row.redirect_target)
    _put(doc, "shadowgate.budget_status", row.budget_status)
    _put(doc, "shadowgate.dlp.action", row.dlp_action)
    _put(doc, "shadowgate.dlp.findings", row.dlp_findings)
    _put(doc, "shadowgate.key_fingerprint", row.key_fingerprint)
    _put(doc, "shadowgate.cost_usd", row.cost_usd)


def message_of(doc: dict[str, Any]) -> str:
    """One human line: 'block: alice -> api.openai.com (openai) rule no-chatgpt'."""
    sg = doc.get("shadowgate", {})
    who = doc.get("user", {}).get("name") or doc.get("source", {}).get("ip") or "?"
    where = doc.get("destination", {}).get("domain") or "?"
    what = sg.get("provider") or sg.get("mcp", {}).get("tool") or ""
    text = f"{doc['event']['action']}: {who} -> {where}" + (f" ({what})" if what else "")
    if rule := doc.get("rule", {}).get("id"):
        text += f" rule {rule}"
    return text


def get(doc: dict[str, Any], dotted: str) -> Any:
    """A dotted field of an event, or None."""
    node: Any = doc
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return None
        node = node[key]
    return node
