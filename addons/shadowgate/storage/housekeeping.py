"""Storage chores on the writer thread: one file per finished day, its daily totals, retention.

Runs after the writer has sealed its own rows, every housekeeping interval (30 s).
"""

from __future__ import annotations

import datetime as dt
import logging

from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import compact_closed_days
from shadowgate.storage.store import drop_expired_days
from shadowgate.storage.store import summarise_closed_days

log = logging.getLogger(__name__)

SUMMARISE_DAYS_PER_ROUND = 7  # ~0.1 s per day of 10k requests measured (scripts/bench_report.py)


def tidy_segments(writer: SegmentWriter, retention_days: int, today: dt.date | None = None) -> None:
    """Per finished day one file and its daily totals; detail past the retention period dropped
    (after its totals are safe). retention_days 0 keeps everything."""
    today = today or dt.datetime.now(dt.UTC).date()
    for table in writer.tables:
        compact_closed_days(writer.segments, table, today)
    for rollup in writer.rollups:
        summarise_closed_days(writer.segments, rollup, today, limit=SUMMARISE_DAYS_PER_ROUND)
    if retention_days:
        keep_from = today - dt.timedelta(days=retention_days)
        rollups = {r.source: r for r in writer.rollups}
        for table in writer.tables:
            dropped = drop_expired_days(writer.segments, table, keep_from, rollups.get(table))
            if dropped:
                log.info("shadowgate: retention dropped %d day(s) of %s detail before %s", dropped, table, keep_from)
