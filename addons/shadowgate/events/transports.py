"""Where SIEM lines go: a file, stdout, or syslog over UDP, TCP or TLS.

A destination is written `FORMAT:TARGET`, e.g. `json:/var/log/shadowgate/events.jsonl`,
`json:-` (stdout), `syslog:udp://siem.example:514`, `cef:tcp://collector:514`,
`syslog:tls://siem.example:6514`. Over TCP and TLS, syslog and CEF messages are framed by octet
counting (RFC 6587 3.4.1, the framing RFC 5425 prescribes for TLS); JSON is one line per event.
Every method here runs on the feed's thread, never on the event loop.
"""

from __future__ import annotations

import errno
import os
import re
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
_SURROGATE = re.compile("[\ud800-\udfff]")


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
    if any(f",{other}:" in target for other in FORMATS):
        # A comma list (as other options take) would be one file with a comma in its name.
        raise ValueError(f"{text!r}: one destination per value: repeat --set shadowgate_siem=FORMAT:TARGET")
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


def as_utf8(text: str) -> str:
    """The text with any lone surrogate as U+FFFD: writable as UTF-8 anywhere (a file, a mail header)."""
    return wire_bytes(text).decode("utf-8")


def wire_bytes(line: str) -> bytes:
    """A line as UTF-8. A lone surrogate (a header's undecodable byte, a "\\ud800" escape in a JSON
    body) becomes U+FFFD: one such value must not make every later line unsendable."""
    try:
        return line.encode("utf-8")
    except UnicodeEncodeError:
        return _SURROGATE.sub("\ufffd", line).encode("utf-8")


class FileSink(Sink):
    """Appends whole lines; reopens a file that was renamed or deleted (logrotate's default create mode).

    Written with os.write on an O_APPEND descriptor, so nothing waits in a buffer to reappear later.
    A write that fails half way (a full disk) is cut back to where it began, so the file never holds
    half a line and the feed's retry writes each line once; where the cut is not possible the next
    write starts on a new line."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._inode: tuple[int, int] | None = None
        self._torn = False  # a partial line may end the file

    def _open(self) -> int:
        try:
            st = os.stat(self.path)
            current: tuple[int, int] | None = (st.st_dev, st.st_ino)
        except FileNotFoundError:
            current = None
        if self._fd is None or current != self._inode:
            self.close()
            self._fd = _open_append(self.path)
            st = os.fstat(self._fd)
            self._inode = (st.st_dev, st.st_ino)
        return self._fd

    def send(self, lines: list[str]) -> None:
        fd = self._open()
        data = memoryview((b"\n" if self._torn else b"") + b"".join(wire_bytes(line) + b"\n" for line in lines))
        start = os.fstat(fd).st_size
        try:
            while data:
                data = data[os.write(fd, data) :]
        except OSError:
            self._cut(fd, start)
            raise
        self._torn = False

    def _cut(self, fd: int, start: int) -> None:
        try:
            if os.fstat(fd).st_size > start:
                os.ftruncate(fd, start)
        except OSError:  # not a regular file, or the cut failed too
            self._torn = True

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _open_append(path: str) -> int:
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    except OSError:
        pass  # the open says why better ("Not a directory" rather than "File exists")
    return os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o640)


def probe_file(path: str) -> str | None:
    """Why the feed could not append to this file now, or None (blocking: run on a thread)."""
    try:
        fd = _open_append(path)
        try:
            st = os.fstatvfs(fd)
        finally:
            os.close(fd)
    except OSError as e:
        return os.strerror(e.errno) if e.errno else str(e)
    if os.path.isfile(path) and st.f_bavail == 0:
        return os.strerror(errno.ENOSPC)
    return None


class StdoutSink(Sink):
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout

    def send(self, lines: list[str]) -> None:
        self.stream.write("".join(wire_bytes(line).decode("utf-8") + "\n" for line in lines))
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
            self._sock.send(wire_bytes(line)[:MAX_DATAGRAM])

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
        data = wire_bytes(line)
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
