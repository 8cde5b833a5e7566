"""Budgets: tokens and dollars per day, requests per minute, per user or group.

Usage is what the record stage already writes. The writer thread adds each sealed row to the
running totals, and every half minute rebuilds today's totals from all sealed segments, so totals
survive a restart and include every proxy instance sharing the data directory. The event loop
only reads the totals (a dict lookup per matching budget).
Requests per minute are counted in this process only: a shared counter would cost a round trip
per request, and N instances behind a balancer can each be given 1/N of the limit.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from shadowgate.config.policy import Budget
from shadowgate.config.policy import Facts

REFRESH_SECONDS = 30.0


@dataclass(frozen=True, slots=True)
class Verdict:
    exceeded: Budget | None = None
    reason: str = ""
    retry_after: int = 0
    near: tuple[str, ...] = ()


OK = Verdict()


def subject_of(budget: Budget, facts: Facts) -> str | None:
    return facts.user if budget.per == "user" else facts.group


def seconds_to_midnight(now: float) -> int:
    today = dt.datetime.fromtimestamp(now, dt.UTC)
    midnight = (today + dt.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return max(1, int((midnight - today).total_seconds()) + 1)


class BudgetTracker:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._day = _utc_day(time.time())
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
                        return Verdict(
                            budget,
                            f"{budget.per} {subject} reached {budget.requests_per_minute} requests per minute (budget {budget.id})",
                            max(1, int(window[0] + 60 - now) + 1),
                        )
            tokens, usd = self.totals(budget.id, subject, now)
            for used, limit, unit in ((tokens, budget.tokens_per_day, "tokens"), (usd, budget.usd_per_day, "USD")):
                if limit is None:
                    continue
                if used >= limit:
                    amount = f"{limit:g} {unit}" if unit == "tokens" else f"${limit:g}"
                    return Verdict(
                        budget,
                        f"{budget.per} {subject} used today's {amount} (budget {budget.id})",
                        seconds_to_midnight(now),
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

    def totals(self, budget_id: str, subject: str, now: float | None = None) -> tuple[float, float]:
        day = _utc_day(time.time() if now is None else now)
        with self._lock:
            if day != self._day:
                return 0.0, 0.0
            base = self._base.get((budget_id, subject), (0.0, 0.0))
            local = self._local.get((budget_id, subject), (0.0, 0.0))
            return base[0] + local[0], base[1] + local[1]

    # --- writer thread -----------------------------------------------------------------------

    def add(self, budgets: Sequence[Budget], facts: Facts, tokens: int, usd: float | None, ts: dt.datetime) -> None:
        day = ts.date()
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
        day = _utc_day(time.time() if now is None else now)
        base: dict[tuple[str, str], list[float]] = {}
        folder = segments / "ai_requests" / f"day={day.isoformat()}"
        files = sorted(folder.glob("*.parquet")) if budgets else []
        if files:
            con = duckdb.connect()
            try:
                groups = con.execute(
                    """
                    SELECT host, provider, category, wire_format, model, user_name, user_group, client_ip,
                           sum(coalesce(input_tokens, 0) + coalesce(output_tokens, 0)), sum(coalesce(cost_usd, 0))
                    FROM read_parquet(?, union_by_name = true)
                    GROUP BY ALL
                    """,
                    [[str(f) for f in files]],
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


def _utc_day(now: float) -> dt.date:
    return dt.datetime.fromtimestamp(now, dt.UTC).date()
