"""Record: rows leave the event loop through a queue and land as sealed Parquet segments.

DuckDB allows one writer process per database file, and that writer's lock also shuts out
readers in other processes. So the proxy never holds the database file: a writer thread buffers
rows in an in-memory DuckDB, and at least once a second seals them into an immutable Parquet
segment (write to a temporary name, fsync, rename) in a hive layout:

    <segments>/ai_requests/day=2026-11-28/<instance>-<seq>.parquet

The database file (shadowgate_db) only holds views over those segments, so `shadowgate report`,
a user's own `duckdb` session and any number of proxy instances work side by side.
"""

from __future__ import annotations

import atexit
import collections
import datetime as dt
import logging
import operator
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from shadowgate.storage.viewfile import open_view_file

log = logging.getLogger(__name__)

SCHEMA_DAY = "1970-01-01"  # holds one zero-row file per table so views bind before any traffic


@dataclass(frozen=True, slots=True)
class Table:
    name: str
    columns: tuple[tuple[str, str], ...]  # (name, DuckDB type); "day" is the hive partition
    descriptions: tuple[str, ...] = ()  # one line per column, for the docs (storage/rows.py)
    row_type: type | None = None  # the dataclass whose fields are the columns, if rows are submitted as one

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)

    def as_tuples(self, rows: list) -> list[tuple]:
        """Rows as value tuples in column order, taken by field name (tuples stay as they are)."""
        if self.row_type is None:
            return rows
        values = operator.attrgetter(*self.column_names)
        try:
            return [row if type(row) is tuple else values(row) for row in rows]
        except AttributeError:  # a field never assigned: store it as NULL rather than lose the batch
            return [
                row if type(row) is tuple else tuple(getattr(row, c, None) for c in self.column_names) for row in rows
            ]

    def ddl(self, table_name: str, *, with_day: bool = True) -> str:
        cols = ", ".join(f'"{c}" {t}' for c, t in self.columns)
        day = ', "day" DATE' if with_day else ""
        return f'CREATE TABLE "{table_name}" ({cols}{day})'


@dataclass(frozen=True, slots=True)
class Rollup:
    """A daily aggregate of a detail table, kept when retention drops the detail.

    Every column of `table` has a per-row SQL expression over the detail; the `measures` are
    summed, the other columns are dimensions grouped by with the day. Summing a measure over
    rollup rows gives exactly what summing it over the per-row projection of the detail gives,
    so a reader can mix the two: detail for the days that have it, rollups for the rest.
    """

    table: Table  # the rollup's own schema ("day" is the hive partition, as for detail)
    source: str  # the detail table's name
    expressions: dict[str, str]  # column -> SQL over one detail row
    measures: frozenset[str]

    def per_row(self, rows: str) -> str:
        """The detail as rollup-shaped rows, one per detail row (a measure's value for that row)."""
        types = dict(self.table.columns)
        cols = ", ".join(f'({self.expressions[c]})::{types[c]} AS "{c}"' for c in self.table.column_names)
        return f"SELECT day, {cols} FROM {rows}"

    def over(self, rows: str) -> str:
        """The detail grouped into daily rollup rows."""
        types = dict(self.table.columns)
        cols = ", ".join(
            f'sum("{c}")::{types[c]} AS "{c}"' if c in self.measures else f'"{c}"' for c in self.table.column_names
        )
        return f"SELECT day, {cols} FROM ({self.per_row(rows)}) GROUP BY ALL"


def segments_dir_for(db_path: str | Path) -> Path:
    db_path = Path(db_path).expanduser().resolve()
    return db_path.with_name(db_path.stem + ".segments")


def view_sql(table: Table, segments: Path) -> str:
    glob = (segments / table.name / "*" / "*.parquet").as_posix().replace("'", "''")
    return (
        f'CREATE OR REPLACE VIEW "{table.name}" AS SELECT ts, day, * EXCLUDE (ts, day) '
        f"FROM read_parquet('{glob}', hive_partitioning = true, "
        f"hive_types = {{'day': DATE}}, union_by_name = true)"
    )


