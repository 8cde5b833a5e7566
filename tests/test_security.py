"""Supply chain and secrets at rest: what a proxy that sees every employee's keys must prove."""

from __future__ import annotations

import json
import re
import signal
import site
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent
SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")
# .pth files run code at interpreter start: only these may exist in the environment.
ALLOWED_PTH = {"_editable_impl_shadowgate_proxy.pth", "distutils-precedence.pth"}


def lock() -> dict:
    return tomllib.loads((ROOT / "uv.lock").read_text())


def test_every_locked_distribution_is_hash_pinned():
    for package in lock()["package"]:
        if "registry" not in package.get("source", {}):
            continue
        files = [*package.get("wheels", []), *([package["sdist"]] if "sdist" in package else [])]
        assert files and all(f.get("hash", "").startswith("sha256:") for f in files), package["name"]


def test_runtime_dependencies_are_the_reviewed_ones():
    packages = {p["name"]: p for p in lock()["package"]}
    closure: set[str] = set()
    todo = [d["name"] for d in packages["shadowgate-proxy"].get("dependencies", [])]
    while todo:
        name = todo.pop()
        if name not in closure:
            closure.add(name)
            todo += [d["name"] for d in packages[name].get("dependencies", [])]
    reviewed = {
        line.strip()
        for line in (ROOT / "scripts" / "reviewed-dependencies.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert closure - reviewed == set(), "new runtime dependencies need review"
    assert reviewed - closure == set(), "reviewed-dependencies.txt lists packages no longer used"


def test_no_unexpected_pth_files():
    found = {p.name for d in site.getsitepackages() for p in Path(d).glob("*.pth")}
    assert found <= ALLOWED_PTH, found - ALLOWED_PTH


@pytest.mark.parametrize("json_log_file", [False, True], ids=["terminal-log", "json-log-file"])
def test_planted_credentials_never_reach_the_database_or_logs(fresh_proxy, tmp_path, json_log_file):
    log_file = tmp_path / "shadowgate.jsonl"
    options = (
        ["--set", "shadowgate_log_format=json", "--set", f"shadowgate_log_file={log_file}"] if json_log_file else []
    )
    proxy = fresh_proxy(*options, proxyauth="any", watch_log=log_file if json_log_file else None)
    planted = {
        "bearer": "sk-proj-PLANTEDbearer0000000000000000000000",
        "xapikey": "sk-ant-api03-PLANTEDxapikey000000000000",
        "googkey": "AIzaPLANTEDquerykey00000000000000000000",
        "cookie": "session=PLANTEDcookie0000000000",
        "password": "PLANTEDproxypassword",
    }
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with httpx.Client(
        proxy=f"http://sec:{planted['password']}@127.0.0.1:{proxy.port}", verify=proxy.ssl_context()
    ) as client:
        client.post(
            "https://api.openai.com/v1/chat/completions",
            json=body,
            headers={"authorization": f"Bearer {planted['bearer']}", "cookie": planted["cookie"]},
        )
        client.post(
            "https://api.anthropic.com/v1/messages",
            headers={"x-api-key": planted["xapikey"]},
            json={"model": "claude-sonnet-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}]},
        )
        client.post(
            f"https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent?key={planted['googkey']}",
            json={"contents": [{"parts": [{"text": "hi"}]}]},
        )
    assert len(proxy.rows("user_name = 'sec'", expect=3)) == 3
    proxy.stop()
    outputs = b"".join(
        p.read_bytes()
        for p in proxy.db.parent.rglob("*")
        if p.is_file() and p.suffix in (".parquet", ".duckdb", ".wal", ".log")
    )
    outputs += proxy.log().encode()
    if json_log_file:
        text = log_file.read_text()
        assert "client connect" in text and all(json.loads(line) for line in text.splitlines())
        outputs += text.encode()
    for name, value in planted.items():
        assert value.encode() not in outputs, name


def test_key_files_are_private(proxy):
    for name in ("mitmproxy-ca.pem", "mitmproxy-ca.p12", "shadowgate-fingerprint.key"):
        assert (proxy.confdir / name).stat().st_mode & 0o777 == 0o600, name


def test_proxy_listens_on_loopback_unless_told_otherwise(tmp_path):
    log = tmp_path / "log"
    process = subprocess.Popen(
        [
            SHADOWGATE,
            "proxy",
            "--listen-port",
            "0",
            "--set",
            f"confdir={tmp_path / 'conf'}",
            "--set",
            f"shadowgate_db={tmp_path / 'x.duckdb'}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60  # as start_proxy: 30 s was not enough with the 2 cores loaded
        while not re.search(r"listening at ", log.read_text(errors="replace")):
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.05)
        assert re.search(r"proxy listening at 127\.0\.0\.1:\d+", log.read_text())
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)


def test_the_network_audit_hook_sees_lookups(tmp_path):
    audit = tmp_path / "control.jsonl"
    code = (
        "import runpy, socket; runpy.run_path('tests/netaudit.py')\n"
        "try:\n    socket.getaddrinfo('audit-control.invalid', 443)\nexcept OSError:\n    pass\n"
    )
    subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env={"SG_NETAUDIT_LOG": str(audit), "PATH": "/usr/bin:/bin"}, check=True
    )
    assert "audit-control.invalid" in audit.read_text()


def test_the_proxy_reaches_nothing_but_its_upstream(fresh_proxy, tmp_path, monkeypatch):
    # Every feature on: catalog matching (tldextract), pricing (genai-prices), policy, DLP.
    audit = tmp_path / "net.jsonl"
    monkeypatch.setenv("SG_NETAUDIT_LOG", str(audit))
    policy = tmp_path / "policy.yaml"
    policy.write_text("dlp: {}\nbudgets:\n  - {id: b, per: user, tokens_per_day: 1000000}\n")
    proxy = fresh_proxy("-s", str(ROOT / "tests" / "netaudit.py"), "--set", f"shadowgate_policy={policy}")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "mail me at a@b.example"}]}
    with proxy.client("netaudit") as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=body).status_code == 200
        assert client.post("https://llm.internal.test/v1/chat/completions", json=body).status_code == 200
    [row] = proxy.rows("user_name = 'netaudit' AND provider = 'openai'", expect=1)
    assert row["cost_usd"] is not None  # priced, from the bundled data
    proxy.stop()
    assert not audit.exists() or audit.read_text() == "", audit.read_text()


