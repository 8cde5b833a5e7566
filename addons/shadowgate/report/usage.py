"""The usage table: who uses which AI service and model, with tokens and cost."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import duckdb
from rich.console import Console
from rich.table import Table

USAGE_SQL = """
SELECT
    user_name,
    provider,
    coalesce(response_model, model, '-') AS model,
    count(*) AS requests,
    sum(input_tokens) AS input_tokens,
    sum(cached_input_tokens) AS cached,
    sum(output_tokens) AS output_tokens,
    sum(reasoning_tokens) AS reasoning,
    sum(cost_usd) AS cost_usd,
    bool_or(usage_estimated) AS estimated,
    count(*) FILTER (WHERE NOT inspected) AS not_inspected
FROM ai_requests
WHERE ts >= ?
GROUP BY ALL
ORDER BY cost_usd DESC NULLS LAST, requests DESC
"""


def usage_rows(db: Path, days: int = 7) -> list[tuple]:
    since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=days)
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(USAGE_SQL, [since]).fetchall()
    finally:
        con.close()


def _n(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def usage_table(rows: list[tuple], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    for name in ("user", "provider", "model", "requests", "input tok", "cached", "output tok", "reasoning", "cost USD", "notes"):
        table.add_column(name, justify="right" if name not in ("user", "provider", "model", "notes") else "left")
    for user, provider, model, requests, inp, cached, out, reasoning, cost, estimated, blind in rows:
        notes = []
        if estimated:
            notes.append("estimated")
        if blind:
            notes.append(f"{blind} not inspected")
        table.add_row(
            user, provider, model, _n(requests), _n(inp), _n(cached), _n(out), _n(reasoning),
            "-" if cost is None else f"{cost:.6f}", ", ".join(notes),
        )
    return table


def print_usage(db: Path, days: int = 7, console: Console | None = None) -> int:
    console = console or Console()
    if not console.is_terminal:
        console.width = max(console.width, 150)  # piped into a file or CI log: don't truncate
    if not db.exists():
        print(f"shadowgate: no database at {db} (start the proxy first, or pass --db)", file=sys.stderr)
        return 1
    try:
        rows = usage_rows(db, days)
    except duckdb.Error as e:
        print(f"shadowgate: cannot read {db}: {str(e).splitlines()[0]}", file=sys.stderr)
        return 1
    console.print(usage_table(rows, f"AI usage, last {days} days ({db})"))
    return 0
