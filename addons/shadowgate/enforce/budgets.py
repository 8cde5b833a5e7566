"""Budgets: tokens and dollars per day, requests per minute, per user or group.

Usage is what the record stage already writes. The writer thread adds each sealed row to the
running totals, and every half minute rebuilds today's totals from all sealed segments, so totals
survive a restart and include every proxy instance sharing the data directory. The event loop
only reads the totals (a dict lookup per matching budget).

A budget day runs midnight to midnight in `shadowgate_budget_timezone` (UTC by default). A refusal
says when the budget resets (the error message and `x-shadowgate-budget-reset`), but its
`Retry-After` is at most `shadowgate_budget_retry_after` seconds: SDKs honour Retry-After, and one
sent until midnight put the official ones to sleep for hours.

Calls in flight hold a reservation (tokens_per_day, usd_per_day): at decision time a call that the
budgets let through reserves an estimate of its tokens (request bytes / 4, plus its max_tokens or
DEFAULT_OUTPUT_ESTIMATE), and its USD at the rate the subject's calls cost today; the reservation
counts as used until the call's row is counted (the writer thread swaps it for the real usage
under one lock), or HOLD_SECONDS pass. Without it twenty concurrent calls all passed a 50-token
budget, as none of them was recorded yet.

A batch or a background response (red-team F41, F48) is checked with `spend`, its upper bound,
which must fit what is left today whole; its row carries that bound. A background response's
real usage is counted from its retrieval (stages/meter.py), which holds it until its row is.

A Realtime session is one call of unbounded length (red-team F23): its reservation is replaced
by the session's usage so far at each usage event the server sends (stages/realtime.py), and
each client message is checked against the daily budgets (a `response.create` also counts as a
request per minute), so a session stops within one answer of its subject's budget.

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
from shadowgate.wireformats.common import DEFAULT_OUTPUT_TOKENS
from shadowgate.wireformats.common import call_output_cap

REFRESH_SECONDS = 30.0
# Output tokens reserved for a call that names no maximum.
DEFAULT_OUTPUT_ESTIMATE = DEFAULT_OUTPUT_TOKENS
# A reservation whose row never comes (a row set aside, a flow lost) lapses after this long.
HOLD_SECONDS = 600.0
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


def estimate_tokens(request_bytes: int, body: object, batch_cap: int | None = None) -> int:
    """A call's tokens, guessed before it is sent: its bytes / 4 for the prompt (JSON syntax
    makes that an over-estimate for English), plus the output cap it asks for times the answers
    it asks for (`n`, `best_of`: red-team F104), else DEFAULT_OUTPUT_ESTIMATE; a batch's, its
    requests' caps summed (batch_cap). Cheap: a few dict lookups."""
    out = batch_cap if batch_cap is not None else call_output_cap(body)
    return request_bytes // 4 + (DEFAULT_OUTPUT_ESTIMATE if out is None else out)


