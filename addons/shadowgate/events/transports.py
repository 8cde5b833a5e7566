"""Where SIEM lines go: a file, stdout, or syslog over UDP, TCP or TLS.

A destination is written `FORMAT:TARGET`, e.g. `json:/var/log/shadowgate/events.jsonl`,
`json:-` (stdout), `syslog:udp://siem.example:514`, `cef:tcp://collector:514`,
`syslog:tls://siem.example:6514`. Over TCP and TLS, syslog and CEF messages are framed by octet
counting (RFC 6587 3.4.1, the framing RFC 5425 prescribes for TLS); JSON is one line per event.
Every method here runs on the feed's thread, never on the event loop.
"""

from __future__ import annotations

import os
import socket
import ssl
import sys
from dataclasses import dataclass
from typing import TextIO
from urllib.parse import urlsplit

from shadowgate.events.formats import FORMATS

NETWORK_SCHEMES = ("udp", "tcp", "tls")
MAX_DATAGRAM = 65_000  # a UDP payload must fit one datagram; longer messages are cut
CONNECT_TIMEOUT = 5.0


@dataclass(frozen=True, slots=True)
class Destination:
    fmt: str
    scheme: str  # file, stdout, udp, tcp, tls
    target: str  # a path, or host
    port: int = 0

    @property
    def network(self) -> bool:
        return self.scheme in NETWORK_SCHEMES

    def __str__(self) -> str:
        where = f"{self.scheme}://{self.target}:{self.port}" if self.network else self.target
        return f"{self.fmt}:{where}"


def parse_destination(text: str) -> Destination:
    """`FORMAT:TARGET`; raises ValueError with what is wrong."""
    fmt, sep, target = text.partition(":")
    if not sep or fmt not in FORMATS:
        raise ValueError(f"{text!r}: write FORMAT:TARGET with FORMAT one of {', '.join(FORMATS)}")
    if target in ("-", "stdout"):
        return Destination(fmt, "stdout", "-")
    scheme = target.split("://", 1)[0] if "://" in target else ""
    if scheme:
        if scheme not in NETWORK_SCHEMES:
            raise ValueError(f"{text!r}: the scheme is one of {', '.join(NETWORK_SCHEMES)}")
        parts = urlsplit(target)
        if not parts.hostname or not parts.port:
            raise ValueError(f"{text!r}: wants {scheme}://HOST:PORT")
        return Destination(fmt, scheme, parts.hostname, parts.port)
    if not target:
        raise ValueError(f"{text!r}: no file named")
    return Destination(fmt, "file", os.path.expanduser(target))


class Sink:
    """Sends lines; raises OSError when they did not go (the caller keeps and retries them)."""

    def send(self, lines: list[str]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class FileSink(Sink):
    """Appends; reopens a file that was renamed or deleted (logrotate's default create mode)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._file: TextIO | None = None
        self._inode: tuple[int, int] | None = None

    def send(self, lines: list[str]) -> None:
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self._file is None or current != self._inode:
            self.close()
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            self._file = open(self.path, "a", encoding="utf-8")
            st = os.fstat(self._file.fileno())
            self._inode = (st.st_dev, st.st_ino)
        self._file.write("".join(line + "\n" for line in lines))
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class StdoutSink(Sink):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, lines: list[str]) -> None:
        self.stream.write("".join(line + "\n" for line in lines))
        self.stream.flush()


class UdpSink(Sink):
    """One message per datagram (RFC 5426); a lost datagram is not noticed, as with any UDP syslog."""

    def __init__(self, host: str, port: int) -> None:
        self.address = (host, port)
        self._sock: socket.socket | None = None

    def send(self, lines: list[str]) -> None:
        if self._sock is None:
            family, kind, proto, _, address = socket.getaddrinfo(*self.address, type=socket.SOCK_DGRAM)[0]
            self._sock = socket.socket(family, kind, proto)
            self._sock.connect(address)
        for line in lines:
            self._sock.send(line.encode("utf-8")[:MAX_DATAGRAM])

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class StreamSink(Sink):
    """TCP or TLS; connects on first use and again after a failure."""

    def __init__(self, host: str, port: int, *, octet_counted: bool, tls: ssl.SSLContext | None = None) -> None:
        self.host, self.port = host, port
        self.octet_counted = octet_counted
        self.tls = tls
        self._sock: socket.socket | None = None

    def _frame(self, line: str) -> bytes:
        data = line.encode("utf-8")
        return b"%d %s" % (len(data), data) if self.octet_counted else data + b"\n"

    def send(self, lines: list[str]) -> None:
        if self._sock is None:
            sock = socket.create_connection((self.host, self.port), timeout=CONNECT_TIMEOUT)
            if self.tls is not None:
                try:
                    sock = self.tls.wrap_socket(sock, server_hostname=self.host)
                except (OSError, ssl.SSLError):
                    sock.close()
                    raise
            self._sock = sock
        try:
            self._sock.sendall(b"".join(self._frame(line) for line in lines))
        except OSError:
            self.close()
            raise

    def close(self) -> None:
        if self._sock is not None:
            try:
                self._sock.close()
            except OSError:
                pass
            self._sock = None


def open_sink(dest: Destination, *, tls_ca: str | None = None) -> Sink:
    if dest.scheme == "file":
        return FileSink(dest.target)
    if dest.scheme == "stdout":
        return StdoutSink()
    if dest.scheme == "udp":
        return UdpSink(dest.target, dest.port)
    context = None
    if dest.scheme == "tls":
        context = ssl.create_default_context(cafile=tls_ca or None)
    return StreamSink(dest.target, dest.port, octet_counted=dest.fmt != "json", tls=context)
