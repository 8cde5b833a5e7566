"""`shadowgate demo`: a proxy, fake providers and real SDK traffic, on this machine, in seconds.

Nothing leaves the machine: api.openai.com and api.anthropic.com are answered by a local fake
that replays each provider's documented responses, with a certificate from a throw-away CA the
demo proxy is told to trust. The clients are the official openai and anthropic SDKs.
"""

from __future__ import annotations

import re
import shutil
import signal
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from rich.console import Console

from shadowgate.demo.fakeupstream import FakeUpstream
from shadowgate.resources import ENTRY_SCRIPT
from shadowgate.resources import UPSTREAM_REDIRECT_SCRIPT

DEMO_HOSTS = ("api.openai.com", "api.anthropic.com")


def run_demo(keep: bool = False) -> int:
    console = Console()
    try:
        import anthropic
        import httpx2
        import openai
    except ImportError as e:
        console.print(f"[red]The demo needs the openai and anthropic SDKs ({e}). Run: uv sync[/red]")
        return 1
    workdir = Path(tempfile.mkdtemp(prefix="shadowgate-demo-"))
    console.print(f"[bold]shadowgate demo[/bold]  (working in {workdir})")
    cert_pem, key_pem, upstream_ca = _upstream_certificate(workdir)
    fake = FakeUpstream(str(cert_pem), str(key_pem)).start()
    console.print(f"  fake providers for {', '.join(DEMO_HOSTS)} on 127.0.0.1:{fake.port}")
    db = workdir / "shadowgate.duckdb"
    proxy, port = _start_proxy(workdir, fake.port, upstream_ca, db)
    console.print(f"  proxy on 127.0.0.1:{port}, recording to {db}")
    try:
        proxy_ca = ssl.create_default_context(cafile=str(workdir / "conf" / "mitmproxy-ca-cert.pem"))

        def http(user: str) -> httpx2.Client:
            return httpx2.Client(proxy=f"http://{user}:demo@127.0.0.1:{port}", verify=proxy_ca, timeout=30)

        # Any: each SDK types its messages as its own TypedDict; this plain list is valid for both.
        question: Any = [{"role": "user", "content": "In one sentence: what is a forward proxy?"}]
        alice = openai.OpenAI(api_key="sk-proj-demo-alice-key", http_client=http("alice"))
        alice.chat.completions.create(model="gpt-4o-mini", messages=question)
        for _ in alice.chat.completions.create(
            model="gpt-4o-mini", messages=question, stream=True, stream_options={"include_usage": True}
        ):
            pass
        for _ in alice.chat.completions.create(model="gpt-4o-mini", messages=question, stream=True):
            pass  # no usage in this stream: shadowgate estimates it and says so
        alice.embeddings.create(model="text-embedding-3-small", input="forward proxy")
        console.print("  alice: 4 calls with the openai SDK (plain, streamed with usage, streamed without, embeddings)")

        bob = anthropic.Anthropic(api_key="sk-ant-api03-demo-bob-key", http_client=http("bob"))
        bob.messages.create(model="claude-sonnet-5", max_tokens=200, messages=question)
        with bob.messages.stream(model="claude-sonnet-5", max_tokens=200, messages=question) as stream:
            for _ in stream.text_stream:
                pass
        console.print("  bob:   2 calls with the anthropic SDK (plain, streamed)")
    finally:
        proxy.send_signal(signal.SIGTERM)  # shutdown seals every row before the process exits
        proxy.wait(30)
        fake.stop()
    from rich.markup import escape

    from shadowgate.report.usage import print_usage
    from shadowgate.report.usage import query_hint

    console.print()
    print_usage(db, days=1, console=console, hint=False)  # the hint names files that only --keep keeps
    if not keep:
        console.print("\n(run `shadowgate demo --keep` to keep the database and query it yourself)")
        shutil.rmtree(workdir, ignore_errors=True)
        return 0
    # Not "any DuckDB client": the file needs DuckDB 1.0 or newer; query_hint says what reads it.
    console.print("\n" + escape(query_hint(db)), soft_wrap=True, highlight=False)
    return 0


def _upstream_certificate(workdir: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for the demo hosts, made with mitmproxy's own CertStore."""
    from mitmproxy import certs

    store = certs.CertStore.from_store(workdir / "upstream-ca", "demo", 2048)
    entry = store.get_cert(DEMO_HOSTS[0], [x509.DNSName(h) for h in DEMO_HOSTS])
    cert_pem = workdir / "upstream-cert.pem"
    key_pem = workdir / "upstream-key.pem"
    cert_pem.write_bytes(entry.cert.to_pem())
    key_pem.write_bytes(
        entry.privatekey.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_pem, key_pem, workdir / "upstream-ca" / "demo-ca-cert.pem"


def _start_proxy(workdir: Path, upstream_port: int, upstream_ca: Path, db: Path) -> tuple[subprocess.Popen, int]:
    log = workdir / "proxy.log"
    args = [
        sys.executable,
        "-c",
        "import sys; from mitmproxy.tools.main import mitmdump; sys.exit(mitmdump())",
        "--listen-host",
        "127.0.0.1",
        "--listen-port",
        "0",
        "--set",
        f"confdir={workdir / 'conf'}",
        "--set",
        f"ssl_verify_upstream_trusted_ca={upstream_ca}",
        "--set",
        "proxyauth=any",
        "--set",
        "connection_strategy=lazy",
        "-s",
        str(ENTRY_SCRIPT),
        "-s",
        str(UPSTREAM_REDIRECT_SCRIPT),
        "--set",
        f"test_upstream_port={upstream_port}",
        "--set",
        f"shadowgate_db={db}",
    ]
    process = subprocess.Popen(args, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=workdir)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the demo proxy exited:\n{log.read_text()}")
        m = re.search(r"proxy listening at 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        if m:
            return process, int(m.group(1))
        time.sleep(0.05)
    process.kill()
    raise SystemExit(f"the demo proxy did not start:\n{log.read_text()}")
