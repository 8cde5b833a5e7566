"""Overhead of the shadowgate addons against plain mitmdump, measured side by side in one run.

    cd /work/main && uv run python scripts/bench_overhead.py [--rounds 6] [--seconds 8] [--concurrency 10] [--json]

Everything stays on 127.0.0.1:

  upstream   a tiny asyncio HTTPS server (its own process) posing as api.openai.com, with a
             certificate from a throw-away CA; answers POST /v1/chat/completions with a fixed
             chat.completion JSON that carries a usage block
  proxy A    mitmdump + addons/shadowgate/demo/upstream_redirect.py (every upstream connection -> the fake)
  proxy B    the same + addons/shadowgate.py, recording to a throw-away DuckDB database, with
             the default policy plus DLP on (`dlp: {secrets: redact, pii: redact}`): every
             prompt is scanned for secrets and personal data, as issue 7 asks
  client     raw asyncio streams + ssl: C keep-alive connections, each CONNECT api.openai.com:443,
             TLS to the proxy's CA, then back-to-back ~1 KB POSTs read by Content-Length

The proxies are loaded in turn, A B A B ..., for R rounds of D seconds after one warm-up round
each, at concurrency C (throughput) and then at concurrency 1 (latency). Each round opens fresh
tunnels and sends one request on each before its clock starts, so handshakes are not in the
figures. Each round also reads from /proc the proxy's CPU time (CPU per request), the CPU of
the client and the fake upstream, and how much CPU other processes used, so a noisy machine
shows up in the output. CPU per request still rises when the machine is busy. After the run
proxy B gets SIGTERM (which seals its rows), and shadowgate's own per-request event-loop time
(ai_requests.proxy_overhead_us) is read back from the database and its rows are counted.

Two guards against a moving checkout:
  * The proxies load small stubs in the working directory that run the addon files once
    (--no-freeze turns this off). mitmproxy hot-reloads an -s script when its file changes, and
    a reload resets the options the script declared to their defaults: shadowgate_db goes back
    to ~/.shadowgate/shadowgate.duckdb and test_upstream_port to 0, the real host.
  * A preflight sends 8 requests over one tunnel through each proxy. A redirect addon that
    rewrites server.address and never restores it stops mitmproxy from reusing the upstream
    connection, and the sixth request then hangs on mitmproxy's limit of 5 connections per
    address and client connection. --redirect bench uses scripts/_benchlib.py, a redirect that
    does not depend on the demo addon.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import json
import math
import os
import platform
import re
import shlex
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

import _benchlib as bl  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
HOST = "api.openai.com"
PATH = "/v1/chat/completions"
CONNECT_TIMEOUT = 15.0  # tunnel + TLS set-up of one connection
REQUEST_SLACK = 30.0  # a round may overrun its D seconds by this much before it is abandoned
WARMUP_SECONDS_MAX = 3.0
CLK_TCK = os.sysconf("SC_CLK_TCK")
REDIRECTS = {
    "demo": ROOT / "addons" / "shadowgate" / "demo" / "upstream_redirect.py",
    "bench": Path(__file__).resolve().parent / "_benchlib.py",
}

# --- the fake upstream (runs in its own process: `bench_overhead.py --serve-upstream ...`) ---

UPSTREAM_USAGE = {"prompt_tokens": 212, "completion_tokens": 11}
UPSTREAM_BODY = json.dumps(
    {
        "id": "chatcmpl-bench0000000000000000000000",
        "object": "chat.completion",
        "created": 1767225600,
        "model": "gpt-4o-mini-2024-07-18",
        "choices": [
            {
                "index": 0,
                "message": {
                    "role": "assistant",
                    "content": "A forward proxy relays client requests to other servers.",
                    "refusal": None,
                    "annotations": [],
                },
                "logprobs": None,
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": UPSTREAM_USAGE["prompt_tokens"],
            "completion_tokens": UPSTREAM_USAGE["completion_tokens"],
            "total_tokens": sum(UPSTREAM_USAGE.values()),
            "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
            "completion_tokens_details": {
                "reasoning_tokens": 0,
                "audio_tokens": 0,
                "accepted_prediction_tokens": 0,
                "rejected_prediction_tokens": 0,
            },
        },
        "service_tier": "default",
        "system_fingerprint": "fp_bench",
    },
    separators=(",", ":"),
).encode()
UPSTREAM_RESPONSE = (
    b"HTTP/1.1 200 OK\r\n"
    b"Content-Type: application/json\r\n"
    b"x-request-id: req_bench\r\n"
    b"openai-processing-ms: 1\r\n"
    b"Content-Length: " + str(len(UPSTREAM_BODY)).encode() + b"\r\n\r\n" + UPSTREAM_BODY
)
NOT_FOUND = b"HTTP/1.1 404 Not Found\r\nContent-Type: text/plain\r\nContent-Length: 9\r\n\r\nnot found"


_upstream_connections = 0
STATS_PATH = "/_bench/connections"


async def _upstream_connection(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    global _upstream_connections
    counted = False  # count connections that carry API requests, not the benchmark's stats queries
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            await bl.read_body(reader, head.lower())
            if head.startswith(b"POST " + PATH.encode() + b" "):
                if not counted:
                    _upstream_connections += 1
                    counted = True
                writer.write(UPSTREAM_RESPONSE)
            elif head.startswith(b"GET " + STATS_PATH.encode() + b" "):
                count = str(_upstream_connections).encode()
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(count)).encode() + b"\r\n\r\n" + count)
            else:
                writer.write(NOT_FOUND)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, ssl.SSLError, ValueError, EOFError):
        pass
    finally:
        writer.close()


async def _serve_upstream(cert: str, key: str) -> None:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    context.set_alpn_protocols(["http/1.1"])
    server = await asyncio.start_server(_upstream_connection, "127.0.0.1", 0, ssl=context, backlog=256)
    print(f"PORT {server.sockets[0].getsockname()[1]}", flush=True)
    async with server:
        await server.serve_forever()


# --- the load generator -------------------------------------------------------------------


def request_bytes() -> bytes:
    filler = (
        "Summarise, for a new network engineer, what a forward proxy does, how it differs from a "
        "reverse proxy, and why a company might put one in front of its outbound HTTPS traffic. "
    )
    messages = [
        {"role": "system", "content": "You are a concise assistant for an IT department."},
        {"role": "user", "content": filler * 4},
    ]
    body = json.dumps({"model": "gpt-4o-mini", "messages": messages, "max_tokens": 64, "temperature": 0}).encode()
    head = (
        f"POST {PATH} HTTP/1.1\r\n"
        f"Host: {HOST}\r\n"
        "Authorization: Bearer sk-bench\r\n"
        "Content-Type: application/json\r\n"
        "Accept: application/json\r\n"
        "User-Agent: shadowgate-bench/1.0\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode()
    return head + body


REQUEST = request_bytes()


class BenchError(Exception):
    pass


async def open_tunnel(
    port: int, context: ssl.SSLContext, host: str = HOST, auth: str | None = None
) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    """CONNECT host:443 through the proxy, then TLS to it (the proxy's certificate). auth: a
    "user:password" for Proxy-Authorization (the proxy then attributes the tunnel's calls)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    credentials = ""
    if auth is not None:
        import base64

        credentials = f"Proxy-Authorization: Basic {base64.b64encode(auth.encode()).decode()}\r\n"
    writer.write(f"CONNECT {host}:443 HTTP/1.1\r\nHost: {host}:443\r\n{credentials}\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    if not head.startswith((b"HTTP/1.1 200", b"HTTP/1.0 200")):
        writer.close()
        raise BenchError(f"CONNECT refused: {head.splitlines()[0]!r}")
    await writer.start_tls(context, server_hostname=host)
    return reader, writer


async def exchange(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(REQUEST)
    head = await reader.readuntil(b"\r\n\r\n")
    lower = head.lower()
    i = lower.find(b"\r\ncontent-length:")
    if i < 0:
        raise BenchError(f"response without Content-Length: {head[:200]!r}")
    j = lower.find(b"\r\n", i + 2)
    await reader.readexactly(int(lower[i + 17 : j]))
    if head[9:12] != b"200":
        raise BenchError(f"status {head[9:12].decode(errors='replace')}")


@dataclass
class Round:
    proxy: str
    concurrency: int
    index: int  # 0 = warm-up
    requests: int = 0  # answered with 200
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    latencies: list[float] = field(default_factory=list)  # seconds
    cpu_process: float = 0.0  # proxy process CPU seconds during the timed window (all threads)
    cpu_loop: float = 0.0  # proxy main (event-loop) thread CPU seconds
    upstream_conns: int = 0  # upstream connections the fake accepted during the round (set-up included)
    foreign_cores: float = 0.0  # CPU used by processes other than the benchmark's own, in cores
    cpu_client: float = 0.0  # this process (the load generator) during the timed window
    cpu_upstream: float = 0.0  # the fake upstream during the timed window

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed if self.elapsed else 0.0


def cpu_seconds(pid: int, tid: int | None = None) -> float:
    path = f"/proc/{pid}/task/{tid}/stat" if tid else f"/proc/{pid}/stat"
    with open(path) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


async def upstream_connections(upstream: Upstream) -> int:
    """How many connections the fake upstream has accepted so far (asked directly, not via a proxy)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", upstream.port, ssl=upstream.tls, server_hostname=HOST)
    try:
        writer.write(f"GET {STATS_PATH} HTTP/1.1\r\nHost: {HOST}\r\nConnection: close\r\n\r\n".encode())
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
        return int(await reader.readexactly(length))
    finally:
        writer.close()


async def preflight(proxy: Proxy, upstream: Upstream, requests: int = 8) -> None:
    """One tunnel, a few requests in a row: fails fast if upstream connections are not reused.

    mitmproxy allows 5 upstream connections per address and client connection; a redirect addon
    that breaks reuse leaves the sixth request on a tunnel waiting forever.
    """
    before = await upstream_connections(upstream)
    reader, writer = await open_tunnel(proxy.port, proxy.client_tls)
    try:
        for i in range(requests):
            try:
                async with asyncio.timeout(5):
                    await exchange(reader, writer)
            except TimeoutError:
                raise SystemExit(
                    f"proxy {proxy.name}: request {i + 1} on one kept-alive tunnel got no answer within 5s; "
                    f"{await upstream_connections(upstream) - before} upstream connections were opened for "
                    f"{i} requests. The redirect addon breaks upstream connection reuse (mitmproxy waits on "
                    "its limit of 5 connections per address); try --redirect bench."
                ) from None
            proxy.answered += 1
    finally:
        writer.close()
    opened = await upstream_connections(upstream) - before
    if opened != 1:
        print(
            f"  WARNING: proxy {proxy.name} opened {opened} upstream connections for {requests} requests on one tunnel"
        )


OUR_PIDS: list[int] = []  # the benchmark, the fake upstream and the proxies


def foreign_cpu_seconds() -> float:
    """Machine-wide busy CPU time minus the benchmark's own processes: others' load during a round."""
    with open("/proc/stat") as f:
        user, nice, system, _idle, _iowait, irq, softirq, steal = map(int, f.readline().split()[1:9])
    busy = (user + nice + system + irq + softirq + steal) / CLK_TCK
    ours = 0.0
    for pid in OUR_PIDS:
        with contextlib.suppress(OSError):
            ours += cpu_seconds(pid)
    return busy - ours


async def run_round(proxy: Proxy, upstream: Upstream, concurrency: int, seconds: float, index: int) -> Round:
    result = Round(proxy.name, concurrency, index)
    conns0 = await upstream_connections(upstream)
    async with asyncio.timeout(CONNECT_TIMEOUT):
        tunnels = await asyncio.gather(*(open_tunnel(proxy.port, proxy.client_tls) for _ in range(concurrency)))
    # One request per tunnel before the clock starts: lazy connection_strategy connects upstream
    # on the first request, and that handshake belongs to set-up, not to the steady state.
    async with asyncio.timeout(CONNECT_TIMEOUT):
        await asyncio.gather(*(exchange(r, w) for r, w in tunnels))
    proxy.answered += concurrency

    cpu0, loop0 = cpu_seconds(proxy.pid), cpu_seconds(proxy.pid, proxy.pid)
    foreign0 = foreign_cpu_seconds()
    client0, upstream0 = cpu_seconds(os.getpid()), cpu_seconds(upstream.process.pid)
    start = time.perf_counter()
    deadline = start + seconds
    ends: list[float] = []

    async def worker(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        clock = time.perf_counter
        latencies = result.latencies
        t = clock()
        try:
            while t < deadline:
                await exchange(reader, writer)
                t1 = clock()
                latencies.append(t1 - t)
                result.requests += 1
                proxy.answered += 1
                t = t1
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ssl.SSLError, BenchError) as e:
            result.errors.append(f"{type(e).__name__}: {e}")
        ends.append(clock())

    try:
        async with asyncio.timeout(seconds + REQUEST_SLACK):
            await asyncio.gather(*(worker(r, w) for r, w in tunnels))
    except TimeoutError:
        result.errors.append(f"round overran by {REQUEST_SLACK:.0f}s; abandoned")
    result.elapsed = (max(ends) if ends else time.perf_counter()) - start
    result.cpu_process = cpu_seconds(proxy.pid) - cpu0
    result.cpu_loop = cpu_seconds(proxy.pid, proxy.pid) - loop0
    result.foreign_cores = (foreign_cpu_seconds() - foreign0) / result.elapsed if result.elapsed else 0.0
    result.cpu_client = cpu_seconds(os.getpid()) - client0
    result.cpu_upstream = cpu_seconds(upstream.process.pid) - upstream0
    for _, writer in tunnels:
        writer.close()
    for _, writer in tunnels:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(2):
                await writer.wait_closed()
    result.upstream_conns = await upstream_connections(upstream) - conns0
    return result


# --- processes ----------------------------------------------------------------------------


def _die_with_parent() -> None:
    """preexec_fn: own session (Ctrl-C is ours to handle) and SIGKILL if the benchmark dies."""
    os.setsid()
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


@dataclass
class Proxy:
    name: str
    args: list[str]
    port: int
    confdir: Path
    log: Path
    process: subprocess.Popen | None = None
    client_tls: ssl.SSLContext | None = None
    answered: int = 0  # requests this proxy answered with 200, warm-up and set-up included

    @property
    def pid(self) -> int:
        return self.process.pid

    def start(self) -> None:
        self.process = subprocess.Popen(
            self.args,
            stdout=self.log.open("wb"),
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            cwd=ROOT,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 (spawned before any thread)
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        ca = self.confdir / "mitmproxy-ca-cert.pem"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"proxy {self.name} exited ({self.process.returncode}):\n{self.log.read_text()}")
            if ca.exists() and port_open(self.port):
                self.client_tls = ssl.create_default_context(cafile=str(ca))
                return
            time.sleep(0.05)
        raise SystemExit(f"proxy {self.name} did not start within {timeout:.0f}s:\n{self.log.read_text()}")

    def stop(self, timeout: float = 30.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(5)
            return None


def kill(process: subprocess.Popen | None) -> None:
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)


def make_upstream_cert(workdir: Path, hosts: tuple[str, ...] = (HOST,)) -> tuple[Path, Path, Path]:
    """A throw-away CA and a leaf for api.openai.com (or the given hosts), made with mitmproxy's
    own CertStore."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    from mitmproxy import certs

    store = certs.CertStore.from_store(workdir / "upstream-ca", "bench", 2048)
    entry = store.get_cert(hosts[0], [x509.DNSName(h) for h in hosts])
    cert_pem, key_pem = workdir / "upstream-cert.pem", workdir / "upstream-key.pem"
    cert_pem.write_bytes(entry.cert.to_pem())
    key_pem.write_bytes(
        entry.privatekey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_pem, key_pem, workdir / "upstream-ca" / "bench-ca-cert.pem"


@dataclass
class Upstream:
    process: subprocess.Popen
    port: int
    tls: ssl.SSLContext


def start_upstream(cert: Path, key: Path, ca: Path) -> Upstream:
    process = subprocess.Popen(
        [sys.executable, __file__, "--serve-upstream", str(cert), str(key)],
        stdout=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
        text=True,
        preexec_fn=_die_with_parent,  # noqa: PLW1509
    )
    line = process.stdout.readline()  # the server prints its port first thing, or dies
    m = re.match(r"PORT (\d+)", line)
    if not m:
        kill(process)
        raise SystemExit(f"the fake upstream did not start: {line!r}")
    return Upstream(process, int(m.group(1)), ssl.create_default_context(cafile=str(ca)))


def proxy_args(
    confdir: Path, port: int, upstream_ca: Path, upstream_port: int, redirect: Path, extra: list[str]
) -> list[str]:
    return [
        str(Path(sys.executable).parent / "mitmdump"),
        "--listen-host", "127.0.0.1", "--listen-port", str(port),
        "--set", f"confdir={confdir}",
        "--set", "connection_strategy=lazy",
        "--set", "flow_detail=0",
        "--set", "termlog_verbosity=warn",
        "--set", f"ssl_verify_upstream_trusted_ca={upstream_ca}",
        "-s", str(redirect),
        "--set", f"test_upstream_port={upstream_port}",
        *extra,
    ]  # fmt: skip


# --- statistics and report ----------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return float("nan")
    s = sorted(values)
    pos = (len(s) - 1) * q
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summarise(rounds: list[Round]) -> dict:
    timed = [r for r in rounds if r.index > 0]
    lat = [x for r in timed for x in r.latencies]
    per_req = [r.cpu_process / r.requests * 1000 for r in timed if r.requests]
    per_req_loop = [r.cpu_loop / r.requests * 1000 for r in timed if r.requests]
    return {
        "rounds_rps": [round(r.rps, 1) for r in timed],
        "median_rps": statistics.median([r.rps for r in timed]) if timed else float("nan"),
        "requests": sum(r.requests for r in timed),
        "errors": sum(len(r.errors) for r in rounds),
        "upstream_connections": sum(r.upstream_conns for r in rounds),
        "connections_opened": sum(r.concurrency for r in rounds),
        "max_foreign_cores": max((r.foreign_cores for r in timed), default=0.0),
        "client_cpu_ms_per_request": sum(r.cpu_client for r in timed) / max(1, sum(r.requests for r in timed)) * 1000,
        "upstream_cpu_ms_per_request": sum(r.cpu_upstream for r in timed)
        / max(1, sum(r.requests for r in timed))
        * 1000,
        "p50_ms": percentile(lat, 0.5) * 1000,
        "p99_ms": percentile(lat, 0.99) * 1000,
        "cpu_ms_per_request": statistics.median(per_req) if per_req else float("nan"),
        "loop_cpu_ms_per_request": statistics.median(per_req_loop) if per_req_loop else float("nan"),
    }


def code_version() -> str:
    """The commit under test, and which of the addons differ from it (the figures depend on them)."""
    try:
        head = subprocess.run(
            ["git", "-C", str(ROOT), "log", "-1", "--format=%h %ad", "--date=iso"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "-C", str(ROOT), "status", "--porcelain", "--", "addons", "providers.yaml"],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout?)"
    changed = sorted(line[3:] for line in dirty if line.strip())
    return head + (f" + uncommitted changes in {', '.join(changed)}" if changed else " (clean)")


def machine() -> dict:
    model = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    from mitmproxy.version import VERSION

    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "cpu_model": model,
        "python": platform.python_version(),
        "mitmproxy": VERSION,
        "kernel": platform.release(),
        "code": code_version(),
    }


def log_problems(log: Path) -> list[str]:
    if not log.exists():
        return []
    pattern = re.compile(r"error|exception|traceback|warn|fail|lost|dropped|killed", re.IGNORECASE)
    lines = log.read_text(errors="replace").splitlines()
    out, in_traceback = [], False
    for line in lines:
        if line.startswith("Traceback"):
            in_traceback = True
        if in_traceback or pattern.search(line):
            out.append(line)
        if in_traceback and line and not line.startswith((" ", "Traceback")):
            in_traceback = False
    return out


def query_db(db: Path) -> dict:
    import duckdb

    con = duckdb.connect(str(db), read_only=True)
    try:
        n, p50, p99 = con.execute(
            "SELECT count(*), quantile_cont(proxy_overhead_us, 0.5), quantile_cont(proxy_overhead_us, 0.99) "
            "FROM ai_requests"
        ).fetchone()
        detail = con.execute(
            "SELECT count(*) FILTER (WHERE status_code = 200), "
            "count(*) FILTER (WHERE input_tokens = ? AND output_tokens = ? AND NOT usage_estimated), "
            "count(*) FILTER (WHERE model = 'gpt-4o-mini'), "
            "count(*) FILTER (WHERE key_fingerprint IS NOT NULL), "
            "count(*) FILTER (WHERE cost_usd IS NOT NULL), "
            "count(DISTINCT request_id), "
            "max(proxy_overhead_us), avg(proxy_overhead_us) "
            "FROM ai_requests",
            [UPSTREAM_USAGE["prompt_tokens"], UPSTREAM_USAGE["completion_tokens"]],
        ).fetchone()
    finally:
        con.close()
    return {
        "rows": n,
        "overhead_p50_ms": (p50 or 0) / 1000 if p50 is not None else None,
        "overhead_p99_ms": (p99 or 0) / 1000 if p99 is not None else None,
        "overhead_max_ms": detail[6] / 1000 if detail[6] is not None else None,
        "overhead_mean_ms": detail[7] / 1000 if detail[7] is not None else None,
        "rows_status_200": detail[0],
        "rows_with_exact_usage": detail[1],
        "rows_with_model": detail[2],
        "rows_with_key_fingerprint": detail[3],
        "rows_priced": detail[4],
        "distinct_request_ids": detail[5],
    }


def fmt(x: float | None, digits: int = 2) -> str:
    return "n/a" if x is None or math.isnan(x) else f"{x:.{digits}f}"


# --- the run ------------------------------------------------------------------------------


async def bench(args: argparse.Namespace, proxies: list[Proxy], upstream: Upstream) -> dict[str, list[Round]]:
    rounds: dict[str, list[Round]] = {}
    for proxy in proxies:
        await preflight(proxy, upstream)
    warmup = min(args.seconds, WARMUP_SECONDS_MAX)
    for concurrency in (args.concurrency, 1):
        for proxy in proxies:
            rounds.setdefault(f"{proxy.name}@{concurrency}", [])
        print(
            f"\n-- concurrency {concurrency}: warm-up {warmup:g}s each, then {args.rounds} x {args.seconds:g}s, A B A B ..."
        )
        for index in range(args.rounds + 1):
            for proxy in proxies:
                r = await run_round(proxy, upstream, concurrency, warmup if index == 0 else args.seconds, index)
                rounds[f"{proxy.name}@{concurrency}"].append(r)
                label = "warm-up" if index == 0 else f"round {index}"
                print(
                    f"   {proxy.name} {label:>8}: {r.requests:6d} req in {r.elapsed:5.2f}s = {r.rps:7.1f} req/s"
                    f"  p50 {fmt(percentile(r.latencies, 0.5) * 1000)} ms"
                    f"  cpu {fmt(r.cpu_process / r.requests * 1000 if r.requests else None)} ms/req"
                    f"  upstream conns {r.upstream_conns}  other load {r.foreign_cores:.2f} cores"
                    + (f"  ERRORS {len(r.errors)}: {r.errors[0]}" if r.errors else ""),
                    flush=True,
                )
    return rounds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=6, help="timed rounds per proxy and concurrency (default 6)")
    parser.add_argument("--seconds", type=float, default=8.0, help="length of one round (default 8)")
    parser.add_argument("--concurrency", type=int, default=10, help="connections in the throughput run (default 10)")
    parser.add_argument("--json", action="store_true", help="also print the results as one JSON object")
    parser.add_argument("--keep", action="store_true", help="keep the working directory (logs, database)")
    parser.add_argument(
        "--redirect",
        choices=sorted(REDIRECTS),
        default="demo",
        help="addon that sends upstream connections to the fake: demo = addons/shadowgate/demo/upstream_redirect.py "
        "(default), bench = scripts/_benchlib.py (same, but independent of the demo addon)",
    )
    parser.add_argument(
        "--pin",
        action="store_true",
        help="pin the proxies to the last CPU and the client and fake upstream to the others "
        "(less scheduler noise; the proxy's own threads then share one core)",
    )
    parser.add_argument(
        "--no-freeze",
        action="store_true",
        help="pass the repository's addon files to mitmdump -s directly (then an edit during the run "
        "hot-reloads them, which resets their options)",
    )
    parser.add_argument(
        "--gc-probe",
        action="store_true",
        help="load scripts/gc_probe.py into both proxies and print how often the garbage collector "
        "ran and its longest pause (each pause stops the event loop)",
    )
    parser.add_argument("--serve-upstream", nargs=2, metavar=("CERT", "KEY"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve_upstream:
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(_serve_upstream(*args.serve_upstream))
        return 0
    if args.rounds < 1 or args.seconds <= 0 or args.concurrency < 1:
        parser.error("--rounds, --seconds and --concurrency must be positive")

    bl.sigterm_interrupts()
    info = machine()
    bl.print_header("shadowgate overhead benchmark", info)
    print(f"  redirect:  {os.path.relpath(REDIRECTS[args.redirect], ROOT)} (--redirect {args.redirect})")
    print(
        f"  request:   POST https://{HOST}{PATH}, {len(REQUEST)} bytes on the wire; response {len(UPSTREAM_RESPONSE)} bytes"
    )

    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-bench-"))
    upstream: Upstream | None = None
    proxies: list[Proxy] = []
    result: dict = {"machine": info, "command": [sys.executable, *sys.argv]}
    started = time.monotonic()
    started_wall = time.time()

    def script(path: Path) -> Path:
        """What to pass to -s. mitmproxy hot-reloads a script when its file changes, and a reload
        resets every option the script declared to its default (shadowgate_db, test_upstream_port:
        rows would go to ~/.shadowgate and traffic to the real host). So by default the proxies
        load a stub in the working directory that runs the real file once; edits to the checkout
        during the run then cannot reach the proxies."""
        return path if args.no_freeze else bl.frozen_script(workdir, path)

    try:
        cert, key, upstream_ca = make_upstream_cert(workdir)
        upstream = start_upstream(cert, key, upstream_ca)
        upstream_port = upstream.port
        db = workdir / "bench.duckdb"
        policy = workdir / "policy.yaml"
        policy.write_text("# The default policy with DLP on.\ndlp: {secrets: redact, pii: redact}\n")
        redirect = script(REDIRECTS[args.redirect])

        def probe(name: str) -> list[str]:
            if not args.gc_probe:
                return []
            return [
                "-s",
                str(script(ROOT / "scripts" / "gc_probe.py")),
                "--set",
                f"gc_probe_out={workdir / f'gc-{name}.json'}",
            ]

        proxies = bl.start_proxies(workdir, upstream, upstream_ca, [
            ("A", redirect, probe("A")),
            ("B", redirect, ["-s", str(script(ROOT / "addons" / "shadowgate.py")), "--set", f"shadowgate_db={db}",
                             "--set", f"shadowgate_policy={policy}", *probe("B")]),
        ])  # fmt: skip
        OUR_PIDS[:] = [os.getpid(), upstream.process.pid, *(p.pid for p in proxies)]
        if args.pin:
            cpus = sorted(os.sched_getaffinity(0))
            if len(cpus) < 2:
                parser.error("--pin needs at least 2 CPUs")
            for pid in (os.getpid(), upstream.process.pid):
                os.sched_setaffinity(pid, cpus[:-1])
            for proxy in proxies:  # every thread of the proxy, not just the main one
                for tid in os.listdir(f"/proc/{proxy.pid}/task"):
                    os.sched_setaffinity(int(tid), cpus[-1:])
            print(f"  pinned:    proxies to CPU {cpus[-1]}, client and upstream to CPU {cpus[:-1]}")
        print(f"  upstream:  127.0.0.1:{upstream_port} (pid {upstream.process.pid})")
        for proxy in proxies:
            print(f"  proxy {proxy.name}:   127.0.0.1:{proxy.port} (pid {proxy.pid}): {shlex.join(proxy.args)}")
        print(f"  workdir:   {workdir}")

        budget = 2 * len(proxies) * (args.rounds * (args.seconds + 3) + min(args.seconds, WARMUP_SECONDS_MAX) + 3) + 120

        async def timed() -> dict[str, list[Round]]:
            async with asyncio.timeout(budget):
                return await bench(args, proxies, upstream)

        rounds = asyncio.run(timed())
        a, b = proxies
        returncode_b = b.stop()  # SIGTERM: shadowgate seals every row before the process exits
        a.stop()
        db_stats = query_db(db) if db.exists() else None

        summary = {key: summarise(rs) for key, rs in rounds.items()}
        c = args.concurrency
        sa, sb, la, lb = summary[f"A@{c}"], summary[f"B@{c}"], summary["A@1"], summary["B@1"]
        print(f"\n== results ({args.rounds} rounds x {args.seconds:g}s per proxy and concurrency; "
              f"medians across rounds, percentiles over all timed requests)")  # fmt: skip
        header = (
            f"{'proxy':<24} {'req/s @' + str(c):>10} {'p50 @' + str(c):>9} {'p99 @' + str(c):>9}"
            f" {'p50 @1':>8} {'p99 @1':>8} {'CPU/req':>8} {'loop/req':>8} {'errors':>6}"
        )
        print(header)
        print("-" * len(header))
        for name, s, l in (("A  mitmdump", sa, la), ("B  mitmdump + shadowgate", sb, lb)):
            print(
                f"{name:<24} {fmt(s['median_rps'], 1):>10} {fmt(s['p50_ms']):>9} {fmt(s['p99_ms']):>9}"
                f" {fmt(l['p50_ms']):>8} {fmt(l['p99_ms']):>8} {fmt(s['cpu_ms_per_request']):>8}"
                f" {fmt(s['loop_cpu_ms_per_request']):>8} {s['errors'] + l['errors']:>6}"
            )
        print("  (latencies in ms; CPU/req = proxy process CPU ms per request @" + str(c) +
              ", all threads; loop/req = its event-loop thread only)")  # fmt: skip
        ratio = sb["median_rps"] / sa["median_rps"] if sa["median_rps"] else float("nan")
        added_p50 = lb["p50_ms"] - la["p50_ms"]
        added_cpu = sb["cpu_ms_per_request"] - sa["cpu_ms_per_request"]
        added_loop = sb["loop_cpu_ms_per_request"] - sa["loop_cpu_ms_per_request"]
        print(f"\nthroughput B/A @{c}:             {ratio:.3f}  ({(1 - ratio) * 100:+.1f}% lost)"
              .replace("+-", "-"))  # fmt: skip
        print(f"added p50 latency @1:            {added_p50:+.3f} ms")
        print(f"added p50 latency @{c}:{' ' * (13 - len(str(c)))}{sb['p50_ms'] - sa['p50_ms']:+.3f} ms")
        print(f"added proxy CPU per request:     {added_cpu:+.3f} ms (event loop {added_loop:+.3f} ms)")
        for name in ("A", "B"):
            opened = sum(summary[f"{name}@{k}"]["upstream_connections"] for k in (c, 1))
            tunnels = sum(summary[f"{name}@{k}"]["connections_opened"] for k in (c, 1))
            print(f"upstream connections, proxy {name}: {opened} for {tunnels} client tunnels (reuse works if equal)")
        client = statistics.mean(v["client_cpu_ms_per_request"] for v in summary.values())
        fake = statistics.mean(v["upstream_cpu_ms_per_request"] for v in summary.values())
        print(
            f"load generator CPU per request:  {client:.3f} ms; fake upstream: {fake:.3f} ms (both share the other core)"
        )
        worst = max(v["max_foreign_cores"] for v in summary.values())
        print(f"other processes' CPU, worst timed round: {worst:.2f} cores of {info['nproc']}"
              + ("  (noisy: other work on the machine)" if worst > 0.15 else ""))  # fmt: skip
        print(f"per-round req/s @{c}:  A {sa['rounds_rps']}")
        print(f"{'':>18}B {sb['rounds_rps']}")

        print(f"\n== shadowgate's own accounting (proxy B stopped with SIGTERM, exit code {returncode_b})")
        if db_stats is None:
            print(f"  no database at {db}")
        else:
            print(f"  ai_requests rows:             {db_stats['rows']}")
            print(f"  requests B answered:          {b.answered}  (every 200 through B: set-up, warm-up, timed)")
            match = db_stats["rows"] == b.answered
            print(
                f"  rows == answered:             {'yes' if match else 'NO (' + str(db_stats['rows'] - b.answered) + ')'}"
            )
            print(f"  proxy_overhead_us p50 / p99:  {fmt(db_stats['overhead_p50_ms'], 3)} ms / "
                  f"{fmt(db_stats['overhead_p99_ms'], 3)} ms  (mean {fmt(db_stats['overhead_mean_ms'], 3)}, "
                  f"max {fmt(db_stats['overhead_max_ms'], 3)} ms)")  # fmt: skip
            print(
                f"  rows: status 200 {db_stats['rows_status_200']}, exact usage {db_stats['rows_with_exact_usage']}, "
                f"model {db_stats['rows_with_model']}, key fingerprint {db_stats['rows_with_key_fingerprint']}, "
                f"priced {db_stats['rows_priced']}, distinct request ids {db_stats['distinct_request_ids']}"
            )
        if args.gc_probe:
            print("\n== garbage collector (whole run, set-up included; a collection stops the event loop)")
            result["gc"] = {}
            for name in ("A", "B"):
                path = workdir / f"gc-{name}.json"
                if not path.exists():
                    print(f"  proxy {name}: no figures (the probe did not write {path.name})")
                    continue
                gc_stats = result["gc"][name] = json.loads(path.read_text())
                gens = ", ".join(f"gen{g}: {v['collections']} x, {v['total_ms']:.0f} ms total, longest {v['max_ms']:.1f} ms"
                                 for g, v in gc_stats["generations"].items())  # fmt: skip
                print(f"  proxy {name}: {gens}; frozen objects {gc_stats['frozen_objects']:,}")
        problems = {p.name: log_problems(p.log) for p in proxies}
        for name, lines in problems.items():
            print(f"\n== proxy {name} log: {len(lines)} line(s) that look like problems")
            for line in lines[:60]:
                print(f"  {line}")
            if len(lines) > 60:
                print(f"  ... {len(lines) - 60} more")
        changed = sorted(
            str(f.relative_to(ROOT))
            for f in [*(ROOT / "addons").rglob("*.py"), ROOT / "providers.yaml"]
            if f.exists() and f.stat().st_mtime > started_wall
        )
        if changed:
            note = "the proxies kept the code they started with" if not args.no_freeze else "proxies may have reloaded"
            print(f"\nWARNING: changed in the checkout during the run ({note}): {', '.join(changed)}")
        result["changed_during_run"] = changed
        print(f"\ntotal time {time.monotonic() - started:.0f}s")

        result.update(
            {
                "rounds": args.rounds,
                "seconds": args.seconds,
                "concurrency": c,
                "redirect_addon": str(os.path.relpath(REDIRECTS[args.redirect], ROOT)),
                "summary": summary,
                "throughput_ratio_b_over_a": ratio,
                "added_p50_ms_at_1": added_p50,
                "added_p50_ms_at_c": sb["p50_ms"] - sa["p50_ms"],
                "added_cpu_ms_per_request": added_cpu,
                "added_loop_cpu_ms_per_request": added_loop,
                "requests_b_answered": b.answered,
                "requests_a_answered": a.answered,
                "db": db_stats,
                "rows_match": db_stats is not None and db_stats["rows"] == b.answered,
                "proxy_log_problems": problems,
                "errors": {k: [e for r in rs for e in r.errors] for k, rs in rounds.items()},
            }
        )
        if args.json:
            print(json.dumps(result, default=str))
        return 0 if result["rows_match"] and not any(result["errors"].values()) else 1
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
