"""Local receivers for what shadowgate sends out: syslog (UDP, TCP), a webhook, an SMTP server.

Each runs on a thread on 127.0.0.1 and keeps what it received, so a test can assert on the
bytes that actually crossed a socket. The SMTP sink speaks enough of RFC 5321 for smtplib:
EHLO, STARTTLS (with a trustme certificate), AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
"""

from __future__ import annotations

import base64
import json
import re
import socket
import socketserver
import ssl
import threading
import time
from email import message_from_bytes
from email import policy as email_policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any


def wait_for(predicate, timeout: float = 10.0, what: str = "the condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class _Server:
    def start(self, server: socketserver.BaseServer) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class UdpSyslog(_Server):
    def __init__(self) -> None:
        self.messages: list[str] = []
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.messages.append(self.request[0].decode("utf-8"))

        self.start(socketserver.ThreadingUDPServer(("127.0.0.1", 0), Handler))


def octet_frames(data: bytes) -> list[str]:
    """RFC 6587 octet-counted frames: 'LEN SP MSG' repeated."""
    out, i = [], 0
    while i < len(data):
        space = data.index(b" ", i)
        length = int(data[i:space])
        out.append(data[space + 1 : space + 1 + length].decode("utf-8"))
        i = space + 1 + length
    return out


class TcpSyslog(_Server):
    """Keeps each connection's raw bytes; `messages` splits them by octet counting (or lines).
    tls: a server-side ssl.SSLContext makes it an RFC 5425 (syslog over TLS) receiver."""

    def __init__(self, *, lines: bool = False, port: int = 0, tls: ssl.SSLContext | None = None) -> None:
        self.chunks: list[bytes] = []
        self.connections = 0
        self.lines = lines
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                outer.connections += 1
                conn = tls.wrap_socket(self.request, server_side=True) if tls is not None else self.request
                while data := conn.recv(65536):
                    outer.chunks.append(data)

        socketserver.ThreadingTCPServer.allow_reuse_address = True
        self.start(socketserver.ThreadingTCPServer(("127.0.0.1", port), Handler))

    @property
    def messages(self) -> list[str]:
        data = b"".join(self.chunks)
        if self.lines:
            return [line.decode() for line in data.splitlines() if line]
        return octet_frames(data)


class Webhook(_Server):
    """Answers 200 (or `status`) to every POST and keeps the JSON bodies and paths."""

    def __init__(self, status: int = 200) -> None:
        self.bodies: list[Any] = []
        self.paths: list[str] = []
        self.status = status
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                body = self.rfile.read(length)
                outer.paths.append(self.path)
                outer.bodies.append(json.loads(body))
                self.send_response(outer.status)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args) -> None:
                pass

        self.start(ThreadingHTTPServer(("127.0.0.1", 0), Handler))

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"


class SmtpSink(_Server):
    """A tiny SMTP server that keeps every message. tls: an ssl.SSLContext offers STARTTLS;
    users: {name: password} requires AUTH PLAIN."""

    def __init__(self, tls: ssl.SSLContext | None = None, users: dict[str, str] | None = None) -> None:
        self.messages: list[EmailMessage] = []
        self.envelopes: list[tuple[str, list[str]]] = []
        self.logins: list[str] = []
        self.used_tls: list[bool] = []
        outer = self

        class Handler(socketserver.StreamRequestHandler):
            def handle(self) -> None:
                conn: socket.socket = self.request
                reader = conn.makefile("rb")
                tls_on = False
                authed = users is None
                mail_from, rcpts = "", []

                def reply(text: str) -> None:
                    conn.sendall(text.encode() + b"\r\n")

                reply("220 sink ESMTP")
                while line := reader.readline():
                    cmd = line.decode().rstrip("\r\n")
                    verb = cmd.split(" ", 1)[0].upper()
                    if verb in ("EHLO", "HELO"):
                        ext = ["250-sink"]
                        if tls is not None and not tls_on:
                            ext.append("250-STARTTLS")
                        if users is not None:
                            ext.append("250-AUTH PLAIN")
                        ext.append("250 8BITMIME")
                        reply("\r\n".join(ext))
                    elif verb == "STARTTLS" and tls is not None:
                        reply("220 go ahead")
                        conn = tls.wrap_socket(conn, server_side=True)
                        reader = conn.makefile("rb")
                        tls_on = True
                    elif verb == "AUTH":
                        _, user, password = base64.b64decode(cmd.split()[2]).decode().split("\0")
                        if users is not None and users.get(user) == password:
                            authed = True
                            outer.logins.append(user)
                            reply("235 ok")
                        else:
                            reply("535 bad credentials")
                    elif verb == "MAIL":
                        if not authed:
                            reply("530 authentication required")
                            continue
                        mail_from = re.search(r"<(.*?)>", cmd)[1]
                        rcpts = []
                        reply("250 ok")
                    elif verb == "RCPT":
                        rcpts.append(re.search(r"<(.*?)>", cmd)[1])
                        reply("250 ok")
                    elif verb == "DATA":
                        reply("354 end with .")
                        data = b""
                        while (chunk := reader.readline()) not in (b".\r\n", b""):
                            data += chunk[1:] if chunk.startswith(b"..") else chunk
                        outer.messages.append(message_from_bytes(data, policy=email_policy.default))
                        outer.envelopes.append((mail_from, rcpts))
                        outer.used_tls.append(tls_on)
                        reply("250 queued")
                    elif verb == "QUIT":
                        reply("221 bye")
                        return
                    else:
                        reply("250 ok")

        self.start(socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler))

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"
