"""Raw-socket tools for attacking the proxy: CONNECT by hand, TLS driven byte by byte.

A TlsClient runs a real TLS client (ssl.SSLObject over memory BIOs) on a socket, so a test can
cut, delay or alter the ClientHello's bytes on their way out and still finish the handshake.
"""

from __future__ import annotations

import base64
import socket
import ssl
import time
import uuid
from collections.abc import Callable


def marker() -> str:
    return uuid.uuid4().hex


def open_tunnel(port: int, target: str, user: str = "mallory", timeout: float = 10.0) -> tuple[socket.socket, int]:
    """A CONNECT tunnel through the proxy: (socket, status code of the CONNECT answer)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    auth = base64.b64encode(f"{user}:pw".encode()).decode()
    sock.sendall(f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\nProxy-Authorization: Basic {auth}\r\n\r\n".encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    status = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/") else 0
    return sock, status


def tls_tunnel(port: int, target: str, context: ssl.SSLContext, sni: str | None, user: str = "mallory") -> TlsClient:
    """A CONNECT tunnel (which must be accepted) with a finished TLS handshake inside it."""
    sock, status = open_tunnel(port, target, user=user)
    assert status == 200, f"CONNECT {target} answered {status}"
    client = TlsClient(sock, context, sni)
    client.handshake()
    return client


def recv_all(sock: socket.socket, timeout: float = 5.0) -> bytes:
    """Everything the peer sends until it closes or goes quiet."""
    sock.settimeout(timeout)
    out = b""
    try:
        while chunk := sock.recv(65536):
            out += chunk
    except (TimeoutError, ConnectionResetError):
        pass
    return out


class TlsClient:
    """A TLS client on an open socket whose first flight goes out through `send_hello`."""

    def __init__(self, sock: socket.socket, context: ssl.SSLContext, server_hostname: str | None) -> None:
        self.sock = sock
        self.incoming = ssl.MemoryBIO()
        self.outgoing = ssl.MemoryBIO()
        self.tls = context.wrap_bio(self.incoming, self.outgoing, server_hostname=server_hostname)

    def client_hello(self) -> bytes:
        try:
            self.tls.do_handshake()
        except ssl.SSLWantReadError:
            pass
        return self.outgoing.read()

    def handshake(self, send_hello: Callable[[socket.socket, bytes], None] | None = None, timeout: float = 5.0) -> None:
        """Raises ssl.SSLError or ConnectionError when the handshake does not complete."""
        hello = self.client_hello()
        (send_hello or (lambda s, b: s.sendall(b)))(self.sock, hello)
        self.sock.settimeout(timeout)
        while True:
            data = self.sock.recv(65536)
            if not data:
                raise ConnectionError("the proxy closed the connection during the handshake")
            self.incoming.write(data)
            try:
                self.tls.do_handshake()
            except ssl.SSLWantReadError:
                self._flush()
                continue
            self._flush()
            return

    def _flush(self) -> None:
        if pending := self.outgoing.read():
            self.sock.sendall(pending)

    def send(self, data: bytes) -> None:
        self.tls.write(data)
        self._flush()

    def read_some(self, timeout: float = 5.0) -> bytes:
        """The plaintext of the next socket read; b"" when the peer closed."""
        self.sock.settimeout(timeout)
        while True:
            try:
                return self.tls.read(65536)
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return b""
            data = self.sock.recv(65536)
            if not data:
                return b""
            self.incoming.write(data)

    def receive(self, timeout: float = 5.0) -> bytes:
        """Plaintext until the peer closes or goes quiet for `timeout`."""
        self.sock.settimeout(timeout)
        out = b""
        while True:
            try:
                out += self.tls.read(65536)
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return out
            try:
                data = self.sock.recv(65536)
            except (TimeoutError, ConnectionResetError):
                return out
            if not data:
                return out
            self.incoming.write(data)
            if b"\r\n\r\n" in out and _complete(out):
                return out


def _complete(response: bytes) -> bool:
    head, _, body = response.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return len(body) >= int(value)
    return False


def split_after(first: int, pause: float = 0.3) -> Callable[[socket.socket, bytes], None]:
    """Send the first `first` bytes on their own, wait, then the rest: two TCP segments."""

    def send(sock: socket.socket, data: bytes) -> None:
        sock.sendall(data[:first])
        time.sleep(pause)
        sock.sendall(data[first:])

    return send


def record_version(major: int, minor: int) -> Callable[[socket.socket, bytes], None]:
    """Rewrite every record header's version in the first flight (servers read it leniently)."""

    def send(sock: socket.socket, data: bytes) -> None:
        out = bytearray(data)
        offset = 0
        while offset + 5 <= len(out):
            out[offset + 1 : offset + 3] = bytes((major, minor))
            offset += 5 + int.from_bytes(out[offset + 3 : offset + 5], "big")
        sock.sendall(bytes(out))

    return send


def http1_request(
    host: str, path: str, body: bytes, headers: dict[str, str] | None = None, target: str | None = None
) -> bytes:
    lines = [
        f"POST {target or path} HTTP/1.1",
        f"Host: {host}",
        "Content-Type: application/json",
        f"Content-Length: {len(body)}",
        "Connection: close",
    ]
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def h2_exchange(
    client: TlsClient, requests: list[tuple[str, str, bytes, dict[str, str]]], validate: bool = True
) -> list[tuple[int, bytes]]:
    """Send each (authority, path, body, headers) as a POST on one HTTP/2 connection, one after
    the other, and return each (status, body). validate=False: send headers the h2 library would
    refuse to (an absolute `:path`, a `host` header), as an attacker's client does."""
    import h2.config
    import h2.connection
    import h2.events

    config = h2.config.H2Configuration(
        client_side=True,
        header_encoding="utf-8",
        validate_outbound_headers=validate,
        normalize_outbound_headers=validate,
    )
    conn = h2.connection.H2Connection(config=config)
    conn.initiate_connection()
    client.send(conn.data_to_send())
    answers = []
    for authority, path, body, headers in requests:
        stream = conn.get_next_available_stream_id()
        pseudo = [(":method", "POST"), (":authority", authority), (":scheme", "https"), (":path", path)]
        conn.send_headers(stream, pseudo + [("content-type", "application/json"), *headers.items()])
        conn.send_data(stream, body, end_stream=True)
        client.send(conn.data_to_send())
        status, data, done = 0, b"", False
        while not done:
            chunk = client.read_some()
            if not chunk:
                break
            for event in conn.receive_data(chunk):
                if isinstance(event, h2.events.ResponseReceived) and event.stream_id == stream:
                    status = int(dict(event.headers)[":status"])
                elif isinstance(event, h2.events.DataReceived) and event.stream_id == stream:
                    data += event.data
                    conn.acknowledge_received_data(event.flow_controlled_length, stream)
                elif isinstance(event, (h2.events.StreamEnded, h2.events.StreamReset)) and event.stream_id == stream:
                    done = True
            client.send(conn.data_to_send())
        answers.append((status, data))
    return answers


def protobuf_field(number: int, value: bytes | int) -> bytes:
    """A protobuf field: a varint for an int, else a length-delimited value (any length)."""

    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n >> 7 else 0))
            n >>= 7
            if not n:
                return bytes(out)

    if isinstance(value, int):
        return varint(number << 3) + varint(value)
    return varint(number << 3 | 2) + varint(len(value)) + value
