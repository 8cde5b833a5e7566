"""A 10,000-employee working day through 2 mitmdump instances sharing one data directory.

    uv run python scripts/bench_company_day.py                    # 2 % of the day (20,000 calls)
    uv run python scripts/bench_company_day.py --fraction 1       # the whole day (46 min on 2 quiet cores, 2026-12-02)

The day's volume comes from the assumptions below (deploy/README.md's capacity plan). The run
drives a fraction of it, compressed in time (as fast as the 2 instances answer), with the same
shape per user: the fraction scales the number of users, never the calls each one makes, so
connection reuse and attribution stay as they would be. Users are spread over the instances as
an L4 load balancer would (user i -> instance i % 2); each user keeps a tunnel per host for
CALLS_PER_TUNNEL calls, then opens new ones.

Everything else is the set-up of scripts/soak.py: the fake providers of scripts/_benchlib.py
answering with the providers' documented responses, shadowgate with proxy auth, DLP on and one
blocking rule, the 12-call mix of _benchlib.mixed_calls (OpenAI, Anthropic, Gemini; 4 of 12
streamed; 1 DLP redaction, 1 DLP block, 1 policy block).

Afterwards both instances get SIGTERM, and the totals are read back three ways: the ai_requests
view (DuckDB), `shadowgate report --format json` for the day, and again after merging the day's
segments as the writers do at midnight (shadowgate.storage.store.compact_closed_days). Each must equal what
was sent: rows, users, tokens, 403s, DLP actions, policy blocks, streams.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import math
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import _benchlib as bl  # noqa: E402
import bench_overhead as bo  # noqa: E402

# --- The day (state your own figures with the options) -----------------------------------------
EMPLOYEES = 10_000
ACTIVE_SHARE = 0.8  # employees who make metered AI calls on a working day
CALLS_PER_ACTIVE_USER = 125  # API calls a day: a few dozen for chat users, hundreds with coding assistants
WORKING_HOURS = 8
PEAK_FACTOR = 3  # the busiest hour against the average hour
CALLS_PER_TUNNEL = 25  # a client keeps a connection for this many calls, then opens a new one
INSTANCES = 2


def day_plan(employees: int, active_share: float, calls_per_user: int) -> dict:
    users = round(employees * active_share)
    calls = users * calls_per_user
    mix = bl.mixed_calls()
    answered_200 = [c for c in mix if c.status == 200]
    return {
        "employees": employees,
        "active_users": users,
        "calls_per_active_user": calls_per_user,
        "calls": calls,
        "average_rps": calls / (WORKING_HOURS * 3600),
        "peak_rps": calls / (WORKING_HOURS * 3600) * PEAK_FACTOR,
        "streaming_share": sum(c.stream for c in mix) / len(mix),
        "blocked_share": (len(mix) - len(answered_200)) / len(mix),
        "tokens_per_answered_call": sum(c.tokens for c in answered_200) / len(answered_200),
        "request_bytes_mean": sum(len(c.request) for c in mix) / len(mix),
    }


def proc_cpu(pid: int) -> float:
    return bo.cpu_seconds(pid)


def segment_bytes(segments: Path) -> tuple[int, int]:
    from shadowgate.storage.store import SCHEMA_DAY

    files = [p for p in (segments / "ai_requests").glob("day=*/*.parquet") if p.parent.name != f"day={SCHEMA_DAY}"]
    return len(files), sum(p.stat().st_size for p in files)


def report_headline(db: Path, day: str) -> dict:
    done = subprocess.run(
        [str(Path(sys.executable).parent / "shadowgate"), "report", "--db", str(db), "--since", day, "--until", day, "--format", "json"],
        capture_output=True, text=True, timeout=300, check=True,
    )  # fmt: skip
    return {k: v["value"] for k, v in json.loads(done.stdout)["headline"].items()}


async def drive(args, proxies: list[bo.Proxy], users: int, tallies: list[bl.Tally]) -> float:
    mix = bl.mixed_calls(args.stream_interval_ms)
    queue = list(range(users))

    async def worker() -> None:
        while queue:
            user = queue.pop(0)
            calls = iter(mix[(user + k) % len(mix)] for k in range(args.calls_per_user))
            proxy = proxies[user % len(proxies)]
            await bl.client(proxy.port, proxy.client_tls, f"emp{user:05d}", lambda calls=calls: next(calls, None),
                            tallies[user % len(proxies)], CALLS_PER_TUNNEL)  # fmt: skip

    t0 = time.monotonic()
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    return time.monotonic() - t0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--fraction", type=float, default=0.02, help="share of the day to drive (default 0.02 = 20,000 calls)"
    )
    parser.add_argument("--employees", type=int, default=EMPLOYEES)
    parser.add_argument("--active-share", type=float, default=ACTIVE_SHARE)
    parser.add_argument("--calls-per-user", type=int, default=CALLS_PER_ACTIVE_USER)
    parser.add_argument("--concurrency", type=int, default=20, help="users calling at once, over both instances (20)")
    parser.add_argument("--stream-interval-ms", type=float, default=5, help="gap between stream events (5)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, data)")
    args = parser.parse_args(argv)
    if not 0 < args.fraction <= 1 or args.concurrency < 1 or args.calls_per_user < 1:
        parser.error("bad --fraction, --concurrency or --calls-per-user")

    bl.sigterm_interrupts()
    info = bo.machine()
    bl.print_header("shadowgate: a company's day through 2 instances", info)
    plan = day_plan(args.employees, args.active_share, args.calls_per_user)
    users = max(1, round(plan["active_users"] * args.fraction))
    calls = users * args.calls_per_user
    print(f"  the day:   {plan['employees']:,} employees, {plan['active_users']:,} active ({args.active_share:.0%}) x "
          f"{plan['calls_per_active_user']} calls = {plan['calls']:,} calls; average {plan['average_rps']:.1f} req/s over "
          f"{WORKING_HOURS} h, peak {plan['peak_rps']:.0f} req/s ({PEAK_FACTOR}x)")  # fmt: skip
    print(f"  the mix:   {plan['streaming_share']:.0%} streamed, {plan['blocked_share']:.0%} blocked (DLP or policy), "
          f"{plan['tokens_per_answered_call']:,.0f} tokens per answered call, {plan['request_bytes_mean']:,.0f} request bytes on average")  # fmt: skip
    print(f"  driven:    {users:,} users x {args.calls_per_user} calls = {calls:,} calls ({calls / plan['calls']:.1%} of the day), "
          f"{args.concurrency} users at a time, new tunnels every {CALLS_PER_TUNNEL} calls")  # fmt: skip

    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-day-"))
    upstream, proxies = None, []
    started = time.monotonic()
    try:
        upstream, upstream_ca = bl.start_mixed_upstream(workdir)
        db = workdir / "shared" / "shadowgate.duckdb"
        db.parent.mkdir()
        proxies = bl.start_mixed_proxies(workdir, upstream, upstream_ca, db, [f"sg{i + 1}" for i in range(INSTANCES)])
        for proxy in proxies:
            print(f"  {proxy.name}:       127.0.0.1:{proxy.port} (pid {proxy.pid}): {shlex.join(proxy.args)}")
        print(f"  data:      {db.parent} (shared)\n")

        tallies = [bl.Tally() for _ in proxies]
        cpu0 = [proc_cpu(p.pid) for p in proxies]
        client0, upstream0 = proc_cpu(os.getpid()), proc_cpu(upstream.process.pid)
        wall = asyncio.run(drive(args, proxies, users, tallies))
        cpu = [proc_cpu(p.pid) - c for p, c in zip(proxies, cpu0)]
        client_cpu, upstream_cpu = proc_cpu(os.getpid()) - client0, proc_cpu(upstream.process.pid) - upstream0
        stop_t = time.monotonic()
        returncodes = [p.stop() for p in proxies]
        stop_s = time.monotonic() - stop_t

        total = bl.Tally()
        for t in tallies:
            total.answered += t.answered
            total.tokens += t.tokens
            total.errors += t.errors
            total.latencies += t.latencies
            for k, v in t.by_kind.items():
                total.by_kind[k] = total.by_kind.get(k, 0) + v
        expected = {**bl.expected_totals(total), "users": users}
        day = dt.datetime.now(dt.UTC).date()
        view = bl.ai_request_totals(db)
        headline = report_headline(db, day.isoformat())
        segments = db.with_name("shadowgate.segments")
        files, sealed_bytes = segment_bytes(segments)
        from shadowgate.storage.store import compact_closed_days

        t = time.monotonic()
        merged = compact_closed_days(segments, "ai_requests", day + dt.timedelta(days=1))
        compact_s = time.monotonic() - t
        cfiles, compact_bytes = segment_bytes(segments)
        view_after = bl.ai_request_totals(db)

        checks = {
            "ai_requests view": {k: (view.get(k), v) for k, v in expected.items()},
            "shadowgate report": {"rows": (headline["requests"], expected["rows"]), "users": (headline["active_users"], users),
                                  "tokens": (headline["tokens"], expected["tokens"])},
            "after compaction": {k: (view_after.get(k), v) for k, v in expected.items()},
        }  # fmt: skip
        exact = all(got == want for c in checks.values() for got, want in c.values())
        rows = view["rows"]
        cpu_per_req = sum(cpu) / total.answered if total.answered else float("nan")
        print(f"== results: {total.answered:,} of {calls:,} calls answered in {wall:.1f}s; {len(total.errors)} errors")
        for proxy, t, c in zip(proxies, tallies, cpu):
            print(
                f"  {proxy.name}: {t.answered:,} calls = {t.answered / wall:.1f} req/s; CPU {c:.1f}s = {c / max(1, t.answered) * 1000:.2f} ms/call"
            )
        print(f"  both:      {total.answered / wall:.1f} req/s; proxy CPU {cpu_per_req * 1000:.2f} ms per call (all threads); "
              f"load generator {client_cpu / max(1, total.answered) * 1000:.2f} ms, fake upstream "
              f"{upstream_cpu / max(1, total.answered) * 1000:.2f} ms per call (same 2 cores)")  # fmt: skip
        lat = sorted(total.latencies)
        print(f"  latency p50 / p99: {bo.percentile(lat, 0.5) * 1000:.1f} / {bo.percentile(lat, 0.99) * 1000:.1f} ms; "
              f"SIGTERM to both exited: {stop_s:.1f}s, exit codes {returncodes}")  # fmt: skip
        for e in total.errors[:10]:
            print(f"  error: {e}")
        print("\n== totals read back (got, sent)")
        for name, c in checks.items():
            print(
                f"  {name:18s} " + ", ".join(f"{k} {g:,}" + ("" if g == w else f" != {w:,}") for k, (g, w) in c.items())
            )
        print(f"  exact: {'yes' if exact else 'NO'}")
        print("\n== storage")
        print(f"  as sealed:     {files} segment files in {wall:.0f}s x {INSTANCES} instances, {sealed_bytes:,} bytes = "
              f"{sealed_bytes / rows:.1f} bytes/row")  # fmt: skip
        print(f"  day compacted: {cfiles} file(s), {compact_bytes:,} bytes = {compact_bytes / rows:.1f} bytes/row "
              f"(merged {merged} day in {compact_s:.1f}s)")  # fmt: skip
        per_day_rows = plan["calls"]
        print("\n== projected to the whole day "
              f"({per_day_rows:,} calls; measured on {calls / plan['calls']:.1%} of it)")  # fmt: skip
        # Sealed segments cost a per-file overhead on top of the rows; each instance seals at most one
        # a second while it has traffic, so a working day holds up to INSTANCES x 8 h of them until
        # the writers merge it after midnight.
        per_file = (sealed_bytes - compact_bytes) / files if files else 0.0
        day_files = INSTANCES * WORKING_HOURS * 3600
        print(f"  Parquet per day: {compact_bytes / rows * per_day_rows / 1e6:,.0f} MB once merged; before the merge "
              f"up to {(day_files * per_file + compact_bytes / rows * per_day_rows) / 1e6:,.0f} MB ({day_files:,} segments, "
              f"{per_file / 1000:.1f} kB each over the rows' own bytes, as measured here)")  # fmt: skip
        core_s = cpu_per_req * per_day_rows
        print(f"  proxy CPU per day: {core_s / 3600:.1f} core-hours; at the peak hour ({plan['peak_rps']:.0f} req/s): "
              f"{plan['peak_rps'] * cpu_per_req:.2f} cores")  # fmt: skip
        print(
            f"  driving the whole day at this run's rate would take {per_day_rows / (total.answered / wall) / 3600:.1f} h here"
        )
        problems = {p.name: bo.log_problems(p.log) for p in proxies}
        for name, lines in problems.items():
            print(f"\n== {name} log: {len(lines)} line(s) that look like problems")
            for line in lines[:20]:
                print(f"  {line}")
        print(f"\ntotal time {time.monotonic() - started:.0f}s")
        if args.json:
            print(json.dumps({"plan": plan, "users": users, "calls": calls, "answered": total.answered, "wall_s": wall,
                              "per_instance": [t.answered for t in tallies], "cpu_s": cpu, "cpu_ms_per_call": cpu_per_req * 1000,
                              "errors": total.errors[:50], "checks": checks, "exact": exact, "sealed_bytes": sealed_bytes,
                              "compacted_bytes": compact_bytes, "rows": rows, "returncodes": returncodes,
                              "log_problems": problems, "machine": info}, default=str))  # fmt: skip
        ok = exact and not total.errors and not any(problems.values()) and returncodes == [0] * len(proxies)
        return 0 if ok and not math.isnan(cpu_per_req) else 1
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        bl.cleanup(proxies, upstream, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