class SegmentWriter:
    """Owns all DuckDB work. submit() is the only method the event loop calls, and it is O(1)."""

    def __init__(
        self,
        db_path: str | Path,
        tables: Sequence[Table],
        *,
        rollups: Sequence[Rollup] = (),
        flush_interval: float = 1.0,
        max_batch_rows: int = 20_000,
        max_pending_rows: int = 1_000_000,
        enrich: Callable[[str, list[tuple]], list[tuple]] | None = None,
        housekeeping: Callable[[], None] | None = None,
        housekeeping_interval: float = 30.0,
    ) -> None:
        self.db_path = Path(db_path).expanduser().resolve()
        self.segments = segments_dir_for(self.db_path)
        self.tables = {t.name: t for t in tables}
        self.rollups = tuple(rollups)
        self.flush_interval = flush_interval
        self.max_batch_rows = max_batch_rows
        self.max_pending_rows = max_pending_rows
        self._enrich = enrich
        self._housekeeping = housekeeping
        self.housekeeping_interval = housekeeping_interval
        self._incoming: collections.deque[tuple[str, object]] = collections.deque()
        self._wake = threading.Event()  # set by flush() and close(), never per row
        self._stopping = False
        self._flush_requests: list[object] = []
        self._pending: dict[str, list] = {name: [] for name in self.tables}
        self._thread: threading.Thread | None = None
        # Unique per writer, not per process: a reconfigured proxy opens a new writer on the
        # same directory, and two writers must never produce the same segment name.
        self._instance = f"{socket.gethostname()}-{os.getpid()}-{int(time.time())}-{uuid.uuid4().hex[:6]}"
        self._seq = 0
        self._flushed = threading.Condition()
        self._done_markers: set[object] = set()
        self.rows_written = 0
        self.rows_dropped = 0
        self.segments_written = 0
        self.last_error: str | None = None
        self._last_error_log = 0.0
        self._last_loss_log = 0.0

    # --- called from the event loop ---------------------------------------------------------

    def submit(self, table: str, row: object) -> None:
        """A row: a tuple in column order, or the table's row dataclass (converted on the writer thread)."""
        # A deque append is atomic and wakes no thread: waking the writer for every row cost
        # the event loop a GIL hand-off per request. The writer drains on its own clock.
        self._incoming.append((table, row))

    def backlog(self) -> int:
        """Rows submitted or kept after a failed write, not yet sealed."""
        return len(self._incoming) + sum(map(len, self._pending.values()))

    # --- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        """Prepare directories, schema files and views (synchronously: at start-up, not per flow)."""
        self.segments.mkdir(parents=True, exist_ok=True)
        for stray in self.segments.glob("*/*/*.tmp"):
            # A crash mid-write leaves only these behind; a fresh one may be another
            # instance's write in progress.
            if time.time() - stray.stat().st_mtime > 600:
                stray.unlink(missing_ok=True)
        mem = duckdb.connect()
        try:
            for table in (*self.tables.values(), *(r.table for r in self.rollups)):
                _write_schema_file(mem, table, self.segments)
        finally:
            mem.close()
        self.ensure_views()
        self._thread = threading.Thread(target=self._run, name="shadowgate-writer", daemon=True)
        self._thread.start()
        # mitmdump can exit without a done hook (--options, a start-up error). A daemon thread
        # killed inside DuckDB at interpreter exit aborts the process, so stop it first.
        atexit.register(self.close)

    def ensure_views(self) -> None:
        """Create or refresh the views in the database file. Another process may hold it open."""
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        try:
            con = open_view_file(self.db_path)  # in a format the 1.x duckdb CLI opens
        except duckdb.Error as e:
            # Held by another process (an analyst's session) or unreadable: rows still go to
            # the segments; only the views in this file are not refreshed.
            log.warning(
                "shadowgate: cannot open %s (%s); rows are still written to %s",
                self.db_path,
                str(e).splitlines()[0],
                self.segments,
            )
            return
        try:
            for table in self.tables.values():
                con.execute(view_sql(table, self.segments))
            for rollup in self.rollups:
                con.execute(rollup_view_sql(rollup, self.segments))
        finally:
            con.close()

    def flush(self, timeout: float = 10.0) -> bool:
        """Block until everything submitted so far is sealed in a segment (tests, shutdown)."""
        marker = object()
        with self._flushed:
            self._flush_requests.append(marker)
            self._wake.set()
            return self._flushed.wait_for(lambda: marker in self._done_markers, timeout)

    def close(self, timeout: float = 30.0) -> None:
        if self._thread is None:
            return
        atexit.unregister(self.close)
        self._stopping = True
        self._wake.set()
        self._thread.join(timeout)
        if self._thread.is_alive():
            log.error("shadowgate: writer did not finish within %.0fs; rows may be lost", timeout)
        unsaved = sum(map(len, self._pending.values()))
        if unsaved or self.rows_dropped:
            log.error("shadowgate: %d rows could not be stored and %d were dropped", unsaved, self.rows_dropped)
        self._thread = None

    # --- the writer thread ------------------------------------------------------------------

    def _run(self) -> None:
        mem = duckdb.connect()
        chores_due = time.monotonic()
        while True:
            self._wake.wait(self.flush_interval)
            self._wake.clear()
            stopping = self._stopping
            with self._flushed:
                markers, self._flush_requests = self._flush_requests, []
            # Take what is queued now, not what arrives while writing: under steady load the
            # latter would turn one write a second into back-to-back tiny segments.
            waiting = len(self._incoming)  # includes everything submitted before the markers
            while True:
                batch = min(waiting, self.max_batch_rows)
                self._accept(batch)
                waiting -= batch
                self._write_pending(mem)  # also retries rows kept from a failed write
                if waiting <= 0:
                    break
            if self._housekeeping is not None and time.monotonic() >= chores_due and not stopping:
                chores_due = time.monotonic() + self.housekeeping_interval
                try:
                    self._housekeeping()  # after the write: every own row is sealed by now
                except Exception as e:
                    self._report_error(f"housekeeping failed: {e}")
            if markers:
                with self._flushed:
                    self._done_markers.update(markers)
                    self._flushed.notify_all()
            if stopping:
                break
        mem.close()

    def _accept(self, count: int) -> None:
        """Move `count` queued rows to their tables' pending lists (one pass, no per-row calls)."""
        pending = self._pending
        popleft = self._incoming.popleft
        for _ in range(count):
            table, row = popleft()
            rows = pending.get(table)
            if rows is not None:
                rows.append(row)
        over = sum(map(len, pending.values())) - self.max_pending_rows
        if over > 0:
            # The disk has been failing for a long time: shed the oldest rather than the proxy,
            # and say so: loss is counted and reported, never silent.
            for rows in sorted(pending.values(), key=len, reverse=True):
                shed = min(over, len(rows))
                del rows[:shed]
                over -= shed
                self.rows_dropped += shed
            self._report_loss("storage has failed for too long")

    def _write_pending(self, mem: duckdb.DuckDBPyConnection) -> None:
        for name, rows in self._pending.items():
            if not rows:
                continue
            table = self.tables[name]
            try:
                if self._enrich:
                    rows = self._enrich(name, rows)
                rows = table.as_tuples(rows)
                written = self._write_segments(mem, table, rows)
            except Exception as e:  # disk full, directory gone, permissions: keep rows, retry
                self._report_error(f"cannot write {name} segment: {e}")
                continue
            self._pending[name] = []
            self.rows_written += written
            if self.last_error is not None:
                log.warning("shadowgate: storage recovered; %d rows written", written)
            self.last_error = None

    def _write_segments(self, mem: duckdb.DuckDBPyConnection, table: Table, rows: list[tuple]) -> int:
        # A fresh buffer table per write: appending into one that had rows deleted was twice as
        # slow, and DELETE does not give the memory back.
        buf = f"buf_{table.name}"
        mem.execute(f'DROP TABLE IF EXISTS "{buf}"')
        mem.execute(table.ddl(buf, with_day=False))
        set_aside = self._append(mem, buf, rows)
        days = [d for (d,) in mem.execute(f'SELECT DISTINCT CAST(ts AS DATE) FROM "{buf}"').fetchall()]
        for day in days:
            self._seq += 1
            folder = self.segments / table.name / f"day={day.isoformat()}"
            folder.mkdir(parents=True, exist_ok=True)
            final = folder / f"{self._instance}-{self._seq:06d}.parquet"
            only_day = "" if len(days) == 1 else f"WHERE CAST(ts AS DATE) = DATE '{day.isoformat()}'"
            seal_select(mem, f'SELECT * FROM "{buf}" {only_day}', final)
            self.segments_written += 1
        mem.execute(f'DROP TABLE "{buf}"')
        return len(rows) - set_aside

    def _append(self, mem: duckdb.DuckDBPyConnection, buf: str, rows: list[tuple]) -> int:
        """Append rows to the buffer; returns how many were set aside as unstorable.

        A row DuckDB cannot take (a string that is not valid Unicode, a number out of range)
        must not hold up its table's every later row: halve the batch until it is found, keep
        the rest, and count the loss.
        """
        mem.execute("BEGIN")
        try:
            with mem.appender(buf) as appender:
                appender.append_rows(rows)
        except (duckdb.InvalidInputException, duckdb.ConversionException, TypeError, ValueError, OverflowError) as e:
            mem.execute("ROLLBACK")
            if len(rows) > 1:
                mid = len(rows) // 2
                return self._append(mem, buf, rows[:mid]) + self._append(mem, buf, rows[mid:])
            cleaned = _valid_unicode(rows[0])
            if cleaned != rows[0]:
                # A client chose the bad text (a header byte 0xFF, a "\ud800" escape in a model
                # name): storing it as U+FFFD keeps the call on record, where dropping the row
                # would let anyone erase their own calls with `curl -A $'\xff'`.
                return self._append(mem, buf, [cleaned])
            self.rows_dropped += 1
            self._report_loss(f"a {buf.removeprefix('buf_')} row cannot be stored and was set aside: "
                              f"{str(e).splitlines()[0][:200]}")  # fmt: skip
            return 1
        mem.execute("COMMIT")
        return 0

    def _report_loss(self, why: str) -> None:
        # Its own clock: the write errors logged meanwhile must not hide a loss.
        now = time.monotonic()
        if now - self._last_loss_log > 30:
            self._last_loss_log = now
            log.error("shadowgate: %d rows lost so far: %s", self.rows_dropped, why)

    def _report_error(self, message: str) -> None:
        self.last_error = message
        now = time.monotonic()
        if now - self._last_error_log > 30:
            self._last_error_log = now
            log.error("shadowgate: %s (rows are kept in memory and retried)", message)


