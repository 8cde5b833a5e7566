"""The segment writer: rows reach Parquet off the event loop, readable by other processes."""

from __future__ import annotations

import datetime as dt
import subprocess
import sys
import threading
import time

import duckdb
import pytest

from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import Table
from tests.diskfull import run_on_small_disk

T = Table("things", (("ts", "TIMESTAMP"), ("name", "VARCHAR"), ("n", "BIGINT")))


def rows_in(db) -> list[tuple]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute("SELECT ts, day, name, n FROM things ORDER BY n").fetchall()
    finally:
        con.close()


def test_rows_land_in_day_partitions_and_the_view(tmp_path):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=0.1)
    writer.start()
    day1 = dt.datetime(2026, 11, 27, 23, 59, 59)
    day2 = dt.datetime(2026, 11, 28, 0, 0, 1)
    writer.submit("things", (day1, "a", 1))
    writer.submit("things", (day2, "b", 2))
    assert writer.flush()
    assert rows_in(tmp_path / "x.duckdb") == [(day1, day1.date(), "a", 1), (day2, day2.date(), "b", 2)]
    folders = sorted(p.name for p in (tmp_path / "x.segments" / "things").iterdir())
    assert folders == ["day=1970-01-01", "day=2026-11-27", "day=2026-11-28"]
    writer.close()


def test_empty_database_is_queryable_before_any_row(tmp_path):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T])
    writer.start()
    assert rows_in(tmp_path / "x.duckdb") == []
    writer.close()


def test_another_process_reads_while_the_writer_runs(tmp_path):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=0.05)
    writer.start()
    now = dt.datetime(2026, 11, 28, 12)
    for i in range(1000):
        writer.submit("things", (now, "r", i))
    writer.flush()
    code = f"import duckdb; print(duckdb.connect({str(tmp_path / 'x.duckdb')!r}, read_only=True).execute('select count(*) from things').fetchone()[0])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1000"
    writer.close()


def test_close_seals_everything_submitted(tmp_path):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=60)
    writer.start()
    now = dt.datetime(2026, 11, 28, 12)
    threads = [
        threading.Thread(target=lambda k=k: [writer.submit("things", (now, "t", k * 1000 + i)) for i in range(500)])
        for k in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    assert len(rows_in(tmp_path / "x.duckdb")) == 2000


def test_unwritable_segments_keep_rows_and_retry(tmp_path):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=0.05)
    writer.start()
    blocked = tmp_path / "x.segments" / "things" / "day=2026-11-28"
    blocked.write_text("a file where the day folder should be")  # mkdir fails even for root
    now = dt.datetime(2026, 11, 28, 12)
    writer.submit("things", (now, "kept", 1))
    writer.flush()
    assert writer.last_error and "cannot write things segment" in writer.last_error
    assert writer.rows_written == 0
    blocked.unlink()
    writer.submit("things", (now, "kept", 2))
    writer.flush()
    assert [r[3] for r in rows_in(tmp_path / "x.duckdb")] == [1, 2]
    writer.close()


def test_a_long_outage_sheds_the_oldest_rows_and_counts_them(tmp_path, caplog):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=0.05, max_pending_rows=5)
    writer.start()
    blocked = tmp_path / "x.segments" / "things" / "day=2026-11-28"
    blocked.write_text("a file where the day folder should be")
    now = dt.datetime(2026, 11, 28, 12)
    for n in range(8):
        writer.submit("things", (now, "spooled", n))
    writer.flush()
    assert writer.rows_dropped == 3 and "3 rows lost so far" in caplog.text
    assert writer.backlog() == 5
    blocked.unlink()
    writer.flush()
    assert [r[3] for r in rows_in(tmp_path / "x.duckdb")] == [3, 4, 5, 6, 7]
    writer.close()


def test_view_creation_is_skipped_when_another_process_holds_the_file(tmp_path, caplog):
    db = tmp_path / "x.duckdb"
    first = SegmentWriter(db, [T])
    first.start()
    first.close()
    # An analyst's read-write duckdb session holds the file's lock.
    code = f"import duckdb, sys, time; c = duckdb.connect({str(db)!r}); print('ready', flush=True); sys.stdin.read()"
    holder = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "ready"
        second = SegmentWriter(db, [T], flush_interval=0.05)
        second.start()  # must not fail: the views exist already
        second.submit("things", (dt.datetime(2026, 11, 28), "x", 7))
        assert second.flush()
        second.close()
    finally:
        holder.communicate("")
    assert "cannot open" in caplog.text and "rows are still written" in caplog.text
    assert [r[3] for r in rows_in(db)] == [7]


