"""Class 1b: bytes that do not look like TLS must not become a raw tunnel to an AI host.

mitmproxy relays what it recognises as neither TLS nor HTTP as raw TCP. Each attack below sends
a working TLS session to the fake api.openai.com in a shape mitmproxy does not recognise; it must
end as TLS the proxy decrypts, or as a refused connection with a row, never as an unseen call.
"""

from __future__ import annotations

import json
import ssl
import time

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import http1_request
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel
from tests.adversarial.wire import record_version
from tests.adversarial.wire import recv_all
from tests.adversarial.wire import split_after

CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def _issuer(client: TlsClient) -> str:
    cert = client.tls.getpeercert()
    return dict(x[0] for x in cert["issuer"]).get("organizationName", "")


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    """The session proxy, with a database of its own for this module."""
    return module_proxy_with()


def test_clienthello_cut_after_one_byte_is_decrypted_not_tunnelled(gate, upstream):
    mark = marker()
    sock, status = open_tunnel(gate.port, "api.openai.com:443", user="split1")
    assert status == 200
    client = TlsClient(sock, gate.ssl_context(), "api.openai.com")
    client.handshake(split_after(1))
    assert _issuer(client) == "mitmproxy"  # the proxy's certificate: it decrypted the session
    client.send(http1_request("api.openai.com", "/v1/chat/completions", CHAT, {"x-attack": mark}))
    answer = client.receive()
    assert answer.startswith(b"HTTP/1.1 200")
    assert _reached(upstream, mark)
    [row] = gate.rows("user_name = 'split1'", expect=1)
    assert (row["provider"], row["inspected"], row["model"]) == ("openai", True, "gpt-4o-mini")


def _attack_refused(gate, upstream, target: str, user: str, send_hello) -> dict:
    """A TLS session to api.openai.com through `target` whose first flight `send_hello` alters:
    the proxy must close it before anything reaches the upstream, and write one row."""
    mark = marker()
    sock, status = open_tunnel(gate.port, target, user=user)
    assert status == 200
    client = TlsClient(sock, gate.ssl_context(), "api.openai.com")
    with pytest.raises((ConnectionError, ssl.SSLError, OSError)):
        client.handshake(send_hello)
        client.send(http1_request("api.openai.com", "/v1/chat/completions", CHAT, {"x-attack": mark}))
        assert client.receive() == b""
        raise ConnectionError("no answer")
    assert not _reached(upstream, mark)
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert (row["host"], row["provider"], row["inspected"], row["decision"]) == (
        "api.openai.com",
        "openai",
        False,
        "block",
    )
    assert row["inspect_note"] == "not TLS or HTTP: refused"
    return row


def test_odd_record_layer_version_to_an_ai_host_is_refused_and_recorded(gate, upstream):
    _attack_refused(gate, upstream, "api.openai.com:443", "recver", record_version(3, 5))


def test_garbage_to_an_ai_host_is_refused(gate):
    sock, status = open_tunnel(gate.port, "api.openai.com:443", user="garbage")
    assert status == 200
    sock.sendall(b"\x00\x01SECRET-TUNNEL-PROTOCOL\x00" * 4)
    assert recv_all(sock, timeout=3) == b""
    [row] = gate.rows("user_name = 'garbage'", expect=1)
    assert row["inspect_note"] == "not TLS or HTTP: refused"


def test_ip_literal_with_odd_version_naming_an_ai_host_is_refused(gate, upstream):
    _attack_refused(gate, upstream, "127.0.0.1:443", "iplit", record_version(3, 4))


def test_request_line_cut_inside_tls_without_alpn_is_still_http(gate, upstream):
    """No ALPN, then one byte in its own TLS record: mitmproxy would pick raw TCP inside the
    decrypted session and relay the call unparsed."""
    mark = marker()
    sock, status = open_tunnel(gate.port, "api.openai.com:443", user="noalpn")
    assert status == 200
    client = TlsClient(sock, gate.ssl_context(), "api.openai.com")  # the SSLContext offers no ALPN
    client.handshake()
    request = http1_request("api.openai.com", "/v1/chat/completions", CHAT, {"x-attack": mark})
    client.send(request[:1])
    time.sleep(0.3)
    client.send(request[1:])
    assert client.receive().startswith(b"HTTP/1.1 200")
    assert _reached(upstream, mark)
    [row] = gate.rows("user_name = 'noalpn'", expect=1)
    assert (row["provider"], row["inspected"], row["model"]) == ("openai", True, "gpt-4o-mini")


def test_non_ai_host_with_a_cut_clienthello_still_passes_through(gate):
    sock, status = open_tunnel(gate.port, "example.com:443", user="plainsplit")
    assert status == 200
    client = TlsClient(sock, gate.test_ssl_context(), "example.com")
    client.handshake(split_after(1))
    assert _issuer(client) != "mitmproxy"  # passed through: the upstream's own certificate
    client.send(b"GET /_fake/bytes?size=4 HTTP/1.1\r\nHost: example.com\r\nConnection: close\r\n\r\n")
    assert client.receive().endswith(b"xxxx")
    assert gate.rows("user_name = 'plainsplit'", timeout=1.5) == []


def test_a_harmless_sni_on_a_tunnel_to_an_ai_host_is_decrypted_not_passed_through(gate, upstream):
    """CONNECT api.openai.com with the SNI of a site the proxy passes through (or ECH's outer name)."""
    mark = marker()
    sock, status = open_tunnel(gate.port, "api.openai.com:443", user="fakesni")
    assert status == 200
    client = TlsClient(sock, gate.ssl_context(), "example.com")
    client.handshake()
    assert _issuer(client) == "mitmproxy"
    client.send(http1_request("api.openai.com", "/v1/chat/completions", CHAT, {"x-attack": mark}))
    assert client.receive().startswith(b"HTTP/1.1 200")
    [row] = gate.rows("user_name = 'fakesni'", expect=1)
    assert (row["host"], row["provider"], row["inspected"]) == ("api.openai.com", "openai", True)
