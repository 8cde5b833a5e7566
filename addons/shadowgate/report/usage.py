"""The usage table: who uses which AI service and model, with tokens and cost.

It reads the report's views (shadowgate.report.data.open_data): ai_requests_daily has every day,
from the detail where it is kept and from the stored daily totals where retention dropped it, so
`usage` and `report` count the same requests.
"""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from shadowgate.report.data import open_data
from shadowgate.resources import REPORTS_DIR
from shadowgate.storage.store import segments_dir_for

# Totals from the daily view; whether a group's usage was estimated is only in the detail (a flag
# the daily totals do not keep), so days past retention read as not estimated.
USAGE_SQL = """
WITH totals AS (
    SELECT user_name, provider, coalesce(model, '-') AS model, sum(requests) AS requests,
           sum(input_tokens) AS input_tokens, sum(cached_input_tokens) AS cached, sum(output_tokens) AS output_tokens,
           sum(reasoning_tokens) AS reasoning, sum(cost_usd) AS cost_usd,
           coalesce(sum(requests) FILTER (WHERE NOT inspected), 0) AS not_inspected
    FROM ai_requests_daily WHERE day >= $since GROUP BY ALL),
estimated AS (
    SELECT coalesce(user_name, client_ip, '?') AS user_name, provider, coalesce(model, response_model, '-') AS model,
           bool_or(usage_estimated) AS estimated
    FROM ai_requests WHERE day >= $since GROUP BY ALL)
SELECT t.user_name, t.provider, t.model, t.requests, t.input_tokens, t.cached, t.output_tokens, t.reasoning,
       t.cost_usd, coalesce(e.estimated, false) AS estimated, t.not_inspected
FROM totals t LEFT JOIN estimated e USING (user_name, provider, model)
ORDER BY t.cost_usd DESC NULLS LAST, t.requests DESC, t.user_name, t.provider, t.model
"""


def first_day(days: int, today: dt.date | None = None) -> dt.date:
    """--days N: today (UTC) and the N-1 days before it."""
    today = today or dt.datetime.now(dt.UTC).date()
    return today - dt.timedelta(days=max(days, 1) - 1)


def usage_rows(db: Path, days: int = 7) -> list[tuple]:
    con, _ = open_data(db)
    try:
        return con.execute(USAGE_SQL, {"since": first_day(days)}).fetchall()
    finally:
        con.close()


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def usage_table(rows: list[tuple], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in (
        "user",
        "provider",
        "model",
        "requests",
        "input tok",
        "cached",
        "output tok",
        "reasoning",
        "cost USD",
        "notes",
    ):
        table.add_column(name, justify="right" if name not in ("user", "provider", "model", "notes") else "left")
    for user, provider, model, requests, inp, cached, out, reasoning, cost, estimated, blind in rows:
        notes = []
        if estimated:
            notes.append("estimated")
        if blind:
            notes.append(f"{blind} not inspected")
        table.add_row(
            escape(user),
            escape(provider or "-"),
            escape(model),
            _n(requests),
            _n(inp),
            _n(cached),
            _n(out),
            _n(reasoning),
            "–" if cost is None else f"{cost:.6f}",
            ", ".join(notes),  # no price: unknown, not 0
        )
    return table


def query_hint(db: Path) -> str:
    """How to query the data yourself: the database file is in DuckDB 1.0's storage format, which
    every duckdb CLI from 1.0 on opens (storage/viewfile.py); the Parquet segments any version reads."""
    segments = db if db.is_dir() else segments_dir_for(db)
    quoted = str(segments).replace("'", "''")  # a SQL string literal
    readme = REPORTS_DIR / "README.md"
    lines = [f"Query it yourself ({readme if readme.is_file() else 'reports/README.md'}):"]
    if not db.is_dir():
        lines += [
            f"  with the duckdb CLI, 1.0 or newer:  duckdb -readonly {db}",
            f"  or the proxy's own DuckDB:  {sys.executable} -c \"import duckdb; duckdb.connect('{db}', read_only=True)"
            ".sql('SELECT * FROM ai_requests_daily').show()\"",
        ]
    lines += [
        "  or without the file (any duckdb CLI), from the Parquet segments:",
        f'    duckdb -cmd "SET VARIABLE segments = \'{quoted}\'" -cmd ".read {REPORTS_DIR / "open_segments.sql"}"',
    ]
    return "\n".join(lines)


def print_usage(db: Path, days: int = 7, console: Console | None = None, hint: bool = True) -> int:
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # piped into a file or CI log: don't truncate
    try:
        rows = usage_rows(db, days)
    except FileNotFoundError:
        print(f"shadowgate: no database at {db} (start the proxy first, or pass --db)", file=sys.stderr)
        return 1
    except duckdb.Error as e:
        print(f"shadowgate: cannot read {db}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    since = first_day(days)
    console.print(usage_table(rows, f"AI usage since {since} (UTC days, {days} including today; {db})"))
    if hint:
        console.print(escape(query_hint(db)), soft_wrap=True, highlight=False)
    return 0
