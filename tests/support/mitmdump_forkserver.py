"""Test harness: start real mitmdump processes by fork from one process that imported mitmproxy once.

    python tests/support/mitmdump_forkserver.py SOCKET

A mitmdump start spends most of its ~3 s of CPU importing mitmproxy and the libraries shadowgate
uses; the suite starts dozens. This server imports those modules once (PRELOAD: third-party only,
never shadowgate nor a test script) and then forks one child per request. The child is a real
mitmdump: it runs the `mitmdump` console script's code (mitmproxy.tools.main.mitmdump) with the
requested arguments, working directory and environment, loads the `-s` scripts from their files as
any start does, and exits as a process does (non-daemon threads joined, atexit handlers run).

Protocol, one Unix-socket connection per child: the client sends one JSON line {args, cwd, env,
log}; the server answers "pid N\\n", and "exit CODE\\n" when the child has exited (CODE as
subprocess.Popen.returncode: negative for a signal). tests/support/forked.py is the client side.
"""

from __future__ import annotations

import importlib
import json
import os
import selectors
import signal
import socket
import sys

# Heavy imports a shadowgate mitmdump makes (python -X importtime); none reads the environment at
# import time, so a child given another environment behaves as if it had imported them itself.
PRELOAD = (
    "mitmproxy.tools.main",
    "mitmproxy.tools.dump",
    "mitmproxy.tools.cmdline",
    "mitmproxy.addons",
    "mitmproxy.http",
    "duckdb",
    "genai_prices",
    "tldextract",
    "ldap3",
    "yaml",
    "httpx2",
    "requests",
    "pydantic",
)


def _run_child(request: dict, inherited: list[socket.socket]) -> None:
    """In the forked child: become `mitmdump ARGS` and never return."""
    code = 1
    try:
        for s in inherited:
            s.close()
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        log = os.open(request["log"], os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(log, 1)
        os.dup2(log, 2)
        os.close(log)
        os.close(null)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        sys.argv = list(request["args"])
        from mitmproxy.tools.main import mitmdump

        try:
            result = mitmdump()  # what the console script runs: sys.exit(mitmdump())
            code = 0 if result is None else int(result)
        except SystemExit as e:
            code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
            if not isinstance(e.code, int | None):
                print(e.code, file=sys.stderr)
        except BaseException:
            import traceback

            traceback.print_exc()
            code = 1
        # As the interpreter does on exit: join non-daemon threads, then the atexit handlers.
        import atexit
        import threading

        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code)


def serve(path: str) -> None:
    for name in PRELOAD:
        importlib.import_module(name)
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    listener.bind(path)
    listener.listen(16)
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    children: dict[int, socket.socket] = {}
    parent = os.getppid()
    print("ready", flush=True)
    while os.getppid() == parent:  # the test process is gone: so is the server
        for key, _ in selector.select(timeout=0.05):
            if key.fileobj is listener:
                conn, _ = listener.accept()
                conn.setblocking(True)
                line = b""
                while not line.endswith(b"\n"):
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    line += chunk
                if not line:
                    conn.close()
                    continue
                request = json.loads(line)
                pid = os.fork()
                if pid == 0:
                    _run_child(request, [listener, conn, *children.values()])
                children[pid] = conn
                conn.sendall(f"pid {pid}\n".encode())
        while children:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            conn = children.pop(pid, None)
            if conn is not None:
                try:
                    conn.sendall(f"exit {os.waitstatus_to_exitcode(status)}\n".encode())
                except OSError:
                    pass
                conn.close()


if __name__ == "__main__":
    serve(sys.argv[1])