@pytest.mark.parametrize("bad", ["no-such-table"])
def test_rows_for_unknown_tables_are_ignored(tmp_path, bad):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=0.05)
    writer.start()
    writer.submit(bad, (1, 2))
    assert writer.flush()
    writer.close()


def test_finished_days_are_merged_into_one_file_without_losing_rows(tmp_path):
    from shadowgate.storage.housekeeping import compact_closed_days

    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=0.05)
    writer.start()
    yesterday = dt.datetime(2026, 11, 27, 12)
    today = dt.datetime(2026, 11, 28, 12)
    for i in range(5):  # five flushes: five small segments per day
        writer.submit("things", (yesterday, "y", i))
        writer.submit("things", (today, "t", 100 + i))
        writer.flush()
    writer.close()
    folder = tmp_path / "x.segments" / "things"
    assert len(list((folder / "day=2026-11-27").glob("*.parquet"))) == 5
    before = rows_in(tmp_path / "x.duckdb")
    assert compact_closed_days(tmp_path / "x.segments", "things", dt.date(2026, 11, 28)) == 1
    assert [p.name.startswith("compacted-") for p in (folder / "day=2026-11-27").glob("*.parquet")] == [True]
    assert len(list((folder / "day=2026-11-28").glob("*.parquet"))) == 5  # today is still being written
    assert rows_in(tmp_path / "x.duckdb") == before
    assert compact_closed_days(tmp_path / "x.segments", "things", dt.date(2026, 11, 28)) == 0


def test_retention_drops_detail_but_the_daily_totals_stay_exact(tmp_path):
    from shadowgate.storage.housekeeping import drop_expired_days
    from shadowgate.storage.housekeeping import summarise_closed_days
    from shadowgate.storage.store import Rollup

    per_day = Rollup(
        Table("things_daily", (("name", "VARCHAR"), ("rows", "BIGINT"), ("n", "BIGINT"))),
        source="things",
        expressions={"name": "name", "rows": "1", "n": "n"},
        measures=frozenset({"rows", "n"}),
    )
    db, segments = tmp_path / "x.duckdb", tmp_path / "x.segments"
    writer = SegmentWriter(db, [T], rollups=[per_day], flush_interval=0.05)
    writer.start()
    days = [dt.datetime(2026, 11, d, 12) for d in (25, 26, 27, 28)]
    for n in range(40):
        writer.submit("things", (days[n % 4], "ab"[n % 2], n))
    assert writer.flush()

    def totals():
        con = duckdb.connect(str(db), read_only=True)
        try:
            return con.execute(
                "SELECT day, name, rows, n FROM things_daily WHERE day > '1970-01-01' ORDER BY ALL"
            ).fetchall()
        finally:
            con.close()

    expected = totals()  # before any rollup is stored: computed from the detail by the view
    assert [r[2] for r in expected] == [10, 10, 10, 10] and sum(r[3] for r in expected) == sum(range(40))
    today = dt.date(2026, 11, 28)
    # Retention never drops a day whose totals are not stored yet.
    assert drop_expired_days(segments, "things", dt.date(2026, 11, 27), per_day) == 0
    assert summarise_closed_days(segments, per_day, today) == 3
    assert summarise_closed_days(segments, per_day, today) == 0  # nothing changed since
    assert totals() == expected
    # A late row for a finished day (another instance sealing after midnight) refreshes its totals.
    time.sleep(0.01)
    writer.submit("things", (days[1], "b", 1000))
    assert writer.flush()
    assert summarise_closed_days(segments, per_day, today) == 1
    expected = totals()
    assert (dt.date(2026, 11, 26), "b", 11, sum(range(1, 40, 4)) + 1000) in expected

    assert drop_expired_days(segments, "things", dt.date(2026, 11, 27), per_day) == 2
    assert sorted(p.name for p in (segments / "things").glob("day=*")) == [
        "day=1970-01-01",
        "day=2026-11-27",
        "day=2026-11-28",
    ]
    assert totals() == expected
    assert [r[1] for r in rows_in(db)][:1] == [dt.date(2026, 11, 27)]  # detail from the 27th on
    writer.close()


