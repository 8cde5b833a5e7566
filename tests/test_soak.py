"""The soak's CI variant: scripts/soak.py with 8 clients for 25 seconds (issue 7).

The full soak is `uv run python scripts/soak.py --clients 50 --minutes 10` (figures in the
README). Here: zero errors, one row per answered call with every total exact, and bounded growth.

The growth bound is 25 %, and it only catches gross leaks. In its first few thousand requests the
proxy's RSS still climbs (the writer's in-memory DuckDB buffer, mitmproxy's and Python's caches:
+100 MB from idle), and on a loaded 2-core machine 25 seconds are 1,500-3,000 calls, still in that
climb: runs here measured +2 to +6 % from warm-up to end, the 10-minute soak +5 %. 25 % of
~175 MB is ~45 MB over ~2,000 calls, so this fails when every call leaks more than ~20 KB (a kept
flow, body or stream buffer), not on small leaks; those are the 10-minute soak's job.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENTS = 8
GROWTH_BOUND = 0.25


def test_short_soak_has_no_errors_exact_rows_and_bounded_growth():
    done = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "soak.py"), "--clients", str(CLIENTS), "--seconds", "25", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    lines = done.stdout.strip().splitlines()
    assert lines and lines[-1].startswith("{"), done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads(lines[-1])
    report = "\n".join(lines[:-1])
    assert result["error_count"] == 0, report
    assert result["answered"] > 200, report  # it really ran
    assert result["rows"] == result["answered"] and result["mismatches"] == {}, report
    assert set(result["by_kind"]) == {"openai-json", "openai-stream", "anthropic-json", "anthropic-stream",
                                      "gemini-json", "gemini-stream", "dlp-redact", "dlp-block", "policy-block"}  # fmt: skip
    assert result["totals"]["users"] == CLIENTS
    assert result["log_problems"] == [] and result["returncode"] == 0, report
    assert result["growth"] <= GROWTH_BOUND, report
    # 3 hosts per client, a client and a server side each, plus the proxy's own files.
    assert result["fds_end"] <= 6 * CLIENTS + 50, report
    assert done.returncode == 0, report
