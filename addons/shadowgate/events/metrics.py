"""The proxy's own metrics in the Prometheus text format (served by stages/health.py at /metrics).

The counters are kept from the rows Record submits (one dict increment each on the event loop,
no lock: only the event loop writes them), from log records (warnings and errors, counted by a
logging handler) and from the policy in force changing. The rest is read when scraped: the
writer's counts and backlog, the SIEM feed's and the alerts' counts, the size of the segments.
Format: https://prometheus.io/docs/instrumenting/exposition_formats/ (version 0.0.4).
"""

from __future__ import annotations

import collections
import logging
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import POLICY_EVENTS

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
STORAGE_SIZE_EVERY = 60.0  # walking a large segments tree is not for every scrape


# Decide logs each reload of a changed policy file with these words (stages/decide.py): counting
# the log records is exact where polling settings.policy would miss two changes within one poll.
RELOADED = "shadowgate: policy reloaded from"
NOT_RELOADED = "shadowgate: policy not reloaded"


class LogCounter(logging.Handler):
    """Counts warnings and errors by level, and Decide's policy reloads; formats nothing."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.counts: collections.Counter[str] = collections.Counter()
        self.reloads = 0
        self.reload_failures = 0

    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.WARNING:
            self.counts[record.levelname.lower()] += 1
        msg = record.msg
        if isinstance(msg, str) and msg.startswith("shadowgate: policy "):
            if msg.startswith(RELOADED):
                self.reloads += 1
            elif msg.startswith(NOT_RELOADED):
                self.reload_failures += 1


class Metrics:
    def __init__(self) -> None:
        self.requests: collections.Counter[tuple[str, str]] = collections.Counter()
        self.not_inspected: collections.Counter[str] = collections.Counter()
        self.dlp: collections.Counter[str] = collections.Counter()
        self.mcp: collections.Counter[str] = collections.Counter()
        self.policy_events: collections.Counter[str] = collections.Counter()
        self.policy_reloads = 0
        self.logs = LogCounter()
        self._progress: tuple[int, float] = (0, time.monotonic())  # (rows_written, when it last changed)
        self._storage: tuple[float, int | None] = (0.0, None)

    def row_submitted(self, table: str, row: Any) -> None:
        if type(row) is tuple:
            return  # rows submitted as tuples are the tests'; the stages submit dataclasses
        if table == AI_REQUESTS.name:
            provider = row.provider or "unknown"
            self.requests[(provider, row.decision or "allow")] += 1
            if not row.inspected:
                self.not_inspected[provider] += 1
            if row.dlp_action:
                self.dlp[row.dlp_action] += 1
        elif table == MCP_CALLS.name:
            self.mcp[row.decision or "allow"] += 1
            if row.dlp_action:
                self.dlp["mcp_" + row.dlp_action] += 1
        elif table == POLICY_EVENTS.name:
            self.policy_events[row.event or "?"] += 1

    def writer_lag(self, rows_written: int, backlog: int) -> float:
        """Seconds rows have waited while the writer made no progress (0 with nothing waiting)."""
        now = time.monotonic()
        if rows_written != self._progress[0] or not backlog:
            self._progress = (rows_written, now)
            return 0.0
        return now - self._progress[1]

    def storage_due(self) -> bool:
        return time.monotonic() - self._storage[0] >= STORAGE_SIZE_EVERY

    def set_storage_bytes(self, size: int | None) -> None:
        self._storage = (time.monotonic(), size)

    @property
    def storage_bytes(self) -> int | None:
        return self._storage[1]


def folder_bytes(folder: Path) -> int | None:
    """Total size of the files under a folder (a thread: it may be large or on a slow disk)."""
    total = 0
    try:
        for root, _, files in os.walk(folder):
            for name in files:
                try:
                    total += os.stat(os.path.join(root, name)).st_size
                except OSError:
                    pass
    except OSError:
        return None
    return total


def _label(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


class Exposition:
    """Builds the text: one HELP and TYPE line per metric, then its samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def add(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            tag = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
            self.lines.append(f"{name}{{{tag}}} {_number(value)}" if tag else f"{name} {_number(value)}")

    def one(self, name: str, kind: str, help_text: str, value: float | None) -> None:
        if value is not None:
            self.add(name, kind, help_text, [({}, value)])

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _number(value: float) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, int):
        return str(value)
    return repr(round(value, 6))


