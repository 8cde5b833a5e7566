"""Storage chores on the writer thread: one file per finished day, its daily totals, retention.

`tidy_segments` runs them after the writer has sealed its own rows, every housekeeping interval
(30 s). Every instance sharing the segments directory runs them; a lock file per day folder
makes them take turns.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
import shutil
import time
from collections.abc import Sequence
from pathlib import Path

from shadowgate.storage.store import SCHEMA_DAY
from shadowgate.storage.store import Rollup
from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import seal_select
from shadowgate.storage.store import sql_list

log = logging.getLogger(__name__)

SUMMARISE_DAYS_PER_ROUND = 7  # ~0.1 s per day of 10k requests measured (scripts/bench_report.py)


def tidy_segments(writer: SegmentWriter, retention_days: int, today: dt.date | None = None) -> None:
    """Per finished day one file and its daily totals; detail past the retention period dropped
    (after its totals are safe). retention_days 0 keeps everything."""
    today = today or dt.datetime.now(dt.UTC).date()
    for table in writer.tables:
        compact_closed_days(writer.segments, table, today)
    for rollup in writer.rollups:
        summarise_closed_days(writer.segments, rollup, today, limit=SUMMARISE_DAYS_PER_ROUND)
    if retention_days:
        keep_from = today - dt.timedelta(days=retention_days)
        rollups = {r.source: r for r in writer.rollups}
        for table in writer.tables:
            dropped = drop_expired_days(writer.segments, table, keep_from, rollups.get(table))
            if dropped:
                log.info("shadowgate: retention dropped %d day(s) of %s detail before %s", dropped, table, keep_from)


def compact_closed_days(segments: Path, table: str, today: dt.date, min_files: int = 2) -> int:
    """Merge each finished day's segments into one file; returns how many days were merged.

    A day is finished once it is before today (UTC). Instances sharing the directory take turns
    through a lock file per day, so two never merge the same files. The merged file is renamed
    into place before the small ones are removed, so a reader never misses a row (a query in
    that instant may count a row twice; a report run a moment later is exact).
    """
    merged = 0
    for folder in sorted((segments / table).glob("day=*")):
        day = folder.name.removeprefix("day=")
        if day == SCHEMA_DAY or day >= today.isoformat():
            continue
        if len(list(folder.glob("*.parquet"))) < min_files:
            continue
        with open(folder / ".compact.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another instance is merging this day
            files = sorted(folder.glob("*.parquet"))
            if len(files) < min_files:
                continue
            final = folder / f"compacted-{int(time.time() * 1000)}-{os.getpid()}.parquet"
            seal_select(None, f"SELECT * FROM read_parquet({sql_list(files)}, union_by_name = true, "
                        "hive_partitioning = false)", final)  # fmt: skip
            for f in files:
                f.unlink(missing_ok=True)
            merged += 1
    return merged


def closed_day_folders(segments: Path, table: str, before: dt.date) -> list[tuple[str, Path]]:
    """Day folders before `before`, oldest first; folders not named after a date are left alone."""
    days = []
    for folder in sorted((segments / table).glob("day=*")):
        day = folder.name.removeprefix("day=")
        try:
            closed = day != SCHEMA_DAY and dt.date.fromisoformat(day) < before
        except ValueError:
            continue
        if closed:
            days.append((day, folder))
    return days


def _newest_mtime(files: Sequence[Path]) -> float:
    return max((f.stat().st_mtime for f in files), default=0.0)


def summarise_closed_days(segments: Path, rollup: Rollup, today: dt.date, limit: int | None = None) -> int:
    """Write (or rewrite) the rollup of every finished day whose detail changed since; returns how many.

    Runs after compaction. A late row (another instance sealing just after midnight) makes its
    detail file newer than the rollup, and the next round rewrites the rollup. `limit` caps the
    days per call: on the writer thread, a first start on months of history must not hold up
    the writes for long (rows wait in memory meanwhile), so the backlog goes a few days a round.
    """
    written = 0
    for day, folder in reversed(closed_day_folders(segments, rollup.source, today)):
        if limit is not None and written >= limit:
            break
        detail = sorted(folder.glob("*.parquet"))
        if not detail:
            continue
        target_dir = segments / rollup.table.name / f"day={day}"
        current = sorted(target_dir.glob("*.parquet"))
        if current and _newest_mtime(current) >= _newest_mtime(detail):
            continue
        with open(folder / ".compact.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue  # another instance is compacting or summarising this day
            detail = sorted(folder.glob("*.parquet"))
            target_dir.mkdir(parents=True, exist_ok=True)
            rows = f"(SELECT *, DATE '{day}' AS day FROM read_parquet({sql_list(detail)}, " \
                   "union_by_name = true, hive_partitioning = false))"  # fmt: skip
            columns = ", ".join(f'"{c}"' for c in rollup.table.column_names)
            final = target_dir / f"rollup-{int(time.time() * 1000)}-{os.getpid()}.parquet"
            seal_select(None, f"SELECT {columns} FROM ({rollup.over(rows)})", final)
            for old in current:
                old.unlink(missing_ok=True)
            written += 1
    return written


def drop_expired_days(segments: Path, table: str, before: dt.date, rollup: Rollup | None = None) -> int:
    """Delete the detail of days before `before`; returns how many days were dropped.

    With a rollup, a day's detail goes only once its rollup is at least as new as the detail, so
    the daily totals survive. Readers see a day either in detail or in its rollup.
    """
    dropped = 0
    for day, folder in closed_day_folders(segments, table, before):
        detail = sorted(folder.glob("*.parquet"))
        if rollup is not None and detail:
            summary = list((segments / rollup.table.name / f"day={day}").glob("*.parquet"))
            if not summary or _newest_mtime(summary) < _newest_mtime(detail):
                continue  # not summarised yet: the next round does it first
        with open(folder / ".compact.lock", "a") as lock:
            try:
                fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                continue
            for f in folder.glob("*.parquet"):
                f.unlink(missing_ok=True)
        shutil.rmtree(folder, ignore_errors=True)
        dropped += 1
    return dropped