def test_a_row_duckdb_cannot_take_is_set_aside_and_invalid_unicode_is_stored_replaced(tmp_path, caplog):
    writer = SegmentWriter(tmp_path / "x.duckdb", [T], flush_interval=0.05)
    writer.start()
    now = dt.datetime(2026, 11, 28, 12)
    for n in range(50):
        writer.submit("things", (now, "lone surrogate \ud800" if n == 17 else "fine", n))
    writer.submit("things", (now, "too big", 2**70))
    assert writer.flush()
    stored = rows_in(tmp_path / "x.duckdb")
    # Text a client chose that is not valid Unicode is kept as U+FFFD, not set aside: a row that
    # could be made unstorable on purpose would erase the call from the record.
    assert [r[3] for r in stored] == list(range(50))
    assert stored[17][2] == "lone surrogate \ufffd"
    assert writer.rows_dropped == 1 and writer.backlog() == 0  # the number out of range
    assert "rows lost so far: a things row cannot be stored and was set aside" in caplog.text
    assert "\ud800" not in caplog.text
    writer.submit("things", (now, "later", 99))
    assert writer.flush()
    assert rows_in(tmp_path / "x.duckdb")[-1][3] == 99
    writer.close()


def test_a_full_disk_spools_rows_reports_once_and_writes_them_when_space_returns(tmp_path):
    seen = run_on_small_disk("diskfull_writer.py", tmp_path)  # a real full file system
    full, after = seen["full"], seen["after"]
    assert "No space left on device" in full["last_error"] and full["written"] == 0 and full["backlog"] == 100
    assert full["errors_logged"] == 1  # reported once, not per attempt
    assert after["rows"] == [100, 100] and after["written"] == 100 and after["dropped"] == 0
    assert after["last_error"] is None


# --- the view file in a format the stock duckdb CLI opens (issue 18) -----------------------------


def test_the_view_file_opens_in_the_stock_duckdb_cli(tmp_path):
    import shutil

    from shadowgate.storage.schema import AI_REQUESTS
    from shadowgate.storage.schema import AI_REQUESTS_DAILY
    from shadowgate.storage.viewfile import VIEW_FILE_VERSION
    from shadowgate.storage.viewfile import storage_version_of
    from tests.test_report import OAI
    from tests.test_report import row

    db = tmp_path / "sg.duckdb"
    writer = SegmentWriter(db, [AI_REQUESTS], rollups=[AI_REQUESTS_DAILY], flush_interval=0.05)
    writer.start()
    for i in range(3):
        writer.submit("ai_requests", row(f"2026-11-2{i}T10:00:00", "alice", "eng", "openai", OAI))
    assert writer.flush()
    writer.close()
    assert storage_version_of(db) == VIEW_FILE_VERSION == 64  # what DuckDB 1.0 to 1.5 read
    uv = shutil.which("uv")
    assert uv, "uv runs the duckdb CLI from PyPI (duckdb-cli)"
    # The CLI release people have (the newest 1.x on PyPI), opening the file itself.
    done = subprocess.run(
        [uv, "tool", "run", "--from", "duckdb-cli==1.5.6", "duckdb", "-readonly", str(db), "-csv", "-c",
         "SELECT version(), (SELECT count(*) FROM ai_requests), (SELECT sum(requests) FROM ai_requests_daily)"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "v1.5.6,3,3", done.stdout


def test_a_view_file_in_a_newer_format_is_rewritten_keeping_what_is_in_it(tmp_path):
    from shadowgate.storage.viewfile import VIEW_FILE_VERSION
    from shadowgate.storage.viewfile import storage_version_of

    db = tmp_path / "x.duckdb"
    con = duckdb.connect(str(db))  # as an earlier proxy wrote it: this DuckDB's own newest format
    con.execute("CREATE VIEW mine AS SELECT 42 AS answer")  # an analyst's own view
    con.close()
    assert storage_version_of(db) > VIEW_FILE_VERSION
    writer = SegmentWriter(db, [T], flush_interval=0.05)
    writer.start()
    writer.submit("things", (dt.datetime(2026, 11, 28, 12), "a", 1))
    assert writer.flush()
    writer.close()
    assert storage_version_of(db) == VIEW_FILE_VERSION
    con = duckdb.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT answer FROM mine").fetchall() == [(42,)]
        assert con.execute("SELECT name FROM things").fetchall() == [("a",)]
    finally:
        con.close()
    assert not list(tmp_path.glob("*.tmp"))
