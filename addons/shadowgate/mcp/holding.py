"""The MCP stage's side of approval: which calls wait, and what becomes of them after the decision.

A call that needs approval is held after the other checks and DLP (so the approver sees, and
approves, the arguments as the server will get them). Approved, it goes on unchanged: the held
request's body is what is sent, so nothing can be swapped in after the click. Anything else is a
refusal the stage already knows how to send: the JSON-RPC error with the request's id (or, where
the proxy cannot answer alone, a ping whose answer becomes the refusal).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from mitmproxy import http

from shadowgate.config.policy import McpServer
from shadowgate.config.policy import Policy
from shadowgate.mcp.approval import ABANDONED
from shadowgate.mcp.approval import APPROVED
from shadowgate.mcp.approval import DENIED
from shadowgate.mcp.approval import PAGE_CHARS
from shadowgate.mcp.approval import TIMEOUT
from shadowgate.mcp.approval import WOULD_APPROVE
from shadowgate.mcp.approval import Approvals
from shadowgate.mcp.approval import HoldRequest
from shadowgate.mcp.approval import requester_of
from shadowgate.mcp.dlp import stored
from shadowgate.mcp.jsonrpc import POLICY_ERROR_CODE
from shadowgate.mcp.jsonrpc import id_key
from shadowgate.mcp.jsonrpc import is_request
from shadowgate.mcp.jsonrpc import ping
from shadowgate.mcp.session import McpCall
from shadowgate.mcp.session import Outgoing

log = logging.getLogger(__name__)


def arguments_of(item: Any) -> Any:
    params = item.get("params") if isinstance(item, dict) else None
    return params.get("arguments") if isinstance(params, dict) else None


def needs_approval(call: McpCall, item: dict, server: McpServer, observe: bool) -> None:
    """Mark a tools/call the server entry holds for approval (observe mode: would_approve)."""
    rule = server.approve
    reason = rule.reason(call.tool_name, arguments_of(item)) if rule is not None else None
    if reason is None:
        return
    call.rule_id = f"mcp:{server.id}:approval"
    if observe:
        call.decision = WOULD_APPROVE
    else:
        call.approval = reason


def refusal_message(call: McpCall, decision: str, timeout: float, approver: str | None) -> str:
    tool, rule = call.tool_name or "(no tool name)", call.rule_id
    if decision == DENIED and approver:
        return f"shadowgate: {approver} denied the call to {tool} (rule {rule})"
    if decision == DENIED:
        return f"shadowgate: the call to {tool} needs approval, and no approver could be reached (rule {rule})"
    if decision == TIMEOUT:
        return (
            f"shadowgate: no approver decided on the call to {tool} within {timeout:g} s; it is refused (rule {rule})"
        )
    return f"shadowgate: the call to {tool} was dropped: the client left while it waited for approval (rule {rule})"


def _refuse(call: McpCall, out: Outgoing, index: int, decision: str, message: str) -> None:
    call.decision = decision
    call.is_error, call.error_code = True, POLICY_ERROR_CODE
    call.refusal = message
    out.forwarded[index] = ping(call.rpc_id)


def stopped_calls(approvals: Approvals) -> list[McpCall]:
    """The calls held when the proxy stops, each refused as abandoned (rule ...:stopped), for
    their rows: their flows end without an answer or error hook."""
    calls = []
    for held in approvals.stop():
        call = held.call
        call.decision, call.approver = ABANDONED, None
        call.rule_id += ":stopped"
        call.is_error, call.error_code = True, POLICY_ERROR_CODE
        calls.append(call)
    return calls


async def hold_calls(
    approvals: Approvals, policy: Policy, flow: http.HTTPFlow, out: Outgoing, held: list[McpCall]
) -> None:
    """Wait for the decisions on a request's held calls (together: one batch, one wait)."""
    approval = policy.mcp.approval if policy.mcp is not None else None
    index = {id_key(m.get("id")): i for i, m in enumerate(out.forwarded) if is_request(m) and "id" in m}

    async def one(call: McpCall) -> None:
        i = index.get(id_key(call.rpc_id))
        if i is None or call.refusal is not None or call.is_error:
            return  # refused already (DLP)
        if approval is None:
            _refuse(call, out, i, DENIED, refusal_message(call, DENIED, 0, None))
            return
        requester = requester_of(call)
        if requester is None:
            # Control or filter characters, `*`, nothing: no approver could be told apart from it.
            call.rule_id += ":identity"
            message = (
                f"shadowgate: the call to {call.tool_name} needs approval, but the proxy user name cannot be "
                f"tied to an approval (rule {call.rule_id})"
            )
            _refuse(call, out, i, "block", message)
            return
        busy = approvals.busy(approval, requester)
        if busy is not None:
            call.rule_id += ":busy"
            message = (
                f"shadowgate: the call to {call.tool_name} needs approval, but {busy}; try later (rule {call.rule_id})"
            )
            _refuse(call, out, i, "block", message)
            return
        arguments = arguments_of(out.forwarded[i])
        shown = stored(arguments, call.dlp_actions, PAGE_CHARS + 1)  # one more: says whether it is all
        request = HoldRequest(call, arguments, call.approval or "", shown)
        try:
            decided = await approvals.hold(request, flow.client_conn, approval, policy.alerts)
        except Exception:
            log.exception("shadowgate: holding an MCP call for approval failed; it is refused")
            _refuse(call, out, i, DENIED, refusal_message(call, DENIED, 0, None))
            return
        call.approver = decided.approver
        decision = decided.decision
        if flow.client_conn.timestamp_end is not None and decision == APPROVED:
            decision = ABANDONED  # approved, but nobody is there for the answer: not sent
        if decision == APPROVED:
            call.decision = APPROVED
            return
        _refuse(call, out, i, decision, refusal_message(call, decision, approval.timeout, decided.approver))

    await asyncio.gather(*(one(c) for c in held))
