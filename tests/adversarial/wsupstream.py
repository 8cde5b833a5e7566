"""A test-only TLS WebSocket server that speaks enough OpenAI Realtime and Gemini Live.

OpenAI (any path ending /realtime): session.created with the URL's model; every
`response.create` gets a response.done with usage 10 in (2 cached) / 5 out. Gemini (a path with
BidiGenerateContent): setupComplete after `setup`; every clientContent or realtimeInput gets a
serverContent turn with usageMetadata 7 prompt / 3 response. A request that upgrades to
`x-tunnel` gets a 101 and then an echo of raw bytes: a provider that helps a tunnel. Every client message is kept in
`received` so a test can see exactly what reached the provider.
"""

from __future__ import annotations

import json
import socket
import ssl
import threading
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from wsproto import ConnectionType
from wsproto import WSConnection
from wsproto.events import AcceptConnection
from wsproto.events import CloseConnection
from wsproto.events import Message
from wsproto.events import Request
from wsproto.events import TextMessage

OPENAI_USAGE = {"total_tokens": 15, "input_tokens": 10, "output_tokens": 5, "input_token_details": {"cached_tokens": 2}}
GEMINI_USAGE = {"promptTokenCount": 7, "responseTokenCount": 3, "totalTokenCount": 10}


class WsUpstream:
    def __init__(self, cert_pem: str, key_pem: str) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert_pem, key_pem)
        self.upgrades: list[str] = []
        self.received: list[str] = []
        self._sock = socket.create_server(("127.0.0.1", 0))
        self.port = self._sock.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def stop(self) -> None:
        self._sock.close()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        ws = WSConnection(ConnectionType.SERVER)
        path = ""
        try:
            head = b""
            while b"\r\n\r\n" not in head and (chunk := conn.recv(65536)):
                head += chunk
            if b"upgrade: x-tunnel" in head.lower():
                return self._raw_tunnel(conn, head)
            data = head
            while True:
                ws.receive_data(data or None)
                for event in ws.events():
                    if isinstance(event, Request):
                        path = event.target
                        self.upgrades.append(path)
                        conn.sendall(ws.send(AcceptConnection()))
                        if "bidigeneratecontent" not in path.lower():
                            model = parse_qs(urlsplit(path).query).get("model", ["?"])[0]
                            self._send(conn, ws, {"type": "session.created", "session": {"model": model}})
                    elif isinstance(event, TextMessage):
                        self.received.append(event.data)
                        self._answer(conn, ws, path, event.data)
                    elif isinstance(event, Message):
                        self.received.append(bytes(event.data).decode("utf-8", "replace"))
                    elif isinstance(event, CloseConnection):
                        conn.sendall(ws.send(event.response()))
                        return
                if not data:
                    return
                data = conn.recv(65536)
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()

    def _raw_tunnel(self, conn: ssl.SSLSocket, head: bytes) -> None:
        """A server that switches to any protocol it is asked for, then echoes what it gets."""
        self.upgrades.append(head.split(b" ", 2)[1].decode())
        conn.sendall(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: x-tunnel\r\nConnection: Upgrade\r\n\r\n")
        while data := conn.recv(65536):
            self.received.append(data.decode("utf-8", "replace"))
            conn.sendall(data)

    def _send(self, conn: ssl.SSLSocket, ws: WSConnection, body: dict) -> None:
        conn.sendall(ws.send(TextMessage(json.dumps(body))))

    def _answer(self, conn: ssl.SSLSocket, ws: WSConnection, path: str, text: str) -> None:
        body = json.loads(text)
        if "bidigeneratecontent" in path.lower():
            if "setup" in body:
                self._send(conn, ws, {"setupComplete": {}})
            elif "clientContent" in body or "realtimeInput" in body:
                self._send(
                    conn,
                    ws,
                    {
                        "serverContent": {"modelTurn": {"parts": [{"text": "hello"}]}, "turnComplete": True},
                        "usageMetadata": GEMINI_USAGE,
                    },
                )
        elif body.get("type") == "response.create":
            self._send(conn, ws, {"type": "response.created", "response": {"id": "resp_1", "status": "in_progress"}})
            self._send(
                conn,
                ws,
                {"type": "response.done", "response": {"id": "resp_1", "status": "completed", "usage": OPENAI_USAGE}},
            )
