"""Budgets: tokens and dollars per day, requests per minute, per user or group.

Usage is what the record stage already writes. The writer thread adds each sealed row to the
running totals, and every half minute rebuilds today's totals from all sealed segments, so totals
survive a restart and include every proxy instance sharing the data directory. The event loop
only reads the totals (a dict lookup per matching budget).

A budget day runs midnight to midnight in `shadowgate_budget_timezone` (UTC by default). A refusal
says when the budget resets (the error message and `x-shadowgate-budget-reset`), but its
`Retry-After` is at most `shadowgate_budget_retry_after` seconds: SDKs honour Retry-After, and one
sent until midnight put the official ones to sleep for hours.

Requests per minute are counted in this process only: a shared counter would cost a round trip
per request. Each instance enforces the whole limit, so behind a balancer of N instances a user
gets at most N x the limit (docs/deploy.md); give each instance 1/N of it for a hard cap.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
import zoneinfo
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from shadowgate.config.policy import Budget
from shadowgate.config.policy import Facts

REFRESH_SECONDS = 30.0
DEFAULT_RETRY_AFTER = 60
RESET_HEADER = "x-shadowgate-budget-reset"


@dataclass(frozen=True, slots=True)
class Verdict:
    exceeded: Budget | None = None
    reason: str = ""
    retry_after: int = 0  # seconds, at most the tracker's retry_after_cap
    near: tuple[str, ...] = ()
    reset_at: str = ""  # ISO 8601: when the exceeded budget allows calls again


OK = Verdict()


def subject_of(budget: Budget, facts: Facts) -> str | None:
    return facts.user if budget.per == "user" else facts.group


def time_zone(name: str) -> dt.tzinfo:
    """The budget day's time zone; ValueError for a name the system's time zone database lacks."""
    if name.upper() == "UTC":
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (an IANA name such as Europe/Berlin, or UTC)") from None


def next_midnight(now: float, zone: dt.tzinfo) -> dt.datetime:
    """The start of the next budget day, aware, in `zone` (DST-safe: built from the date)."""
    today = dt.datetime.fromtimestamp(now, zone).date()
    return dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), zone)


class BudgetTracker:
    def __init__(self, zone: dt.tzinfo = dt.UTC, retry_after_cap: int = DEFAULT_RETRY_AFTER) -> None:
        self._lock = threading.Lock()
        self.zone = zone
        self.retry_after_cap = retry_after_cap
        self._day = self.day_of(time.time())
        self._base: dict[tuple[str, str], list[float]] = {}  # from sealed segments: [tokens, usd]
        self._local: dict[tuple[str, str], list[float]] = {}  # rows sealed since the last rebuild
        self._minute: dict[tuple[str, str], deque[float]] = {}

    # --- event loop --------------------------------------------------------------------------

    def check(self, budgets: Sequence[Budget], facts: Facts, now: float | None = None) -> Verdict:
        if not budgets:
            return OK
        now = time.time() if now is None else now
        near: list[str] = []
        for budget in budgets:
            subject = subject_of(budget, facts)
            if subject is None or budget.match.check(facts) is not None:
                continue
            key = (budget.id, subject)
            if budget.requests_per_minute is not None:
                window = self._minute.get(key)
                if window is not None:
                    while window and window[0] <= now - 60:
                        window.popleft()
                    if len(window) >= budget.requests_per_minute:
                        free = window[0] + 60
                        return Verdict(
                            budget,
                            f"{budget.per} {subject} reached {budget.requests_per_minute} requests per minute (budget {budget.id})",
                            self._retry_after(free - now),
                            reset_at=dt.datetime.fromtimestamp(int(free) + 1, self.zone).isoformat(),
                        )
            tokens, usd = self.totals(budget.id, subject, now)
            for used, limit, unit in ((tokens, budget.tokens_per_day, "tokens"), (usd, budget.usd_per_day, "USD")):
                if limit is None:
                    continue
                if used >= limit:
                    amount = f"{limit:g} {unit}" if unit == "tokens" else f"${limit:g}"
                    reset = next_midnight(now, self.zone)
                    return Verdict(
                        budget,
                        f"{budget.per} {subject} used today's {amount} (budget {budget.id}); "
                        f"it resets at {reset.isoformat()}",
                        self._retry_after(reset.timestamp() - now),
                        reset_at=reset.isoformat(),
                    )
                if used >= budget.warn_at * limit:
                    near.append(f"{budget.id}:{unit}:{used / limit:.0%}")
        return Verdict(near=tuple(near)) if near else OK

    def note_request(self, budgets: Sequence[Budget], facts: Facts, now: float | None = None) -> None:
        now = time.time() if now is None else now
        for budget in budgets:
            if budget.requests_per_minute is None:
                continue
            subject = subject_of(budget, facts)
            if subject is not None and budget.match.check(facts) is None:
                self._minute.setdefault((budget.id, subject), deque()).append(now)

    def set_zone(self, zone: dt.tzinfo) -> None:
        """A new budget-day time zone. If today is another date there, the totals start over until
        the next rebuild (at most REFRESH_SECONDS) counts that day's rows."""
        with self._lock:
            self.zone = zone
            day = self.day_of(time.time())
            if day != self._day:
                self._day, self._base, self._local = day, {}, {}

    def _retry_after(self, seconds: float) -> int:
        return max(1, min(self.retry_after_cap, int(seconds) + 1))

    def day_of(self, now: float) -> dt.date:
        return dt.datetime.fromtimestamp(now, self.zone).date()

    def totals(self, budget_id: str, subject: str, now: float | None = None) -> tuple[float, float]:
        day = self.day_of(time.time() if now is None else now)
        with self._lock:
            if day != self._day:
                return 0.0, 0.0
            base = self._base.get((budget_id, subject), (0.0, 0.0))
            local = self._local.get((budget_id, subject), (0.0, 0.0))
            return base[0] + local[0], base[1] + local[1]

    # --- writer thread -----------------------------------------------------------------------

    def add(self, budgets: Sequence[Budget], facts: Facts, tokens: int, usd: float | None, ts: dt.datetime) -> None:
        """ts: the row's time, naive UTC as stored."""
        day = ts.replace(tzinfo=dt.UTC).astimezone(self.zone).date()
        with self._lock:
            self._roll(day)
            if day != self._day:
                return
            for budget in budgets:
                subject = subject_of(budget, facts)
                if subject is None or budget.match.check(facts) is not None:
                    continue
                totals = self._local.setdefault((budget.id, subject), [0.0, 0.0])
                totals[0] += tokens
                totals[1] += usd or 0.0

    def rebuild(self, budgets: Sequence[Budget], segments: Path, now: float | None = None) -> None:
        """Today's totals from every sealed segment (all instances). Runs on the writer thread,
        after its own rows are sealed, so nothing is counted twice."""
        day = self.day_of(time.time() if now is None else now)
        base: dict[tuple[str, str], list[float]] = {}
        # The segments are partitioned by UTC day: a budget day elsewhere spans two of them.
        start = dt.datetime.combine(day, dt.time(), self.zone).astimezone(dt.UTC).replace(tzinfo=None)
        end = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), self.zone).astimezone(dt.UTC)
        end = end.replace(tzinfo=None)
        utc_days = {start.date(), (end - dt.timedelta(microseconds=1)).date()}
        files = []
        for utc_day in sorted(utc_days) if budgets else ():
            files += sorted((segments / "ai_requests" / f"day={utc_day.isoformat()}").glob("*.parquet"))
        if files:
            con = duckdb.connect()
            try:
                groups = con.execute(
                    """
                    SELECT host, provider, category, wire_format, model, user_name, user_group, client_ip,
                           sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), sum(coalesce(cost_usd, 0))
                    FROM read_parquet(?, union_by_name = true)
                    WHERE ts >= ? AND ts < ?
                    GROUP BY ALL
                    """,
                    [[str(f) for f in files], start, end],
                ).fetchall()
            finally:
                con.close()
            for host, provider, category, wire_format, model, user, group, client_ip, tokens, usd in groups:
                facts = Facts(host or "", provider, category, wire_format, model, user, group, client_ip)
                for budget in budgets:
                    subject = subject_of(budget, facts)
                    if subject is None or budget.match.check(facts) is not None:
                        continue
                    totals = base.setdefault((budget.id, subject), [0.0, 0.0])
                    totals[0] += float(tokens or 0)
                    totals[1] += float(usd or 0)
        with self._lock:
            self._day = day
            self._base = base
            self._local = {}

    def _roll(self, day: dt.date) -> None:
        if day > self._day:
            self._day, self._base, self._local = day, {}, {}