_LONE_SURROGATE = re.compile("[\ud800-\udfff]")


def _valid_unicode(row: tuple) -> tuple:
    """The row with every lone surrogate in its texts (and lists of texts) as U+FFFD."""

    def fix(value: Any) -> Any:
        if isinstance(value, str):
            return _LONE_SURROGATE.sub("\ufffd", value)
        if isinstance(value, list):
            return [fix(v) for v in value]
        return value

    return tuple(fix(v) for v in row)


def rollup_view_sql(rollup: Rollup, segments: Path) -> str:
    """All days, rollup-shaped: stored rollups, plus the detail of days not summarised yet."""
    stored = f"read_parquet('{sql_path(segments / rollup.table.name / '*' / '*.parquet')}', hive_partitioning = true, " \
             "hive_types = {'day': DATE}, union_by_name = true)"  # fmt: skip
    live = f'(SELECT * FROM "{rollup.source}" WHERE day NOT IN (SELECT day FROM {stored}))'
    columns = ", ".join(f'"{c}"' for c in rollup.table.column_names)
    return (
        f'CREATE OR REPLACE VIEW "{rollup.table.name}" AS SELECT day, {columns} FROM {stored} '
        f"UNION ALL SELECT day, {columns} FROM ({rollup.over(live)})"
    )


