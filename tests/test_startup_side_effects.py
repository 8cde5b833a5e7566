"""A start that fails leaves nothing behind: no database the operator never asked for (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import duckdb
import httpx

SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")


def test_a_failed_start_opens_neither_the_given_nor_the_default_database(tmp_path):
    # mitmproxy undoes the failed update by announcing the old (default) values as changed again;
    # the database must not follow them to ~/.shadowgate, which a hardened service may not even
    # be allowed to write.
    home = tmp_path / "home"
    home.mkdir()
    chosen = tmp_path / "chosen" / "db.duckdb"
    done = subprocess.run(
        [SHADOWGATE, "proxy", "--listen-port", "0", "--set", f"confdir={tmp_path / 'conf'}",
         "--set", f"shadowgate_db={chosen}", "--set", f"shadowgate_policy={tmp_path / 'missing.yaml'}"],
        capture_output=True, text=True, timeout=60, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 1, output
    assert "missing.yaml: cannot read file" in output
    assert "recording to" not in output and "listening at" not in output, output
    assert not (home / ".shadowgate").exists()
    assert not chosen.parent.exists()


def test_the_cli_with_no_database_option_records_to_the_default_one(tmp_path):
    # `shadowgate proxy` registers its addons before the options are set, so mitmproxy announces
    # only the options given on the command line: the default database was never opened and the
    # README's quick start recorded nothing.
    home = tmp_path / "home"
    home.mkdir()
    proxy = subprocess.Popen(
        [SHADOWGATE, "proxy", "--listen-port", "0", "--set", f"confdir={tmp_path / 'conf'}"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ, "HOME": str(home)},
    )  # fmt: skip
    assert proxy.stdout is not None
    try:
        seen = []
        for line in proxy.stdout:
            seen.append(line)
            if "listening at" in line:
                break
        output = "".join(seen)
        db = home / ".shadowgate" / "shadowgate.duckdb"
        assert f"recording to {db}" in output, output
        port = int(output.rsplit("listening at 127.0.0.1:", 1)[1].split(".", 1)[0])
        # No route to the real provider here: the call fails upstream and is still one row.
        with httpx.Client(
            proxy=f"http://127.0.0.1:{port}", verify=str(tmp_path / "conf" / "mitmproxy-ca-cert.pem")
        ) as c:
            answer = c.post("https://api.openai.com/v1/chat/completions", json={"model": "gpt-4o-mini", "messages": []})
        assert answer.status_code == 502
    finally:
        proxy.terminate()
        proxy.wait(timeout=30)
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT provider, model FROM ai_requests").fetchall() == [("openai", "gpt-4o-mini")]
    finally:
        con.close()
