"""Client side of tests/support/mitmdump_forkserver.py: a forked mitmdump with Popen's interface.

`ForkedMitmdump` answers what the tests ask a subprocess.Popen (pid, poll, wait, send_signal,
terminate, kill, returncode), so a Proxy does not care how its mitmdump was started.
Set SG_TEST_FORKSERVER=0 to start every mitmdump with a plain exec instead.
"""

from __future__ import annotations

import atexit
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SERVER = Path(__file__).with_name("mitmdump_forkserver.py")


def enabled() -> bool:
    return os.environ.get("SG_TEST_FORKSERVER", "1") != "0"


class ForkServer:
    """One per test process (each xdist worker has its own), started on first use."""

    def __init__(self) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="sg-forkserver-"))
        self.path = str(self.folder / "socket")
        self.process = subprocess.Popen(
            [sys.executable, str(SERVER), self.path], stdout=subprocess.PIPE, stdin=subprocess.DEVNULL
        )
        assert self.process.stdout is not None
        if self.process.stdout.readline() != b"ready\n":
            raise RuntimeError(f"mitmdump fork server did not start (exit {self.process.wait()})")
        atexit.register(self.close)

    def start(self, args: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None) -> ForkedMitmdump:
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        conn.connect(self.path)
        request = {"args": args, "cwd": str(cwd), "log": str(log), "env": dict(os.environ if env is None else env)}
        conn.sendall(json.dumps(request).encode() + b"\n")
        return ForkedMitmdump(conn, args)

    def close(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        with_socket = Path(self.path)
        with_socket.unlink(missing_ok=True)
        if with_socket.parent.is_dir():  # closed once already (count_boots closes it early)
            with_socket.parent.rmdir()


class ForkedMitmdump:
    """A mitmdump the fork server started; the server tells its exit status on `conn`."""

    def __init__(self, conn: socket.socket, args: list[str]) -> None:
        self.args = args
        self._conn = conn
        self._buffer = b""
        self.returncode: int | None = None
        self.pid = int(self._read_line(timeout=60).split()[1])

    def _read_line(self, timeout: float | None) -> str:
        deadline = None if timeout is None else time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            self._conn.settimeout(remaining)
            try:
                chunk = self._conn.recv(4096)
            except (TimeoutError, BlockingIOError):
                raise subprocess.TimeoutExpired(self.args, timeout or 0) from None
            if not chunk:
                raise RuntimeError("mitmdump fork server closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line.decode()

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            self.returncode = int(self._read_line(timeout).split()[1])
            self._conn.close()
        return self.returncode

    def poll(self) -> int | None:
        if self.returncode is None:
            try:
                self.wait(timeout=0)
            except subprocess.TimeoutExpired:
                return None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


_server: ForkServer | None = None


def start_mitmdump(args: list[str], cwd: Path, log: Path) -> subprocess.Popen | ForkedMitmdump:
    """`args` (MITMDUMP first) as a process writing to `log`: forked from the server, or exec'd."""
    global _server
    if not enabled():
        with open(log, "wb") as out:
            return subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    log.write_bytes(b"")  # exists (and is empty) before the start, as Popen's stdout file would be
    if _server is None:
        _server = ForkServer()
    return _server.start(args, cwd, log)
