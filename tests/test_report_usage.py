"""`shadowgate usage` reads the report's views (issue 18): after retention dropped the detail it shows
the daily totals, counting the same requests as `report`; its hint says what can open the file."""

from __future__ import annotations

import datetime as dt
import io
import re

from rich.console import Console

from shadowgate.report.usage import first_day
from shadowgate.report.usage import print_usage
from shadowgate.report.usage import usage_rows
from shadowgate.resources import REPORTS_DIR
from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import ALL_ROLLUPS
from shadowgate.storage.schema import ALL_TABLES
from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import drop_expired_days
from shadowgate.storage.store import summarise_closed_days
from tests.test_report import ANT
from tests.test_report import OAI
from tests.test_report import report_json
from tests.test_report import row
from tests.test_report import tokens
from tests.test_report import write_db

TODAY = dt.datetime.now(dt.UTC).date()


def at(days_ago: int, hour: int = 10) -> str:
    return f"{TODAY - dt.timedelta(days=days_ago)} {hour:02d}:00:00"


ROWS = [
    row(at(3), "alice", "eng", "openai", OAI, category="api", model="gpt-4o", **tokens(100, 50, 0.01)),
    row(at(3, 11), "alice", "eng", "openai", OAI, category="api", model="gpt-4o", **tokens(200, 100, 0.02)),
    row(
        at(2),
        "bob",
        "eng",
        "anthropic",
        ANT,
        category="api",
        model="claude-x",
        **tokens(10, 5, None),
        usage_estimated=True,
    ),
    row(
        at(1), "bob", "eng", "anthropic", ANT, category="api", inspected=False, inspect_note="pinned", wire_format=None
    ),
    row(at(0), "carol", "ops", "openai", OAI, category="api", model="gpt-4o", **tokens(1, 1, 0.001)),
    row(at(9), "dave", "ops", "openai", OAI, category="api", model="gpt-4o", **tokens(5, 5, 0.5)),  # before --days 7
]


def printed(db, days: int = 7) -> str:
    out = io.StringIO()
    assert print_usage(db, days=days, console=Console(file=out, width=200)) == 0
    return out.getvalue()


def test_usage_after_retention_reads_the_daily_totals(tmp_path):
    db = write_db(tmp_path / "sg.duckdb", ROWS)
    before = usage_rows(db, 7)
    assert [(r[0], r[1], r[2], r[3]) for r in before] == [
        ("alice", "openai", "gpt-4o", 2),
        ("carol", "openai", "gpt-4o", 1),
        ("bob", "anthropic", "-", 1),
        ("bob", "anthropic", "claude-x", 1),
    ]
    assert before[0][4:9] == (300, None, 150, None, 0.03)
    assert before[3][8:] == (None, True, 0) and before[2][10] == 1  # unpriced; estimated; not inspected
    segments = db.with_name("sg.segments")
    assert summarise_closed_days(segments, AI_REQUESTS_DAILY, TODAY) >= 4
    assert drop_expired_days(segments, "ai_requests", TODAY, AI_REQUESTS_DAILY) >= 4  # only today's detail is left
    after = usage_rows(db, 7)
    assert [r[:9] for r in after] == [r[:9] for r in before]  # the estimated flag lives in the detail only
    text = printed(db)
    assert "alice" in text and "claude-x" in text and "1 not inspected" in text
    # The same requests as the report over the same days.
    doc = report_json(db, since=first_day(7).isoformat(), until=TODAY.isoformat())
    assert sum(r[3] for r in after) == doc["headline"]["requests"]["value"] == 5


def test_days_are_utc_days_including_today(tmp_path):
    db = write_db(tmp_path / "sg.duckdb", ROWS)
    assert {r[0] for r in usage_rows(db, 1)} == {"carol"}
    assert {r[0] for r in usage_rows(db, 10)} == {"alice", "bob", "carol", "dave"}
    assert first_day(7, dt.date(2026, 11, 22)) == dt.date(2026, 11, 16)


def test_unknown_cost_is_a_dash_not_zero(tmp_path):
    db = write_db(tmp_path / "sg.duckdb", ROWS)
    line = next(line for line in printed(db).splitlines() if "claude-x" in line)
    assert "–" in line and "0.000000" not in line


def test_the_hint_names_what_reads_the_file_and_works_with_a_1x_cli(tmp_path):
    import shutil
    import subprocess

    db = tmp_path / "sg.duckdb"  # with every table and rollup, as the proxy writes it
    writer = SegmentWriter(db, list(ALL_TABLES), rollups=list(ALL_ROLLUPS), flush_interval=0.05)
    writer.start()
    for r in ROWS:
        writer.submit("ai_requests", r)
    assert writer.flush()
    writer.close()
    text = printed(db)
    assert "any DuckDB client" not in text
    assert "duckdb CLI, 1.0 or newer" in text and str(REPORTS_DIR / "open_segments.sql") in text
    assert (REPORTS_DIR / "open_segments.sql").is_file()
    command = re.search(r"^\s+(duckdb -cmd .*)$", text, re.M)[1]
    uv = shutil.which("uv")
    assert uv, "uv runs the duckdb 1.x CLI from PyPI (duckdb-cli)"
    # The command exactly as printed, in the 1.x CLI people have: it reads the segments.
    done = subprocess.run(
        f"{uv} tool run --from duckdb-cli==1.5.6 {command} -c 'SELECT sum(requests) FROM ai_requests_daily'",
        shell=True,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert re.search(r"│\s+6\s+│", done.stdout), done.stdout
