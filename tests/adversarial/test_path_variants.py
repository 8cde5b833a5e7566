"""Class 2c: respelling the path or the method must not change the route the proxy matches.

Servers forgive escapes, escaped slashes, trailing slashes, `;params`, case, dot segments,
doubled slashes and method-override headers. The policy blocks gpt-4o models, a rule that only
a parsed body can apply: each respelled chat call must still be read as a chat call, refused,
kept from the upstream and recorded with its model and wire format.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel

POLICY = """\
rules:
  - id: no-gpt-4o
    match: {model: "gpt-4o*"}
    action: block
"""
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()

VARIANTS = {
    "escape": "/v1/chat/%63ompletions",
    "escaped-slash": "/v1/chat%2Fcompletions",
    "escaped-slash-lower": "/v1%2fchat%2fcompletions",
    "double-escape": "/v1/chat/%2563ompletions",
    "trailing-slash": "/v1/chat/completions/",
    "params": "/v1/chat/completions;jsessionid=1",
    "upper-case": "/V1/Chat/COMPLETIONS",
    "dot-dot": "/v1/chat/completions/models/..",
    "dot": "/v1/./chat/./completions",
    "escaped-dot-dot": "/v1/chat/completions/x/%2E%2e",
    "double-slash": "//v1//chat///completions",
    "backslash": "/v1\\chat\\completions",
    "fragment": "/v1/chat/completions#x",
}


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    """The session proxy with this module's policy (and a database of its own) until its last test."""
    return module_proxy_with(POLICY)


def _send(proxy, user: str, request_line: str, body: bytes, headers: dict[str, str] | None = None) -> tuple[bytes, str]:
    mark = marker()
    sock, status = open_tunnel(proxy.port, "api.openai.com:443", user=user)
    assert status == 200
    client = TlsClient(sock, proxy.ssl_context(), "api.openai.com")
    client.handshake()
    lines = [
        request_line,
        "Host: api.openai.com",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
        f"x-attack: {mark}",
        *(f"{k}: {v}" for k, v in (headers or {}).items()),
    ]
    client.send(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    return client.receive(), mark


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def _assert_refused_and_recorded(proxy, upstream, user: str, answer: bytes, mark: str) -> None:
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"no-gpt-4o" in answer
    assert not _reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "no-gpt-4o")
    assert (row["wire_format"], row["model"]) == ("openai-chat", "gpt-4o-mini")


@pytest.mark.parametrize("name", VARIANTS)
def test_a_respelled_path_is_the_route_it_names(gate, upstream, name):
    user = f"path-{name}"
    answer, mark = _send(gate, user, f"POST {VARIANTS[name]} HTTP/1.1", CHAT)
    _assert_refused_and_recorded(gate, upstream, user, answer, mark)


@pytest.mark.parametrize("header", ["X-HTTP-Method-Override", "X-Method-Override", "X-HTTP-Method"])
def test_a_get_that_overrides_its_method_to_post_is_the_chat_call(gate, upstream, header):
    user = f"override-{header.lower()}"
    answer, mark = _send(gate, user, "GET /v1/chat/completions HTTP/1.1", CHAT, {header: "post"})
    _assert_refused_and_recorded(gate, upstream, user, answer, mark)


def test_a_get_with_a_body_on_an_ai_host_is_recorded_not_ignored(gate, upstream):
    allowed = CHAT.replace(b"gpt-4o-mini", b"gpt-3.5-turbo")
    answer, mark = _send(gate, "get-with-body", "GET /v1/whatever HTTP/1.1", allowed)
    assert _reached(upstream, mark), answer  # no rule names it; it goes on, but not unseen
    [row] = gate.rows("user_name = 'get-with-body'", expect=1)
    assert (row["host"], row["provider"], row["method"], row["model"]) == (
        "api.openai.com",
        "openai",
        "GET",
        "gpt-3.5-turbo",
    )
    # The model an unknown endpoint's body names is a fact the rules see: gpt-4o* is refused there too.
    answer, mark = _send(gate, "get-with-body-4o", "GET /v1/whatever HTTP/1.1", CHAT)
    assert b" 403 " in answer.split(b"\r\n", 1)[0] and not _reached(upstream, mark)


def test_the_upstream_gets_the_path_as_the_client_spelled_it(gate, upstream):
    allowed = CHAT.replace(b"gpt-4o-mini", b"gpt-3.5-turbo")
    answer, mark = _send(gate, "path-kept", "POST /v1/chat/completions/ HTTP/1.1", allowed)
    [seen] = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    assert seen.path == "/v1/chat/completions/"  # matched as read, forwarded as sent
    [row] = gate.rows("user_name = 'path-kept'", expect=1)
    assert (row["wire_format"], row["model"]) == ("openai-chat", "gpt-3.5-turbo")
