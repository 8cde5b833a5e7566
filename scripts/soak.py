"""Soak: many clients for a long time through mitmdump + shadowgate; no errors, no growth.

    uv run python scripts/soak.py --clients 50 --minutes 10      # issue 7's soak
    uv run python scripts/soak.py --clients 8 --seconds 25 --json  # the CI variant (tests/test_soak.py)

The set-up of the other benchmarks (scripts/_benchlib.py): a fake upstream in its own process
answering for api.openai.com, api.anthropic.com and generativelanguage.googleapis.com with the
providers' documented responses (addons/shadowgate/demo/cases), mitmdump + addons/shadowgate.py with proxy
auth, DLP on and one blocking rule, recording to a throw-away database. Each client is one user
with a kept-alive tunnel per host that sends, back to back, a cycle of 12 calls (_benchlib.mixed_calls):
OpenAI, Anthropic and Gemini, JSON and SSE streams (4 of 12; events 5 ms apart), a prompt with an
e-mail address (redacted), one with a GitHub token (blocked by DLP: 403) and one to Mistral
(blocked by the policy: 403). Every --reconnect-every calls a client closes its tunnels and opens
new ones, as real clients do.

Every second the proxy's RSS and open file descriptors are sampled. Warm-up is the first
--warmup fraction of the run (default 0.2); growth is the median RSS of the last tenth of the
samples against the median of the first tenth after warm-up, and the slope of a least-squares
line through the samples after warm-up (MB per minute). Errors are every call that got a
wrong status, timed out or broke its connection, plus log lines that look like problems. After
the load the proxy gets SIGTERM, and the rows are checked against what was answered: count,
403s, DLP redactions and blocks, policy blocks, streams and tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _benchlib as bl  # noqa: E402
import bench_overhead as bo  # noqa: E402


def slope_mb_per_min(samples: list[tuple[float, int]]) -> float:
    """Least-squares slope of RSS (kB) over time (s), in MB per minute."""
    if len(samples) < 2:
        return float("nan")
    ts = [t for t, _ in samples]
    rs = [r / 1024 for _, r in samples]
    mt, mr = statistics.fmean(ts), statistics.fmean(rs)
    var = sum((t - mt) ** 2 for t in ts)
    return sum((t - mt) * (r - mr) for t, r in zip(ts, rs)) / var * 60 if var else float("nan")


async def run_load(args, proxy: bo.Proxy, tally: bl.Tally, samples: list) -> float:
    calls = bl.mixed_calls(args.stream_interval_ms)
    seconds = args.seconds if args.seconds else args.minutes * 60
    deadline = time.monotonic() + seconds
    t0 = time.monotonic()

    def next_call_for(index: int):
        cycle = itertools.cycle(calls[index % len(calls) :] + calls[: index % len(calls)])
        return lambda: next(cycle) if time.monotonic() < deadline else None

    async def sampler() -> None:
        last_print, last_answered = t0, 0
        while True:
            now = time.monotonic()
            rss, _ = bl.rss_kb(proxy.pid)
            samples.append((now - t0, rss, bl.open_fds(proxy.pid), tally.answered))
            if now - last_print >= args.print_every:
                rate = (tally.answered - last_answered) / (now - last_print)
                print(f"   t={now - t0:6.0f}s  answered {tally.answered:8,}  {rate:6.1f} req/s  RSS {rss / 1024:6.1f} MB  "
                      f"fds {samples[-1][2]:5d}  errors {len(tally.errors)}", flush=True)  # fmt: skip
                last_print, last_answered = now, tally.answered
            await asyncio.sleep(1.0)

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*(
        bl.client(proxy.port, proxy.client_tls, f"soak{i:03d}", next_call_for(i), tally, args.reconnect_every)
        for i in range(args.clients)
    ))  # fmt: skip
    elapsed = time.monotonic() - t0
    sampling.cancel()
    samples.append((elapsed, bl.rss_kb(proxy.pid)[0], bl.open_fds(proxy.pid), tally.answered))
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clients", type=int, default=50, help="concurrent clients (default 50)")
    parser.add_argument("--minutes", type=float, default=10, help="length of the load (default 10)")
    parser.add_argument("--seconds", type=float, default=0, help="length in seconds (overrides --minutes)")
    parser.add_argument("--warmup", type=float, default=0.2, help="fraction of the run counted as warm-up (0.2)")
    parser.add_argument("--reconnect-every", type=int, default=100, help="calls per client between new tunnels (100)")
    parser.add_argument("--stream-interval-ms", type=float, default=5, help="gap between stream events (5)")
    parser.add_argument("--print-every", type=float, default=30, help="seconds between progress lines (30)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON line")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, database)")
    args = parser.parse_args(argv)
    if args.clients < 1 or (args.seconds or args.minutes) <= 0 or not 0 < args.warmup < 1:
        parser.error("bad --clients, --minutes/--seconds or --warmup")

    bl.sigterm_interrupts()
    info = bo.machine()
    bl.print_header("shadowgate soak", info)
    seconds = args.seconds or args.minutes * 60
    print(f"  load:      {args.clients} clients x {seconds:g}s, back to back; the 12-call mix of _benchlib.mixed_calls; "
          f"new tunnels every {args.reconnect_every} calls")  # fmt: skip

    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-soak-"))
    upstream, proxies = None, []
    started = time.monotonic()
    try:
        upstream, upstream_ca = bl.start_mixed_upstream(workdir)
        db = workdir / "soak.duckdb"
        proxies = bl.start_mixed_proxies(workdir, upstream, upstream_ca, db, ["soak"])
        proxy = proxies[0]
        print(f"  proxy:     127.0.0.1:{proxy.port} (pid {proxy.pid}): {shlex.join(proxy.args)}")
        print(f"  workdir:   {workdir}\n")
        start_rss = bl.rss_kb(proxy.pid)[0]

        tally, samples = bl.Tally(), []
        elapsed = asyncio.run(run_load(args, proxy, tally, samples))
        returncode = proxy.stop()
        totals = bl.ai_request_totals(db) if db.exists() else {}
        expected = bl.expected_totals(tally)

        mb = 1 / 1024
        after = [s for s in samples if s[0] >= args.warmup * elapsed]
        tenth = max(1, len(after) // 10)
        warm_rss = statistics.median(s[1] for s in after[:tenth]) if after else float("nan")
        end_rss = statistics.median(s[1] for s in after[-tenth:]) if after else float("nan")
        growth = end_rss / warm_rss - 1 if after else float("nan")
        slope = slope_mb_per_min([(s[0], s[1]) for s in after])
        fds_warm, fds_end = (after[0][2], after[-1][2]) if after else (0, 0)
        problems = bo.log_problems(proxy.log)
        mismatches = {k: (totals.get(k), v) for k, v in expected.items() if totals.get(k) != v}
        lat = sorted(tally.latencies)

        print(f"\n== results: {tally.answered:,} calls answered in {elapsed:.0f}s = {tally.answered / elapsed:.1f} req/s "
              f"({args.clients} clients); {len(tally.errors)} errors")  # fmt: skip
        print(f"  by kind:                 {dict(sorted(tally.by_kind.items()))}")
        print(
            f"  latency p50 / p99:       {bo.percentile(lat, 0.5) * 1000:.1f} / {bo.percentile(lat, 0.99) * 1000:.1f} ms"
        )
        print(f"  RSS at start (idle):     {start_rss * mb:7.1f} MB")
        print(
            f"  RSS after warm-up:       {warm_rss * mb:7.1f} MB  (median of the first tenth after {args.warmup:.0%} of the run)"
        )
        print(f"  RSS at the end:          {end_rss * mb:7.1f} MB  (median of the last tenth)")
        print(f"  growth after warm-up:    {growth * 100:+.1f} %   slope {slope:+.2f} MB/min")
        print(f"  peak RSS (1 s samples):  {max(s[1] for s in samples) * mb:7.1f} MB")
        print(f"  open fds warm / end:     {fds_warm} / {fds_end}")
        step = max(1, len(samples) // 12)
        print("  RSS over time (MB):      " + ", ".join(f"{s[0]:.0f}s {s[1] * mb:.0f}" for s in samples[::step]))
        for e in tally.errors[:10]:
            print(f"  error: {e}")
        print(f"\n== shadowgate's rows (SIGTERM, exit code {returncode})")
        print(f"  recorded: {totals}")
        print(f"  expected: {expected}")
        print(f"  rows == answered: {'yes' if totals.get('rows') == tally.answered else 'NO'}; "
              f"every figure matches: {'yes' if not mismatches else 'NO ' + str(mismatches)}")  # fmt: skip
        print(f"\n== proxy log: {len(problems)} line(s) that look like problems")
        for line in problems[:40]:
            print(f"  {line}")
        print(f"\ntotal time {time.monotonic() - started:.0f}s")
        result = {
            "clients": args.clients, "seconds": elapsed, "answered": tally.answered, "rate": tally.answered / elapsed,
            "errors": tally.errors[:100], "error_count": len(tally.errors), "by_kind": tally.by_kind,
            "rows": totals.get("rows"), "totals": totals, "expected": expected, "mismatches": mismatches,
            "start_rss_mb": start_rss * mb, "warm_rss_mb": warm_rss * mb, "end_rss_mb": end_rss * mb,
            "growth": growth, "slope_mb_per_min": slope, "fds_warm": fds_warm, "fds_end": fds_end,
            "log_problems": problems, "returncode": returncode,
            "samples": [(round(t, 1), r, f, n) for t, r, f, n in samples], "machine": info,
        }  # fmt: skip
        if args.json:
            print(json.dumps(result, default=str))
        ok = not tally.errors and not mismatches and not problems and returncode == 0
        return 0 if ok else 1
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        bl.cleanup(proxies, upstream, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
