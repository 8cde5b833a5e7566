"""Class 2a: a body too big to read must not carry a request past the policy.

Bodies above shadowgate_max_parse_bytes (4 KB here) are not read. The decisions that need no
body (provider, host, user, a model in the path) are made before the body is sent; a request
whose decision would need the body (a model rule, DLP) is refused with a 413 in the provider's
error shape. A body without a declared length (chunked) that grows past the limit is the same.
Each case asserts what reached the upstream, what the client got and which row was written.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import http1_request
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel

LIMIT = 4096
GATEWAY_KEY = "sk-corp-gateway-big-bodies"
POLICY = """\
rules:
  - id: big-to-gateway
    match: {provider: openai, user: big-redirect}
    action: redirect
    gateway: {openai_base_url: "https://llm.corp.test/v1", key_env: SG_BIG_BODIES_GATEWAY_KEY}
  - id: no-anthropic
    match: {provider: anthropic}
    action: block
  - id: no-gpt-4o-for-interns
    match: {group: interns, model: "gpt-4o*"}
    action: block
  - id: no-gemini-pro
    match: {provider: gemini-api, model: "gemini-*-pro*"}
    action: block
"""
USERS = """\
users:
  intern: {group: interns}
"""
DLP_POLICY = "dlp:\n  secrets: block\n"


def _chat(model: str, size: int = 3 * LIMIT) -> bytes:
    return json.dumps({"model": model, "messages": [{"role": "user", "content": "x" * size}]}).encode()


@pytest.fixture(scope="module")
def gate(module_proxy_with, tmp_path_factory):
    """The session proxy with this module's policy, directory and body limit, and its gateway key
    in the proxy's environment."""
    users = tmp_path_factory.mktemp("bigbodies") / "users.yaml"
    users.write_text(USERS)
    return module_proxy_with(
        POLICY,
        environ={"SG_BIG_BODIES_GATEWAY_KEY": GATEWAY_KEY},
        shadowgate_users=str(users),
        shadowgate_max_parse_bytes=LIMIT,
    )


def _tls(proxy, host: str, user: str) -> TlsClient:
    sock, status = open_tunnel(proxy.port, f"{host}:443", user=user)
    assert status == 200
    client = TlsClient(sock, proxy.ssl_context(), host)
    client.handshake()
    return client


def _post(proxy, user: str, host: str, path: str, body: bytes) -> tuple[bytes, str]:
    mark = marker()
    client = _tls(proxy, host, user)
    client.send(http1_request(host, path, body, {"x-attack": mark}))
    return client.receive(), mark


def _post_chunked(proxy, user: str, host: str, path: str, body: bytes) -> tuple[bytes, str]:
    """The body in 1 KB chunks with no Content-Length: its size is known only at its end."""
    mark = marker()
    client = _tls(proxy, host, user)
    head = (
        f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: chunked\r\nConnection: close\r\nx-attack: {mark}\r\n\r\n"
    ).encode()
    chunks = b"".join(
        b"%x\r\n%s\r\n" % (len(body[i : i + 1024]), body[i : i + 1024]) for i in range(0, len(body), 1024)
    )
    client.send(head + chunks + b"0\r\n\r\n")
    return client.receive(), mark


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def _error(answer: bytes) -> dict:
    return json.loads(answer.partition(b"\r\n\r\n")[2])


def test_a_blocked_provider_is_refused_before_a_big_body_is_sent(gate, upstream):
    body = json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [
        {"role": "user", "content": "x" * 3 * LIMIT}]}).encode()  # fmt: skip
    answer, mark = _post(gate, "big-blocked", "api.anthropic.com", "/v1/messages", body)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert _error(answer)["type"] == "error"  # Anthropic's error shape
    assert "no-anthropic" in _error(answer)["error"]["message"]
    assert not _reached(upstream, mark)
    [row] = gate.rows("user_name = 'big-blocked'", expect=1)
    assert (row["decision"], row["rule_id"], row["status_code"]) == ("block", "no-anthropic", 403)


