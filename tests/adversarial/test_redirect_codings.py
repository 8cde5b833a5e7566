"""Class 2d for redirects: a re-routed body with stacked or aliased content codings.

A redirect rule sends OpenAI calls to the company gateway and maps the model to the gateway's
name. mitmproxy decodes one coding per Content-Encoding value, so a body sent as `gzip, gzip`
or `x-gzip` used to be read raw by the redirect: the model map did not apply and the gateway got
the unmapped model. It is now decoded as every other stage decodes it, and a body that cannot
be decoded is refused. Each case asserts what reached the upstream, the answer and the row.
"""

from __future__ import annotations

import gzip
import json

import brotli
import pytest

from shadowgate.wireformats.decoding import decode_body
from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import http1_request
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel
from tests.adversarial.wire import recv_all

GATEWAY_KEY = "sk-corp-gateway-codings"
POLICY = """\
rules:
  - id: to-gateway
    match: {provider: openai}
    action: redirect
    gateway:
      openai_base_url: "https://llm.corp.test/v1"
      key_env: SG_REDIRECT_CODINGS_KEY
      model_map: {gpt-4o-mini: corp-small}
"""
BODY = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}).encode()


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    """The session proxy with this module's policy and its gateway key in the proxy's environment."""
    return module_proxy_with(POLICY, environ={"SG_REDIRECT_CODINGS_KEY": GATEWAY_KEY})


def _post(proxy, user: str, body: bytes, coding: str) -> tuple[bytes, str]:
    mark = marker()
    sock, status = open_tunnel(proxy.port, "api.openai.com:443", user=user)
    assert status == 200
    client = TlsClient(sock, proxy.ssl_context(), "api.openai.com")
    client.handshake()
    client.send(
        http1_request("api.openai.com", "/v1/chat/completions", body, {"content-encoding": coding, "x-attack": mark})
    )
    return client.receive() or recv_all(sock, 1), mark


def _seen(upstream, mark: str):
    return [s for s in upstream.seen if s.headers.get("x-attack") == mark]


@pytest.mark.parametrize(
    ("coding", "encode"),
    [
        ("gzip, gzip", lambda b: gzip.compress(gzip.compress(b))),
        ("x-gzip", gzip.compress),
        ("GZIP , br", lambda b: brotli.compress(gzip.compress(b))),
        ("identity, gzip", gzip.compress),
    ],
    ids=["gzip-gzip", "x-gzip", "gzip-br", "identity-gzip"],
)
def test_a_stacked_or_aliased_coding_gets_the_gateway_model(gate, upstream, coding, encode):
    user = "codings-" + coding.replace(",", "").replace(" ", "-").lower()
    answer, mark = _post(gate, user, encode(BODY), coding)
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    [seen] = _seen(upstream, mark)
    assert (seen.host, seen.path) == ("llm.corp.test", "/v1/chat/completions")
    assert seen.headers["authorization"] == f"Bearer {GATEWAY_KEY}"
    sent = json.loads(decode_body(seen.body, seen.headers.get("content-encoding")))
    assert sent["model"] == "corp-small"
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert (row["decision"], row["redirect_target"]) == ("redirect", "llm.corp.test")


@pytest.mark.parametrize(
    ("coding", "body"),
    [
        ("gzip, gzip", gzip.compress(BODY, mtime=0)),  # one layer fewer than it claims
        ("x-gzip", gzip.compress(BODY, mtime=0)[:-9]),  # truncated
        ("compress", BODY),  # registered, but nothing decodes LZW
        ("gzip", gzip.compress(BODY, mtime=0) + b"trailing bytes"),
    ],
    ids=["one-layer-short", "truncated", "lzw", "trailing-bytes"],
)
def test_a_body_that_cannot_be_decoded_is_refused_not_forwarded(gate, upstream, coding, body):
    user = "codings-bad-" + marker()[:8]
    answer, mark = _post(gate, user, body, coding)
    assert answer.startswith(b"HTTP/1.1 4"), answer[:300]
    assert not _seen(upstream, mark)
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert row["status_code"] in (400, 403, 415)


def test_a_token_count_stays_a_token_count_at_the_gateway(module_proxy_with, upstream):
    # Sent to the gateway's /v1/messages it became a generation call, billed (round-3 red team).
    policy = (
        "rules:\n  - id: claude-to-gateway\n    match: {provider: anthropic}\n    action: redirect\n"
        "    gateway: {anthropic_base_url: 'https://llm.corp.test/anthropic', key_env: SG_REDIRECT_CODINGS_KEY}\n"
    )
    proxy = module_proxy_with(policy, environ={"SG_REDIRECT_CODINGS_KEY": GATEWAY_KEY})
    mark = marker()
    body = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "hi"}]}
    with proxy.client("count-tokens") as client:
        client.post(
            "https://api.anthropic.com/v1/messages/count_tokens",
            json=body,
            headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "x-attack": mark},
        )
    [seen] = _seen(upstream, mark)
    assert (seen.host, seen.path) == ("llm.corp.test", "/anthropic/v1/messages/count_tokens")
