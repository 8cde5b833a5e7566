"""mcp/dlp.py scan_message: what a redaction may change in a client's MCP message, and what refuses
it instead (red-team F42). The end-to-end attacks are tests/adversarial/test_mcp_dlp_scope.py."""

from __future__ import annotations

from typing import Any

import pytest

from shadowgate.config.attribution import Person
from shadowgate.config.policy import DlpPolicy
from shadowgate.mcp.dlp import scan_message
from shadowgate.mcp.dlp import scan_messages
from shadowgate.mcp.session import RESPONSE
from shadowgate.mcp.session import McpCall

AWS = "AKIA2OGYBAH6STMMNXNN"
REDACT = DlpPolicy(secrets="redact", pii="log")


def _call(method: str, rpc_id: Any = 1) -> McpCall:
    return McpCall(
        started=0.0, client_ip="10.0.0.1", person=Person("ann", None), host="example.com", port=443,
        rpc_id=rpc_id, method=method, server=None, observe=False,
    )  # fmt: skip


def test_a_value_in_params_is_redacted_and_the_arguments_stay_as_they_were():
    arguments = {"q": "weather", "n": 3}
    item = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": arguments, "_meta": {"note": AWS}}}  # fmt: skip
    call = _call("tools/call")
    new, refusal = scan_message(call, item, REDACT, observe=False)
    assert refusal is None and new["params"]["_meta"]["note"] == "[AWS_ACCESS_KEY_1]"
    assert new["params"]["arguments"] is arguments and new["params"]["name"] == "search"
    assert (call.dlp_findings, call.dlp_action) == ("AWS_ACCESS_KEY:1", "redact")


@pytest.mark.parametrize(
    ("method", "item"),
    [
        ("tools/call", {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": AWS, "arguments": {}}}),
        (
            "tools/call",
            {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "s", "arguments": {AWS: 1}}},
        ),
        ("prompts/get", {"jsonrpc": "2.0", "id": 1, "method": "prompts/get", "params": {}, AWS: "x"}),
        (RESPONSE, {"jsonrpc": "2.0", "id": f"srv {AWS}", "result": {}}),
        (RESPONSE, {"jsonrpc": "2.0", "id": "srv-1", "result": {"roots": [{"uri": f"file:///home/{AWS}"}]}}),
        # Under a key the API path skips as a provider's opaque value (`signature`): a server reads it.
        (
            "tools/call",
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "s", "arguments": {}, "_meta": {"signature": AWS}},
            },
        ),
    ],
    ids=["tool-name", "argument-name", "member-name", "answer-id", "uri", "opaque-key"],
)
def test_a_value_to_redact_where_a_new_value_makes_another_message_refuses_it(method, item):
    call = _call(method, item.get("id"))
    new, refusal = scan_message(call, item, REDACT, observe=False)
    assert new is None and refusal is not None and "mcp:dlp" in refusal
    assert (call.decision, call.dlp_action, call.is_error) == ("block", "block", True)


def test_in_observe_mode_nothing_is_refused_or_rewritten():
    item = {"jsonrpc": "2.0", "id": "srv-1", "result": {"action": "accept", "content": {"k": AWS}}}
    call = _call(RESPONSE, "srv-1")
    call.observe = True
    assert scan_message(call, item, DlpPolicy(secrets="block"), observe=True) == (None, None)
    assert (call.decision, call.dlp_action) == ("allow", "would_block")


def test_a_refused_notification_is_left_out_and_a_refused_request_goes_on_as_a_ping():
    note = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"message": AWS}}
    request = {"jsonrpc": "2.0", "id": 7, "method": "completion/complete", "params": {"argument": {"value": AWS}}}
    clean = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    forwarded = [note, request, clean]
    record, call = _call("notifications/progress", None), _call("completion/complete", 7)
    quiet = _call("notifications/initialized", None)
    scan_messages([call], [(record, note), (quiet, clean)], forwarded, DlpPolicy(secrets="block"), observe=False)
    assert forwarded == [{"jsonrpc": "2.0", "id": 7, "method": "ping"}, clean]
    assert record.refusal and call.refusal and quiet.refusal is None and quiet.dlp_findings is None