def exposition(m: Metrics, ready: bool, writer: Any, addons: Any) -> str:
    """The whole scrape: the counters kept here, the writer's, and those of the SIEM feed, the
    alerts and the telemetry export (the addons looked up by name: any of them may be absent)."""
    out = Exposition()
    out.one("shadowgate_ready", "gauge", "1 when every configured control can work (as /ready)", ready)
    out.add("shadowgate_requests_total", "counter", "AI calls recorded, by service and decision",
            [({"provider": p, "decision": d}, n) for (p, d), n in sorted(m.requests.items())])  # fmt: skip
    out.add("shadowgate_not_inspected_total", "counter", "AI connections not decrypted, by service",
            [({"provider": p}, n) for p, n in sorted(m.not_inspected.items())])  # fmt: skip
    out.add("shadowgate_dlp_actions_total", "counter", "DLP actions on prompts (mcp_*: on MCP calls)",
            [({"action": a}, n) for a, n in sorted(m.dlp.items())])  # fmt: skip
    out.add("shadowgate_mcp_calls_total", "counter", "MCP calls, by decision",
            [({"decision": d}, n) for d, n in sorted(m.mcp.items())])  # fmt: skip
    out.add("shadowgate_policy_events_total", "counter", "coach_continue, host_mismatch, ...",
            [({"event": e}, n) for e, n in sorted(m.policy_events.items())])  # fmt: skip
    out.one("shadowgate_policy_reloads_total", "counter", "policies put in force (the option set, or the file changed)",
            m.policy_reloads + m.logs.reloads)  # fmt: skip
    out.one("shadowgate_policy_reload_failures_total", "counter", "changed policy files refused (the old one stays)",
            m.logs.reload_failures)  # fmt: skip
    out.add("shadowgate_log_errors_total", "counter", "warnings and errors logged",
            [({"level": level}, m.logs.counts.get(level, 0)) for level in ("warning", "error", "critical")])  # fmt: skip
    if writer is not None:
        backlog = writer.backlog()
        out.one("shadowgate_rows_written_total", "counter", "rows sealed into segments", writer.rows_written)
        out.one("shadowgate_rows_dropped_total", "counter", "rows lost: unstorable, or storage failed too long",
                writer.rows_dropped)  # fmt: skip
        out.one("shadowgate_writer_backlog_rows", "gauge", "rows waiting to be sealed (the spool)", backlog)
        out.one("shadowgate_writer_lag_seconds", "gauge", "how long rows have waited without the writer progressing",
                m.writer_lag(writer.rows_written, backlog))  # fmt: skip
        out.one("shadowgate_storage_bytes", "gauge", "size of the Parquet segments (measured once a minute)",
                m.storage_bytes)  # fmt: skip
    siem = addons.get("shadowgate_siem")
    feed = getattr(siem, "feed", None)
    out.one("shadowgate_siem_events_sent_total", "counter", "SIEM lines accepted by their destinations",
            feed.sent if feed else 0)  # fmt: skip
    out.one("shadowgate_siem_events_dropped_total", "counter", "SIEM events lost (queue or backlog full)",
            feed.lost if feed else 0)  # fmt: skip
    out.one("shadowgate_siem_alerts_dropped_total", "counter", "alerts among the SIEM events lost",
            feed.alerts_lost if feed else 0)  # fmt: skip
    out.one("shadowgate_siem_destinations_failing", "gauge", "SIEM destinations whose last send failed",
            feed.failing if feed else 0)  # fmt: skip
    engine = getattr(addons.get("shadowgate_alerts"), "engine", None)
    out.one("shadowgate_alerts_total", "counter", "alerts raised", engine.raised if engine else 0)
    out.one("shadowgate_alerts_failed_total", "counter", "alerts a destination refused", engine.failed if engine else 0)
    out.one("shadowgate_alerts_dropped_total", "counter", "rows the alerts could not look at (their queue was full)",
            engine.dropped if engine else 0)  # fmt: skip
    pipeline = getattr(addons.get("shadowgate_telemetry"), "_pipeline", None)
    out.one(
        "shadowgate_otel_events_dropped_total",
        "counter",
        "telemetry events dropped (OTLP export queue full)",
        getattr(pipeline, "dropped", 0),
    )
    return out.text()
