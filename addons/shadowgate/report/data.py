"""Open shadowgate's data for the report under the names the proxy's database file uses.

The report's SQL (reports/*.sql) reads the views ai_requests, ai_requests_daily, policy_events,
mcp_calls, web_activity and web_activity_daily (the console also alerts), the names an analyst sees in the duckdb CLI on the database file. Here they are
views in an in-memory connection over the database `sg`: the database file attached read-only
when it can be opened, or, when another process holds it read-write (DuckDB then refuses even
readers), an in-memory `sg` with the writer's own views over the Parquet segments
(shadowgate.storage.store.view_sql).
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import duckdb

from shadowgate.storage.housekeeping import (
    closed_day_folders,  # the writer's day-folder listing: one layout, one reader
)
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import ALERTS
from shadowgate.storage.schema import HOST_SIGHTINGS
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.schema import WEB_ACTIVITY
from shadowgate.storage.schema import WEB_ACTIVITY_DAILY
from shadowgate.storage.store import Rollup
from shadowgate.storage.store import Table
from shadowgate.storage.store import rollup_view_sql
from shadowgate.storage.store import segments_dir_for
from shadowgate.storage.store import sql_path
from shadowgate.storage.store import view_sql

# Detail tables the report reads, as the writer lays them out.
TABLES = (AI_REQUESTS, POLICY_EVENTS, MCP_CALLS, HOST_SIGHTINGS, WEB_ACTIVITY, ALERTS)
# Rollups the report reads: each day from its detail while retention keeps it, else its daily totals.
ROLLUPS = (AI_REQUESTS_DAILY, WEB_ACTIVITY_DAILY)


def open_data(db: Path) -> tuple[duckdb.DuckDBPyConnection, str]:
    """An in-memory connection with the report's views, and where they read from: "database" or "segments".

    `db` is the database file or its segments directory.
    """
    db = db.expanduser()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    segments = db if db.is_dir() else segments_dir_for(db)
    source = "database" if db.is_file() and _attach_file(con, db) else "segments"
    if source == "segments" and not _attach_segments(con, segments):
        con.close()
        raise FileNotFoundError(f"no shadowgate data at {db} (start the proxy first, or pass --db)")
    have = {
        r[0]
        for r in con.execute("SELECT table_name FROM information_schema.tables WHERE table_catalog = 'sg'").fetchall()
    }
    con.execute("CREATE VIEW ai_requests AS SELECT * FROM sg.ai_requests")
    for table in TABLES[1:]:
        con.execute(_complete_view(con, table, table.name in have))
    for rollup in ROLLUPS:
        con.execute(f'CREATE VIEW "{rollup.table.name}" AS {_daily_sql(segments, rollup)}')
    return con, source


def _attach_file(con: duckdb.DuckDBPyConnection, db: Path) -> bool:
    try:
        con.execute(f"ATTACH '{sql_path(db.resolve())}' AS sg (READ_ONLY)")
    except duckdb.Error:
        return False  # locked by another process: read the segments
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_catalog = 'sg' AND table_name = 'ai_requests'"
    ).fetchone()
    if found and found[0]:
        return True
    con.execute("DETACH sg")
    return False


def _attach_segments(con: duckdb.DuckDBPyConnection, segments: Path) -> bool:
    """An in-memory `sg` holding the views the writer puts in the database file."""
    if not (segments / AI_REQUESTS.name).is_dir():
        return False
    con.execute("ATTACH ':memory:' AS sg")
    con.execute("USE sg")
    try:
        for table in TABLES:
            if (segments / table.name).is_dir():
                try:
                    con.execute(view_sql(table, segments.resolve()))
                except duckdb.Error:
                    if table is AI_REQUESTS:
                        raise
                    # a folder with no file in it yet: read as empty below
    finally:
        con.execute("USE memory")
    return True


def _daily_sql(segments: Path, rollup: Rollup) -> str:
    """Rollup-shaped rows of every day, each day read from one side only: its stored daily totals
    when they are at least as new as its detail (housekeeping summarised the day and no late row
    came since; always the case once retention dropped the detail), else its detail, one row per
    request, so nothing is grouped twice. The totals are the detail grouped, so the numbers are
    the same either way; the totals are fewer rows, already typed, and survive retention.
    """
    sql = rollup.per_row(f'"{rollup.source}"')
    stored = _newest_file_by_day(segments, rollup.table.name)
    if not stored:
        return sql
    detail = _newest_file_by_day(segments, rollup.source)
    from_totals = sorted(day for day, mtime in stored.items() if mtime >= detail.get(day, 0.0))
    from_detail = sorted(set(detail) - set(from_totals))
    if not from_totals:
        return sql
    sql = rollup.per_row(f'(SELECT * FROM "{rollup.source}" WHERE day NOT IN ({_dates(from_totals)}))')
    columns = ", ".join(f'"{c}"' for c in rollup.table.column_names)
    glob = sql_path((segments / rollup.table.name).resolve() / "day=*" / "*.parquet")
    sql += (
        f" UNION ALL SELECT day, {columns} FROM read_parquet('{glob}', "
        "hive_partitioning = true, hive_types = {'day': DATE}, union_by_name = true)"
    )
    if from_detail:
        sql += f" WHERE day NOT IN ({_dates(from_detail)})"
    return sql


def _dates(days: list[str]) -> str:
    return ", ".join(f"DATE '{d}'" for d in days)


def _newest_file_by_day(segments: Path, table: str) -> dict[str, float]:
    """{day: newest Parquet file's mtime} of the days with data in a table's folder (not the schema day)."""
    newest = {}
    for day, folder in closed_day_folders(segments, table, dt.date.max):
        times = [f.stat().st_mtime for f in folder.glob("*.parquet")]
        if times:
            newest[day] = max(times)
    return newest


def _complete_view(con: duckdb.DuckDBPyConnection, table: Table, present: bool) -> str:
    """A view of `table` with every column of today's schema: data written before a column existed
    reads it as NULL, and a table with no data at all (no MCP traffic yet) is an empty view."""
    have: set[str] = set()
    if present:
        try:
            have = {r[0] for r in con.execute(f'DESCRIBE sg."{table.name}"').fetchall()}
        except duckdb.Error:
            have = set()  # a segments folder with no file in it yet
    columns = [
        f'"{name}"' if name in have else f'NULL::{kind} AS "{name}"' for name, kind in (*table.columns, ("day", "DATE"))
    ]
    source = f'sg."{table.name}"' if have else "(SELECT 1) WHERE false"
    return f'CREATE VIEW "{table.name}" AS SELECT {", ".join(columns)} FROM {source}'


_SEGMENTS_PLACEHOLDER = Path("/@segments@")
OPEN_SEGMENTS_HEADER = """\
-- name: open_segments
-- The proxy's views straight from the Parquet segments, for a duckdb CLI that cannot open the database file.
-- The database file holds only views over <db>.segments/, and a DuckDB of another storage version
-- cannot open it ("version number 69"). The Parquet files any version reads. In that CLI:
--   SET VARIABLE segments = '/home/me/.shadowgate/shadowgate.segments';
--   .read reports/open_segments.sql
-- Generated from shadowgate.storage (the writer's own view definitions): do not edit, run
--   uv run python -m shadowgate.report.data > reports/open_segments.sql
"""


def open_segments_sql() -> str:
    """reports/open_segments.sql: the writer's views with the segments folder taken from a variable."""
    statements = [view_sql(t, _SEGMENTS_PLACEHOLDER) for t in TABLES if t is not ALERTS]  # the report's tables
    statements += [rollup_view_sql(rollup, _SEGMENTS_PLACEHOLDER) for rollup in ROLLUPS]
    text = ";\n\n".join(statements) + ";\n"
    return (
        OPEN_SEGMENTS_HEADER
        + "\n"
        + text.replace(f"'{_SEGMENTS_PLACEHOLDER.as_posix()}/", "getvariable('segments') || '/")
    )


if __name__ == "__main__":
    import sys

    sys.stdout.write(open_segments_sql())
