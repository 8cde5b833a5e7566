"""Class 1c: a request names its host once, in a form every server reads alike (red-team F16).

On a tunnel to the allowed api.openai.com, a second `Host: api.deepseek.com` (a front that keeps
the last value routes there), `Host: a, b` or `Host: a@b`, an HTTP/2 `host` header beside
`:authority`, and an HTTP/2 `:path` in absolute form naming the blocked host were all judged as
api.openai.com. Now an ambiguous Host is refused (400, as RFC 9112 §3.2 asks), and the host of
an absolute `:path` or an extra `host` header is one of the names the strictest-name rule judges.
A real mitmdump, the fake upstream; each test asserts what reached it, the answer and the event.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import h2_exchange
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel

POLICY = "rules:\n  - {id: no-ds, match: {host: api.deepseek.com}, action: block}\n"
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
PATH = "/v1/chat/completions"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _tls(proxy, user: str, alpn: list[str] | None = None) -> TlsClient:
    sock, status = open_tunnel(proxy.port, "api.openai.com:443", user=user)
    assert status == 200
    context = proxy.ssl_context()
    if alpn:
        context.set_alpn_protocols(alpn)
    client = TlsClient(sock, context, "api.openai.com")
    client.handshake()
    return client


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def _http1(proxy, user: str, host_lines: list[str]) -> tuple[bytes, str]:
    mark = marker()
    head = [f"POST {PATH} HTTP/1.1", *host_lines, "Content-Type: application/json", f"x-attack: {mark}"]
    head += [f"Content-Length: {len(CHAT)}", "Connection: close"]
    client = _tls(proxy, user)
    client.send(("\r\n".join(head) + "\r\n\r\n").encode() + CHAT)
    return client.receive(), mark


AMBIGUOUS = {
    "two-hosts": ["Host: api.openai.com", "Host: api.deepseek.com"],
    "same-host-twice": ["Host: api.openai.com", "Host: api.openai.com"],
    "comma-list": ["Host: api.openai.com, api.deepseek.com"],
    "userinfo": ["Host: api.openai.com@api.deepseek.com"],
    "space": ["Host: api.openai.com api.deepseek.com"],
}


@pytest.mark.parametrize("lines", list(AMBIGUOUS.values()), ids=list(AMBIGUOUS))
def test_an_ambiguous_host_header_is_refused(gate, upstream, lines):
    user = f"hh-{list(AMBIGUOUS.values()).index(lines)}"
    answer, mark = _http1(gate, user, lines)
    assert answer.startswith(b"HTTP/1.1 400"), answer[:200]
    assert not _reached(upstream, mark)
    [event] = gate.rows(f"event = 'host_mismatch' AND user_name = '{user}'", expect=1, table="policy_events")
    assert event["rule_id"] == "shadowgate:host-malformed"


def test_one_host_with_its_port_goes_through(gate, upstream):
    answer, mark = _http1(gate, "hh-ok", ["Host: API.openai.com:443"])
    assert answer.startswith(b"HTTP/1.1 200"), answer[:200]
    assert _reached(upstream, mark)


H2_CASES = {
    # (:path, extra headers, status)
    "absolute-path-blocked": ("https://api.deepseek.com" + PATH, {}, 403),
    "absolute-path-backslash": ("https://api.deepseek.com\\@api.openai.com" + PATH, {}, 400),
    "relative-path": (PATH.lstrip("/"), {}, 400),
    "host-header-blocked": (PATH, {"host": "api.deepseek.com"}, 403),  # or the stream is reset
}


@pytest.mark.parametrize("case", list(H2_CASES))
def test_an_h2_request_naming_another_host_is_judged_by_it(gate, upstream, case):
    path, headers, status = H2_CASES[case]
    mark = marker()
    client = _tls(gate, f"hh2-{case}", ["h2"])
    try:
        [(got, body)] = h2_exchange(
            client, [("api.openai.com", path, CHAT, {"x-attack": mark, **headers})], validate=False
        )
    except ConnectionError:  # mitmproxy's own HTTP/2 checks may refuse it first
        got, body = 0, b""
    assert not _reached(upstream, mark)
    assert got in (status, 0) and (got or "host" in headers), body[:200]
    if got == 403:
        assert b"no-ds" in body
        [row] = gate.rows(f"user_name = 'hh2-{case}'", expect=1)
        assert (row["host"], row["decision"]) == ("api.deepseek.com", "block")


def test_an_h2_absolute_path_naming_the_same_host_goes_through(gate, upstream):
    mark = marker()
    client = _tls(gate, "hh2-same", ["h2"])
    [(got, _)] = h2_exchange(
        client, [("api.openai.com", "https://api.openai.com" + PATH, CHAT, {"x-attack": mark})], validate=False
    )
    assert got not in (400, 403)  # the fake upstream does not know the absolute-form path: 404
    assert _reached(upstream, mark)
