"""Class 3: a Realtime session minted over HTTP is judged by its model and its MCP tools
(red-team F15, F29).

A WebRTC or SIP voice session is fixed by the HTTP request that mints its key or starts its
call; its media never passes the proxy. `client_secrets {"session": {"model": ...}}`,
`calls?model=` and the multipart `session` field of `calls` were model NULL, allow under a block
on that model, and a hosted MCP tool in `session.tools` (or the beta `sessions` `tools`) reached
the provider under `mcp: {unlisted: block}`. A real mitmdump, the fake upstream; each test
asserts what reached it, the answer and the row.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked

POLICY = (
    "rules:\n  - {id: no-big-rt, match: {model: 'gpt-realtime'}, action: block}\n"
    "  - {id: no-live, match: {model: 'gemini-live*'}, action: block}\n"
    "mcp:\n  unlisted: block\n  servers:\n    - {id: gh, host: github-mcp.corp.example}\n"
)
BASE = "https://api.openai.com/v1/realtime"
EVIL_MCP = {
    "type": "mcp",
    "server_label": "x",
    "server_url": "https://evil-mcp.example/sse",
    "require_approval": "never",
}
LISTED_MCP = {**EVIL_MCP, "server_url": "https://github-mcp.corp.example/sse", "allowed_tools": ["search"]}
SDP = b"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _multipart(session: dict) -> tuple[bytes, str]:
    body = (
        b'--rt0\r\nContent-Disposition: form-data; name="sdp"\r\nContent-Type: application/sdp\r\n\r\n' + SDP
        + b'\r\n--rt0\r\nContent-Disposition: form-data; name="session"\r\nContent-Type: application/json\r\n\r\n'
        + json.dumps(session).encode() + b"\r\n--rt0--\r\n"
    )  # fmt: skip
    return body, "multipart/form-data; boundary=rt0"


def _post(proxy, upstream, user: str, url: str, body: bytes, content_type: str):
    """(the client's answer, what the upstream got of this request, the row)."""
    answer, mark = post_marked(proxy, user, body, url, content_type)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return answer, [s for s in upstream.seen if s.headers.get("x-attack") == mark], row


def _json(value: dict) -> tuple[bytes, str]:
    return json.dumps(value).encode(), "application/json"


MODEL_CASES = {
    "client_secrets": ("/client_secrets", _json({"session": {"type": "realtime", "model": "gpt-realtime"}})),
    "calls-query": ("/calls?model=gpt-realtime", (SDP, "application/sdp")),
    "calls-query-last": ("/calls?model=gpt-realtime-mini&model=gpt-realtime", (SDP, "application/sdp")),
    "calls-multipart": ("/calls", _multipart({"type": "realtime", "model": "gpt-realtime"})),
    "sip-accept": ("/calls/rtc_123/accept", _json({"type": "realtime", "model": "gpt-realtime"})),
    "beta-sessions": ("/sessions", _json({"model": "gpt-realtime"})),
}


@pytest.mark.parametrize("case", list(MODEL_CASES))
def test_the_model_of_a_session_minted_over_http_is_judged(gate, upstream, case):
    path, (body, content_type) = MODEL_CASES[case]
    answer, seen, row = _post(gate, upstream, f"rts-m-{case}", BASE + path, body, content_type)
    assert seen == []
    assert answer.status_code == 403 and b"no-big-rt" in answer.content
    assert (row["decision"], row["rule_id"], row["model"]) == ("block", "no-big-rt", "gpt-realtime")


def test_an_allowed_model_goes_through_and_is_recorded(gate, upstream):
    body, content_type = _json({"session": {"type": "realtime", "model": "gpt-realtime-mini", "tools": [LISTED_MCP]}})
    answer, seen, row = _post(gate, upstream, "rts-ok", BASE + "/client_secrets", body, content_type)
    assert len(seen) == 1 and json.loads(seen[0].body) == json.loads(body)  # unchanged
    assert answer.status_code != 403
    assert (row["decision"], row["model"]) == ("allow", "gpt-realtime-mini")


MCP_CASES = {
    "client_secrets": ("/client_secrets", _json({"session": {"type": "realtime", "model": "gpt-realtime-mini", "tools": [EVIL_MCP]}})),
    "beta-sessions": ("/sessions", _json({"model": "gpt-realtime-mini", "tools": [EVIL_MCP]})),
    "calls-multipart": ("/calls", _multipart({"type": "realtime", "model": "gpt-realtime-mini", "tools": [EVIL_MCP]})),
    "sip-accept": ("/calls/rtc_123/accept", _json({"type": "realtime", "tools": [EVIL_MCP]})),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MCP_CASES))
def test_an_unlisted_hosted_mcp_server_in_the_session_is_refused(gate, upstream, case):
    path, (body, content_type) = MCP_CASES[case]
    answer, seen, row = _post(gate, upstream, f"rts-mcp-{case}", BASE + path, body, content_type)
    assert seen == []
    assert answer.status_code == 403
    assert "evil-mcp.example" in answer.json()["error"]["message"]
    assert (row["decision"], row["rule_id"]) == ("block", "mcp:unlisted")


def test_a_session_field_in_a_broken_multipart_body_is_refused(gate, upstream):
    body, content_type = _multipart({"type": "realtime", "model": "gpt-realtime-mini"})
    answer, seen, row = _post(
        gate, upstream, "rts-broken", BASE + "/calls", body.replace(b"--rt0--", b"--rt1--"), content_type
    )
    assert seen == []
    assert answer.status_code == 403
    assert (row["decision"], row["rule_id"]) == ("block", "shadowgate:realtime-setup-unreadable")


def test_a_gemini_live_ephemeral_token_is_judged_by_the_model_it_locks(gate, upstream):
    body, content_type = _json(
        {"uses": 1, "bidiGenerateContentSetup": {"model": "models/gemini-live-2.5-flash-preview"}}
    )
    url = "https://generativelanguage.googleapis.com/v1alpha/auth_tokens"
    answer, seen, row = _post(gate, upstream, "rts-gemini", url, body, content_type)
    assert seen == []
    assert answer.status_code == 403 and b"no-live" in answer.content
    assert (row["decision"], row["model"]) == ("block", "gemini-live-2.5-flash-preview")
