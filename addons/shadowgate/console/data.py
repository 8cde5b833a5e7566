"""The console's numbers: the weekly report's own runner and SQL, for the period the page asks for.

Every page is a `runner.Report`. The overview, apps, new-apps and MCP pages are the report itself
(reports/*.sql through runner.build_report), so they equal `shadowgate report --format json` for
the same period. A person's page runs the report's set-up file that builds the period's rows
(`cur`, reports/00_period.sql) and then console/sql/*.sql, which filter those same rows by the DuckDB variable
`console_user`: the same periods, app names and sanctioned status as the report.

Reports are cached for a few seconds per (period, user): a console left open and reloaded does
not rescan the data each time, and a live page is never older than the cache time.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowgate.report import runner
from shadowgate.report.data import open_data
from shadowgate.report.period import Period
from shadowgate.report.period import week_period

CONSOLE_SQL = Path(__file__).resolve().parent / "sql"


@dataclass(frozen=True, slots=True)
class Sources:
    """What the report reads besides the data: the catalog's names and the policy's statuses."""

    db: Path
    provider_status: dict[str, str]
    category_status: dict[str, str]
    providers: tuple[Any, ...]
    top: int


def load_sources(db: str, policy: str | None, providers: str, top: int) -> Sources:
    """The catalog and policy, read once at start-up exactly as `shadowgate report` reads them."""
    from shadowgate.config.catalog import load_catalog
    from shadowgate.config.policy import load_policy

    catalog = load_catalog(providers)
    by_provider, by_category = runner.statuses(load_policy(policy) if policy else None)
    return Sources(Path(db).expanduser(), by_provider, by_category, tuple(catalog.providers.values()), top)


def current_week(today: dt.date) -> Period:
    year, week, _ = today.isocalendar()
    return week_period(f"{year}-W{week:02d}")


def recent_weeks(today: dt.date, count: int = 12) -> list[str]:
    """The period picker's choices: this week and the ones before it, newest first."""
    labels = []
    for back in range(count):
        year, week, _ = (today - dt.timedelta(weeks=back)).isocalendar()
        labels.append(f"{year}-W{week:02d}")
    return labels


class ReportCache:
    def __init__(self, sources: Sources, seconds: float = 30.0) -> None:
        self.sources = sources
        self.seconds = seconds
        self._cache: dict[tuple[str, str | None], tuple[float, runner.Report]] = {}
        self._lock = threading.Lock()
        self._user_queries = runner.load_queries(CONSOLE_SQL)

    def report(self, period: Period, user: str | None = None) -> runner.Report:
        """Blocking (DuckDB): call it from a worker thread."""
        key = (period.label, user)
        now = time.monotonic()
        with self._lock:
            hit = self._cache.get(key)
            if hit and now - hit[0] < self.seconds:
                return hit[1]
        report = self._build(period, user)
        with self._lock:
            self._cache = {k: v for k, v in self._cache.items() if now - v[0] < self.seconds}
            self._cache[key] = (now, report)
        return report

    def _build(self, period: Period, user: str | None) -> runner.Report:
        s = self.sources
        queries = runner.load_queries()
        if user is not None:
            # reports/00_period.sql builds `cur`, the period's rows; the person's queries filter it.
            queries = [q for q in queries if q.name == "period"] + self._user_queries
        con, source = open_data(s.db)
        try:
            if user is not None:
                runner.set_variables(con, {"console_user": user})
            return runner.build_report(
                con,
                source,
                str(s.db),
                period,
                provider_status=s.provider_status,
                category_status=s.category_status,
                providers=s.providers,
                top=s.top,
                queries=queries,
            )
        finally:
            con.close()