class BudgetTracker:
    def __init__(self, zone: dt.tzinfo = dt.UTC, retry_after_cap: int = DEFAULT_RETRY_AFTER) -> None:
        self._lock = threading.Lock()
        self.zone = zone
        self.retry_after_cap = retry_after_cap
        self._day = self.day_of(time.time())
        self._base: dict[tuple[str, str], list[float]] = {}  # from sealed segments: [tokens, usd]
        self._local: dict[tuple[str, str], list[float]] = {}  # rows sealed since the last rebuild
        self._minute: dict[tuple[str, str], deque[float]] = {}
        # Calls in flight: their reservations per budget and subject, and per request id.
        self._reserved: dict[tuple[str, str], list[float]] = {}
        self._holds: dict[str, tuple[float, list[tuple[tuple[str, str], float, float]]]] = {}
        self._next_lapse = 0.0

    # --- event loop --------------------------------------------------------------------------

    def check(
        self,
        budgets: Sequence[Budget],
        facts: Facts,
        now: float | None = None,
        per_minute: bool = True,
        spend: int = 0,
        spender: str = "batch",
        spend_usd: float | None = None,
    ) -> Verdict:
        """Whether a call may go now. per_minute=False: the daily budgets only (a message inside
        a Realtime session that asks for no answer is no request to count). spend: tokens the
        call may use that must fit what is left today (a batch's or background response's upper
        bound), with their USD at its list price (spend_usd) or else at the rate the subject's
        calls cost today; spender names it."""
        if not budgets:
            return OK
        now = time.time() if now is None else now
        near: list[str] = []
        for budget in budgets:
            subject = subject_of(budget, facts)
            if subject is None or budget.match.check(facts) is not None:
                continue
            key = (budget.id, subject)
            if per_minute and budget.requests_per_minute is not None:
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
            tokens, usd = self.totals(budget.id, subject, now, in_flight=True)
            extra = (spend, spend_usd if spend_usd is not None else self._rate(key) * spend)
            for used, limit, unit, more in (
                (tokens, budget.tokens_per_day, "tokens", extra[0]),
                (usd, budget.usd_per_day, "USD", extra[1]),
            ):
                if limit is None:
                    continue
                if more and used + more > limit:
                    amount = f"{more:g} tokens" if unit == "tokens" else f"${more:.4f}"
                    return Verdict(
                        budget,
                        f"the {spender} may use {amount}, more than is left of today's budget {budget.id} "
                        f"for {budget.per} {subject}; "
                        + (
                            "send smaller batches or lower their max_tokens"
                            if spender == "batch"
                            else "lower its output cap"
                        ),
                        self._retry_after(next_midnight(now, self.zone).timestamp() - now),
                        reset_at=next_midnight(now, self.zone).isoformat(),
                    )
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

    def hold(
        self, request_id: str, budgets: Sequence[Budget], facts: Facts, tokens: int, now: float | None = None,
        usd: float | None = None,
    ) -> None:  # fmt: skip
        """Reserve a call's estimated tokens (and their cost at the subject's rate today, or `usd`
        when its price is known before it runs: one billed per character or image) on every daily
        budget it counts against, until add() counts its row or HOLD_SECONDS pass."""
        now = time.time() if now is None else now
        entries = []
        with self._lock:
            self._lapse(now)
            self._release(request_id)  # decided again (a realtime session's new model): one hold
            for budget in budgets:
                if budget.tokens_per_day is None and budget.usd_per_day is None:
                    continue
                subject = subject_of(budget, facts)
                if subject is None or budget.match.check(facts) is not None:
                    continue
                key = (budget.id, subject)
                used = self._used(key)
                cost = usd if usd is not None else tokens * used[1] / used[0] if used[0] > 0 else 0.0
                reserved = self._reserved.setdefault(key, [0.0, 0.0])
                reserved[0] += tokens
                reserved[1] += cost
                entries.append((key, float(tokens), cost))
            if entries:
                self._holds[request_id] = (now + HOLD_SECONDS, entries)

    def _release(self, request_id: str | None) -> None:
        """Drop a call's reservation (under the lock)."""
        held = self._holds.pop(request_id, None) if request_id else None
        for key, tokens, usd in held[1] if held else ():
            reserved = self._reserved.get(key)
            if reserved is not None:
                reserved[0] -= tokens
                reserved[1] -= usd
                if reserved[0] <= 0.5 and reserved[1] <= 1e-9:
                    del self._reserved[key]

    def _lapse(self, now: float) -> None:
        if now < self._next_lapse:
            return
        self._next_lapse = now + 10.0
        for request_id in [r for r, (until, _) in self._holds.items() if until < now]:
            self._release(request_id)

    def _rate(self, key: tuple[str, str]) -> float:
        """USD per token the subject's calls cost today (0 before its first priced call)."""
        with self._lock:
            tokens, usd = self._used(key)
        return usd / tokens if tokens > 0 else 0.0

    def _used(self, key: tuple[str, str]) -> tuple[float, float]:
        base = self._base.get(key, (0.0, 0.0))
        local = self._local.get(key, (0.0, 0.0))
        return base[0] + local[0], base[1] + local[1]

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

    def totals(
        self, budget_id: str, subject: str, now: float | None = None, in_flight: bool = False
    ) -> tuple[float, float]:
        """Today's recorded tokens and USD; in_flight: plus what calls in flight reserve."""
        day = self.day_of(time.time() if now is None else now)
        key = (budget_id, subject)
        with self._lock:
            tokens, usd = self._used(key) if day == self._day else (0.0, 0.0)
            if in_flight and (reserved := self._reserved.get(key)) is not None:
                tokens, usd = tokens + max(0.0, reserved[0]), usd + max(0.0, reserved[1])
            return tokens, usd

    # --- writer thread -----------------------------------------------------------------------

    def add(
        self, budgets: Sequence[Budget], facts: Facts, tokens: int, usd: float | None, ts: dt.datetime,
        request_id: str | None = None,
    ) -> None:  # fmt: skip
        """ts: the row's time, naive UTC as stored. The call's reservation (request_id) is dropped
        under the same lock, so its usage is never counted twice nor missing in between."""
        day = ts.replace(tzinfo=dt.UTC).astimezone(self.zone).date()
        with self._lock:
            self._release(request_id)
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