def test_a_model_rule_that_could_match_refuses_a_big_body_with_413(gate, upstream):
    answer, mark = _post(gate, "intern", "api.openai.com", "/v1/chat/completions", _chat("gpt-4o"))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    message = _error(answer)["error"]["message"]  # OpenAI's error shape
    assert "shadowgate_max_parse_bytes" in message and "no-gpt-4o-for-interns" in message
    assert not _reached(upstream, mark)
    [row] = gate.rows("user_name = 'intern'", expect=1)
    assert (row["decision"], row["rule_id"], row["status_code"]) == ("block", "shadowgate:body-too-large", 413)
    assert row["request_bytes"] > LIMIT


def test_a_chunked_body_that_grows_past_the_limit_is_refused_the_same(gate, upstream):
    answer, mark = _post_chunked(gate, "intern", "api.openai.com", "/v1/chat/completions", _chat("gpt-4o"))
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert "shadowgate_max_parse_bytes" in _error(answer)["error"]["message"]
    assert not _reached(upstream, mark)
    rows = gate.rows("user_name = 'intern' AND status_code = 413", expect=2)
    assert [r["rule_id"] for r in rows] == ["shadowgate:body-too-large"] * 2


def test_a_model_in_the_path_is_decided_before_the_body(gate, upstream):
    body = json.dumps({"contents": [{"parts": [{"text": "x" * 3 * LIMIT}]}]}).encode()
    path = "/v1beta/models/gemini-1.5-pro:generateContent"
    answer, mark = _post(gate, "big-gemini", "generativelanguage.googleapis.com", path, body)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert not _reached(upstream, mark)
    [row] = gate.rows("user_name = 'big-gemini'", expect=1)
    assert (row["decision"], row["rule_id"], row["model"]) == ("block", "no-gemini-pro", "gemini-1.5-pro")


def test_a_big_body_no_rule_needs_streams_through_and_is_recorded(gate, upstream):
    answer, mark = _post(gate, "big-allowed", "api.openai.com", "/v1/chat/completions", _chat("gpt-4o-mini"))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    [seen] = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    assert json.loads(seen.body)["model"] == "gpt-4o-mini"  # the whole body, unchanged
    [row] = gate.rows("user_name = 'big-allowed'", expect=1)
    assert (row["decision"], row["status_code"]) == ("allow", 200)
    assert row["request_bytes"] == len(seen.body)
    assert "shadowgate_max_parse_bytes" in row["inspect_note"]


def test_a_big_body_is_redirected_to_the_gateway_before_it_is_sent(gate, upstream):
    answer, mark = _post(gate, "big-redirect", "api.openai.com", "/v1/chat/completions", _chat("gpt-4o-mini"))
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    [seen] = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    assert (seen.host, seen.path) == ("llm.corp.test", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    assert len(seen.body) > LIMIT
    [row] = gate.rows("user_name = 'big-redirect'", expect=1)
    assert (row["decision"], row["redirect_target"], row["status_code"]) == ("redirect", "llm.corp.test", 200)


def test_a_fronted_big_body_is_refused_without_breaking_the_connection(gate, upstream):
    # HostAgreement refuses at requestheaders; streaming must not be switched on after that.
    mark = marker()
    client = _tls(gate, "api.openai.com", "big-fronted")
    client.send(http1_request("api.anthropic.com", "/v1/messages", _chat("claude-sonnet-4-5"), {"x-attack": mark}))
    answer = client.receive()
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert not _reached(upstream, mark)


def test_dlp_refuses_a_body_it_cannot_scan(fresh_proxy, upstream, tmp_path):
    policy = tmp_path / "dlp.yaml"
    policy.write_text(DLP_POLICY)
    proxy = fresh_proxy("--set", f"shadowgate_policy={policy}", "--set", f"shadowgate_max_parse_bytes={LIMIT}")
    secret = "AKIA" + "Z7QW3ERT5YUI8OPA"  # an AWS access key id, far past the limit
    body = json.dumps({"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "x" * 3 * LIMIT + secret}]}).encode()  # fmt: skip
    answer, mark = _post(proxy, "big-dlp", "api.openai.com", "/v1/chat/completions", body)
    assert answer.startswith(b"HTTP/1.1 413"), answer[:300]
    assert "DLP" in _error(answer)["error"]["message"]
    assert not _reached(upstream, mark)
    [row] = proxy.rows("user_name = 'big-dlp'", expect=1)
    assert (row["decision"], row["rule_id"], row["status_code"]) == ("block", "shadowgate:body-too-large", 413)
