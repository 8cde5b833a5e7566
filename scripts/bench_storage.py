"""Storage: rows per second shadowgate's SegmentWriter sustains, and bytes per row on disk.

    cd /work/main && uv run python scripts/bench_storage.py [--rows 1000000] [--pool 20000]

In-process, no proxy. Builds N realistic ai_requests rows first (shadowgate.storage.rows.AiRequest,
set by field name, a column the builder does not know keeps the dataclass's default: a timestamp,
~30 strings with a proxy's real cardinalities, token counts, costs and latencies; request_id,
response_id, ts and latency unique per row), then times submit() of all of them plus flush(),
i.e. until the last row is sealed in a Parquet segment (fsync'd and renamed into place). As in
the proxy, the writer thread turns each row into its column values. The writer runs with shadowgate's defaults (a segment every
second or every 20,000 rows) but without the proxy's pricing enrich callback and housekeeping.
All rows fall on yesterday (UTC), so the day is finished and shadowgate.storage.store.compact_closed_days
merges its segments into one file; bytes per row are reported before and after that merge,
and the rows are counted back from the Parquet files.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import random
import resource
import shlex
import sys
import tempfile
import time
import uuid
from pathlib import Path

import _benchlib as bl  # noqa: E402
import bench_overhead as bo  # noqa: E402
from shadowgate.storage.housekeeping import compact_closed_days  # noqa: E402
from shadowgate.storage.rows import AiRequest  # noqa: E402
from shadowgate.storage.schema import AI_REQUESTS  # noqa: E402
from shadowgate.storage.store import SCHEMA_DAY  # noqa: E402
from shadowgate.storage.store import SegmentWriter  # noqa: E402

PROVIDERS = [  # (provider, host, site, wire format, path, [(model, response model, $/Mtok in, out)])
    ("openai", "api.openai.com", "openai.com", "openai_chat", "/v1/chat/completions",
     [("gpt-4o-mini", "gpt-4o-mini-2024-07-18", 0.15, 0.6), ("gpt-4o", "gpt-4o-2024-08-06", 2.5, 10.0),
      ("gpt-4.1", "gpt-4.1-2025-04-14", 2.0, 8.0), ("o3-mini", "o3-mini-2025-01-31", 1.1, 4.4)]),
    ("anthropic", "api.anthropic.com", "anthropic.com", "anthropic_messages", "/v1/messages",
     [("claude-sonnet-4-5", "claude-sonnet-4-5-20250929", 3.0, 15.0), ("claude-haiku-4-5", "claude-haiku-4-5-20251001", 1.0, 5.0)]),
    ("gemini", "generativelanguage.googleapis.com", "googleapis.com", "gemini_generate",
     "/v1beta/models/gemini-2.5-flash:generateContent", [("gemini-2.5-flash", "gemini-2.5-flash", 0.3, 2.5)]),
    ("mistral", "api.mistral.ai", "mistral.ai", "openai_chat", "/v1/chat/completions",
     [("mistral-large-latest", "mistral-large-2411", 2.0, 6.0)]),
]  # fmt: skip
USER_AGENTS = ["OpenAI/Python 1.99.9", "Anthropic/Python 0.64.0", "python-httpx/0.28.1", "curl/8.5.0",
               "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/131.0 Safari/537.36",
               "Cursor/1.5.11", "vscode-copilot/1.300", "node-fetch/1.0", "ai-sdk/4.3", "langchain/0.3"]  # fmt: skip
GROUPS = ["engineering", "sales", "support", "finance", "legal", "marketing", "hr", None]


def base_rows(count: int, rng: random.Random) -> list[dict]:
    """Distinct combinations of everything but the per-row unique fields."""
    users = [(f"user{n:04d}@example.com", rng.choice(GROUPS)) for n in range(500)]
    keys = [(f"hmac-sha256:{rng.getrandbits(64):016x}", rng.choice(["openai_project", "anthropic_api", "gemini_api"]))
            for _ in range(1000)]  # fmt: skip
    out = []
    for _ in range(count):
        provider, host, site, wire, path, models = rng.choice(PROVIDERS)
        model, response_model, price_in, price_out = rng.choice(models)
        user, group = rng.choice(users)
        streaming = rng.random() < 0.6
        status = rng.choices([200, 429, 500, 400], [96, 2, 1, 1])[0]
        input_tokens = int(rng.lognormvariate(6.5, 1.2))
        output_tokens = int(rng.lognormvariate(5.0, 1.0)) if status == 200 else 0
        cached = int(input_tokens * rng.random()) if rng.random() < 0.3 else 0
        reasoning = int(output_tokens * rng.random()) if model.startswith("o3") else 0
        dlp = rng.random() < 0.03
        key, kind = rng.choice(keys)
        out.append(
            {
                "client_ip": f"10.{rng.randrange(4)}.{rng.randrange(256)}.{rng.randrange(1, 255)}",
                "user_name": user,
                "user_group": group,
                "host": host,
                "site": site,
                "provider": provider,
                "category": "llm_api",
                "wire_format": wire,
                "operation": "chat",
                "method": "POST",
                "path": path,
                "model": model,
                "response_model": response_model if status == 200 else None,
                "streaming": streaming,
                "status_code": status,
                "input_tokens": input_tokens if status == 200 else None,
                "output_tokens": output_tokens if status == 200 else None,
                "cached_input_tokens": cached if status == 200 else None,
                "cache_creation_input_tokens": 0 if status == 200 else None,
                "reasoning_tokens": reasoning if status == 200 else None,
                "usage_estimated": streaming and rng.random() < 0.1,
                "cost_usd": round((input_tokens * price_in + output_tokens * price_out) / 1e6, 8)
                if status == 200
                else None,
                "priced_model": model if status == 200 else None,
                "decision": "allow" if not dlp else "redact",
                "rule_id": rng.choice([None, None, "default-allow", "sanctioned-gateway"]),
                "request_bytes": input_tokens * 4 + rng.randrange(200, 800),
                "response_bytes": output_tokens * 5 + rng.randrange(300, 900),
                "key_fingerprint": key,
                "key_kind": kind,
                "account_hint": rng.choice([None, None, None, "org-bench1234"]),
                "inspected": True,
                "inspect_note": None,
                "finish_reason": rng.choice(["stop", "stop", "stop", "length", "tool_calls"])
                if status == 200
                else None,
                "error_type": None if status == 200 else f"http_{status}",
                "user_agent": rng.choice(USER_AGENTS),
                "redirect_target": None,
                "budget_status": "daily-tokens:tokens:85%" if rng.random() < 0.01 else None,
                "dlp_findings": rng.choice(["EMAIL:1", "PHONE:1,EMAIL:2", "JWT:1"]) if dlp else None,
                "dlp_action": "redact" if dlp else None,
            }
        )
    return out


def build_rows(n: int, pool: int, day: dt.date, seed: int) -> list[AiRequest]:
    rng = random.Random(seed)
    bases = base_rows(pool, rng)
    start = dt.datetime.combine(day, dt.time())
    step = 86_400_000_000 // max(n, 1)  # microseconds: spread over the whole day
    rows = []
    for i in range(n):
        b = bases[i % pool]
        rid = uuid.UUID(int=rng.getrandbits(128), version=4)
        latency = round(rng.lognormvariate(7.0, 0.8), 3)
        per_row = {
            "ts": start + dt.timedelta(microseconds=i * step),
            "request_id": str(rid),
            "response_id": f"chatcmpl-{rid.hex[:24]}" if b["status_code"] == 200 else None,
            "latency_ms": latency,
            "ttft_ms": round(latency * rng.random(), 3) if b["streaming"] else None,
            "proxy_overhead_us": rng.randrange(120, 900),
        }
        rows.append(AiRequest(**b, **per_row))
    return rows


def parquet_bytes(folder: Path) -> tuple[int, int]:
    files = list(folder.glob("*.parquet"))
    return sum(f.stat().st_size for f in files), len(files)


def thread_cpu(tid: int) -> float:
    with open(f"/proc/self/task/{tid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / bo.CLK_TCK


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to write (default 1,000,000)")
    parser.add_argument("--pool", type=int, default=20_000, help="distinct non-unique row bodies (default 20,000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--keep", action="store_true", help="keep the working directory")
    args = parser.parse_args(argv)
    if args.rows < 1 or args.pool < 1:
        parser.error("--rows and --pool must be positive")

    info = bo.machine()
    print("shadowgate storage benchmark (SegmentWriter, in-process)")
    print(f"  command:   {shlex.join([sys.executable, *sys.argv])}")
    print(
        f"  machine:   nproc {info['nproc']} (cpu_count {info['cpu_count']}), {info['cpu_model']}, Linux {info['kernel']}"
    )
    import duckdb

    print(f"  software:  Python {info['python']}, duckdb {duckdb.__version__}")
    print(f"  code:      {info['code']}")
    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-bench-storage-"))
    started = time.monotonic()
    writer = None
    try:
        print(f"  workdir:   {workdir} ({os.statvfs(workdir).f_bsize}-byte blocks)")
        today = dt.datetime.now(dt.UTC).date()
        day = today - dt.timedelta(days=1)
        t = time.monotonic()
        rows = build_rows(args.rows, args.pool, day, args.seed)
        print(f"\nbuilt {len(rows):,} rows of {len(AI_REQUESTS.columns)} columns in {time.monotonic() - t:.1f}s "
              f"(day {day}, {args.pool:,} distinct bodies)")  # fmt: skip

        writer = SegmentWriter(workdir / "bench.duckdb", [AI_REQUESTS])
        writer.start()
        tid = writer._thread.native_id
        cpu0 = thread_cpu(tid)
        t0 = time.monotonic()
        submit = writer.submit
        for row in rows:
            submit("ai_requests", row)
        t_submitted = time.monotonic()
        flushed = writer.flush(timeout=max(120.0, args.rows / 5000))
        t_done = time.monotonic()
        writer_cpu = thread_cpu(tid) - cpu0
        elapsed = t_done - t0
        rate = args.rows / elapsed
        folder = writer.segments / AI_REQUESTS.name / f"day={day.isoformat()}"
        size, files = parquet_bytes(folder)
        print("\n== writer throughput")
        print(
            f"  submit() of {args.rows:,} rows:     {t_submitted - t0:.2f}s ({args.rows / (t_submitted - t0):,.0f} rows/s on the caller)"
        )
        print(f"  submit + flush() until sealed:  {elapsed:.2f}s  flushed: {'yes' if flushed else 'NO (timed out)'}")
        print(
            f"  rows/s sustained:               {rate:,.0f}   target >= 50,000: {'met' if rate >= 50_000 else 'MISSED'}"
        )
        print(f"  writer thread CPU:              {writer_cpu:.2f}s = {writer_cpu / args.rows * 1e6:.1f} us/row")
        print(f"  rows_written {writer.rows_written:,}, rows_dropped {writer.rows_dropped}, segments {writer.segments_written}, "
              f"last_error {writer.last_error}")  # fmt: skip
        writer.close()
        writer = None
        del rows

        print("\n== on disk")
        print(f"  segments:  {files} files, {size:,} bytes = {size / args.rows:.1f} bytes/row")
        t = time.monotonic()
        merged = compact_closed_days(workdir / "bench.segments", AI_REQUESTS.name, today)
        t_compact = time.monotonic() - t
        csize, cfiles = parquet_bytes(folder)
        print(f"  compacted: {cfiles} file(s), {csize:,} bytes = {csize / args.rows:.1f} bytes/row "
              f"(compact_closed_days merged {merged} day(s) in {t_compact:.1f}s)")  # fmt: skip
        con = duckdb.connect()
        try:
            glob = str(workdir / "bench.segments" / AI_REQUESTS.name / "*" / "*.parquet")
            n, distinct = con.execute(
                "SELECT count(*), count(DISTINCT request_id) FROM read_parquet(?, hive_partitioning = true) "
                "WHERE day <> ?",
                [glob, SCHEMA_DAY],
            ).fetchone()
        finally:
            con.close()
        lost = args.rows - n
        print(f"  rows read back: {n:,} ({distinct:,} distinct request ids); lost: {lost}")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"\npeak RSS of this process {peak:.0f} MB (rows built up front)")
        print(f"total time {time.monotonic() - started:.0f}s")
        return 0 if flushed and lost == 0 else 1
    finally:
        if writer is not None:
            writer.close()
        bl.cleanup([], None, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
