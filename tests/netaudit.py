"""Test-only addon: records every network connection and DNS lookup the proxy process makes.

Loaded with -s next to shadowgate; the test then checks that nothing but loopback was reached.
sys.addaudithook sees socket.connect and socket.getaddrinfo from every thread and library.
"""

import json
import os
import sys

LOG = os.environ.get("SG_NETAUDIT_LOG")


def _hook(event, args):
    if event not in ("socket.connect", "socket.getaddrinfo") or not LOG:
        return
    if event == "socket.connect":
        address = args[1]
        host = address[0] if isinstance(address, tuple) else str(address)
    else:
        host = args[0]
    if isinstance(host, bytes):
        host = host.decode(errors="replace")
    if host in ("127.0.0.1", "::1", "localhost") or str(host).startswith("/"):
        return
    with open(LOG, "a") as f:
        f.write(json.dumps({"event": event, "host": str(host)}) + "\n")


sys.addaudithook(_hook)
addons = []
