"""MCP requests with a member name given twice in one object: Python's json keeps the last, other
parsers (and hand-written servers) the first, so the proxy would judge one tool, one method or
one set of arguments while the server runs another. Such a body is refused as ambiguous
(red-team finding F9: `"name":"delete_repo","name":"search"` passed a deny rule for delete_*).
A denied tool spelled otherwise (case, fullwidth, zero-width) is refused too: a loose server runs it."""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import marker

POLICY = (
    "dlp: {secrets: block, pii: log}\nmcp:\n  servers:\n    - {id: gh, host: example.com, deny_tools: ['delete_*']}\n"
)
HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
AWS = "AKIA2OGYBAH6STMMNXNN"


def _post(proxy, user: str, body: bytes):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post("https://example.com/mcp", content=body, headers={"x-attack": mark, **HEADERS})
    return answer, mark


@pytest.mark.parametrize(
    "params",
    [
        '{"name":"delete_repo","name":"search","arguments":{}}',
        '{"name":"search","arguments":{"q":"' + AWS + '","q":"weather"}}',
        '{"name":"search","arguments":{"q":"' + AWS + '"},"arguments":{"q":"weather"}}',
    ],
    ids=["tool-name", "argument", "arguments"],
)
def test_a_tools_call_with_a_member_given_twice_is_refused(proxy_with, upstream, params):
    proxy = proxy_with(POLICY)
    body = ('{"jsonrpc":"2.0","id":1,"method":"tools/call","params":' + params + "}").encode()
    answer, mark = _post(proxy, "dup-" + marker()[:6], body)
    assert [s for s in upstream.seen if s.headers.get("x-attack") == mark] == []
    assert answer.status_code == 400 and answer.json()["error"]["code"] == -32600
    assert "mcp:ambiguous" in answer.json()["error"]["message"]


def test_the_same_call_with_each_member_once_goes_through(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    body = b'{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"search","arguments":{"q":"weather"}}}'
    _, mark = _post(proxy, "dup-ok-" + marker()[:6], body)
    assert len([s for s in upstream.seen if s.headers.get("x-attack") == mark]) == 1


@pytest.mark.parametrize(
    "tool",
    [
        "DELETE_REPO",
        "Delete_Repo",
        "ｄｅｌｅｔｅ_repo",
        "delete\u200b_repo",
        " delete_repo",
        "\tdelete_repo",
        "\u00a0delete_repo",
    ],
)
def test_a_denied_tool_in_another_spelling_is_refused(proxy_with, upstream, tool):
    # A server that looks tool names up case-insensitively, after Unicode folding or trimmed runs
    # these as delete_repo; compared raw they passed deny_tools: ['delete_*'] (red-team F58).
    proxy = proxy_with(POLICY)
    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": tool, "arguments": {}}}
    answer, mark = _post(proxy, "deny-" + marker()[:6], json.dumps(call).encode())
    assert [s for s in upstream.seen if s.headers.get("x-attack") == mark] == []
    assert "error" in answer.json()
