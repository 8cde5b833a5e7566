"""Class 3: a Realtime session cannot give the model an MCP server the policy does not allow
(red-team F29).

`session.update` (`session.tools`) and `response.create` (`response.tools`) take the same
provider-hosted MCP tool as a Responses call; they reached the provider under
`mcp: {unlisted: block}`. Such a message is now dropped with an error event in the provider's
shape, the session goes on, and its row says why. A real mitmdump in front of the test
WebSocket server; each test asserts what the provider received, what the client got and the row.
"""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect

from tests.adversarial.test_realtime import ws_policy  # noqa: F401 - fixtures shared with that module
from tests.adversarial.test_realtime import ws_proxy  # noqa: F401
from tests.adversarial.test_realtime import ws_upstream  # noqa: F401
from tests.adversarial.test_realtime_setup import EVIL_MCP
from tests.adversarial.test_realtime_setup import LISTED_MCP
from tests.support.wsclient import ws_ssl_context

POLICY = "mcp:\n  unlisted: block\n  servers:\n    - {id: gh, host: github-mcp.corp.example}\n"
URL = "wss://api.openai.com/v1/realtime?model=gpt-realtime"


def _next(ws, kind: str) -> dict:
    while True:
        event = json.loads(ws.recv(5))
        if event.get("type") == kind:
            return event


def _received_since(server, before: int) -> list[str]:
    time.sleep(0.3)  # the upstream thread logs what it got
    return server.received[before:]


def test_session_update_and_response_create_naming_an_unlisted_server_are_refused(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy(POLICY)
    before = len(ws_upstream.received)
    with connect(URL, proxy=proxy.url("rtm-evil"), ssl=ws_ssl_context(proxy), open_timeout=10) as ws:
        ws.recv(5)  # session.created
        ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "tools": [EVIL_MCP]}}))
        error = _next(ws, "error")
        assert "evil-mcp.example" in error["error"]["message"] and "mcp:unlisted" in error["error"]["message"]
        ws.send(json.dumps({"type": "response.create", "response": {"tools": [EVIL_MCP]}}))
        assert "evil-mcp.example" in _next(ws, "error")["error"]["message"]
        ws.send(json.dumps({"type": "response.create"}))  # the session goes on
        assert _next(ws, "response.done")["response"]["status"] == "completed"
    received = _received_since(ws_upstream, before)
    assert not [m for m in received if "evil-mcp.example" in m]
    assert [json.loads(m)["type"] for m in received] == ["response.create"]
    [row] = proxy.rows("user_name = 'rtm-evil'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "mcp:unlisted")


def test_a_listed_server_with_its_tools_named_goes_through(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy(POLICY)
    before = len(ws_upstream.received)
    update = {"type": "session.update", "session": {"type": "realtime", "tools": [LISTED_MCP]}}
    with connect(URL, proxy=proxy.url("rtm-ok"), ssl=ws_ssl_context(proxy), open_timeout=10) as ws:
        ws.recv(5)
        ws.send(json.dumps(update))
        ws.send(json.dumps({"type": "response.create"}))
        _next(ws, "response.done")
    received = _received_since(ws_upstream, before)
    assert [json.loads(m) for m in received] == [update, {"type": "response.create"}]
    [row] = proxy.rows("user_name = 'rtm-ok'", expect=1)
    assert row["decision"] == "allow"


def test_observe_mode_records_the_server_and_lets_it_pass(ws_policy, ws_upstream):  # noqa: F811
    proxy = ws_policy("mode: observe\n" + POLICY)
    before = len(ws_upstream.received)
    with connect(URL, proxy=proxy.url("rtm-observe"), ssl=ws_ssl_context(proxy), open_timeout=10) as ws:
        ws.recv(5)
        ws.send(json.dumps({"type": "session.update", "session": {"type": "realtime", "tools": [EVIL_MCP]}}))
        ws.send(json.dumps({"type": "response.create"}))
        _next(ws, "response.done")
    assert any("evil-mcp.example" in m for m in _received_since(ws_upstream, before))
    [row] = proxy.rows("user_name = 'rtm-observe'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("would_block", "mcp:unlisted")
