"""Class 1c: the CONNECT target, SNI, Host/:authority and absolute URL must agree.

The policy blocks Anthropic and allows OpenAI. Each attack rides a decrypted tunnel to the
allowed host while another name in the same request points at the blocked one.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import h2_exchange
from tests.adversarial.wire import http1_request
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel

MESSAGES = json.dumps(
    {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
).encode()
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
POLICY = "rules:\n  - id: no-anthropic\n    match: {provider: anthropic}\n    action: block\n"


@pytest.fixture
def gate(proxy_with):
    return proxy_with(POLICY)


def _tls(proxy, target: str, sni: str, user: str, alpn: list[str] | None = None) -> TlsClient:
    sock, status = open_tunnel(proxy.port, target, user=user)
    assert status == 200
    context = proxy.ssl_context()
    if alpn:
        context.set_alpn_protocols(alpn)
    client = TlsClient(sock, context, sni)
    client.handshake()
    return client


def _post(
    proxy, user: str, target: str, sni: str, host: str, path: str, body: bytes, request_target: str | None = None
) -> tuple[bytes, str]:
    mark = marker()
    client = _tls(proxy, target, sni, user)
    client.send(http1_request(host, path, body, {"x-attack": mark}, target=request_target))
    return client.receive(), mark


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def _mismatch_events(proxy, user: str, expect: int = 1) -> list[dict]:
    return proxy.rows(f"event = 'host_mismatch' AND user_name = '{user}'", expect=expect, table="policy_events")


@pytest.mark.parametrize(
    ("user", "target", "sni", "host", "request_target"),
    [
        ("front-host", "api.openai.com:443", "api.openai.com", "api.anthropic.com", None),
        (
            "front-url",
            "api.openai.com:443",
            "api.openai.com",
            "api.openai.com",
            "https://api.anthropic.com/v1/messages",
        ),
        ("front-connect", "api.anthropic.com:443", "api.openai.com", "api.openai.com", None),
        ("front-sni", "api.openai.com:443", "api.anthropic.com", "api.openai.com", None),
    ],
)
def test_a_blocked_host_named_anywhere_in_the_request_is_refused(
    gate, upstream, user, target, sni, host, request_target
):
    answer, mark = _post(gate, user, target, sni, host, "/v1/messages", MESSAGES, request_target)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"no-anthropic" in answer
    assert not _reached(upstream, mark)
    [event] = _mismatch_events(gate, user)
    assert (event["host"], event["rule_id"]) == ("api.anthropic.com", "no-anthropic")
    assert "api.anthropic.com" in event["detail"] and "api.openai.com" in event["detail"]


def test_http2_connection_reuse_for_a_blocked_authority_is_refused(gate, upstream):
    allowed, blocked = marker(), marker()
    client = _tls(gate, "api.openai.com:443", "api.openai.com", "h2-reuse", alpn=["h2"])
    assert client.tls.selected_alpn_protocol() == "h2"
    [(first, _), (second, body)] = h2_exchange(client, [
        ("api.openai.com", "/v1/chat/completions", CHAT, {"x-attack": allowed}),
        ("api.anthropic.com", "/v1/messages", MESSAGES, {"x-attack": blocked}),
    ])  # fmt: skip
    assert (first, second) == (200, 403)
    assert b"no-anthropic" in body
    assert _reached(upstream, allowed) and not _reached(upstream, blocked)
    [row] = gate.rows("user_name = 'h2-reuse' AND provider = 'anthropic'", expect=1)
    assert (row["decision"], row["status_code"]) == ("block", 403)


def test_names_that_differ_only_in_spelling_agree(gate, upstream):
    answer, mark = _post(
        gate, "spelling", "api.openai.com:443", "API.OpenAI.com", "api.openai.com.:443", "/v1/chat/completions", CHAT
    )
    assert answer.startswith(b"HTTP/1.1 200")
    assert _reached(upstream, mark)
    assert _mismatch_events(gate, "spelling", expect=None) == []


def test_a_mismatch_between_allowed_hosts_is_recorded_as_the_host_it_names(proxy_with, upstream):
    proxy = proxy_with()
    answer, mark = _post(
        proxy, "both-allowed", "api.openai.com:443", "api.openai.com", "api.anthropic.com", "/v1/messages", MESSAGES
    )
    assert answer.startswith(b"HTTP/1.1 200")
    [row] = proxy.rows("user_name = 'both-allowed'", expect=1)
    assert (row["host"], row["provider"]) == ("api.anthropic.com", "anthropic")
    assert len(_mismatch_events(proxy, "both-allowed")) == 1


def test_refuse_mode_answers_421_to_any_mismatch(proxy_with, upstream):
    proxy = proxy_with(shadowgate_host_mismatch="refuse")
    answer, mark = _post(
        proxy, "refuser", "api.openai.com:443", "api.openai.com", "api.anthropic.com", "/v1/messages", MESSAGES
    )
    assert answer.startswith(b"HTTP/1.1 421")
    assert not _reached(upstream, mark)
    [event] = _mismatch_events(proxy, "refuser")
    assert event["rule_id"] == "shadowgate:host-mismatch"


def test_a_bad_mismatch_mode_stops_the_proxy(fresh_proxy):
    with pytest.raises(RuntimeError, match="shadowgate_host_mismatch"):
        fresh_proxy("--set", "shadowgate_host_mismatch=lenient")