def _write_schema_file(mem: duckdb.DuckDBPyConnection, table: Table, segments: Path) -> None:
    folder = segments / table.name / f"day={SCHEMA_DAY}"
    folder.mkdir(parents=True, exist_ok=True)
    name = f"schema_{table.name}"
    mem.execute(f'DROP TABLE IF EXISTS "{name}"')
    mem.execute(table.ddl(name))
    final = folder / "schema.parquet"
    tmp = final.with_suffix(".tmp")
    mem.execute(f"COPY (SELECT * EXCLUDE (day) FROM \"{name}\") TO '{sql_path(tmp)}' (FORMAT parquet)")
    os.replace(tmp, final)


def seal_select(con: duckdb.DuckDBPyConnection | None, select: str, final: Path) -> None:
    """Write a query's result to `final` as it must appear to readers: whole or not at all
    (a temporary name, fsync, rename, fsync of the folder). Without `con`, a connection of its own."""
    tmp = final.with_suffix(".tmp")
    writer = con if con is not None else duckdb.connect()
    try:
        writer.execute(f"COPY ({select}) TO '{sql_path(tmp)}' (FORMAT parquet, COMPRESSION zstd)")
    finally:
        if writer is not con:
            writer.close()
    _fsync(tmp)
    os.replace(tmp, final)
    _fsync_dir(final.parent)


def sql_list(paths: Sequence[Path]) -> str:
    return "[" + ", ".join(f"'{sql_path(p)}'" for p in paths) + "]"


def sql_path(path: Path) -> str:
    return path.as_posix().replace("'", "''")


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    try:
        _fsync(path)
    except OSError:
        pass


def utc_from_timestamp(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC).replace(tzinfo=None)


# The day-file chores moved to storage/housekeeping.py; `from shadowgate.storage.store import
# compact_closed_days` (and the two others) still works. Resolved lazily: housekeeping imports
# this module, so importing it here at the top would be circular.
_MOVED_TO_HOUSEKEEPING = frozenset({"compact_closed_days", "summarise_closed_days", "drop_expired_days"})


def __getattr__(name: str) -> Any:
    if name in _MOVED_TO_HOUSEKEEPING:
        from shadowgate.storage import housekeeping

        return getattr(housekeeping, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
