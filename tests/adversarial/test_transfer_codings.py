"""Class 2: a transfer coding the proxy does not undo (red-team F13).

mitmproxy undoes only `chunked`: a `Transfer-Encoding: gzip, chunked` body reached DLP still
gzip-coded (no finding) and went upstream so, under the same header, to a server that may undo
the gzip itself. No client library sends a request like this; on an AI call it is refused with
an error that says why, and recorded (rule shadowgate:transfer-coding).
"""

from __future__ import annotations

import gzip
import json
import zlib

import pytest

from tests.adversarial.wire import marker
from tests.adversarial.wire import tls_tunnel

AWS = "AKIA2OGYBAH6STMMNXNN"
SECRET = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"key {AWS}"}]}).encode()
CHAT = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
CODERS = {"gzip": gzip.compress, "deflate": zlib.compress}


def _chunked_post(proxy, user: str, transfer_encoding: str, body: bytes) -> tuple[bytes, str]:
    mark = marker()
    client = tls_tunnel(proxy.port, "api.openai.com:443", proxy.ssl_context(), "api.openai.com", user)
    head = (
        "POST /v1/chat/completions HTTP/1.1\r\nHost: api.openai.com\r\nContent-Type: application/json\r\n"
        f"Transfer-Encoding: {transfer_encoding}\r\nx-attack: {mark}\r\nConnection: close\r\n\r\n"
    )
    client.send(head.encode() + f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n")
    return client.receive(), mark


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_coded_transfer_coding_is_refused_with_a_row(proxy_with, upstream, coding):
    proxy = proxy_with("dlp: {secrets: block}\n")
    user = f"te-{coding}"
    answer, mark = _chunked_post(proxy, user, f"{coding}, chunked", CODERS[coding](SECRET))
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert b"transfer coding" in answer
    assert not _reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "shadowgate:transfer-coding")


def test_a_model_rule_cannot_be_passed_by_a_transfer_coding(proxy_with, upstream):
    # Without DLP too: the model inside the coded body is unread, so no rule could judge it.
    proxy = proxy_with("rules:\n  - {id: no-gpt4o, match: {model: 'gpt-4o'}, action: block}\n")
    answer, mark = _chunked_post(proxy, "te-model", "gzip, chunked", gzip.compress(CHAT))
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert not _reached(upstream, mark)


def test_plain_chunked_still_passes_and_is_scanned(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block}\n")
    answer, mark = _chunked_post(proxy, "te-chunked", "chunked", json.dumps(json.loads(CHAT)).encode())
    assert answer.startswith(b"HTTP/1.1 200"), answer[:300]
    assert _reached(upstream, mark)
    answer, mark = _chunked_post(proxy, "te-chunked-key", "chunked", SECRET)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:300]
    assert not _reached(upstream, mark)