def test_the_proxy_needs_no_network_but_its_upstream(tmp_path):
    """Issue 7: fake providers, mitmdump with every addon (default policy + DLP, OTel off) and a
    client in a user+network namespace that has only loopback (`unshare -rn`): no DNS, no route
    out. Catalog matching (tldextract's bundled list), pricing (genai-prices' bundled data) and
    DLP must all work offline, and every call must be recorded. tests/netns_proxy.py runs inside."""
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True, text=True)
    assert probe.returncode == 0, (
        "unprivileged user namespaces are needed (sysctl kernel.unprivileged_userns_clone=1, "
        f"or user.max_user_namespaces > 0): {probe.stderr}"
    )
    done = subprocess.run(
        ["unshare", "-rn", sys.executable, "-m", "tests.netns_proxy", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["isolation"] == {
        "dns_pypi_org": None,
        "dns_api_openai_com": None,
        "tcp_1_1_1_1_443": None,
        "tcp_8_8_8_8_53": None,
    }
    assert result["statuses"] == [200, 200, 200], result["log"]
    rows = result["rows"]
    assert [(r["provider"], r["streaming"], r["status_code"]) for r in rows] == [
        ("openai", False, 200),
        ("openai", True, 200),
        ("anthropic", False, 200),
    ]
    assert all(r["input_tokens"] and r["output_tokens"] and r["cost_usd"] for r in rows)  # parsed and priced offline
    assert [r["dlp_findings"] for r in rows] == ["EMAIL:1", "EMAIL:1", None] and not result["upstream_saw_email"]
    assert result["returncode"] == 0
