"""CPU cost of OpenTelemetry export per AI call, in-process (no proxy needed).

    cd /work/main && uv run python scripts/bench_telemetry.py [--calls 5000] [--rounds 3]

One realistic call (OpenAI chat, usage with cached tokens, priced) is pushed through the real
Telemetry addon and SDK pipeline, with OTLP/HTTP export to a sink in another process that reads
each request and answers 200 (a collector's work is not the proxy's). Three figures, each the
median over the rounds:

  event loop     Telemetry.response(flow): build the TelemetryEvent and enqueue it
                 (CPU time of the calling thread)
  exporter       Pipeline.record(event): pricing, one span with 22 attributes, 6 metric
                 points aggregated (CPU time of the calling thread; export not included)
  total          process CPU over N calls through the hook, until every span and metric point
                 has been exported: hook + exporter thread + BatchSpanProcessor encoding and
                 HTTP POSTs + the metric export; the issue's budget is 250 us

Telemetry switched off costs the hook one attribute test; that figure is printed too.
"""

from __future__ import annotations

import argparse
import multiprocessing
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

from mitmproxy.test import tflow  # noqa: E402

from shadowgate.config.attribution import KeySighting  # noqa: E402
from shadowgate.config.attribution import Person  # noqa: E402
from shadowgate.config.catalog import load_catalog  # noqa: E402
from shadowgate.stages.identify import METADATA_KEY  # noqa: E402
from shadowgate.stages.meter import OUTCOME_KEY  # noqa: E402
from shadowgate.stages.settings import ShadowgateSettings  # noqa: E402
from shadowgate.stages.telemetry import Telemetry  # noqa: E402
from shadowgate.storage.schema import FlowRecord  # noqa: E402
from shadowgate.storage.schema import Outcome  # noqa: E402
from shadowgate.telemetry.config import OtelConfig  # noqa: E402
from shadowgate.telemetry.events import telemetry_event  # noqa: E402
from shadowgate.telemetry.pipeline import Pipeline  # noqa: E402
from shadowgate.wireformats import PARSERS  # noqa: E402
from shadowgate.wireformats.base import RequestFacts  # noqa: E402
from shadowgate.wireformats.base import ResponseFacts  # noqa: E402
from shadowgate.wireformats.base import Usage  # noqa: E402


def _serve(conn) -> None:
    """A collector stand-in in its own process: reads each POST and answers 200, decodes nothing."""
    from http.server import BaseHTTPRequestHandler
    from http.server import ThreadingHTTPServer

    class Sink(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers.get("content-length") or 0))
            self.send_response(200)
            self.send_header("content-type", "application/x-protobuf")
            self.send_header("content-length", "0")  # an empty Export*ServiceResponse
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Sink)
    conn.send(f"http://127.0.0.1:{server.server_address[1]}")
    server.serve_forever()


def make_flow(catalog):
    flow = tflow.tflow(resp=True)
    flow.request.url = "https://api.openai.com/v1/chat/completions"
    provider = catalog.match_host("api.openai.com")
    now = time.time()
    flow.request.timestamp_start = now - 0.8
    flow.response.timestamp_end = now
    rec = FlowRecord(
        started=now - 0.8,
        client_ip="10.1.2.3",
        person=Person("alice", "engineering"),
        host="api.openai.com",
        site="openai.com",
        provider=provider,
        route=catalog.route(provider, "POST", "/v1/chat/completions"),
        method="POST",
        path="/v1/chat/completions",
        facts=RequestFacts("chat", "gpt-4o-mini", streaming=True, prompt_chars=1200),
        key=KeySighting("hmac:0123456789abcdef", "openai-project"),
    )
    out = Outcome(
        status_code=200,
        response=ResponseFacts(
            model="gpt-4o-mini-2024-07-18",
            response_id="chatcmpl-abc123",
            finish_reasons=["stop"],
            usage=Usage(input_tokens=1536, output_tokens=80, cached_input_tokens=1408, reasoning_tokens=0),
        ),
        latency_ms=800.0,
        ttft_ms=210.0,
        response_bytes=4096,
    )
    flow.metadata[METADATA_KEY] = rec
    flow.metadata[OUTCOME_KEY] = out
    return flow


def one_round(settings, endpoint: str, flow, calls: int) -> dict[str, float]:
    config = OtelConfig(
        enabled=True, traces=("otlp",), metrics=("otlp",), endpoint=endpoint, metric_interval_ms=600_000
    )
    pipeline = Pipeline(config, settings)
    addon = Telemetry(settings)
    addon._pipeline = pipeline
    event = telemetry_event(
        flow, flow.metadata[METADATA_KEY], flow.metadata[OUTCOME_KEY], flow.response.timestamp_end, False
    )
    for _ in range(200):  # warm-up: pricing cache, attribute sets, connections
        pipeline.record(event)

    # The exporter thread's work, alone.
    started = time.thread_time()
    for _ in range(calls):
        pipeline.record(event)
    exporter_us = (time.thread_time() - started) / calls * 1e6
    pipeline.flush()

    # Everything, through the hook, until exported.
    cpu = time.process_time()
    loop = 0.0
    for _ in range(calls):
        t = time.thread_time()
        addon.response(flow)
        loop += time.thread_time() - t
    pipeline.flush()
    total_us = (time.process_time() - cpu) / calls * 1e6
    pipeline.close(30)
    return {"loop": loop / calls * 1e6, "exporter": exporter_us, "total": total_us, "dropped": pipeline.dropped}


def disabled_cost(settings, flow, calls: int) -> float:
    addon = Telemetry(settings)
    started = time.thread_time()
    for _ in range(calls):
        addon.response(flow)
    return (time.thread_time() - started) / calls * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=5000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    settings = ShadowgateSettings()
    catalog = load_catalog(known_parsers=PARSERS)
    settings.catalog = catalog
    flow = make_flow(catalog)
    parent, child = multiprocessing.Pipe()
    server = multiprocessing.Process(target=_serve, args=(child,), daemon=True)
    server.start()
    endpoint = parent.recv()
    try:
        rounds = [one_round(settings, endpoint, flow, args.calls) for _ in range(args.rounds)]
    finally:
        server.terminate()
        server.join(5)
    off = disabled_cost(settings, flow, args.calls * 10)
    print(f"OpenTelemetry export, {args.calls} calls x {args.rounds} rounds (median), OTLP/HTTP to a local sink:")
    for key, label in (
        ("loop", "event loop (hook: build event + enqueue)"),
        ("exporter", "exporter thread (price + span + metrics)"),
        ("total", "total process CPU incl. batching and export"),
    ):
        values = [r[key] for r in rounds]
        print(f"  {label:46s} {statistics.median(values):8.1f} us/call   ({', '.join(f'{v:.1f}' for v in values)})")
    print(f"  {'telemetry off (hook returns at once)':46s} {off:8.2f} us/call")
    dropped = sum(r["dropped"] for r in rounds)
    if dropped:
        print(f"  note: {dropped} events were dropped by the bounded queue")


if __name__ == "__main__":
    main()
