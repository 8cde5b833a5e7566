"""What answer inspection (the policy's `responses:` section) costs a streamed answer.

    uv run python scripts/bench_screening_stream.py            # in-process: per-chunk CPU, text held back
    uv run python scripts/bench_screening_stream.py --proxy    # also through mitmdump: TTFC and gaps, off vs on
    uv run python scripts/bench_screening_stream.py --bedrock  # the same answers as a Bedrock ConverseStream

In process (no proxy, deterministic): an OpenAI chat SSE stream is built from public benign text
(the self-instruct and BIPIA e-mail rows of tests/fixtures/screening/public.jsonl, ~4 characters
per delta, one event per chunk, as models stream) and run through Meter's StreamTap as Meter
builds it (off), and with AnswerStream's inspection chained into it (on: dlp and exfil_links
redact); with --bedrock the answers are AWS event-stream messages (ConverseStream
contentBlockDelta, one message per chunk), decoded and re-encoded by wireformats/eventstream.py. It reports CPU microseconds per chunk (p50, p99, mean) and the text hold-back: how many
events later a character leaves than it arrived (each event is one model token, so at a model's
~20-50 ms per token that is the added time before the user sees that character).

Through the proxy (--proxy; under a minute): scripts/bench_stream.py's upstream, client and
measurements with two shadowgate proxies, A without and B with the `responses:` section: time
to the first content chunk and inter-chunk gaps as the client sees them.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "fixtures" / "screening" / "public.jsonl"
POLICY = "responses: {dlp: redact, exfil_links: redact}\n"


def answer_texts(limit: int = 200) -> list[str]:
    rows = [json.loads(line) for line in DATA.read_text().splitlines()]
    texts = [r["text"] for r in rows if r["label"] == "benign" and r["source"] in ("self_instruct", "bipia_email")]
    return texts[:limit]


def sse(text: str, size: int = 4) -> list[bytes]:
    chunks = []
    for i in range(0, len(text), size):
        data = {"id": "c", "object": "chat.completion.chunk", "model": "m",
                "choices": [{"index": 0, "delta": {"content": text[i : i + size]}, "finish_reason": None}]}  # fmt: skip
        chunks.append(b"data: " + json.dumps(data).encode() + b"\n\n")
    chunks.append(
        b'data: {"id":"c","choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1}}\n\ndata: [DONE]\n\n'
    )
    return chunks


def converse_stream(text: str, size: int = 4) -> list[bytes]:
    from shadowgate.wireformats.eventstream import encode_message
    from shadowgate.wireformats.eventstream import encode_string_headers

    def message(kind: str, data: dict) -> bytes:
        headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
        return encode_message(encode_string_headers(headers), json.dumps(data).encode())

    chunks = [message("messageStart", {"role": "assistant"})]
    for i in range(0, len(text), size):
        chunks.append(message("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": text[i : i + size]}}))
    chunks.append(message("messageStop", {"stopReason": "end_turn"}))
    chunks.append(message("metadata", {"usage": {"inputTokens": 1, "outputTokens": 1}}))
    return chunks


def converse_content_of(out: bytes) -> list[str]:
    from shadowgate.wireformats.eventstream import EventStreamCodec

    texts = []
    for m in EventStreamCodec().feed(out):
        data = json.loads(m.data) if m.ended and m.data else {}
        texts.append((data.get("delta") or {}).get("text") or "")
    return texts


def content_of(out: bytes) -> list[str]:
    texts = []
    for block in out.split(b"\n\n"):
        if block.startswith(b"data: {"):
            data = json.loads(block[6:])
            texts += [c["delta"].get("content") or "" for c in data.get("choices", [])]
    return texts


def in_process(texts: list[str], bedrock: bool = False) -> dict:
    from shadowgate.config.attribution import Person
    from shadowgate.config.policy_responses import ResponsesPolicy
    from shadowgate.flow import FlowRecord
    from shadowgate.stages.answer import Inspection
    from shadowgate.stages.answer import StreamInspector
    from shadowgate.stages.answer import compose
    from shadowgate.stages.meter import StreamTap
    from shadowgate.wireformats import PARSERS

    policy = ResponsesPolicy(dlp="redact", exfil_links="redact")
    parser, content_type = (
        ("bedrock-converse", "application/vnd.amazon.eventstream") if bedrock else ("openai-chat", "text/event-stream")
    )
    build, read = (converse_stream, converse_content_of) if bedrock else (sse, content_of)
    wire = PARSERS[parser]
    cost: dict[str, list[float]] = {"off": [], "on": []}
    delays: list[int] = []
    chars = 0
    for text in texts:
        chunks = build(text)
        for mode in ("off", "on"):
            tap = StreamTap(wire.stream_parser({}), None)
            if mode == "on":
                rec = FlowRecord(0.0, "", Person("u", None), "api.openai.com", "openai.com", None, None, "POST", "/")
                tap.transform = compose(
                    StreamInspector(Inspection(policy, rec, False), parser, content_type, None), None
                )
            sent = 0  # characters out so far
            for n, chunk in enumerate([*chunks, b""]):
                started = time.thread_time_ns()
                out = tap(chunk)
                cost[mode].append((time.thread_time_ns() - started) / 1000)
                if mode == "on":
                    out_bytes = out if isinstance(out, bytes) else b"".join(out)
                    emitted = sum(len(t) for t in read(out_bytes))
                    # Characters that arrived in event i (4 each) and left now: delay n - i events.
                    for pos in range(sent, sent + emitted):
                        delays.append(max(0, n - pos // 4))
                    sent += emitted
            tap.finish()
        chars += len(text)
    pct = lambda xs, q: sorted(xs)[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    return {
        "streams": len(texts),
        "chars": chars,
        "chunks": len(cost["off"]),
        "off_us_p50": pct(cost["off"], 0.5), "off_us_p99": pct(cost["off"], 0.99), "off_us_mean": statistics.mean(cost["off"]),
        "on_us_p50": pct(cost["on"], 0.5), "on_us_p99": pct(cost["on"], 0.99), "on_us_mean": statistics.mean(cost["on"]),
        "hold_events_p50": pct(delays, 0.5), "hold_events_p90": pct(delays, 0.9),
        "hold_events_p99": pct(delays, 0.99), "hold_events_max": max(delays),
    }  # fmt: skip


def through_proxy(rounds: int, streams: int) -> dict:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import asyncio

    import _benchlib as bl
    import bench_overhead as bo
    import bench_stream as bs

    first_text: dict[str, list[float]] = {}

    async def one_stream(reader, writer, request: bytes, chunks: int) -> bs.Stream:
        """bench_stream.one_stream, but text held back at the end comes in a copy of the last
        event (a second event with its sequence number): count each number's first arrival, and
        time the first non-empty text as well."""
        s, buf, arrivals, seen = bs.Stream(), bytearray(), [], set()
        text_at: list[float] = []

        def on_chunk(data: bytes) -> None:
            now = time.monotonic()
            buf.extend(data)
            while (end := buf.find(b"\n\n")) >= 0:
                event, payload = bytes(buf[:end]), bytes(buf[6:end])
                del buf[: end + 2]
                if not event.startswith(b"data: {"):
                    s.done = s.done or payload == b"[DONE]"
                    continue
                obj = json.loads(payload)
                s.usage = s.usage or bool(obj.get("usage"))
                if not text_at and any(
                    (c.get("delta", {}).get("content") or "").strip() for c in obj.get("choices", [])
                ):
                    text_at.append(now)
                seq = obj.get("x_bench_seq", -1)
                if seq >= 0 and seq not in seen:
                    seen.add(seq)
                    arrivals.append((seq, obj["x_bench_sent"], now))

        sent = time.monotonic()
        writer.write(request)
        head, _ = await bl.read_response(reader, on_chunk)
        if head[9:12] != b"200" or len(arrivals) != chunks:
            raise bo.BenchError(f"status {head[9:12]!r}, {len(arrivals)} of {chunks} chunks")
        s.chunks = chunks
        s.ttfc = arrivals[0][2] - sent
        s.gaps = [b[2] - a[2] for a, b in zip(arrivals, arrivals[1:])]
        s.transit = [arr - snt for _, snt, arr in arrivals]
        s.upstream_gaps = [b[1] - a[1] for a, b in zip(arrivals, arrivals[1:])]
        s.jitter = [abs((b[2] - a[2]) - (b[1] - a[1])) for a, b in zip(arrivals, arrivals[1:])]
        s.client_spread, s.upstream_spread = arrivals[-1][2] - arrivals[0][2], arrivals[-1][1] - arrivals[0][1]
        s.first_before_last_sent = arrivals[0][2] < arrivals[-1][1]
        first_text.setdefault(current[0], []).append((text_at[0] if text_at else float("nan")) - sent)
        return s

    current = [""]
    bs.one_stream = one_stream
    original_round = bs.run_round

    async def run_round(proxy, index, args, request):
        current[0] = proxy.name if index > 0 else "warm-up"
        return await original_round(proxy, index, args, request)

    bs.run_round = run_round

    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-bench-answer-"))
    upstream, proxies = None, []
    try:
        cert, key, upstream_ca = bo.make_upstream_cert(workdir)
        upstream = bl.start_ai_upstream(cert, key, upstream_ca)
        policy = workdir / "policy.yaml"
        policy.write_text(POLICY)
        proxies = bl.start_proxies(workdir, upstream, upstream_ca, [
            ("A", bl.frozen_script(workdir, bs.REDIRECT), bl.shadowgate_args(workdir, workdir / "a.duckdb")),
            ("B", bl.frozen_script(workdir, bs.REDIRECT),
             bl.shadowgate_args(workdir, workdir / "b.duckdb", "--set", f"shadowgate_policy={policy}")),
        ])  # fmt: skip
        args = argparse.Namespace(rounds=rounds, streams=streams, concurrency=1, chunks=64, interval_ms=20.0)
        results = asyncio.run(bs.bench(args, proxies))
        summary = {name: bs.summarise(r) for name, r in results.items()}
        for name in summary:
            summary[name]["first_text_p50_ms"] = statistics.median(first_text.get(name, [float("nan")])) * 1000
        return summary
    finally:
        bl.cleanup(proxies, upstream, workdir, keep=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--proxy", action="store_true", help="also measure through two mitmdump processes")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--streams", type=int, default=3)
    parser.add_argument("--bedrock", action="store_true", help="Bedrock ConverseStream event-stream messages, not SSE")
    args = parser.parse_args()
    r = in_process(answer_texts(), bedrock=args.bedrock)
    print(
        f"in process ({'Bedrock event stream' if args.bedrock else 'SSE'}): {r['streams']} answers, {r['chars']} characters, {r['chunks']} chunks (4 characters per delta)"
    )
    print(
        f"  CPU per chunk, off (Meter's tap):        p50 {r['off_us_p50']:.1f} µs  p99 {r['off_us_p99']:.1f} µs  mean {r['off_us_mean']:.1f} µs"
    )
    print(
        f"  CPU per chunk, on (dlp + exfil redact):  p50 {r['on_us_p50']:.1f} µs  p99 {r['on_us_p99']:.1f} µs  mean {r['on_us_mean']:.1f} µs"
    )
    print(f"  text held back, in events (tokens):      p50 {r['hold_events_p50']}  p90 {r['hold_events_p90']}  "
          f"p99 {r['hold_events_p99']}  max {r['hold_events_max']}")  # fmt: skip
    if args.proxy:
        s = through_proxy(args.rounds, args.streams)
        for name, label in (("A", "shadowgate, responses off"), ("B", "shadowgate, responses on ")):
            x = s[name]
            print(f"  proxy {name} ({label}): first event p50 {x['ttfc_p50_ms']:.2f} ms  first text p50 "
                  f"{x['first_text_p50_ms']:.2f} ms  gap p50 {x['gap_p50_ms']:.2f} ms  "
                  f"p99 {x['gap_p99_ms']:.2f} ms  CPU/stream {x['cpu_ms_per_stream']:.2f} ms  errors {x['errors']}")  # fmt: skip
        print(f"  added first event p50: {s['B']['ttfc_p50_ms'] - s['A']['ttfc_p50_ms']:+.2f} ms, first text p50: "
              f"{s['B']['first_text_p50_ms'] - s['A']['first_text_p50_ms']:+.2f} ms, added gap p99: "
              f"{s['B']['gap_p99_ms'] - s['A']['gap_p99_ms']:+.2f} ms")  # fmt: skip


if __name__ == "__main__":
    main()
