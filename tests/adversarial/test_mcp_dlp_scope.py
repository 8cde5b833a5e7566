"""DLP reads every message an MCP client sends, not only tools/call arguments (red-team F42).

An agent hands a listed MCP server a key in whatever the protocol lets it write: the arguments of
prompts/get (the server renders them into a prompt), completion/complete, a resources/read URI, a
tools/call's _meta or an extra member, the client's answers to the server's own requests
(elicitation exists to collect data from the user; sampling, roots, an error's message) and
notifications. Through a real mitmdump, each must be refused (secrets: block) or redacted
(secrets: redact) as tools/call arguments are, and leave an mcp_calls row, over Streamable HTTP
and over WebSocket (the same planner).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.adversarial.wire import marker
from tests.conftest import Proxy
from tests.conftest import start_proxy
from tests.support.mcp_ws import RawWebSocket
from tests.support.mcp_ws import recording_route
from tests.test_mcp import CORP
from tests.test_mcp import calls
from tests.test_mcp import mcp_server

AWS = "AKIA2OGYBAH6STMMNXNN"
CARD = 4539148803436467  # a JSON number: a card type the policy blocks
POLICY = (
    "dlp: {secrets: block, pii: log, types: {CREDIT_CARD: block}}\n"
    "mcp:\n  unlisted: block\n  servers:\n    - {id: ex, host: example.com}\n"
)
REDACTING = "dlp: {secrets: redact, pii: log}\nmcp:\n  servers:\n    - {id: ex, host: example.com}\n"
HEADERS = {
    "content-type": "application/json",
    "accept": "application/json, text/event-stream",
    "mcp-session-id": "sess-f42",
    "mcp-protocol-version": "2025-06-18",
}
RESPONSE = "response"  # the operation of a client's answer to a server request

# name: (message, the operation its row names)
REQUESTS: dict[str, tuple[dict, str]] = {
    "prompts-get": (
        {"jsonrpc": "2.0", "id": 4, "method": "prompts/get", "params": {"name": "review", "arguments": {"code": f"k = '{AWS}'"}}},
        "prompts/get",
    ),
    "completion": (
        {"jsonrpc": "2.0", "id": 5, "method": "completion/complete",
         "params": {"ref": {"type": "ref/prompt", "name": "review"}, "argument": {"name": "code", "value": AWS}}},
        "completion/complete",
    ),
    "resources-read-uri": (
        {"jsonrpc": "2.0", "id": 6, "method": "resources/read", "params": {"uri": f"notes://{AWS}"}},
        "resources/read",
    ),
    "tools-call-meta": (
        {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
         "params": {"name": "search", "arguments": {"q": "x"}, "_meta": {"progressToken": AWS}}},
        "tools/call",
    ),
    "tools-call-extra-member": (
        {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "search", "arguments": {"q": "x"}, "input": AWS}},
        "tools/call",
    ),
    "tools-call-argument-name": (
        {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "search", "arguments": {AWS: "x"}}},
        "tools/call",
    ),
    # Cut across two items of one argument, which the tool may join (red-team F52).
    "tools-call-split-arguments": (
        {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
         "params": {"name": "write_note", "arguments": {"parts": [AWS[:10], AWS[10:]]}}},
        "tools/call",
    ),
}  # fmt: skip
ONE_WAY: dict[str, tuple[dict, str]] = {
    "elicitation-answer": (
        {"jsonrpc": "2.0", "id": "srv-7", "result": {"action": "accept", "content": {"aws_access_key": AWS}}},
        RESPONSE,
    ),
    "elicitation-answer-key-name": (
        {"jsonrpc": "2.0", "id": "srv-13", "result": {"action": "accept", "content": {AWS: True}}},
        RESPONSE,
    ),
    "elicitation-answer-card-number": (
        {"jsonrpc": "2.0", "id": "srv-14", "result": {"action": "accept", "content": {"card number": CARD}}},
        RESPONSE,
    ),
    "elicitation-answer-large": (  # over 64 K: scanned on a worker thread
        {"jsonrpc": "2.0", "id": "srv-15", "result": {"action": "accept", "content": {"notes": "lorem ipsum " * 7000, "k": AWS}}},
        RESPONSE,
    ),
    "sampling-answer": (
        {"jsonrpc": "2.0", "id": "srv-8",
         "result": {"role": "assistant", "model": "x", "content": {"type": "text", "text": f"the key is {AWS}"}}},
        RESPONSE,
    ),
    "roots-answer-uri": (
        {"jsonrpc": "2.0", "id": "srv-9", "result": {"roots": [{"uri": f"file:///home/{AWS}", "name": "home"}]}},
        RESPONSE,
    ),
    "error-answer": (
        {"jsonrpc": "2.0", "id": "srv-12", "error": {"code": -1, "message": f"key {AWS}"}},
        RESPONSE,
    ),
    "cancelled-notification": (
        {"jsonrpc": "2.0", "method": "notifications/cancelled", "params": {"requestId": 1, "reason": f"key {AWS}"}},
        "notifications/cancelled",
    ),
    "progress-notification": (
        {"jsonrpc": "2.0", "method": "notifications/progress",
         "params": {"progressToken": 1, "progress": 1, "message": f"key {AWS}"}},
        "notifications/progress",
    ),
}  # fmt: skip
CASES = {**REQUESTS, **ONE_WAY}
SECRET_HELD = (AWS.encode(), str(CARD).encode())


def _post(proxy: Proxy, user: str, message: Any):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            "https://example.com/mcp", content=json.dumps(message).encode(), headers={"x-attack": mark, **HEADERS}
        )
    return answer, mark


def _reached(upstream, mark: str) -> list[bytes]:
    return [s.body for s in upstream.seen if s.headers.get("x-attack") == mark]


def _outcome(row: dict) -> tuple:
    return row["method"], row["decision"], row["rule_id"], row["dlp_action"]


def _user(case: str) -> str:
    return f"f42-{case}-{marker()[:6]}"


@pytest.mark.parametrize("case", sorted(CASES))
def test_a_key_anywhere_in_a_client_message_is_refused_and_recorded(proxy_with, upstream, case):
    proxy = proxy_with(POLICY)
    message, operation = CASES[case]
    user = _user(case)
    answer, mark = _post(proxy, user, message)
    assert not any(secret in body for body in _reached(upstream, mark) for secret in SECRET_HELD), (
        f"{case}: the value reached the MCP server"
    )
    if case in REQUESTS:  # answered with its id, as a refused tools/call
        assert answer.status_code == 200, answer.text
        assert answer.json()["id"] == message["id"] and "mcp:ex:dlp" in answer.json()["error"]["message"]
    else:  # nothing answers it: an error without an id, on an HTTP error status
        assert answer.status_code == 403, answer.text
        assert answer.json()["id"] is None and "mcp:ex:dlp" in answer.json()["error"]["message"]
    [row] = calls(proxy, f"user_name = '{user}'", 1)
    assert _outcome(row) == (operation, "block", "mcp:ex:dlp", "block")
    assert row["dlp_findings"] and ("AWS_ACCESS_KEY" in row["dlp_findings"] or "CREDIT_CARD" in row["dlp_findings"])
    assert AWS not in json.dumps(row, default=str)


@pytest.mark.parametrize(
    "case",
    ["prompts-get", "completion", "tools-call-meta", "elicitation-answer", "sampling-answer", "progress-notification"],
)
def test_a_key_anywhere_in_a_client_message_is_redacted_under_redact(proxy_with, upstream, case):
    proxy = proxy_with(REDACTING)
    message, operation = CASES[case]
    user = _user(case)
    _, mark = _post(proxy, user, message)
    [body] = _reached(upstream, mark)
    assert AWS.encode() not in body and b"[AWS_ACCESS_KEY_1]" in body
    sent = json.loads(body)
    assert sent.get("id") == message.get("id") and sent.get("method") == message.get("method")
    [row] = calls(proxy, f"user_name = '{user}'", 1)
    assert (*_outcome(row), row["dlp_findings"]) == (operation, "allow", "mcp:ex", "redact", "AWS_ACCESS_KEY:1")


@pytest.mark.parametrize("case", ["resources-read-uri", "tools-call-argument-name", "tools-call-split-arguments"])
def test_a_key_that_names_a_resource_or_an_argument_is_refused_under_redact(proxy_with, upstream, case):
    # A new URI is another resource, a renamed argument one scan_arguments' copy would not carry.
    proxy = proxy_with(REDACTING)
    message, _ = CASES[case]
    answer, mark = _post(proxy, _user(case), message)
    assert _reached(upstream, mark) == [] and "mcp:ex:dlp" in answer.json()["error"]["message"]


def test_a_batch_goes_on_without_the_answer_that_holds_a_key(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    user = _user("batch")
    clean = {"jsonrpc": "2.0", "id": 10, "method": "tools/call", "params": {"name": "search", "arguments": {"q": "x"}}}
    leaking = {"jsonrpc": "2.0", "id": "srv-11", "result": {"action": "accept", "content": {"k": AWS}}}
    _, mark = _post(proxy, user, [clean, leaking])
    [body] = _reached(upstream, mark)
    assert json.loads(body) == [clean]
    rows = {r["method"]: r for r in calls(proxy, f"user_name = '{user}'", 2)}
    assert (rows["tools/call"]["decision"], rows["tools/call"]["dlp_findings"]) == ("allow", None)
    assert (rows[RESPONSE]["decision"], rows[RESPONSE]["dlp_findings"]) == ("block", "AWS_ACCESS_KEY:1")


def test_a_batch_of_refused_messages_sends_the_server_only_a_ping(proxy_with, upstream):
    # A refused request of a batch goes on as a ping (its answer becomes the refusal), as for
    # tools/call; a refused notification is left out.
    proxy = proxy_with(POLICY)
    user = _user("batch-refused")
    denied = {"jsonrpc": "2.0", "id": 20, "method": "prompts/get", "params": {"name": "p", "arguments": {"c": AWS}}}
    leaking = {"jsonrpc": "2.0", "method": "notifications/progress", "params": {"progressToken": 1, "message": AWS}}
    _, mark = _post(proxy, user, [denied, leaking])
    assert [json.loads(body) for body in _reached(upstream, mark)] == [[{"jsonrpc": "2.0", "id": 20, "method": "ping"}]]
    rows = calls(proxy, f"user_name = '{user}'", 2)
    assert sorted((r["method"], r["decision"]) for r in rows) == [
        ("notifications/progress", "block"),
        ("prompts/get", "block"),
    ]


def test_clean_notifications_and_answers_go_on_and_leave_a_row(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    user = _user("clean")
    initialized = {"jsonrpc": "2.0", "method": "notifications/initialized"}
    roots = {"jsonrpc": "2.0", "id": "srv-1", "result": {"roots": [{"uri": "file:///home/project", "name": "project"}]}}
    for message in (initialized, roots):
        _, mark = _post(proxy, user, message)
        assert [json.loads(body) for body in _reached(upstream, mark)] == [message]
    rows = calls(proxy, f"user_name = '{user}'", 2)
    assert sorted((r["method"], r["decision"], r["dlp_findings"]) for r in rows) == [
        ("notifications/initialized", "allow", None),
        (RESPONSE, "allow", None),
    ]


# WebSocket: the same planner, the same scan; a refused notification or answer gets an error without an id.

RECEIVED: list[Any] = []


@pytest.fixture(scope="module")
def ws_proxy(tmp_path_factory, upstream, test_ca) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("mcp-dlp-scope-ws")
    with mcp_server(folder, test_ca, json_response=False, routes=[recording_route("/raw", RECEIVED)]) as port:
        policy = folder / "policy.yaml"
        policy.write_text(POLICY.replace("example.com", CORP))
        proxy = start_proxy(
            folder / "proxy", upstream, test_ca, "--set", f"shadowgate_policy={policy}", upstream_port=port
        )
        yield proxy
        proxy.stop()


@pytest.mark.parametrize("case", ["prompts-get", "tools-call-meta", "elicitation-answer", "cancelled-notification"])
def test_a_key_in_a_websocket_message_is_refused_and_recorded(ws_proxy, case):
    message, operation = CASES[case]
    user = _user(f"ws-{case}")
    ws = RawWebSocket(ws_proxy.port, CORP, "/raw", ws_proxy.ssl_context(), user, True)
    try:
        ws.send(json.dumps(message))
        answer = ws.receive()
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 99, "method": "ping"}))
        assert ws.receive()["id"] == 99  # the connection still works
    finally:
        ws.close()
    assert not [m for m in RECEIVED if AWS in str(m)], "the key reached the MCP server"
    assert answer["id"] == (message["id"] if case in REQUESTS else None)
    assert "mcp:ex:dlp" in answer["error"]["message"]
    rows = [r for r in calls(ws_proxy, f"user_name = '{user}'", 2) if r["method"] == operation]
    assert [(r["decision"], r["dlp_action"], r["transport"]) for r in rows] == [("block", "block", "websocket")]


@pytest.mark.parametrize("case", ["elicitation-answer", "progress-notification", "resources-read-uri"])
def test_observe_mode_records_what_it_would_refuse_and_sends_it_on(proxy_with, upstream, case):
    proxy = proxy_with("mode: observe\n" + POLICY)
    message, operation = CASES[case]
    user = _user(f"observe-{case}")
    _, mark = _post(proxy, user, message)
    assert [json.loads(body) for body in _reached(upstream, mark)] == [message]
    [row] = calls(proxy, f"user_name = '{user}'", 1)
    assert (row["method"], row["dlp_action"], row["dlp_findings"]) == (operation, "would_block", "AWS_ACCESS_KEY:1")
