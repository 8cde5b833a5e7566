"""The console's numbers: the weekly report's own runner and SQL, for the period the page asks for.

Every page is a `runner.Report` built by the report's own runner from the files PAGES names: the
overview, users, new-apps and MCP pages run the report's files (reports/*.sql), so their sections
equal `shadowgate report --format json` for the same period. A person's page runs the report's
set-up file that builds the period's rows (`cur`, reports/00_period.sql) and then console/sql/user/,
which filter those same rows by the DuckDB variable `console_user`; the alerts page runs
console/sql/alerts/ over the `alerts` table, filtered by `alert_event` and `alert_severity`.

Reports are cached for a few seconds per (period, page, variables): a console left open and
reloaded does not rescan the data each time, and a live page is never older than the cache time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from shadowgate.report import runner
from shadowgate.report.data import open_data
from shadowgate.report.period import Period
from shadowgate.report.period import date_period
from shadowgate.report.period import week_period

CONSOLE_SQL = Path(__file__).resolve().parent / "sql"


@dataclass(frozen=True, slots=True)
class Sources:
    """What the report reads besides the data: the catalog's names and the policy's statuses."""

    db: Path
    provider_status: dict[str, str]
    category_status: dict[str, str]
    rule_status: dict[str, str]
    providers: tuple[Any, ...]
    top: int


def load_sources(db: str, policy: str | None, providers: str, top: int, extra: Sequence[str] = ()) -> Sources:
    """The catalog (with its overlays) and policy, read once at start-up exactly as `shadowgate
    report` reads them."""
    from shadowgate.config.catalog import load_configured_catalog
    from shadowgate.config.policy import load_policy

    catalog = load_configured_catalog(providers, extra)
    loaded = load_policy(policy) if policy else None
    by_provider, by_category = runner.statuses(loaded)
    return Sources(
        Path(db).expanduser(),
        by_provider,
        by_category,
        runner.rule_statuses(loaded),
        tuple(catalog.providers.values()),
        top,
    )


def current_week(today: dt.date) -> Period:
    year, week, _ = today.isocalendar()
    return week_period(f"{year}-W{week:02d}")


def period_from_query(query: Mapping[str, str], today: dt.date) -> tuple[Period, str]:
    """The page's period and the query string that names it (for links): ?since=&until= (inclusive
    days), else ?week=, else this week so far. Raises ValueError for anything else."""
    since, until = query.get("since"), query.get("until")
    if since or until:
        try:
            first = dt.date.fromisoformat(since) if since else None
            last = dt.date.fromisoformat(until) if until else None
        except ValueError as e:
            raise ValueError("since and until are days like 2026-11-16") from e
        period = date_period(first, last, today)
        if period.days > MAX_DAYS:
            raise ValueError(f"at most {MAX_DAYS} days at once")
        return period, f"since={period.start}&until={period.end - dt.timedelta(days=1)}"
    week = query.get("week")
    period = week_period(week) if week else current_week(today)
    return period, f"week={period.label}"


def recent_weeks(today: dt.date, count: int = 12) -> list[str]:
    """The period picker's choices: this week and the ones before it, newest first."""
    labels = []
    for back in range(count):
        year, week, _ = (today - dt.timedelta(weeks=back)).isocalendar()
        labels.append(f"{year}-W{week:02d}")
    return labels


