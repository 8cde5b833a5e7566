"""Benchmark the web console (`shadowgate serve`) at 10 M ai_requests rows: each page's server time.

    uv run python scripts/bench_console.py --rows 10000000 --weeks 26 [--dir /tmp/sgbench-console] [--keep]

Data: bench_report.py's generator writes `--rows` ai_requests rows with DuckDB straight into the
proxy's hive layout (power-law users and apps, every column of storage/rows.py); this script adds,
the same way, a tenth as many web_activity rows (chat web apps), a twentieth as many mcp_calls,
policy events, and one alert per thousand calls. Then the proxy's housekeeping stores every
finished day's totals (the rollups), as a running proxy does every 30 s.

Pages: the real console is started (`python -m shadowgate.cli.serve`, no cache) on a loopback
port, logged into, and every page is fetched `--runs` times for the last complete ISO week. It
prints, per page, the HTTP time (request to last byte, on this machine) and the query time the page
itself reports under its header, min and median.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb
import httpx

from bench_report import add_data_arguments
from bench_report import generate
from shadowgate.console.auth import set_password
from shadowgate.report.period import last_complete_week
from shadowgate.storage.housekeeping import summarise_closed_days
from shadowgate.storage.rows import ALERTS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import POLICY_EVENTS
from shadowgate.storage.rows import WEB_ACTIVITY
from shadowgate.storage.schema import ALL_ROLLUPS
from shadowgate.storage.schema import ALL_TABLES
from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import Table
from shadowgate.storage.store import sql_path

PASSWORD = "bench console password"
WEB_APPS = ("chatgpt", "claude", "gemini", "perplexity", "deepseek", "copilot-consumer", "grok", "mistral-le-chat")
ALERT_EVENTS = ("new_app", "unknown_endpoint", "unapproved_users", "dlp_block", "budget_crossed", "mcp_refusal")

# Per table: column -> SQL over g (i: row number, u: user, a: app index, r1..r3: uniform randoms).
# Columns not named are NULL. `ts` spreads the rows evenly over the generated weeks.
EXTRA_TABLES: dict[str, tuple[Table, int, dict[str, str]]] = {
    "web_activity": (
        WEB_ACTIVITY,
        10,
        {
            "request_id": "md5('w' || i)",
            "user_name": "'user' || u",
            "user_group": "'dept' || (u % 23)",
            "client_ip": "'10.0.' || (u // 250) || '.' || (u % 250)",
            "app": f"{list(WEB_APPS)}[1 + a % {len(WEB_APPS)}]",
            "host": f"{list(WEB_APPS)}[1 + a % {len(WEB_APPS)}] || '.example'",
            "endpoint": f"{list(WEB_APPS)}[1 + a % {len(WEB_APPS)}] || CASE WHEN r1 < 0.8 THEN '.prompt' ELSE '.upload' END",
            "activity": "CASE WHEN r1 < 0.8 THEN 'prompt' WHEN r1 < 0.95 THEN 'upload' ELSE 'visit' END",
            "account_kind": "CASE WHEN r2 < 0.6 THEN 'corporate' WHEN r2 < 0.9 THEN 'personal' ELSE 'unknown' END",
            "text_chars": "(r3 * 4000)::INTEGER",
            "dlp_findings": "CASE WHEN r3 > 0.99 THEN 'EMAIL:1' END",
            "dlp_action": "CASE WHEN r3 > 0.99 THEN 'block' END",
            "decision": "CASE WHEN r2 > 0.97 THEN 'block' WHEN r2 > 0.95 THEN 'coach' ELSE 'allow' END",
            "parse_status": "CASE WHEN r3 < 0.02 THEN 'unparsed' ELSE 'ok' END",
            "status_code": "200",
            "transport": "'http'",
        },
    ),
    "mcp_calls": (
        MCP_CALLS,
        20,
        {
            "request_id": "md5('m' || i)",
            "user_name": "'user' || u",
            "user_group": "'dept' || (u % 23)",
            "host": "'mcp' || (a % 12) || '.example'",
            "server_name": "'server' || (a % 12)",
            "session_id": "'s' || (i // 40)",
            "method": "CASE WHEN r1 < 0.8 THEN 'tools/call' ELSE 'tools/list' END",
            "tool_name": "CASE WHEN r1 < 0.8 THEN 'tool' || (a % 30) END",
            "is_error": "r2 < 0.02",
            "latency_ms": "r3 * 900",
            "decision": "CASE WHEN r2 > 0.99 THEN 'block' ELSE 'allow' END",
            "transport": "'streamable-http'",
        },
    ),
    "policy_events": (
        POLICY_EVENTS,
        500,
        {
            "event": "'coach_continue'",
            "user_name": "'user' || u",
            "user_group": "'dept' || (u % 23)",
            "host": "'chatgpt.com'",
            "provider": "'chatgpt'",
            "rule_id": "'coach-chat'",
        },
    ),
    "alerts": (
        ALERTS,
        1000,
        {
            "rule_id": f"'rule-' || {list(ALERT_EVENTS)}[1 + a % {len(ALERT_EVENTS)}]",
            "event": f"{list(ALERT_EVENTS)}[1 + a % {len(ALERT_EVENTS)}]",
            "alert_key": "'user' || u",
            "summary": "'bench alert ' || i",
            "user_name": "'user' || u",
            "host": "'api.example'",
            "provider": "'openai'",
            "destinations": "'secops'",
            "delivered": "r1 > 0.05",
            "delivery_error": "CASE WHEN r1 <= 0.05 THEN 'webhook: timed out' END",
            "suppressed": "(r2 * 3)::INTEGER",
        },
    ),
}


def generate_extra(segments: Path, rows: int, weeks: int, users: int, end: dt.date) -> None:
    """The other tables, one DuckDB COPY each, into <segments>/<table>/day=*/ as the writer lays them out."""
    start = end - dt.timedelta(days=7 * weeks)
    span = (end - start).days * 86400
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    for name, (table, per, exprs) in EXTRA_TABLES.items():
        n = max(rows // per, 1)
        ts = f"TIMESTAMP '{start.isoformat()}' + to_microseconds((i * {span}::DOUBLE / {n} * 1e6)::BIGINT)"
        cols = ", ".join(f"({exprs.get(c, ts if c == 'ts' else 'NULL')})::{typ} AS {c}" for c, typ in table.columns)
        t0 = time.perf_counter()
        con.execute(f"""
            COPY (
              SELECT {cols}, ({ts})::DATE AS day
              FROM (SELECT i, (pow(random(), 3) * {users})::INTEGER AS u, (pow(random(), 2) * 40)::INTEGER AS a,
                           random() AS r1, random() AS r2, random() AS r3 FROM range({n}) t(i))
            ) TO '{sql_path(segments / name)}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (day),
                 OVERWRITE_OR_IGNORE, FILENAME_PATTERN 'bench-{{i}}')""")
        print(f"generated {n:,} {name} rows in {time.perf_counter() - t0:.1f}s")
    con.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pages(week: str, user: str) -> dict[str, str]:
    return {
        "overview": f"/?week={week}",
        "users": f"/users?week={week}",
        "user": f"/users/{user}?week={week}",
        "new": f"/new?week={week}",
        "dlp": f"/dlp?week={week}",
        "mcp": f"/mcp?week={week}",
        "alerts": f"/alerts?week={week}",
        "alerts, filtered": f"/alerts?week={week}&event=dlp_block&severity=high",
    }


def time_pages(db: Path, folder: Path, week: str, runs: int) -> None:
    passwords = folder / "console.passwd"
    set_password(passwords, "bench", PASSWORD)
    port = free_port()
    argv = [sys.executable, "-m", "shadowgate.cli.serve", "--db", str(db), "--passwords", str(passwords)]
    server = subprocess.Popen([*argv, "--port", str(port), "--cache-seconds", "0"])
    base = f"http://127.0.0.1:{port}"
    try:
        c = httpx.Client(base_url=base, trust_env=False, timeout=300)
        deadline = time.monotonic() + 60
        while True:
            try:
                login = c.get("/login")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("the console did not start") from None
                time.sleep(0.2)
        token = re.search(r'name="csrf" value="([^"]+)"', login.text)[1]
        c.post("/login", data={"csrf": token, "user": "bench", "password": PASSWORD})
        print(f"\n{'page':<18} {'HTTP ms min':>12} {'median':>8} {'queries ms min':>15} {'median':>8}")
        for name, path in pages(week, "user1").items():
            http, queries = [], []
            for _ in range(runs):
                t0 = time.perf_counter()
                r = c.get(path)
                http.append(1000 * (time.perf_counter() - t0))
                if r.status_code != 200:
                    raise RuntimeError(f"{path}: HTTP {r.status_code}")
                found = re.search(r"· (\d+) ms</p>", r.text)
                queries.append(float(found[1]) if found else float("nan"))
            print(
                f"{name:<18} {min(http):>12.0f} {statistics.median(http):>8.0f} "
                f"{min(queries):>15.0f} {statistics.median(queries):>8.0f}"
            )
    finally:
        server.terminate()
        server.wait(timeout=10)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, rows=10_000_000)
    parser.add_argument("--generate-only", action="store_true", help="write the data (with --dir) and stop")
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="sg-bench-console-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench.duckdb"
    segments = folder / "bench.segments"
    today = dt.datetime.now(dt.UTC).date()
    week = last_complete_week(today)
    try:
        if not (segments / "ai_requests").is_dir():
            took = generate(db, args.rows, args.weeks, args.users, week.end)
            print(f"generated {args.rows:,} ai_requests rows over {args.weeks} weeks in {took:.1f}s")
            generate_extra(segments, args.rows, args.weeks, args.users, week.end)
            writer = SegmentWriter(db, ALL_TABLES, rollups=ALL_ROLLUPS)
            writer.start()  # the database file's views over every table, as the proxy makes them
            writer.close()
            t0 = time.perf_counter()
            for rollup in ALL_ROLLUPS:
                summarise_closed_days(segments, rollup, today)
            print(f"housekeeping stored the daily totals in {time.perf_counter() - t0:.1f}s")
        size = sum(f.stat().st_size for f in segments.rglob("*.parquet"))
        print(f"{size / 2**20:.0f} MiB of Parquet in {segments}; pages for {week.label}")
        if args.generate_only:
            return 0
        time_pages(db, folder, week.label, args.runs)
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
