"""A test-only TLS WebSocket server that speaks the SignalR hub protocol (JSON and MessagePack)
and plain JSON events, and a MessagePack writer of its own for the tests' messages.

The server (a tests/adversarial/wsupstream.py server that reads its messages its own way) accepts any path and any host name its
certificate holds, accepts permessage-deflate when the client offers it (so the proxy relays
compressed frames), and keeps every client message as (is_text, bytes) in `messages`. SignalR:
the client's handshake `{"protocol": ..., "version": 1}\\x1e` is answered with `{}\\x1e` (in a
binary message on a MessagePack connection, as ASP.NET Core does); each later client message
gets `replies` (a list of (is_text, bytes)) if a test set them, else nothing.

The writer (`pack`) is written from the MessagePack specification for the values the tests send
(nil, bool, small ints, str, bin, arrays, maps), independently of the proxy's own
(shadowgate.wireformats.msgpack), so a test does not check the reader with its own writer.
"""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

import trustme
from wsproto import ConnectionType
from wsproto import WSConnection
from wsproto.events import AcceptConnection
from wsproto.events import BytesMessage
from wsproto.events import CloseConnection
from wsproto.events import Message
from wsproto.events import Request
from wsproto.events import TextMessage
from wsproto.extensions import PerMessageDeflate

from tests.adversarial.wsupstream import WsUpstream

RS = "\x1e"


def cert_files(test_ca: trustme.CA, folder: Path, *hosts: str) -> tuple[str, str]:
    cert = test_ca.issue_cert(*hosts, "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "ws-cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "ws-key.pem"))
    return str(folder / "ws-cert.pem"), str(folder / "ws-key.pem")


class EncodingsUpstream(WsUpstream):
    def __init__(self, cert_pem: str, key_pem: str) -> None:
        self.messages: list[tuple[bool, bytes]] = []  # every client message: (is_text, data)
        self.compressed: list[bool] = []  # per connection: whether permessage-deflate was agreed
        self.replies: list[tuple[bool, bytes]] = []
        super().__init__(cert_pem, key_pem)

    def reached(self, needle: bytes) -> bool:
        return any(needle in data for _, data in self.messages)

    def _handle(self, raw: socket.socket) -> None:
        try:
            conn = self.context.wrap_socket(raw, server_side=True)
        except (ssl.SSLError, OSError):
            raw.close()
            return
        ws = WSConnection(ConnectionType.SERVER)
        protocol = None
        pieces: list[Any] = []
        try:
            while data := conn.recv(65536):
                ws.receive_data(data)
                for event in ws.events():
                    if isinstance(event, Request):
                        deflate = any("permessage-deflate" in e for e in event.extensions)
                        self.compressed.append(deflate)
                        conn.sendall(ws.send(AcceptConnection(extensions=[PerMessageDeflate()] if deflate else [])))
                    elif isinstance(event, Message):
                        pieces.append(event.data)
                        if not event.message_finished:
                            continue
                        is_text = isinstance(event, TextMessage)
                        whole = "".join(pieces).encode() if is_text else b"".join(pieces)
                        pieces = []
                        self.messages.append((is_text, whole))
                        if protocol is None and whole.startswith(b'{"protocol"') and whole.endswith(RS.encode()):
                            protocol = "messagepack" if b"messagepack" in whole else "json"
                            answer = "{}" + RS
                            conn.sendall(
                                ws.send(
                                    BytesMessage(answer.encode()) if protocol == "messagepack" else TextMessage(answer)
                                )
                            )
                            continue
                        for reply_is_text, reply in self.replies:
                            out = TextMessage(reply.decode()) if reply_is_text else BytesMessage(reply)
                            conn.sendall(ws.send(out))
                    elif isinstance(event, CloseConnection):
                        conn.sendall(ws.send(event.response()))
                        return
        except (OSError, ssl.SSLError):
            return
        finally:
            conn.close()


# --- MessagePack, written by hand from the specification -----------------------------------------


def pack(value: Any) -> bytes:
    if value is None:
        return b"\xc0"
    if value is True or value is False:
        return b"\xc3" if value else b"\xc2"
    if isinstance(value, int):
        assert 0 <= value <= 0x7F, "only positive fixints here"
        return bytes([value])
    if isinstance(value, str):
        data = value.encode()
        if len(data) < 32:
            return bytes([0xA0 | len(data)]) + data
        if len(data) < 256:
            return b"\xd9" + bytes([len(data)]) + data
        return b"\xda" + len(data).to_bytes(2, "big") + data
    if isinstance(value, bytes):
        assert len(value) < 256
        return b"\xc4" + bytes([len(value)]) + value
    if isinstance(value, list):
        assert len(value) < 16
        return bytes([0x90 | len(value)]) + b"".join(pack(v) for v in value)
    if isinstance(value, dict):
        assert len(value) < 16
        return bytes([0x80 | len(value)]) + b"".join(pack(k) + pack(v) for k, v in value.items())
    raise TypeError(type(value))


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def hub_message(*arrays: list) -> bytes:
    """SignalR MessagePack framing: each message's length as a VarInt, then the message."""
    return b"".join(varint(len(body)) + body for body in map(pack, arrays))