# What each page runs, in order: files of reports/*.sql and of console/sql/*/*.sql, by their
# `-- name:`. Only what the page shows: the overview does not pay for the MCP tables.
PAGES: dict[str, tuple[str, ...]] = {
    "overview": ("period", "first_seen", "headline", "apps", "unapproved", "unapproved_users", "cost_by_provider",
                 "cost_daily_by_app", "alert_severity", "alerts_count"),
    "users": ("period", "unapproved", "unapproved_users", "unapproved_groups", "cost_by_group", "cost_by_user",
              "budget_near_limit", "budget_rate_limited"),
    "user": ("period", "user_summary", "user_apps", "user_models", "user_daily", "decisions_daily", "user_decisions",
             "user_dlp", "user_chat", "user_mcp", "user_budgets", "user_events", "alert_severity", "user_alerts"),
    "new": ("period", "first_seen", "apps", "new_apps", "unknown_endpoints", "new_models", "host_candidates",
            "blind_spots", "keys"),
    "dlp": ("period", "decisions_daily", "dlp_by_type", "dlp_by_app", "policy_events", "chat_apps", "chat_apps_dlp",
            "chat_apps_parse"),
    "mcp": ("mcp", "mcp_servers", "mcp_tools", "mcp_users", "mcp_denials", "mcp_injection", "mcp_dlp"),
    "alerts": ("alert_severity", "alerts_period", "alerts_by_event", "alerts_daily", "alerts_recent"),
}  # fmt: skip
SEVERITIES = ("high", "medium", "low")  # console/sql/alerts/79_alert_severity.sql
MAX_DAYS = 366  # a longer ?since=&until= is refused: one page must not scan years


def page_queries() -> dict[str, list[runner.Query]]:
    """Each page's queries; a name no file has is an error at start-up, not on the first visit."""
    by_name = {q.name: q for q in runner.load_queries()}
    for folder in sorted(p for p in CONSOLE_SQL.iterdir() if p.is_dir()):
        by_name.update({q.name: q for q in runner.load_queries(folder)})
    return {page: [by_name[n] for n in names] for page, names in PAGES.items()}


REOPEN_SECONDS = 60.0


class ReportCache:
    """Each page's report, cached for `seconds`, over one set of views opened at most every REOPEN_SECONDS.

    Opening the data (attaching the file, listing the day folders, binding the views) takes about
    1.5 s at 10 M rows, so every page runs on a cursor of one shared connection: the views and
    DuckDB's cache of Parquet footers are shared, while each page's temp tables (`cur`) and
    variables are its cursor's own. The views list the days that hold detail when they are made;
    reopening every minute picks up a day that retention dropped or housekeeping summarised.
    """

    def __init__(self, sources: Sources, seconds: float = 30.0) -> None:
        self.sources = sources
        self.seconds = seconds
        self._base: tuple[float, duckdb.DuckDBPyConnection, str] | None = None
        self._cache: dict[tuple, tuple[float, runner.Report]] = {}
        self._lock = threading.Lock()
        self._queries = page_queries()

    def report(self, period: Period, page: str, variables: dict[str, str] | None = None) -> runner.Report:
        """Blocking (DuckDB): call it from a worker thread. `variables` are the page's own
        (console_user, alert_event, ...), set as DuckDB variables before its SQL runs."""
        variables = variables or {}
        key = (period.label, page, tuple(sorted(variables.items())))
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self.seconds:
                return hit[1]
        report = self._build(period, self._queries[page], variables)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.seconds}
            self._cache[key] = (now, report)
        return report

    def _build(self, period: Period, queries: list[runner.Query], variables: dict[str, str]) -> runner.Report:
        s = self.sources
        con, source = self._cursor()
        try:
            runner.set_variables(con, variables)
            return runner.build_report(
                con,
                source,
                str(s.db),
                period,
                provider_status=s.provider_status,
                category_status=s.category_status,
                rule_status=s.rule_status,
                providers=s.providers,
                top=s.top,
                queries=queries,
            )
        finally:
            con.close()

    def _cursor(self) -> tuple[duckdb.DuckDBPyConnection, str]:
        now = time.monotonic()
        with self._lock:
            if self._base is None or now - self._base[0] > REOPEN_SECONDS:
                # The old connection is not closed here: a page may still be running on a cursor of it.
                con, source = open_data(self.sources.db)
                con.execute("SET parquet_metadata_cache = true")
                self._base = (now, con, source)
            return self._base[1].cursor(), self._base[2]
