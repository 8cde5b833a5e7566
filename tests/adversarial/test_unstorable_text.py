"""A client must not be able to make its own AI calls vanish from the record with text the
database cannot store: a header byte 0xFF (mitmproxy keeps it as a lone surrogate) or a "\\ud800"
escape in the model name. Found by a red-team run: the call answered 200 and left no row."""

from __future__ import annotations

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import http1_request
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel

BODY = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]}'
BAD_MODEL = b'{"model":"gpt\\ud800","messages":[{"role":"user","content":"hello"}]}'


@pytest.mark.parametrize(
    ("header", "body"),
    [(b"User-Agent: curl/8 \xff", BODY), (b"OpenAI-Organization: org-\xff", BODY), (b"X-Nothing: 1", BAD_MODEL)],
    ids=["user-agent", "organization", "model"],
)
def test_a_call_with_text_the_database_cannot_store_is_still_recorded(proxy_with, upstream, header, body):
    proxy = proxy_with(None)
    user = "unstorable-" + marker()[:6]
    sock, _ = open_tunnel(proxy.port, "api.openai.com:443", user=user)
    tls = TlsClient(sock, proxy.ssl_context(), "api.openai.com")
    tls.handshake()
    head = http1_request("api.openai.com", "/v1/chat/completions", body)
    tls.send(head.replace(b"\r\n\r\n", b"\r\n" + header + b"\r\n\r\n", 1))
    assert tls.receive().startswith(b"HTTP/1.1 200")
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["host"] == "api.openai.com" and row["decision"] == "allow"
