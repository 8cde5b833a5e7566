"""Class 1c: a request sent to an IP literal is judged by the host it names (red-team F6).

The connection goes to an IP (a CONNECT to 127.0.0.1, an absolute-form http://127.0.0.1/, a
legacy spelling such as 2130706433) while the Host header names a provider the policy blocks. A
server behind that IP routes by Host, so the request is that provider's: it must be identified,
decided and recorded as such. TLS without SNI to an IP is decrypted, never a blind tunnel: the
Host inside is judged, and the upstream is verified against the IP (a provider's certificate
does not name it: fails closed).
"""

from __future__ import annotations

import base64
import json
import socket
import ssl

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import http1_request
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel
from tests.adversarial.wire import recv_all
from tests.adversarial.wire import tls_tunnel

AWS = "AKIA2OGYBAH6STMMNXNN"
DEEPSEEK = json.dumps({"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}).encode()
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()
SECRET_CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"key {AWS}"}]}).encode()
BLOCK_DEEPSEEK = "rules:\n  - {id: no-deepseek, match: {provider: deepseek}, action: block}\n"
BLOCK_OPENAI = "rules:\n  - {id: no-openai, match: {provider: openai}, action: block}\n"


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def _no_sni_tls(proxy, target: str, user: str) -> TlsClient:
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE  # as a determined client would
    return tls_tunnel(proxy.port, target, context, None, user)  # no server_hostname: no SNI


def _ask_without_sni(proxy, upstream, target: str, user: str, body: bytes, status: int) -> bytes:
    """POST to api.openai.com by its Host only, in TLS without SNI to an IP; the answer must
    have this status and the request must not have reached the upstream."""
    mark = marker()
    client = _no_sni_tls(proxy, target, user)
    client.send(http1_request("api.openai.com", "/v1/chat/completions", body, {"x-attack": mark}))
    answer = client.receive()
    assert answer.startswith(f"HTTP/1.1 {status}".encode()), answer[:200]
    assert not _reached(upstream, mark)
    return answer


@pytest.mark.parametrize("target", ["127.0.0.1:80", "2130706433:80", "[::1]:80"], ids=["ipv4", "decimal", "ipv6"])
def test_plain_http_in_a_tunnel_to_an_ip_is_judged_by_its_host(proxy_with, upstream, target):
    proxy = proxy_with(BLOCK_DEEPSEEK)
    user, mark = f"ip-plain-{target.split(':')[0].strip('[')}", marker()
    sock, status = open_tunnel(proxy.port, target, user=user)
    assert status == 200
    sock.sendall(http1_request("api.deepseek.com", "/v1/chat/completions", DEEPSEEK, {"x-attack": mark}))
    answer = recv_all(sock)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert b"no-deepseek" in answer
    assert not _reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["host"], row["provider"], row["decision"], row["rule_id"]) == (
        "api.deepseek.com", "deepseek", "block", "no-deepseek",
    )  # fmt: skip


def test_absolute_form_url_to_an_ip_is_judged_by_its_host(proxy_with, upstream):
    proxy = proxy_with(BLOCK_DEEPSEEK)
    user, mark = "ip-absolute", marker()
    sock = socket.create_connection(("127.0.0.1", proxy.port), timeout=10)
    auth = base64.b64encode(f"{user}:pw".encode()).decode()
    request = http1_request(
        "api.deepseek.com", "/v1/chat/completions", DEEPSEEK,
        {"x-attack": mark, "proxy-authorization": f"Basic {auth}"}, target="http://127.0.0.1/v1/chat/completions",
    )  # fmt: skip
    sock.sendall(request)
    answer = recv_all(sock)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert not _reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["host"], row["provider"], row["decision"]) == ("api.deepseek.com", "deepseek", "block")


def test_tls_without_sni_to_an_ip_is_decrypted_and_judged_by_its_host(proxy_with, upstream):
    proxy = proxy_with(BLOCK_OPENAI)
    user = "ip-nosni-block"
    answer = _ask_without_sni(proxy, upstream, "127.0.0.1:443", user, CHAT, 403)
    assert b"no-openai" in answer
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["host"], row["provider"], row["decision"]) == ("api.openai.com", "openai", "block")
    assert row["inspected"] is True


def test_tls_without_sni_to_an_ip_is_dlp_scanned(proxy_with, upstream):
    # An allowed provider reached this way is still an AI call: scanned, refused, recorded.
    proxy = proxy_with("dlp: {secrets: block}\n")
    user = "ip-nosni-dlp"
    _ask_without_sni(proxy, upstream, "127.0.0.1:443", user, SECRET_CHAT, 403)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["host"] == "api.openai.com" and row["dlp_action"] == "block"


def test_tls_without_sni_fails_closed_when_the_upstream_does_not_prove_the_ip(proxy_with, upstream):
    # The fake upstream's certificate names 127.0.0.1 but not 127.0.0.2, as a provider's names
    # no IP: the proxy verifies the upstream against the IP it connects to and sends nothing.
    proxy = proxy_with("")
    _ask_without_sni(proxy, upstream, "127.0.0.2:443", "ip-nosni-verify", CHAT, 502)


def test_passthrough_names_an_ip_that_must_stay_untouched(proxy_with, upstream):
    # The escape hatch for an internal service reached by IP: the policy's passthrough list.
    proxy = proxy_with("passthrough: ['127.0.0.1']\n")
    client = _no_sni_tls(proxy, "127.0.0.1:443", "ip-nosni-pass")
    # Passed through: the certificate is the fake upstream's own, not one the proxy made.
    with open(upstream.cert_pem) as f:
        own = ssl.PEM_cert_to_DER_cert(f.read().split("-----END CERTIFICATE-----")[0] + "-----END CERTIFICATE-----\n")
    assert client.tls.getpeercert(binary_form=True) == own, "the proxy decrypted an IP the policy passes through"
