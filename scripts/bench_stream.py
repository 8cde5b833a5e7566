"""Streaming through plain mitmdump (A) and mitmdump + shadowgate (B): time to first chunk, gaps.

    cd /work/main && uv run python scripts/bench_stream.py [--rounds 6] [--streams 5] [--chunks 64] [--interval-ms 20]

Everything stays on 127.0.0.1 (the same set-up as scripts/bench_overhead.py):

  upstream   an asyncio HTTPS server (own process, scripts/_benchlib.run_ai_upstream) posing as
             api.openai.com; for a request carrying `x-bench-sse: 64,20` it answers an OpenAI chat
             SSE stream (chunked transfer encoding, one event per chunk) of 64 content chunks sent
             on a fixed 20 ms schedule, then a usage chunk and [DONE]. Each chunk carries the
             upstream's time.monotonic() at send, so the client can also compute per-chunk transit.
  proxy A    mitmdump + the redirect of scripts/_benchlib.py + _benchlib.StreamEventStreams (plain
             mitmproxy buffers whole bodies by default; this passes text/event-stream through as
             it arrives, which is the fair baseline for a streaming proxy)
  proxy B    mitmdump + the redirect + addons/shadowgate.py (its meter taps the stream), recording
             to a throw-away database
  client     raw asyncio streams + ssl: one kept-alive tunnel per proxy and round (CONNECT, TLS,
             one small JSON request to open the upstream connection), then S streams in a row

Rounds alternate A B A B after one warm-up round each. Per stream it records the time from
writing the request to the first content chunk (TTFC), the gaps between consecutive content
chunks at the client, each chunk's transit time (arrival - upstream send), and the spread of
arrivals (last - first chunk) against the upstream's spread (a buffered stream arrives all at
once: spread near 0, and its first chunk after the upstream sent its last).
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
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import _benchlib as bl  # noqa: E402
import bench_overhead as bo  # noqa: E402

ROOT = bo.ROOT
REDIRECT = Path(bl.__file__).resolve()
CONNECT_TIMEOUT = 15.0


@dataclass
class Stream:
    ttfc: float = float("nan")  # s, request written -> first content chunk at the client
    gaps: list[float] = field(default_factory=list)  # s, between consecutive content chunks
    transit: list[float] = field(default_factory=list)  # s, upstream send -> client arrival, per chunk
    upstream_gaps: list[float] = field(default_factory=list)  # s, between the upstream's sends
    jitter: list[float] = field(default_factory=list)  # s, |client gap - upstream gap|: what the path added to a gap
    client_spread: float = float("nan")  # s, last - first content chunk at the client
    upstream_spread: float = float("nan")  # s, the same at the upstream (its send times)
    first_before_last_sent: bool = False  # the first chunk arrived before the upstream sent its last
    chunks: int = 0
    usage: bool = False
    done: bool = False

    @property
    def buffered(self) -> bool:
        return not self.first_before_last_sent or not (self.client_spread >= 0.5 * self.upstream_spread)


@dataclass
class Round:
    proxy: str
    index: int
    streams: list[Stream] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    cpu: float = 0.0  # proxy process CPU seconds during the round


async def one_stream(reader, writer, request: bytes, chunks: int) -> Stream:
    s = Stream()
    buf = bytearray()
    arrivals: list[tuple[int, float, float]] = []  # (seq, sent, arrival)

    def on_chunk(data: bytes) -> None:
        now = time.monotonic()
        buf.extend(data)
        while True:
            end = buf.find(b"\n\n")
            if end < 0:
                return
            event = bytes(buf[:end])
            del buf[: end + 2]
            if not event.startswith(b"data: "):
                continue
            payload = event[6:]
            if payload == b"[DONE]":
                s.done = True
                continue
            data_obj = json.loads(payload)
            if data_obj.get("usage"):
                s.usage = True
            seq = data_obj.get("x_bench_seq", -1)
            if seq >= 0:
                arrivals.append((seq, data_obj["x_bench_sent"], now))

    sent = time.monotonic()
    writer.write(request)
    head, _ = await bl.read_response(reader, on_chunk)
    if head[9:12] != b"200":
        raise bo.BenchError(f"status {head[9:12].decode(errors='replace')}")
    s.chunks = len(arrivals)
    if s.chunks != chunks or [a[0] for a in arrivals] != list(range(chunks)):
        raise bo.BenchError(f"got {s.chunks} content chunks of {chunks} (or out of order)")
    s.ttfc = arrivals[0][2] - sent
    s.gaps = [b[2] - a[2] for a, b in zip(arrivals, arrivals[1:])]
    s.transit = [arr - snt for _, snt, arr in arrivals]
    s.upstream_gaps = [b[1] - a[1] for a, b in zip(arrivals, arrivals[1:])]
    s.jitter = [abs((b[2] - a[2]) - (b[1] - a[1])) for a, b in zip(arrivals, arrivals[1:])]
    s.client_spread = arrivals[-1][2] - arrivals[0][2]
    s.upstream_spread = arrivals[-1][1] - arrivals[0][1]
    s.first_before_last_sent = arrivals[0][2] < arrivals[-1][1]
    return s


async def run_round(proxy: bo.Proxy, index: int, args: argparse.Namespace, request: bytes) -> Round:
    r = Round(proxy.name, index)
    warm = bl.chat_request(bl.chat_body("warm up the upstream connection"))

    async def tunnel() -> None:
        async with asyncio.timeout(CONNECT_TIMEOUT):
            reader, writer = await bo.open_tunnel(proxy.port, proxy.client_tls)
        try:
            writer.write(warm)  # lazy connection strategy: the upstream connection opens here
            head, _ = await bl.read_response(reader)
            if head[9:12] == b"200":
                proxy.answered += 1
            for _ in range(args.streams):
                budget = args.chunks * args.interval_ms / 1000 + 10
                try:
                    async with asyncio.timeout(budget):
                        r.streams.append(await one_stream(reader, writer, request, args.chunks))
                    proxy.answered += 1
                except (bo.BenchError, TimeoutError, ConnectionError, asyncio.IncompleteReadError) as e:
                    r.errors.append(f"{type(e).__name__}: {e}")
                    return
        finally:
            writer.close()

    cpu0 = bo.cpu_seconds(proxy.pid)
    results = await asyncio.gather(*(tunnel() for _ in range(args.concurrency)), return_exceptions=True)
    r.cpu = bo.cpu_seconds(proxy.pid) - cpu0
    r.errors += [f"{type(e).__name__}: {e}" for e in results if isinstance(e, BaseException)]
    return r


def summarise(rounds: list[Round]) -> dict:
    streams = [s for r in rounds if r.index > 0 for s in r.streams]
    ms = 1000.0
    ttfc = [s.ttfc * ms for s in streams]
    gaps = [g * ms for s in streams for g in s.gaps]
    transit = [t * ms for s in streams for t in s.transit]
    pct = bo.percentile
    return {
        "streams": len(streams),
        "errors": sum(len(r.errors) for r in rounds),
        "ttfc_p50_ms": pct(ttfc, 0.5),
        "ttfc_p90_ms": pct(ttfc, 0.9),
        "ttfc_max_ms": max(ttfc, default=float("nan")),
        "round_ttfc_p50_ms": [round(pct([s.ttfc * ms for s in r.streams], 0.5), 3) for r in rounds if r.index > 0],
        "gap_p50_ms": pct(gaps, 0.5),
        "gap_p99_ms": pct(gaps, 0.99),
        "gap_max_ms": max(gaps, default=float("nan")),
        "gap_min_ms": min(gaps, default=float("nan")),
        "round_gap_p99_ms": [
            round(pct([g * ms for s in r.streams for g in s.gaps], 0.99), 3) for r in rounds if r.index > 0
        ],
        "jitter_p50_ms": pct([j * ms for s in streams for j in s.jitter], 0.5),
        "jitter_p99_ms": pct([j * ms for s in streams for j in s.jitter], 0.99),
        "upstream_gap_p99_ms": pct([g * ms for s in streams for g in s.upstream_gaps], 0.99),
        "transit_p50_ms": pct(transit, 0.5),
        "transit_p99_ms": pct(transit, 0.99),
        "transit_max_ms": max(transit, default=float("nan")),
        "spread_ratio_min": min((s.client_spread / s.upstream_spread for s in streams), default=float("nan")),
        "spread_client_ms_median": statistics.median([s.client_spread * ms for s in streams])
        if streams
        else float("nan"),
        "spread_upstream_ms_median": statistics.median([s.upstream_spread * ms for s in streams])
        if streams
        else float("nan"),
        "buffered_streams": sum(s.buffered for s in streams),
        "streams_with_usage_and_done": sum(s.usage and s.done for s in streams),
        "cpu_ms_per_stream": (
            sum(r.cpu for r in rounds if r.index > 0) / len(streams) * 1000 if streams else float("nan")
        ),
    }


def query_db(db: Path, chunks: int) -> dict:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        row = con.execute(
            "SELECT count(*), count(*) FILTER (WHERE streaming), "
            "count(*) FILTER (WHERE streaming AND output_tokens = ? AND NOT usage_estimated), "
            "quantile_cont(ttft_ms, 0.5) FILTER (WHERE streaming), "
            "quantile_cont(proxy_overhead_us, 0.5) FILTER (WHERE streaming), "
            "quantile_cont(proxy_overhead_us, 0.99) FILTER (WHERE streaming), "
            "count(*) FILTER (WHERE status_code = 200), count(*) FILTER (WHERE error_type IS NOT NULL) "
            "FROM ai_requests",
            [chunks],
        ).fetchone()
    finally:
        con.close()
    keys = ("rows", "stream_rows", "stream_rows_exact_usage", "stream_ttft_ms_p50",
            "stream_overhead_us_p50", "stream_overhead_us_p99", "rows_status_200", "rows_with_error")  # fmt: skip
    return dict(zip(keys, row))


async def bench(args: argparse.Namespace, proxies: list[bo.Proxy]) -> dict[str, list[Round]]:
    request = bl.chat_request(
        bl.chat_body("Stream me a long answer about forward proxies.", stream=True),
        {bl.SSE_HEADER: f"{args.chunks},{args.interval_ms:g}"},
    )
    rounds: dict[str, list[Round]] = {p.name: [] for p in proxies}
    print(f"\n-- warm-up round, then {args.rounds} rounds, A B A B ...; {args.concurrency} tunnel(s) x "
          f"{args.streams} streams per proxy and round")  # fmt: skip
    for index in range(args.rounds + 1):
        for proxy in proxies:
            r = await run_round(proxy, index, args, request)
            rounds[proxy.name].append(r)
            label = "warm-up" if index == 0 else f"round {index}"
            ttfc = [s.ttfc * 1000 for s in r.streams]
            gaps = [g * 1000 for s in r.streams for g in s.gaps]
            print(
                f"   {proxy.name} {label:>8}: {len(r.streams):3d} streams  TTFC p50 {bo.fmt(bo.percentile(ttfc, 0.5))} ms"
                f"  gap p50 {bo.fmt(bo.percentile(gaps, 0.5))} p99 {bo.fmt(bo.percentile(gaps, 0.99))} ms"
                f"  buffered {sum(s.buffered for s in r.streams)}"
                + (f"  ERRORS {len(r.errors)}: {r.errors[0]}" if r.errors else ""),
                flush=True,
            )
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per proxy (default 6)")
    parser.add_argument("--streams", type=int, default=5, help="streams per tunnel and round (default 5)")
    parser.add_argument("--concurrency", type=int, default=1, help="tunnels streaming at once (default 1)")
    parser.add_argument("--chunks", type=int, default=64, help="content chunks per stream (default 64)")
    parser.add_argument("--interval-ms", type=float, default=20.0, help="upstream gap between chunks (default 20)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, database)")
    args = parser.parse_args(argv)
    if min(args.rounds, args.streams, args.concurrency, args.chunks) < 1 or args.interval_ms < 0:
        parser.error("--rounds, --streams, --concurrency and --chunks must be positive")

    bl.sigterm_interrupts()
    info = bo.machine()
    bl.print_header("shadowgate streaming benchmark", info)
    print(f"  stream:    {args.chunks} content chunks {args.interval_ms:g} ms apart + usage chunk + [DONE], "
          f"OpenAI chat SSE over chunked HTTP/1.1 from https://{bl.BENCH_HOST}{bl.BENCH_PATH}")  # fmt: skip

    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-bench-stream-"))
    upstream = None
    proxies: list[bo.Proxy] = []
    started = time.monotonic()
    try:
        cert, key, upstream_ca = bo.make_upstream_cert(workdir)
        upstream = bl.start_ai_upstream(cert, key, upstream_ca)
        db = workdir / "bench.duckdb"
        proxies = bl.start_proxies(workdir, upstream, upstream_ca, [
            ("A", bl.frozen_script(workdir, REDIRECT, ("StreamEventStreams",)), []),
            ("B", bl.frozen_script(workdir, REDIRECT), bl.shadowgate_args(workdir, db)),
        ])  # fmt: skip
        print(f"  upstream:  127.0.0.1:{upstream.port} (pid {upstream.process.pid})")
        for proxy in proxies:
            print(f"  proxy {proxy.name}:   127.0.0.1:{proxy.port} (pid {proxy.pid}): {shlex.join(proxy.args)}")
        print(f"  workdir:   {workdir}")

        per_stream = args.chunks * args.interval_ms / 1000 + 2
        budget = 2 * (args.rounds + 1) * (args.streams * per_stream + 10) + 120

        async def timed():
            async with asyncio.timeout(budget):
                return await bench(args, proxies)

        rounds = asyncio.run(timed())
        a, b = proxies
        returncode_b = b.stop()
        a.stop()
        db_stats = query_db(db, args.chunks) if db.exists() else None
        sa, sb = summarise(rounds["A"]), summarise(rounds["B"])

        print(f"\n== results ({args.rounds} rounds x {args.concurrency * args.streams} streams per proxy; "
              "percentiles over all timed streams / chunks, in ms)")  # fmt: skip
        header = (f"{'proxy':<24} {'streams':>7} {'TTFC p50':>9} {'TTFC p90':>9} {'gap p50':>8} {'gap p99':>8}"
                  f" {'gap max':>8} {'transit p50':>11} {'transit p99':>11} {'CPU/stream':>10} {'errors':>6}")  # fmt: skip
        print(header)
        print("-" * len(header))
        for name, s in (("A  mitmdump (+SSE pass)", sa), ("B  mitmdump + shadowgate", sb)):
            print(
                f"{name:<24} {s['streams']:>7} {bo.fmt(s['ttfc_p50_ms'], 3):>9} {bo.fmt(s['ttfc_p90_ms'], 3):>9}"
                f" {bo.fmt(s['gap_p50_ms'], 3):>8} {bo.fmt(s['gap_p99_ms'], 3):>8} {bo.fmt(s['gap_max_ms'], 3):>8}"
                f" {bo.fmt(s['transit_p50_ms'], 3):>11} {bo.fmt(s['transit_p99_ms'], 3):>11}"
                f" {bo.fmt(s['cpu_ms_per_stream'], 2):>10} {s['errors']:>6}"
            )
        added_ttfc = sb["ttfc_p50_ms"] - sa["ttfc_p50_ms"]
        added_gap_p99 = sb["gap_p99_ms"] - sa["gap_p99_ms"]
        added_transit_p99 = sb["transit_p99_ms"] - sa["transit_p99_ms"]
        paired = [y - x for x, y in zip(sa["round_ttfc_p50_ms"], sb["round_ttfc_p50_ms"])]
        paired_gap = [y - x for x, y in zip(sa["round_gap_p99_ms"], sb["round_gap_p99_ms"])]
        ok_ttfc, ok_gap = added_ttfc <= 1.0, added_gap_p99 <= 1.0
        print(
            f"\nadded TTFC (median B - median A):        {added_ttfc:+.3f} ms   target <= 1 ms: {'met' if ok_ttfc else 'MISSED'}"
        )
        print(f"  per round (B - A, round medians):      {', '.join(f'{x:+.2f}' for x in paired)} ms")
        print(
            f"added inter-chunk p99 (B - A):           {added_gap_p99:+.3f} ms   target <= 1 ms: {'met' if ok_gap else 'MISSED'}"
        )
        print(f"  per round (B - A, round p99s):         {', '.join(f'{x:+.2f}' for x in paired_gap)} ms")
        print(f"added gap jitter p50 / p99:              {sb['jitter_p50_ms'] - sa['jitter_p50_ms']:+.3f} / "
              f"{sb['jitter_p99_ms'] - sa['jitter_p99_ms']:+.3f} ms  (|client gap - upstream gap|: A "
              f"{bo.fmt(sa['jitter_p99_ms'], 3)}, B {bo.fmt(sb['jitter_p99_ms'], 3)} ms p99; removes the upstream's own "
              "timer jitter, which is in both proxies' gap p99)")  # fmt: skip
        print(f"added per-chunk transit p50 / p99:       {sb['transit_p50_ms'] - sa['transit_p50_ms']:+.3f} / "
              f"{added_transit_p99:+.3f} ms  (upstream send -> client arrival)")  # fmt: skip
        print(
            f"upstream's own send gaps, p99:           A {bo.fmt(sa['upstream_gap_p99_ms'], 3)} ms, "
            f"B {bo.fmt(sb['upstream_gap_p99_ms'], 3)} ms (nominal {args.interval_ms:g} ms)"
        )
        for name, s in (("A", sa), ("B", sb)):
            print(f"buffering, proxy {name}: {s['buffered_streams']} of {s['streams']} streams buffered; arrival spread "
                  f"median {bo.fmt(s['spread_client_ms_median'], 1)} ms vs upstream {bo.fmt(s['spread_upstream_ms_median'], 1)} ms "
                  f"(min ratio {bo.fmt(s['spread_ratio_min'], 3)}); usage chunk + [DONE] seen in "
                  f"{s['streams_with_usage_and_done']}")  # fmt: skip
        print(f"added proxy CPU per stream:              {sb['cpu_ms_per_stream'] - sa['cpu_ms_per_stream']:+.2f} ms "
              f"({args.chunks + 1} chunks)")  # fmt: skip

        print(f"\n== shadowgate's own accounting (proxy B stopped with SIGTERM, exit code {returncode_b})")
        if db_stats is None:
            print(f"  no database at {db}")
        else:
            print(f"  ai_requests rows: {db_stats['rows']} (B answered {b.answered}: warm-up JSON requests + streams); "
                  f"rows == answered: {'yes' if db_stats['rows'] == b.answered else 'NO'}")  # fmt: skip
            print(f"  stream rows: {db_stats['stream_rows']}, with exact usage ({args.chunks} output tokens): "
                  f"{db_stats['stream_rows_exact_usage']}; rows with error_type: {db_stats['rows_with_error']}")  # fmt: skip
            print(f"  streams: shadowgate's ttft_ms p50 {bo.fmt(db_stats['stream_ttft_ms_p50'], 3)} ms; "
                  f"proxy_overhead_us p50 / p99 {bo.fmt(db_stats['stream_overhead_us_p50'], 0)} / "
                  f"{bo.fmt(db_stats['stream_overhead_us_p99'], 0)} us per stream")  # fmt: skip
        problems = {p.name: bo.log_problems(p.log) for p in proxies}
        for name, lines in problems.items():
            print(f"\n== proxy {name} log: {len(lines)} line(s) that look like problems")
            for line in lines[:40]:
                print(f"  {line}")
        print(f"\ntotal time {time.monotonic() - started:.0f}s")
        errors = sa["errors"] + sb["errors"]
        if args.json:
            print(json.dumps({"machine": info, "command": [sys.executable, *sys.argv], "A": sa, "B": sb,
                              "added_ttfc_ms": added_ttfc, "added_gap_p99_ms": added_gap_p99, "db": db_stats,
                              "log_problems": problems}, default=str))  # fmt: skip
        return 0 if not errors and not sb["buffered_streams"] else 1
    except KeyboardInterrupt:
        print("\ninterrupted; cleaning up", file=sys.stderr)
        return 130
    except TimeoutError:
        print("\nthe benchmark overran its time budget; cleaning up", file=sys.stderr)
        return 1
    finally:
        bl.cleanup(proxies, upstream, workdir, args.keep)


if __name__ == "__main__":
    sys.exit(main())
