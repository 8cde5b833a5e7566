"""Cost of one log line on the thread that logs it: addons/shadowgate/stages/logs.py's handlers against termlog.

    uv run python scripts/bench_logs.py [--lines 20000]

Each handler gets the same record mitmproxy logs for every new client connection ("client
connect", with the client's address) N times, writing to a file in a temporary directory. Our
handlers flush every line (a crash loses nothing, `tail -f` sees it at once); termlog prints
without flushing. The stdlib RotatingFileHandler is listed to show why addons/shadowgate/stages/logs.py has its own
(it formats every record twice).
"""

from __future__ import annotations

import argparse
import logging
import logging.handlers
import os
import sys
import tempfile
import time

from mitmproxy.addons.termlog import TermLogHandler  # noqa: E402

import _benchlib as bl  # noqa: E402
import bench_overhead as bo  # noqa: E402
from shadowgate.stages.logs import JsonFormatter  # noqa: E402
from shadowgate.stages.logs import SizeRotatingFileHandler  # noqa: E402
from shadowgate.stages.logs import TextFormatter  # noqa: E402


def per_line_us(handler: logging.Handler, record: logging.LogRecord, lines: int) -> float:
    t = time.perf_counter()
    for _ in range(lines):
        handler.handle(record)
    return (time.perf_counter() - t) / lines * 1e6


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=20000)
    args = parser.parse_args()
    bl.print_header("shadowgate log line cost", bo.machine())
    record = logging.LogRecord("mitmproxy.proxy.server", logging.INFO, __file__, 1, "client connect", None, None)
    record.client = ("127.0.0.1", 54321)
    with tempfile.TemporaryDirectory() as d:

        def handler(cls, formatter, name, **kw):
            h = cls(os.path.join(d, name), **kw)
            h.setFormatter(formatter)
            return h

        cases = [
            ("termlog (mitmproxy's text, no flush)", TermLogHandler(open(os.path.join(d, "termlog.log"), "w"))),
            ("text, WatchedFileHandler (logrotate)", handler(logging.handlers.WatchedFileHandler, TextFormatter(), "w.log")),
            ("text, SizeRotatingFileHandler", handler(SizeRotatingFileHandler, TextFormatter(), "r.log", maxBytes=10**7, backupCount=2)),
            ("json, WatchedFileHandler (logrotate)", handler(logging.handlers.WatchedFileHandler, JsonFormatter(), "wj.log")),
            ("json, SizeRotatingFileHandler", handler(SizeRotatingFileHandler, JsonFormatter(), "rj.log", maxBytes=10**7, backupCount=2)),
            ("json, stdlib RotatingFileHandler", handler(logging.handlers.RotatingFileHandler, JsonFormatter(), "sj.log", maxBytes=10**7, backupCount=2)),
        ]  # fmt: skip
        print(f"\n{args.lines:,} lines each ('client connect' with the client's address):")
        for name, h in cases:
            print(f"  {name:40s} {per_line_us(h, record, args.lines):6.1f} us/line")
            h.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
