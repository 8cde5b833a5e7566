"""Chat-app requests sent to an IP literal are judged by the host they name (red-team F6).

A plain-HTTP request in a tunnel to 127.0.0.1 whose Host header is chatgpt.com is ChatGPT's
(the server behind the IP routes by Host). Identify already judged it so; the chat-app stages
took the host from the SNI or the CONNECT target instead, so a page visit the policy refused
left no row, and the row of an unlisted endpoint named the IP, not the app.
"""

from __future__ import annotations

import json

from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel
from tests.adversarial.wire import recv_all

AWS = "AKIA2OGYBAH6STMMNXNN"


def _plain_request(method: str, host: str, path: str, body: bytes, headers: dict[str, str]) -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}", f"Content-Length: {len(body)}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def _reached(upstream, mark: str) -> bool:
    return any(s.headers.get("x-attack") == mark for s in upstream.seen)


def test_an_unlisted_chatgpt_endpoint_reached_by_ip_is_recorded_as_chatgpt(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block, pii: log}\n")
    user, mark = "webip-unlisted", marker()
    sock, status = open_tunnel(proxy.port, "127.0.0.1:80", user=user)
    assert status == 200
    body = json.dumps({"content": f"aws_access_key_id={AWS}"}).encode()
    headers = {"x-attack": mark, "content-type": "application/json"}
    sock.sendall(_plain_request("POST", "chatgpt.com", "/backend-api/memories", body, headers))
    answer = recv_all(sock)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert not _reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table="web_activity")
    assert (row["host"], row["endpoint"], row["dlp_findings"]) == ("chatgpt.com", "unmatched", "AWS_ACCESS_KEY:1")


def test_a_blocked_page_visit_by_ip_leaves_its_row(proxy_with, upstream):
    proxy = proxy_with("rules:\n  - {id: no-chatgpt, match: {provider: chatgpt}, action: block}\n")
    user, mark = "webip-visit", marker()
    sock, status = open_tunnel(proxy.port, "127.0.0.1:80", user=user)
    assert status == 200
    headers = {"x-attack": mark, "accept": "text/html", "sec-fetch-mode": "navigate"}
    sock.sendall(_plain_request("GET", "chatgpt.com", "/", b"", headers))
    answer = recv_all(sock)
    assert answer.startswith(b"HTTP/1.1 403"), answer[:200]
    assert not _reached(upstream, mark)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table="web_activity")
    assert (row["host"], row["app"], row["endpoint"], row["decision"]) == ("chatgpt.com", "chatgpt", "visit", "block")
