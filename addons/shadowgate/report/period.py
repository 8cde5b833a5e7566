"""The report period: an ISO week or a range of days, and the period before it of the same length."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Period:
    start: dt.date  # inclusive
    end: dt.date  # exclusive
    label: str

    @property
    def days(self) -> int:
        return (self.end - self.start).days

    def previous(self) -> Period:
        """The same number of days just before; reports/00_period.sql computes the same start in SQL."""
        start = self.start - dt.timedelta(days=self.days)
        return Period(start, self.start, f"{start.isoformat()} .. {(self.start - dt.timedelta(days=1)).isoformat()}")


def week_period(week: str) -> Period:
    """'2026-W47' -> Monday 2026-11-16 up to (excluding) Monday 2026-11-23."""
    try:
        year, _, num = week.upper().partition("-W")
        start = dt.date.fromisocalendar(int(year), int(num), 1)
    except ValueError as e:
        raise ValueError(f"--week wants an ISO week like 2026-W47, not {week!r}") from e
    return Period(start, start + dt.timedelta(days=7), f"{int(year)}-W{int(num):02d}")


def last_complete_week(today: dt.date) -> Period:
    year, week, _ = (today - dt.timedelta(days=7)).isocalendar()
    return week_period(f"{year}-W{week:02d}")


def date_period(since: dt.date | None, until: dt.date | None, today: dt.date) -> Period:
    """--since/--until are both inclusive days; --until defaults to today, --since to 6 days earlier."""
    until = until or today
    since = since or until - dt.timedelta(days=6)
    if since > until:
        raise ValueError(f"--since {since} is after --until {until}")
    return Period(since, until + dt.timedelta(days=1), f"{since.isoformat()} .. {until.isoformat()}")
