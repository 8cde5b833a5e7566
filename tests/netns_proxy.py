"""Run inside `unshare -rn` (a user and network namespace with nothing but loopback): the fake
providers, a real mitmdump with every shadowgate addon, and a client, as tests/conftest.py starts
them. Prints one JSON object: whether the outside world was reachable (it must not be), the
statuses the client got and the rows the proxy recorded.

    unshare -rn python -m tests.netns_proxy WORKDIR   (from the repository root)
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
from pathlib import Path

import trustme  # noqa: E402

from tests.conftest import start_proxy  # noqa: E402
from tests.conftest import start_upstream  # noqa: E402


def reachable(host: str, port: int) -> str | None:
    """None when the namespace refuses (what we want), else what answered."""
    try:
        with socket.create_connection((host, port), timeout=3) as s:
            return f"connected to {s.getpeername()}"
    except OSError:
        return None


def resolves(name: str) -> str | None:
    try:
        return str(socket.getaddrinfo(name, 443)[0][4])
    except OSError:
        return None


def main(workdir: Path) -> None:
    subprocess.run(["ip", "link", "set", "lo", "up"], check=True)
    isolation = {
        "dns_pypi_org": resolves("pypi.org"),
        "dns_api_openai_com": resolves("api.openai.com"),
        "tcp_1_1_1_1_443": reachable("1.1.1.1", 443),
        "tcp_8_8_8_8_53": reachable("8.8.8.8", 53),
    }
    policy = workdir / "policy.yaml"
    policy.write_text("dlp: {secrets: block, pii: redact}\n")
    ca = trustme.CA()
    upstream_dir = workdir / "upstream"
    upstream_dir.mkdir(parents=True)
    upstream = start_upstream(ca, upstream_dir)
    proxy = start_proxy(workdir / "proxy", upstream, ca, "--set", f"shadowgate_policy={policy}",
                        "--set", "shadowgate_otel_enabled=false")  # fmt: skip
    try:
        body = {
            "model": "gpt-4o-mini",
            "messages": [{"role": "user", "content": "write to jane.doe@corp-mail.example"}],
        }
        stream = {**body, "stream": True, "stream_options": {"include_usage": True}}
        with proxy.client("isolated") as client:
            statuses = [
                client.post("https://api.openai.com/v1/chat/completions", json=body).status_code,
                client.post("https://api.openai.com/v1/chat/completions", json=stream).status_code,
                client.post(
                    "https://api.anthropic.com/v1/messages",
                    headers={"x-api-key": "sk-ant-test"},
                    json={
                        "model": "claude-sonnet-4-20250514",
                        "max_tokens": 16,
                        "messages": [{"role": "user", "content": "hi"}],
                    },
                ).status_code,  # fmt: skip
            ]
        rows = proxy.rows("user_name = 'isolated'", expect=3)
        seen = [s.body.decode(errors="replace") for s in upstream.seen]
    finally:
        returncode = proxy.stop()
        upstream.stop()
    keep = (
        "provider",
        "streaming",
        "status_code",
        "input_tokens",
        "output_tokens",
        "cost_usd",
        "dlp_action",
        "dlp_findings",
    )
    print(json.dumps({
        "isolation": isolation,
        "statuses": statuses,
        "rows": [{k: r[k] for k in keep} for r in rows],
        "upstream_saw_email": any("jane.doe@corp-mail.example" in b for b in seen),
        "returncode": returncode,
        "log": proxy.log()[-4000:],
    }, default=str))  # fmt: skip


if __name__ == "__main__":
    main(Path(sys.argv[1]))
