"""A first report as a new user reads it (new-user F2, F3): an empty period says where the data
is, a few cheap calls do not read as $0.0000, and a share of an empty period is '–', not 0 %."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.test_report import OAI
from tests.test_report import row
from tests.test_report import write_db

SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")
# Three priced calls worth $0.00005 between them, on Monday and Tuesday of 2026-W49.
ROWS = [
    row("2026-11-30 10:00:00", "alice", "eng", "openai", OAI, category="api", model="gpt-4o-mini",
        input_tokens=10, output_tokens=2, cost_usd=0.00002),
    row("2026-11-30 11:00:00", "alice", "eng", "openai", OAI, category="api", model="gpt-4o-mini",
        input_tokens=10, output_tokens=2, cost_usd=0.000025),
    row("2026-12-01 09:00:00", "alice", "eng", "openai", OAI, category="api", model="gpt-4o-mini",
        input_tokens=5, output_tokens=1, cost_usd=0.000005),
]  # fmt: skip


def report(db: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [SHADOWGATE, "report", "--db", str(db), "--format", "md", *args], capture_output=True, text=True, timeout=120
    )


def test_an_empty_period_says_where_the_requests_are(tmp_path):
    db = write_db(tmp_path / "sg.duckdb", ROWS)
    done = report(db, "--week", "2026-W48")
    assert done.returncode == 0, done.stderr
    assert "| Requests | 0 | 0 | +0 |" in done.stdout
    assert "| Share unknown | – | – | – |" in done.stdout and "Sanctioned or unapproved" not in done.stdout
    assert done.stderr.strip() == (
        "shadowgate: no AI requests in 2026-W48; the database has 3, from 2026-11-30 to 2026-12-01: "
        "try --week 2026-W49 or --since 2026-11-30"
    )
    assert report(db, "--week", "2026-W49").stderr == ""  # a period with requests needs no hint
    empty = write_db(tmp_path / "empty.duckdb", [])
    assert (
        report(empty, "--week", "2026-W48").stderr.strip()
        == "shadowgate: no AI requests in 2026-W48, nor in the database"
    )


def test_small_costs_keep_their_digits_and_shares_of_nothing_are_a_dash(tmp_path):
    db = write_db(tmp_path / "sg.duckdb", ROWS)
    out = report(db, "--week", "2026-W49").stdout
    assert "$0.0000 " not in out and "| $0.000050 |" in out.replace("| Estimated cost | $0.000050", "")
    # The previous week had no requests: its shares are of nothing, not 0 %.
    assert "| Share unknown | 100.0% | – | – |" in out
