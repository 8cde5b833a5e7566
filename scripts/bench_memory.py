"""Memory of mitmdump + shadowgate under many requests: RSS after warm-up, peak, growth.

    cd /work/main && uv run python scripts/bench_memory.py [--requests 100000] [--concurrency 10]

The default is issue 7's 100k requests (1,000 streams, 50 x 20 MB); on the project's 2-vCPU
machine, shared with other work, that took 7.5 minutes (230 requests/s through mitmdump +
shadowgate). `--requests 40000` takes about 3.5 minutes. --max-seconds bounds the load.

The same set-up as scripts/bench_overhead.py, through proxy B only (mitmdump + the redirect of
scripts/_benchlib.py + addons/shadowgate.py with its default policy, recording to a throw-away
database), against the fake api.openai.com of scripts/_benchlib.run_ai_upstream. C kept-alive
tunnels send N requests in all:

  * 1 % streams (every 100th request): OpenAI chat SSE, 16 chunks 2 ms apart + usage + [DONE]
  * 50 bodies of 20 MB, spread evenly: POST /v1/chat/completions with a 20 MB JSON prompt
    (above shadowgate_max_parse_bytes, so shadowgate streams it through unparsed)
  * the rest: a ~0.5 KB chat request answered with a small chat.completion JSON

The proxy's RSS (VmRSS in /proc/<pid>/status) is sampled every second. "After warm-up" is the
first sample once 10 % of the requests are answered; growth is the RSS at the end of the load
against that. VmHWM is the kernel's peak, which catches spikes between samples. After the load
the proxy idles 5 s (one more sample), then gets SIGTERM and its rows are counted.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import _benchlib as bl  # noqa: E402
import bench_overhead as bo  # noqa: E402

ROOT = bo.ROOT
REDIRECT = Path(bl.__file__).resolve()
LIMIT_MB = 250
DEFAULT_REQUESTS = 100_000  # issue 7; 7.5 min on the shared 2-vCPU machine
GROWTH_LIMIT = 0.10


def big_prompt(megabytes: int) -> bytes:
    filler = (
        "Quarterly report, section {n}: revenue by region, churn by cohort, open support tickets by "
        "product line, and the notes of the planning meeting, pasted in full for summarising. "
    )
    size = megabytes * 1_000_000
    parts, total, n = [], 0, 0
    while total < size:
        s = filler.format(n=n)
        parts.append(s)
        total += len(s)
        n += 1
    return bl.chat_body("".join(parts)[:size])


async def run_load(args, proxy: bo.Proxy, samples: list, state: dict) -> None:
    small = bl.chat_request(bl.chat_body("Summarise what a forward proxy does, in two sentences. " * 6))
    stream = bl.chat_request(
        bl.chat_body("Stream a short answer.", stream=True),
        {bl.SSE_HEADER: f"{args.stream_chunks},{args.stream_interval_ms:g}"},
    )
    big = bl.chat_request(big_prompt(args.big_mb)) if args.big else b""
    n = args.requests
    bigs = {int(n * (k + 0.5) / args.big) for k in range(args.big)} if args.big else set()
    counter = iter(range(n))
    kinds = {"small": 0, "stream": 0, "big": 0}

    async def worker() -> None:
        reader = writer = None
        for i in counter:
            if i in bigs:
                kind, request, timeout = "big", big, 120.0
            elif args.stream_every and i % args.stream_every == args.stream_every // 2:
                kind, request, timeout = "stream", stream, 30.0
            else:
                kind, request, timeout = "small", small, 15.0
            try:
                async with asyncio.timeout(timeout):
                    if writer is None:
                        reader, writer = await bo.open_tunnel(proxy.port, proxy.client_tls)
                    writer.write(request)
                    head, _ = await bl.read_response(reader)
                if head[9:12] != b"200":
                    raise bo.BenchError(f"status {head[9:12].decode(errors='replace')}")
                state["done"] += 1
                kinds[kind] += 1
            except (bo.BenchError, TimeoutError, ConnectionError, asyncio.IncompleteReadError, OSError) as e:
                state["errors"].append(f"{kind} #{i}: {type(e).__name__}: {e}")
                if writer is not None:
                    writer.close()
                reader = writer = None
        if writer is not None:
            writer.close()

    async def sampler() -> None:
        t0 = time.monotonic()
        while True:
            rss, hwm = bl.rss_kb(proxy.pid)
            samples.append((time.monotonic() - t0, rss, hwm, state["done"]))
            if len(samples) % args.print_every == 0:
                print(f"   t={samples[-1][0]:6.0f}s  answered {state['done']:7d}  RSS {rss / 1024:6.1f} MB  "
                      f"HWM {hwm / 1024:6.1f} MB  errors {len(state['errors'])}", flush=True)  # fmt: skip
            await asyncio.sleep(1.0)

    sampling = asyncio.create_task(sampler())
    await asyncio.gather(*(worker() for _ in range(args.concurrency)))
    state["load_seconds"] = time.monotonic() - state["t0"]
    state["kinds"] = kinds
    rss, hwm = bl.rss_kb(proxy.pid)
    state["end_rss"] = rss
    samples.append((samples[-1][0] + 0.01 if samples else 0.0, rss, hwm, state["done"]))
    await asyncio.sleep(5.0)
    state["idle_rss"] = bl.rss_kb(proxy.pid)[0]
    sampling.cancel()


def query_db(db: Path, big_bytes: int) -> dict:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE streaming), count(*) FILTER (WHERE request_bytes >= ?), "
            "count(*) FILTER (WHERE status_code = 200), count(*) FILTER (WHERE error_type IS NOT NULL), "
            "count(DISTINCT request_id) FROM ai_requests",
            [big_bytes],
        ).fetchone()
    finally:
        con.close()
    return dict(zip(("rows", "stream_rows", "big_rows", "rows_200", "rows_with_error", "distinct_request_ids"), row))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--requests",
        type=int,
        default=DEFAULT_REQUESTS,
        help="requests in all (default 100,000, issue 7's figure: ~7.5 min here; 40,000: ~3.5 min)",
    )
    parser.add_argument("--concurrency", type=int, default=10, help="kept-alive tunnels (default 10)")
    parser.add_argument(
        "--stream-every", type=int, default=100, help="every Nth request is a stream (default 100 = 1%%)"
    )
    parser.add_argument("--stream-chunks", type=int, default=16, help="chunks per stream (default 16)")
    parser.add_argument("--stream-interval-ms", type=float, default=2.0, help="gap between chunks (default 2)")
    parser.add_argument("--big", type=int, default=50, help="how many 20 MB bodies (default 50)")
    parser.add_argument("--big-mb", type=int, default=20, help="size of the big bodies in MB (default 20)")
    parser.add_argument("--warmup", type=float, default=0.10, help="fraction of requests counted as warm-up (0.10)")
    parser.add_argument("--max-seconds", type=float, default=900, help="abandon the load after this long (900)")
    parser.add_argument("--print-every", type=int, default=15, help="print a sample every N seconds (15)")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="measure plain mitmdump (the redirect only, no shadowgate) under the same load, to tell "
        "mitmproxy's own memory from shadowgate's",
    )
    parser.add_argument("--json", action="store_true", help="also print the results (and samples) as JSON")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, database)")
    args = parser.parse_args(argv)
    if args.requests < 1 or args.concurrency < 1 or args.big < 0 or not 0 < args.warmup < 1:
        parser.error("bad --requests, --concurrency, --big or --warmup")

    bl.sigterm_interrupts()
    info = bo.machine()
    bl.print_header(
        "shadowgate memory benchmark ("
        + ("PLAIN mitmdump, no shadowgate: --plain" if args.plain else "mitmdump + shadowgate")
        + ")",
        info,
    )
    streams = len(
        [i for i in range(args.requests) if args.stream_every and i % args.stream_every == args.stream_every // 2]
    )
    if args.requests < DEFAULT_REQUESTS:
        print(f"  note:      {args.requests:,} requests, fewer than issue 7's {DEFAULT_REQUESTS:,} (a quicker run)")
    print(f"  load:      {args.requests:,} requests over {args.concurrency} tunnels: ~{streams:,} streams "
          f"({args.stream_chunks} chunks {args.stream_interval_ms:g} ms apart), {args.big} x {args.big_mb} MB bodies, "
          "the rest small chat requests")  # fmt: skip

    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-bench-memory-"))
    upstream = None
    proxy = None
    proxies: list[bo.Proxy] = []
    started = time.monotonic()
    try:
        cert, key, upstream_ca = bo.make_upstream_cert(workdir)
        upstream = bl.start_ai_upstream(cert, key, upstream_ca)
        db = workdir / "bench.duckdb"
        extra = [] if args.plain else bl.shadowgate_args(workdir, db)
        proxies = bl.start_proxies(
            workdir, upstream, upstream_ca, [("A" if args.plain else "B", bl.frozen_script(workdir, REDIRECT), extra)]
        )
        proxy = proxies[0]
        start_rss = bl.rss_kb(proxy.pid)[0]
        print(f"  upstream:  127.0.0.1:{upstream.port} (pid {upstream.process.pid})")
        print(f"  proxy {proxy.name}:   127.0.0.1:{proxy.port} (pid {proxy.pid}): {shlex.join(proxy.args)}")
        print(f"  workdir:   {workdir}")
        print(f"\nRSS at start (idle): {start_rss / 1024:.1f} MB; sampling every 1 s\n")

        samples: list[tuple[float, int, int, int]] = []
        state: dict = {"done": 0, "errors": [], "t0": time.monotonic()}

        async def timed() -> None:
            async with asyncio.timeout(args.max_seconds):
                await run_load(args, proxy, samples, state)

        timed_out = False
        try:
            asyncio.run(timed())
        except TimeoutError:
            timed_out = True
            state.setdefault("load_seconds", time.monotonic() - state["t0"])
            print(f"\nWARNING: load abandoned after --max-seconds {args.max_seconds:g}; figures cover what ran")
        returncode = proxy.stop()
        db_stats = query_db(db, args.big_mb * 1_000_000) if db.exists() else None

        mb = 1 / 1024
        warm_at = args.warmup * args.requests
        warm = next((s for s in samples if s[3] >= warm_at), samples[0] if samples else None)
        after = [s for s in samples if warm is not None and s[0] >= warm[0]]
        peak_sample = max((s[1] for s in samples), default=0)
        hwm = max((s[2] for s in samples), default=0)
        end_rss = state.get("end_rss", samples[-1][1] if samples else 0)
        growth = (end_rss - warm[1]) / warm[1] if warm else float("nan")
        tail = after[-max(1, len(after) // 10) :]
        head = after[: max(1, len(after) // 10)]
        growth_trend = (
            (statistics.median(s[1] for s in tail) / statistics.median(s[1] for s in head) - 1)
            if after
            else float("nan")
        )
        total_ok = hwm * mb <= LIMIT_MB
        growth_ok = growth <= GROWTH_LIMIT
        load_s = state.get("load_seconds", float("nan"))
        print(f"\n== results ({state['done']:,} of {args.requests:,} requests answered in {load_s:.0f}s = "
              f"{state['done'] / load_s:.0f} req/s; {len(state['errors'])} errors; kinds {state.get('kinds')})")  # fmt: skip
        print(f"  RSS at start (idle):               {start_rss * mb:7.1f} MB")
        if warm:
            print(f"  RSS after warm-up ({warm[3]:,} answered): {warm[1] * mb:7.1f} MB  (t={warm[0]:.0f}s)")
        print(f"  RSS max of 1 s samples:            {peak_sample * mb:7.1f} MB")
        print(
            f"  VmHWM (kernel's peak RSS):         {hwm * mb:7.1f} MB   target <= {LIMIT_MB} MB: {'met' if total_ok else 'MISSED'}"
        )
        print(f"  RSS at end of load:                {end_rss * mb:7.1f} MB")
        print(f"  RSS after 5 s idle:                {state.get('idle_rss', 0) * mb:7.1f} MB")
        print(f"  growth after warm-up (end/warm):   {growth * 100:+.1f} %   target <= {GROWTH_LIMIT * 100:.0f} %: "
              f"{'met' if growth_ok else 'MISSED'}")  # fmt: skip
        print(f"  trend (median last 10 % of samples / first 10 % after warm-up): {growth_trend * 100:+.1f} %")
        if after:
            step = max(1, len(after) // 12)
            print("  RSS over time (MB): " + ", ".join(f"{s[0]:.0f}s {s[1] * mb:.0f}" for s in after[::step]))
        for e in state["errors"][:10]:
            print(f"  error: {e}")

        print(f"\n== shadowgate's own accounting (SIGTERM, exit code {returncode})")
        if args.plain:
            print("  none: --plain runs mitmdump without shadowgate")
        elif db_stats is None:
            print(f"  no database at {db}")
        else:
            print(f"  ai_requests rows {db_stats['rows']:,} vs answered {state['done']:,}: "
                  f"{'equal' if db_stats['rows'] == state['done'] else 'DIFFERENT'}; stream rows {db_stats['stream_rows']}, "
                  f"{args.big_mb} MB rows {db_stats['big_rows']}, status 200 {db_stats['rows_200']}, "
                  f"with error_type {db_stats['rows_with_error']}, distinct request ids {db_stats['distinct_request_ids']:,}")  # fmt: skip
        problems = bo.log_problems(proxy.log)
        print(f"\n== proxy log: {len(problems)} line(s) that look like problems")
        for line in problems[:40]:
            print(f"  {line}")
        print(f"\ntotal time {time.monotonic() - started:.0f}s")
        if args.json:
            print(json.dumps({"machine": info, "command": [sys.executable, *sys.argv], "samples": samples,
                              "db": db_stats, "errors": state["errors"][:100], "growth": growth,
                              "hwm_mb": hwm * mb, "log_problems": problems}, default=str))  # fmt: skip
        rows_ok = args.plain or (db_stats is not None and db_stats["rows"] == state["done"])
        return 0 if total_ok and growth_ok and rows_ok and not state["errors"] and not timed_out else 1
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        bl.cleanup(proxies, upstream, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
