"""The shadowgate command: catalog match, usage table, CA instructions, mitmdump pass-through."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from shadowgate.cli import main

ROOT = Path(__file__).resolve().parent.parent
SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")


@pytest.mark.parametrize(
    "args, line",
    [
        (["api.openai.com"], "api.openai.com\topenai\tapi"),
        (["https://api.anthropic.com/v1/messages"], "api.anthropic.com\tanthropic\tapi\tanthropic-messages:chat"),
        (["chatgpt.com"], "chatgpt.com\tchatgpt\tchat-web"),
        (["api.openai.com.evil.example"], "api.openai.com.evil.example\t-"),
        (["notopenai.com"], "notopenai.com\t-"),
        (["vllm.corp.internal", "/v1/chat/completions"], "vllm.corp.internal\tunknown\t-\topenai-chat:chat"),
        (["example.com", "/index.html"], "example.com\t-\t-"),
    ],
)
def test_catalog_match(capsys, args, line):
    assert main(["catalog", "match", *args]) == 0
    assert capsys.readouterr().out == line + "\n"


def test_catalog_match_reads_stdin():
    hosts = "api.openai.com\n# a comment\n\nhttps://api.groq.com/openai/v1/chat/completions\nexample.com\n"
    out = subprocess.run([SHADOWGATE, "catalog", "match", "-"], input=hosts, capture_output=True, text=True, check=True)
    assert out.stdout.splitlines() == [
        "api.openai.com\topenai\tapi",
        "api.groq.com\tgroq\tapi\topenai-chat:chat",
        "example.com\t-",
    ]


def test_catalog_match_reports_a_broken_catalog(tmp_path, capsys):
    bad = tmp_path / "p.yaml"
    bad.write_text("categories: [\n")
    assert main(["catalog", "match", "--providers", str(bad), "x.com"]) == 2
    assert f"{bad}:" in capsys.readouterr().err


def test_ca_prints_where_and_how(tmp_path, capsys):
    assert main(["ca", "--confdir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert str(tmp_path / "mitmproxy-ca-cert.pem") in out and "NODE_EXTRA_CA_CERTS" in out
    assert (tmp_path / "mitmproxy-ca-cert.pem").exists()


def test_usage_without_database(tmp_path, capsys):
    assert main(["usage", "--db", str(tmp_path / "none.duckdb")]) == 1
    assert "no database" in capsys.readouterr().err


def test_proxy_command_passes_mitmdump_flags_through_and_records(tmp_path, upstream, test_ca):
    test_ca_pem = tmp_path / "test-ca.pem"
    test_ca.cert_pem.write_to_path(str(test_ca_pem))
    db = tmp_path / "cli.duckdb"
    log = tmp_path / "log"
    process = subprocess.Popen(
        [
            SHADOWGATE,
            "proxy",
            "--listen-host",
            "127.0.0.1",
            "--listen-port",
            "0",
            "--set",
            f"confdir={tmp_path / 'conf'}",
            "--set",
            f"ssl_verify_upstream_trusted_ca={test_ca_pem}",
            "-s",
            str(ROOT / "addons" / "shadowgate" / "demo" / "upstream_redirect.py"),
            "--set",
            f"test_upstream_port={upstream.port}",
            "--set",
            f"shadowgate_db={db}",
        ],
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 30
        # The trust banner comes once the proxy listens: after mitmproxy's "listening at" line.
        while not (m := re.search(r"listening at 127\.0\.0\.1:(\d+)", text := log.read_text(errors="replace"))) or (
            "HTTPS_PROXY=" not in text
        ):
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.05)
        assert f"CA certificate is {tmp_path / 'conf' / 'mitmproxy-ca-cert.pem'}" in text
        import ssl

        import httpx

        ctx = ssl.create_default_context(cafile=str(tmp_path / "conf" / "mitmproxy-ca-cert.pem"))
        with httpx.Client(proxy=f"http://127.0.0.1:{m.group(1)}", verify=ctx) as client:
            r = client.post("https://api.openai.com/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
        assert r.status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    out = subprocess.run([SHADOWGATE, "usage", "--db", str(db)], capture_output=True, text=True, check=True).stdout
    assert "127.0.0.1" in out and "openai" in out


def test_shadowgate_proxy_prints_no_request_urls_by_default(tmp_path):
    """new-user F24: mitmdump's per-flow lines print URLs with their query strings, which DLP does
    not redact (a blocked token's first characters reached the terminal); flow_detail=0 unless asked."""
    import httpx

    log = tmp_path / "log"
    process = subprocess.Popen(
        [SHADOWGATE, "proxy", "--listen-port", "0", "--set", f"confdir={tmp_path / 'conf'}",
         "--set", f"shadowgate_db={tmp_path / 'db.duckdb'}"],
        stdout=log.open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not (m := re.search(r"listening at 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))):
            assert time.monotonic() < deadline and process.poll() is None, log.read_text()
            time.sleep(0.05)
        with httpx.Client(proxy=f"http://127.0.0.1:{m.group(1)}", trust_env=False) as client:
            assert client.get("http://shadowgate.health/?note=ghp_SECRETSECRETSECRET").status_code in (200, 503)
        time.sleep(0.5)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(30)
    assert "SECRETSECRET" not in log.read_text() and "shadowgate.health" not in log.read_text()
