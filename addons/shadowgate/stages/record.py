"""Record: the one place rows are submitted, and the writer they go to.

The stages hand Record what happened (an AI call's FlowRecord and Outcome, a connection that
was not decrypted, a policy event, an MCP call); Record builds the row and queues it for the
writer thread (storage/store.py). On that thread, before a batch is sealed, ai_requests rows
are priced and counted for the budgets, and every 30 s the storage chores run.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import time
from collections.abc import Callable
from collections.abc import Iterable

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http

from shadowgate.config.attribution import Person
from shadowgate.config.catalog import site_of
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.flow import FlowRecord
from shadowgate.flow import Outcome
from shadowgate.flow import client_ip_of
from shadowgate.stages.decide import Decide
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.stages.settings import expand_path
from shadowgate.storage.housekeeping import tidy_segments
from shadowgate.storage.pricing import price_ai_request
from shadowgate.storage.rows import AiRequest
from shadowgate.storage.rows import HostSighting
from shadowgate.storage.rows import McpCallRow
from shadowgate.storage.rows import McpToolRow
from shadowgate.storage.rows import PolicyEvent
from shadowgate.storage.rows import WebActivityRow
from shadowgate.storage.rows import ai_request
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import ALL_ROLLUPS
from shadowgate.storage.schema import ALL_TABLES
from shadowgate.storage.schema import HOST_SIGHTINGS
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.schema import MCP_TOOLS
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.schema import WEB_ACTIVITY
from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import utc_from_timestamp
from shadowgate.webapps.rows import counts_as_ai_request
from shadowgate.webapps.rows import web_activity_row

log = logging.getLogger(__name__)


class Record:
    name = "shadowgate_record"

    def __init__(self, settings: ShadowgateSettings, decide: Decide) -> None:
        self.settings = settings
        self.decide = decide
        self.writer: SegmentWriter | None = None
        # Called with (table, row) for every row submitted, on the event loop, after the writer
        # has it: the SIEM feed, the alerts and the metrics (stages/siem.py, stages/health.py).
        # Each must be O(1), and none may raise.
        self.listeners: list[Callable[[str, object], None]] = []
        # The stages that record through settings (settings.record_connection, .record_event,
        # .writer) reach this instance from there.
        settings.record = self
        self._rolling_back = False

    def load(self, loader) -> None:
        # mitmproxy undoes a failed option update by announcing the old values as changed: a start
        # that fails on another option (a bad policy) must not then open, and create, the default
        # database the operator never asked for.
        loader.master.options.errored.connect(self._update_failed)

    def _update_failed(self, exc: Exception) -> None:
        self._rolling_back = True

    def configure(self, updated: set[str]) -> None:
        rolling_back, self._rolling_back = self._rolling_back, False
        if "shadowgate_db" in updated and not rolling_back:
            self._open_writer(expand_path(ctx.options.shadowgate_db))

    def running(self) -> None:
        # A master that registers the addons before setting the options announces only the options
        # it was given, so configure() may never have seen shadowgate_db (`shadowgate proxy`
        # passes it for this reason). A proxy that records nothing must not run: open the
        # default now, or stop.
        if self.writer is None:
            try:
                self._open_writer(expand_path(ctx.options.shadowgate_db))
            except exceptions.OptionsError as e:
                log.error("shadowgate: %s; stopping, a proxy that records nothing is not started", e)
                ctx.master.shutdown()

    def done(self) -> None:
        # SIGTERM runs done(): every row submitted so far is sealed before the process exits.
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    # --- the rows (event loop: each is one O(1) queue append) --------------------------------

    def ai_request(self, rec: FlowRecord, out: Outcome) -> None:
        """One AI call: its row in ai_requests (a chat web app's request: its web_activity row,
        and an ai_requests row only for a prompt)."""
        if self.writer is None:
            return
        if rec.web is not None:
            self.web_activity(web_activity_row(rec, rec.web, self.settings.secret, out.status_code))
            if not counts_as_ai_request(rec, out):
                return
        self._submit(AI_REQUESTS.name, ai_request(rec, out))

    def web_activity(self, row: WebActivityRow) -> None:
        """One classified chat-web-app request, client frame or refused page visit."""
        if self.writer is not None:
            self._submit(WEB_ACTIVITY.name, row)

    def connection(self, facts: Facts, note: str, decision: Decision | None = None) -> None:
        """An AI connection that is never decrypted: one ai_requests row, marked not inspected."""
        catalog = self.settings.catalog
        if self.writer is None or catalog is None:
            return
        rec = FlowRecord(
            started=time.time(),
            client_ip=facts.client_ip or "",
            person=Person(facts.user or facts.client_ip or "", facts.group),
            host=facts.host,
            site=site_of(facts.host),
            provider=catalog.match_host(facts.host),
            route=None,
            method="CONNECT",
            path="",
            inspected=False,
            inspect_note=note,
        )
        if decision is not None:
            rec.decision = decision
        self.ai_request(rec, Outcome())

    def host_sighting(self, facts: Facts, reason: str, decrypted: bool, anonymous: bool) -> None:
        """A connection to an uncatalogued host whose name looks like AI (host discovery)."""
        if self.writer is None:
            return
        user = facts.user or facts.client_ip or "?"
        if anonymous:
            # Distinct people still count (the fingerprint is stable under the instance's key), but
            # the table names nobody: the trade-off docs/catalog.md describes.
            digest = hmac.new(self.settings.secret, user.encode("utf-8", "surrogateescape"), hashlib.sha256)
            user = "anon:" + digest.hexdigest()[:16]
        row = HostSighting(
            ts=utc_from_timestamp(time.time()),
            host=facts.host,
            site=site_of(facts.host),
            reason=reason,
            user_name=user,
            user_group=facts.group,
            decrypted=decrypted,
        )
        self.writer.submit(HOST_SIGHTINGS.name, row)

    def policy_event(
        self,
        event: str,
        user: str,
        flow: http.HTTPFlow,
        host: str,
        provider: str | None,
        rule_id: str,
        detail: str = "",
    ) -> None:
        """A policy event that is not an AI call (a user chose to continue past a coaching page)."""
        if self.writer is None:
            return
        client_ip = client_ip_of(flow)
        row = PolicyEvent(
            ts=utc_from_timestamp(time.time()),
            event=event,
            user_name=user,
            user_group=self.settings.directory.person(user, client_ip).group,
            client_ip=client_ip,
            host=host,
            provider=provider,
            rule_id=rule_id,
            detail=detail,
        )
        self._submit(POLICY_EVENTS.name, row)

    def mcp_call(self, row: McpCallRow | tuple) -> None:
        """One JSON-RPC request to an MCP server (its row, or a tuple in MCP_CALLS' column order)."""
        if self.writer is not None:
            self._submit(MCP_CALLS.name, row)

    def mcp_tools(self, rows: Iterable[McpToolRow | tuple]) -> None:
        """The tools an MCP server advertised (rows, or tuples in MCP_TOOLS' column order)."""
        if self.writer is not None:
            for row in rows:
                self._submit(MCP_TOOLS.name, row)

    def _submit(self, table: str, row: object) -> None:
        self.writer.submit(table, row)  # type: ignore[union-attr]  # every caller checked it
        for listener in self.listeners:
            listener(table, row)

    # --- the writer and its thread -----------------------------------------------------------

    def _open_writer(self, db_path: str) -> None:
        writer = SegmentWriter(
            db_path, ALL_TABLES, rollups=ALL_ROLLUPS, enrich=self._enrich, housekeeping=self._housekeeping
        )
        try:
            writer.start()
        except Exception as e:
            raise exceptions.OptionsError(f"cannot prepare the database at {db_path}: {e}") from e
        old, self.writer = self.writer, writer
        if old is not None:
            old.close()
        log.info("shadowgate: recording to %s (segments in %s)", writer.db_path, writer.segments)

    def _enrich(self, table: str, rows: list) -> list:
        """Writer thread: price each AI call and count it for the budgets, off the event loop."""
        if table != AI_REQUESTS.name:
            return rows
        catalog = self.settings.catalog
        pricing = self.settings.pricing
        count = self.decide.count_usage
        for row in rows:
            if type(row) is AiRequest:
                price_ai_request(row, catalog, pricing)
                count(row)
        return rows

    def _housekeeping(self) -> None:
        """Writer thread, every 30 s: today's budget totals from all instances, then the chores."""
        writer = self.writer
        if writer is None:
            return
        self.decide.rebuild_budgets(writer.segments)
        tidy_segments(writer, self.settings.retention_days)
