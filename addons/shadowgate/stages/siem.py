"""Siem and Alerts: every decision that matters, out to the security team (after Record).

Both listen to the rows Record submits (Record.listeners), so they see exactly what is stored:
an AI call's row (block, coach, redirect, rate limit, DLP action, budget warning, a connection
passed through or a pinned client), a policy event (coach_continue, host_mismatch), an MCP call
or a filtered MCP tool. On the event loop each row costs a few attribute reads and one deque
append; the events are built and sent on a thread of their own (events/feed.py, events/alerts.py).

    --set shadowgate_siem=json:/var/log/shadowgate/events.jsonl --set shadowgate_siem=cef:udp://siem:514

The alerts' rules are the policy's `alerts:` section (config/policy_alerts.py, docs/alerts.md).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from typing import Any

from mitmproxy import ctx
from mitmproxy import exceptions

from shadowgate.events.alerts import HELD_CALLS
from shadowgate.events.alerts import AlertEngine
from shadowgate.events.feed import EventFeed
from shadowgate.events.schema import wanted
from shadowgate.events.transports import parse_destination
from shadowgate.mcp.approval import Approvals
from shadowgate.mcp.approval import HeldCall
from shadowgate.stages.record import Record
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.storage.schema import ALL_TABLES

log = logging.getLogger(__name__)

_ROW_TYPES = {t.name: t.row_type for t in ALL_TABLES}
SIEM_OPTIONS = (
    "shadowgate_siem",
    "shadowgate_siem_every_call",
    "shadowgate_siem_queue",
    "shadowgate_siem_tls_ca",
)


def as_row(table: str, row: Any) -> Any:
    """A row submitted as a tuple (column order) as its dataclass, so the events read fields by name."""
    row_type = _ROW_TYPES.get(table)
    return row_type(*row) if type(row) is tuple and row_type is not None else row


class Siem:
    name = "shadowgate_siem"

    def __init__(self, settings: ShadowgateSettings, record: Record) -> None:
        self.settings = settings
        self.feed: EventFeed | None = None
        self.every_call = False
        self.required = False
        record.listeners.append(self.row_submitted)

    def load(self, loader) -> None:
        loader.add_option(
            "shadowgate_siem",
            Sequence[str],
            [],
            "SIEM destinations, FORMAT:TARGET, repeatable: FORMAT is json, syslog (RFC 5424) or cef; TARGET "
            "a file, '-' for stdout, or udp://HOST:PORT, tcp://HOST:PORT, tls://HOST:PORT. Empty: no feed. "
            "The event schema is in docs/siem.md.",
        )
        loader.add_option(
            "shadowgate_siem_every_call",
            bool,
            False,
            "Send every AI call to the SIEM, not only the decisions that matter (blocks, coaching, "
            "redirects, DLP, budgets, MCP refusals, passthrough).",
        )
        loader.add_option(
            "shadowgate_siem_queue",
            int,
            10_000,
            "Events waiting for the SIEM feed's thread, and per destination while it is down; beyond it "
            "events are dropped and counted (the proxy never waits for a SIEM).",
        )
        loader.add_option(
            "shadowgate_siem_tls_ca",
            str,
            "",
            "CA bundle that verifies tls:// SIEM destinations (default: the system's).",
        )
        loader.add_option(
            "shadowgate_siem_required",
            bool,
            False,
            "A failing SIEM destination (a full disk, an unwritable feed file, a SIEM that refuses) makes "
            "the proxy not ready (/ready answers 503). Off: it is a warning in /ready's answer and in the "
            "metrics, and the proxy stays ready.",
        )

    def configure(self, updated: set[str]) -> None:
        if "shadowgate_siem_required" in updated:
            self.required = ctx.options.shadowgate_siem_required
        if not set(SIEM_OPTIONS) & updated:
            return
        if ctx.options.shadowgate_siem_queue < 1:
            raise exceptions.OptionsError("shadowgate_siem_queue must be >= 1")
        try:
            destinations = [parse_destination(text) for text in ctx.options.shadowgate_siem]
        except ValueError as e:
            raise exceptions.OptionsError(f"shadowgate_siem: {e}") from e
        self.every_call = ctx.options.shadowgate_siem_every_call
        old, self.feed = self.feed, None
        if old is not None:
            # Its last try to send may wait on a connect timeout: not on the event loop.
            threading.Thread(target=old.close, name="shadowgate-siem-close", daemon=True).start()
        if destinations:
            feed = EventFeed(
                destinations, max_queue=ctx.options.shadowgate_siem_queue, tls_ca=ctx.options.shadowgate_siem_tls_ca
            )
            feed.start()
            self.feed = feed
            log.info("shadowgate: SIEM feed to %s", ", ".join(map(str, destinations)))

    def done(self) -> None:
        if self.feed is not None:
            self.feed.close()
            self.feed = None

    def row_submitted(self, table: str, row: Any) -> None:
        feed = self.feed
        if feed is None:
            return
        row = as_row(table, row)
        if wanted(table, row, self.every_call):
            feed.put(table, row)


class Alerts:
    name = "shadowgate_alerts"

    def __init__(
        self,
        settings: ShadowgateSettings,
        record: Record,
        siem: Siem,
        telemetry: Any = None,
        approvals: Approvals | None = None,
    ) -> None:
        self.settings = settings
        self.siem = siem
        # The OTLP export's queue losses (its pipeline exists only while export is on).
        self.engine = AlertEngine(
            settings, lambda: siem.feed, lambda: getattr(getattr(telemetry, "_pipeline", None), "dropped", 0)
        )
        record.listeners.append(self.row_submitted)
        if approvals is not None:
            approvals.on_hold.append(self.call_held)

    def running(self) -> None:
        self.engine.start()

    def done(self) -> None:
        self.engine.close()

    def row_submitted(self, table: str, row: Any) -> None:
        if self.settings.policy.alerts is not None:
            self.engine.put(table, as_row(table, row))

    def call_held(self, held: HeldCall) -> None:
        if self.settings.policy.alerts is not None:
            self.engine.put(HELD_CALLS, held)
