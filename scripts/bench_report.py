"""Benchmark the weekly report: synthetic ai_requests segments, then the report's query time per section.

    uv run python scripts/bench_report.py --rows 10000000 --weeks 26 [--dir /tmp/sgbench] [--keep]

Rows are written by DuckDB straight into the proxy's hive layout
(<db>.segments/ai_requests/day=YYYY-MM-DD/*.parquet, zstd) with every AI_REQUESTS column; the
database file gets the proxy's views. Usage is power-law: a few users and apps make most calls.
The report covers the last generated ISO week (and the one before it, for the change).

The report is timed twice: from the detail, as on any recent week; then after the proxy's
housekeeping has stored every finished day's totals (shadowgate.storage.store.summarise_closed_days, timed)
and retention has dropped the detail up to the report week's end, so the same week is read from
its daily totals. Both reports must agree exactly (they are compared).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from shadowgate.config.catalog import load_catalog
from shadowgate.report import render
from shadowgate.report.data import open_data
from shadowgate.report.period import Period
from shadowgate.report.period import last_complete_week
from shadowgate.report.runner import build_report
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import drop_expired_days
from shadowgate.storage.store import summarise_closed_days

UNKNOWN_SITES = ("llm.corp-lab.example", "gpu-box.example", "ollama.dev.example", "vllm.research.example")
DLP = ("EMAIL:1", "EMAIL:2,PHONE:1", "AWS_KEY:1", "JWT:1,EMAIL:1", "IBAN:1")


def generate(db: Path, rows: int, weeks: int, users: int, end: dt.date) -> float:
    catalog = load_catalog()
    apps = [(p.id, p.category, p.hosts[0] if p.hosts else p.id) for p in list(catalog.providers.values())[:36]]
    apps += [("unknown", None, site) for site in UNKNOWN_SITES]
    writer = SegmentWriter(db, [AI_REQUESTS, POLICY_EVENTS], rollups=[AI_REQUESTS_DAILY])
    writer.start()  # schema files and the database file's views, as the proxy does
    writer.close()
    segments = writer.segments / "ai_requests"
    start = end - dt.timedelta(days=7 * weeks)
    span = (end - start).days * 86400
    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    con.execute("CREATE TABLE apps (a INTEGER, provider VARCHAR, category VARCHAR, host VARCHAR)")
    con.executemany("INSERT INTO apps VALUES (?, ?, ?, ?)", [(i, *a) for i, a in enumerate(apps)])
    exprs = {
        "ts": f"TIMESTAMP '{start.isoformat()}' + to_microseconds((i * {span}::DOUBLE / {rows} * 1e6)::BIGINT)",
        "request_id": "md5(i::VARCHAR)",
        "client_ip": "'10.0.' || (u // 250) || '.' || (u % 250)",
        "user_name": "'user' || u",
        "user_group": "'dept' || (u % 23)",
        "host": "host",
        "site": "host",
        "provider": "provider",
        "category": "category",
        "wire_format": "CASE WHEN a % 3 = 0 THEN 'anthropic-messages' ELSE 'openai-chat' END",
        "operation": "'chat'",
        "method": "'POST'",
        "path": "'/v1/chat/completions'",
        "model": "'model-' || a || '-' || (i % 4) || CASE WHEN i % 200000 = 7 THEN '-preview' || (i // 200000) ELSE '' END",
        "response_model": "'model-' || a || '-' || (i % 4)",
        "streaming": "i % 2 = 0",
        "status_code": "200::SMALLINT",
        "input_tokens": "(50 + (r3 * 4000)::BIGINT)",
        "output_tokens": "(10 + (r4 * 800)::BIGINT)",
        "cached_input_tokens": "0::BIGINT",
        "cache_creation_input_tokens": "0::BIGINT",
        "reasoning_tokens": "0::BIGINT",
        "usage_estimated": "false",
        "cost_usd": "CASE WHEN provider = 'unknown' THEN NULL ELSE r3 * 0.02 + r4 * 0.01 END",
        "priced_model": "NULL",
        "decision": "CASE WHEN r5 < 0.01 THEN 'block' WHEN r5 < 0.02 THEN 'coach' WHEN r5 < 0.025 THEN 'redirect' "
        "WHEN r5 < 0.027 THEN 'rate_limit' ELSE 'allow' END",
        "rule_id": "CASE WHEN r5 < 0.027 THEN 'rule' || a ELSE NULL END",
        "latency_ms": "r4 * 3000",
        "ttft_ms": "r4 * 400",
        "request_bytes": "(r3 * 20000)::BIGINT",
        "response_bytes": "(r4 * 4000)::BIGINT",
        "key_fingerprint": "CASE WHEN i % 5 = 0 THEN 'hmac:' || md5((u % 400 + a * 1000)::VARCHAR)[:32] ELSE NULL END",
        "key_kind": "CASE WHEN i % 5 = 0 THEN 'sk' ELSE NULL END",
        "account_hint": "CASE WHEN i % 5 = 0 AND u % 3 = 0 THEN 'org=org-' || (u % 7) ELSE NULL END",
        "inspected": "NOT (a % 11 = 10)",
        "inspect_note": "CASE WHEN a % 11 = 10 THEN 'passthrough' ELSE NULL END",
        "finish_reason": "'stop'",
        "response_id": "NULL",
        "error_type": "NULL",
        "user_agent": "'bench/1.0'",
        "proxy_overhead_us": "(r5 * 900)::INTEGER",
        "redirect_target": "NULL",
        "budget_status": "CASE WHEN r5 > 0.999 THEN 'daily-tokens:tokens:' || (80 + u % 40) || '%' ELSE NULL END",
        "dlp_findings": f"CASE WHEN r5 BETWEEN 0.5 AND 0.51 THEN {list(DLP)}[1 + i % {len(DLP)}] ELSE NULL END",
        "dlp_action": "CASE WHEN r5 BETWEEN 0.5 AND 0.51 THEN 'redact' ELSE NULL END",
    }
    cols = ",\n  ".join(f"({exprs.get(name, 'NULL')})::{typ} AS {name}" for name, typ in AI_REQUESTS.columns)
    sql = f"""
    COPY (
      WITH g AS (
        SELECT i, (pow(random(), 3) * {users})::INTEGER AS u,
               least((pow(random(), 2.5) * {len(apps)})::INTEGER, {len(apps) - 1}) AS a,
               random() AS r3, random() AS r4, random() AS r5
        FROM range({rows}) t(i))
      SELECT {cols}, ts::DATE AS day
      FROM (SELECT g.*, apps.provider, apps.category, apps.host,
                   (TIMESTAMP '{start.isoformat()}' + to_microseconds((i * {span}::DOUBLE / {rows} * 1e6)::BIGINT)) AS ts
            FROM g JOIN apps USING (a))
    ) TO '{segments.as_posix()}' (FORMAT parquet, COMPRESSION zstd, PARTITION_BY (day), OVERWRITE_OR_IGNORE,
         FILENAME_PATTERN 'bench-{{i}}')
    """
    t0 = time.perf_counter()
    con.execute(sql)
    con.close()
    return time.perf_counter() - t0


def time_report(db: Path, week: Period, catalog, runs: int) -> str:
    """Times the report `runs` times; returns its JSON without the timings, to compare."""
    for run in range(runs):
        t0 = time.perf_counter()
        con, source = open_data(db)
        report = build_report(
            con,
            source,
            str(db),
            week,
            provider_status={"openai": "sanctioned"},
            category_status={},
            providers=catalog.providers.values(),
        )
        con.close()
        t1 = time.perf_counter()
        renders = {}
        for name, fn in (
            ("json", render.to_json),
            ("md", render.to_markdown),
            ("html", render.to_html),
            ("csv", render.csv_files),
        ):
            t = time.perf_counter()
            fn(report)
            renders[name] = 1000 * (time.perf_counter() - t)
        sections = "  ".join(f"{k}={v:.0f}" for k, v in report.timings_ms.items() if k != "total")
        formats = "  ".join(f"{k}={v:.0f}" for k, v in renders.items())
        print(
            f"run {run + 1}: queries {1000 * (t1 - t0):.0f} ms (open + all sections); render ms: {formats}\n"
            f"  per section ms: {sections}"
        )
    doc = json.loads(render.to_json(report), parse_float=lambda x: round(float(x), 6))  # sums in another order
    doc.pop("timings_ms", None)
    doc.pop("source", None)
    return json.dumps(doc, sort_keys=True)


def add_data_arguments(parser: argparse.ArgumentParser, rows: int) -> None:
    """The synthetic data's size and where it goes (bench_console.py takes the same)."""
    parser.add_argument("--rows", type=int, default=rows)
    parser.add_argument("--weeks", type=int, default=26)
    parser.add_argument("--users", type=int, default=5000)
    parser.add_argument("--dir", help="where to write (default: a temporary directory)")
    parser.add_argument("--keep", action="store_true", help="keep the data; reuse it when --dir already has it")
    parser.add_argument("--runs", type=int, default=3)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_data_arguments(parser, rows=1_000_000)
    args = parser.parse_args()
    folder = Path(args.dir or tempfile.mkdtemp(prefix="sg-bench-report-"))
    folder.mkdir(parents=True, exist_ok=True)
    db = folder / "bench.duckdb"
    week = last_complete_week(dt.datetime.now(dt.UTC).date())
    end = week.end
    try:
        if not (folder / "bench.segments" / "ai_requests").is_dir():
            took = generate(db, args.rows, args.weeks, args.users, end)
            print(f"generated {args.rows:,} rows over {args.weeks} weeks in {took:.1f}s")
        size = sum(f.stat().st_size for f in (folder / "bench.segments").rglob("*.parquet"))
        con, source = open_data(db)
        total_rows = con.execute("SELECT count(*) FROM ai_requests").fetchone()[0]
        week_rows = con.execute(
            "SELECT count(*) FROM ai_requests WHERE day >= ? AND day < ?", [week.start, week.end]
        ).fetchone()[0]
        con.close()
        print(
            f"{total_rows:,} rows, {size / 2**20:.0f} MiB on disk ({size / max(total_rows, 1):.0f} bytes/row); "
            f"report week {week.label}: {week_rows:,} rows"
        )
        catalog = load_catalog()
        print("\n== from the detail")
        detailed = time_report(db, week, catalog, args.runs)
        t0 = time.perf_counter()
        stored = summarise_closed_days(folder / "bench.segments", AI_REQUESTS_DAILY, dt.datetime.now(dt.UTC).date())
        print(f"\nhousekeeping stored {stored} days of daily totals in {time.perf_counter() - t0:.1f}s")
        dropped = drop_expired_days(folder / "bench.segments", "ai_requests", week.end, AI_REQUESTS_DAILY)
        con, source = open_data(db)
        daily_rows = con.execute(
            "SELECT count(*) FROM ai_requests_daily WHERE day >= ? AND day < ?", [week.start, week.end]
        ).fetchone()[0]
        con.close()
        print(
            f"\n== from the daily totals after retention dropped {dropped} days of detail "
            f"({daily_rows:,} rollup rows in the report week)"
        )
        rolled = time_report(db, week, catalog, args.runs)
        print(f"\nthe two reports agree: {'yes' if rolled == detailed else 'NO'}")
    finally:
        if not args.keep and not args.dir:
            shutil.rmtree(folder, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
