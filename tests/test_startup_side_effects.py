"""A start that fails leaves nothing behind: no database the operator never asked for (issue 18)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

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
