"""Budgets in process: the budget day's time zone, the bounded Retry-After and the reset time."""

from __future__ import annotations

import datetime as dt

import duckdb
import pytest
from mitmproxy import exceptions
from mitmproxy.test import taddons

from shadowgate.config.policy import Budget
from shadowgate.config.policy import Facts
from shadowgate.config.policy import Match
from shadowgate.enforce.budgets import BudgetTracker
from shadowgate.enforce.budgets import time_zone
from shadowgate.stages.decide import Decide
from shadowgate.stages.settings import ShadowgateSettings

NEW_YORK = "America/New_York"
DAILY = Budget(id="daily", line=1, per="user", match=Match(), tokens_per_day=100)
PER_MINUTE = Budget(id="rpm", line=2, per="user", match=Match(), requests_per_minute=2)
ALICE = Facts("api.openai.com", "openai", "llm-api", "openai-chat", "gpt-4o-mini", "alice", None, "10.0.0.1")


def utc(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.UTC)


def segment(segments, day: str, rows: list[tuple[str, int]]) -> None:
    """A sealed ai_requests segment of (naive UTC ts, tokens) rows for alice, as the writer lays it."""
    folder = segments / "ai_requests" / f"day={day}"
    folder.mkdir(parents=True, exist_ok=True)
    values = ", ".join(
        f"(TIMESTAMP '{ts}', 'api.openai.com', 'openai', 'llm-api', 'openai-chat', 'gpt-4o-mini', 'alice', "
        f"NULL, '10.0.0.1', {tokens}, 0, 0.0)"
        for ts, tokens in rows
    )
    con = duckdb.connect()
    con.execute(
        f"COPY (SELECT * FROM (VALUES {values}) AS t(ts, host, provider, category, wire_format, model, user_name, "
        f"user_group, client_ip, input_tokens, output_tokens, cost_usd)) TO '{folder / 'seg.parquet'}' (FORMAT parquet)"
    )
    con.close()


def test_a_spent_daily_budget_says_when_it_resets_but_retries_within_the_cap(tmp_path):
    tracker = BudgetTracker(zone=time_zone(NEW_YORK), retry_after_cap=60)
    now = utc("2025-03-01T03:00:00").timestamp()  # 22:00 on 28 February in New York
    tracker.rebuild([DAILY], tmp_path, now)  # nothing sealed yet: the budget day starts empty
    tracker.add([DAILY], ALICE, 150, None, dt.datetime(2025, 3, 1, 2, 0))  # 21:00 local: the same budget day
    verdict = tracker.check([DAILY], ALICE, now)
    assert verdict.exceeded is DAILY
    assert verdict.retry_after == 60  # not the 7,200 s until midnight
    assert verdict.reset_at == "2025-03-01T00:00:00-05:00"
    assert "resets at 2025-03-01T00:00:00-05:00" in verdict.reason
    # After New York's midnight (05:00 UTC) the day is new and the budget is fresh.
    assert tracker.check([DAILY], ALICE, utc("2025-03-01T05:00:01").timestamp()).exceeded is None


def test_the_cap_does_not_lengthen_a_short_wait(tmp_path):
    tracker = BudgetTracker(retry_after_cap=30)
    now = utc("2025-03-01T12:00:00").timestamp()
    tracker.note_request([PER_MINUTE], ALICE, now - 50)
    tracker.note_request([PER_MINUTE], ALICE, now - 10)
    verdict = tracker.check([PER_MINUTE], ALICE, now)
    assert verdict.exceeded is PER_MINUTE and verdict.retry_after == 11  # the oldest call leaves the window
    assert verdict.reset_at == "2025-03-01T12:00:11+00:00"
    late = utc("2025-03-01T23:59:58").timestamp()
    midnight = BudgetTracker(retry_after_cap=5)
    midnight.rebuild([DAILY], tmp_path, late)
    midnight.add([DAILY], ALICE, 100, None, dt.datetime(2025, 3, 1, 23, 59, 58))
    spent = midnight.check([DAILY], ALICE, late)
    assert spent.retry_after == 3 and spent.reset_at == "2025-03-02T00:00:00+00:00"


def test_rebuild_counts_the_local_day_across_two_utc_partitions(tmp_path):
    segments = tmp_path / "db.segments"
    segment(segments, "2025-02-28", [("2025-02-28 04:59:59", 1000), ("2025-02-28 05:00:00", 7)])
    segment(segments, "2025-03-01", [("2025-03-01 04:59:59", 11), ("2025-03-01 05:00:00", 1000)])
    now = utc("2025-03-01T03:00:00").timestamp()  # 28 February in New York: 05:00 UTC to 05:00 UTC
    tracker = BudgetTracker(zone=time_zone(NEW_YORK))
    tracker.rebuild([DAILY], segments, now)
    assert tracker.totals("daily", "alice", now) == (18.0, 0.0)
    in_utc = BudgetTracker()
    in_utc.rebuild([DAILY], segments, now)
    assert in_utc.totals("daily", "alice", now) == (1011.0, 0.0)  # the UTC day of 1 March


def test_time_zone_names_are_checked_at_start(tmp_path):
    assert time_zone("UTC") is dt.UTC and str(time_zone(NEW_YORK)) == NEW_YORK
    settings = ShadowgateSettings()
    decide = Decide(settings)
    with taddons.context(settings, decide) as tctx:
        tctx.options.update(confdir=str(tmp_path))
        with pytest.raises(exceptions.OptionsError, match="unknown time zone 'Mars/Olympus_Mons'"):
            tctx.configure(decide, shadowgate_budget_timezone="Mars/Olympus_Mons")
        with pytest.raises(exceptions.OptionsError, match="shadowgate_budget_retry_after must be >= 1"):
            tctx.configure(decide, shadowgate_budget_retry_after=0)
        tctx.configure(decide, shadowgate_budget_timezone="Europe/Berlin", shadowgate_budget_retry_after=20)
    assert str(decide.budgets.zone) == "Europe/Berlin" and decide.budgets.retry_after_cap == 20
