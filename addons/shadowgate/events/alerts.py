"""Alerts: the policy's `alerts:` rules over the recorded rows, deduplicated, rate-limited, delivered.

The event loop only appends rows to a bounded queue (put); this module's thread turns them into
alerts, sends them (webhook, e-mail, syslog: events/deliver.py) and records each in the `alerts`
table through the writer. What counts as "new" is judged against the database, read once at
start: an app or endpoint already in ai_requests is not new, and a crowd of users counts the
people of the last 30 days. Every 5 s the thread also checks storage and the SIEM feed, and
raises storage_failure when either fails or loses rows, or the OTLP export drops events.

MCP approvals: a call put on hold arrives as a HeldCall (mcp/approval.py tells the Alerts addon,
before any decision); its end (denied, timed out, abandoned) arrives as its mcp_calls row. Neither
carries the call's arguments. Every alert sent also goes into the SIEM feed, when there is one.
"""

from __future__ import annotations

import collections
import datetime as dt
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from typing import TYPE_CHECKING
from typing import Any

import duckdb

from shadowgate.config.policy_alerts import AlertRule
from shadowgate.config.policy_alerts import AlertsPolicy
from shadowgate.events.deliver import DeliveryError
from shadowgate.events.deliver import SmtpServer
from shadowgate.events.deliver import post_json
from shadowgate.events.deliver import secret_from
from shadowgate.events.deliver import send_mail
from shadowgate.events.deliver import send_syslog
from shadowgate.events.deliver import webhook_payload
from shadowgate.events.schema import HOSTNAME
from shadowgate.events.schema import PINNED_PASSED_NOTE
from shadowgate.events.schema import alert_event
from shadowgate.events.transports import as_utf8
from shadowgate.mcp.approval import ABANDONED
from shadowgate.mcp.approval import DENIED
from shadowgate.mcp.approval import TIMEOUT
from shadowgate.mcp.approval import HeldCall
from shadowgate.report.runner import SANCTIONED
from shadowgate.report.runner import statuses
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import ALERTS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import MCP_TOOLS
from shadowgate.storage.rows import UNKNOWN_PROVIDER
from shadowgate.storage.rows import AlertRow
from shadowgate.storage.store import sql_path
from shadowgate.storage.store import utc_from_timestamp

if TYPE_CHECKING:
    from shadowgate.events.feed import EventFeed
    from shadowgate.stages.settings import ShadowgateSettings

log = logging.getLogger(__name__)

MAX_QUEUE = 10_000
HEALTH_EVERY = 5.0
CROWD_DAYS = 30
HELD_CALLS = "held_calls"  # the queue's table name for an MCP call put on hold
APPROVAL_EVENTS = {DENIED: "mcp_approval_denied", TIMEOUT: "mcp_approval_timeout", ABANDONED: "mcp_approval_timeout"}


@dataclass(slots=True)
class Alert:
    event: str
    key: str
    title: str
    text: str
    user: str | None = None
    host: str | None = None
    provider: str | None = None
    request_id: str | None = None  # the call behind it, when there is one


class AlertEngine:
    def __init__(
        self,
        settings: ShadowgateSettings,
        siem_feed: Callable[[], EventFeed | None],
        telemetry_dropped: Callable[[], int] = lambda: 0,
    ) -> None:
        self.settings = settings
        self.siem_feed = siem_feed
        self.telemetry_dropped = telemetry_dropped
        self._queue: collections.deque[tuple[str, Any]] = collections.deque()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self.dropped = 0
        self.raised = 0
        self.failed = 0
        self._seeded = False
        self.seen_providers: set[str] = set()
        self.seen_sites: set[str] = set()
        self.crowds: dict[str, set[str]] = collections.defaultdict(set)
        self._last_sent: dict[tuple[str, str], float] = {}
        self._suppressed: collections.Counter[tuple[str, str]] = collections.Counter()
        self._sent_times: dict[str, collections.deque[float]] = collections.defaultdict(collections.deque)
        self._health_due = 0.0
        self._rows_dropped_seen = 0
        self._siem_lost_seen = 0
        self._otel_dropped_seen = 0
        self._drop_logged = 0.0

    # --- event loop ---------------------------------------------------------------------------

    def put(self, table: str, row: Any) -> None:
        if len(self._queue) >= MAX_QUEUE:
            self.dropped += 1
            if time.monotonic() - self._drop_logged > 30:
                self._drop_logged = time.monotonic()
                log.error("shadowgate: the alerts are %d rows behind; %d rows not looked at", MAX_QUEUE, self.dropped)
            return
        self._queue.append((table, row))

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        if self._thread is None:
            self._stopping = False
            self._thread = threading.Thread(target=self._run, name="shadowgate-alerts", daemon=True)
            self._thread.start()

    def close(self, timeout: float = 15.0) -> None:
        if self._thread is not None:
            self._stopping = True
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while True:
            stopping = self._stopping
            policy = self.settings.policy.alerts
            try:
                if policy is not None and policy.rules:
                    if not self._seeded:
                        self._seed()
                    self._drain(policy)
                    if time.monotonic() >= self._health_due:
                        self._health_due = time.monotonic() + HEALTH_EVERY
                        self._check_health(policy)
                else:
                    self._queue.clear()
            except Exception:
                log.exception("shadowgate: the alerts failed a batch")
            if stopping:
                return
            time.sleep(0.25)

    # --- what the rows mean -------------------------------------------------------------------

    def _seed(self) -> None:
        """What the database already knows: apps and endpoints seen, and the recent crowds."""
        self._seeded = True
        writer = self.settings.writer
        if writer is None:
            return
        glob = sql_path(writer.segments / AI_REQUESTS.name / "*" / "*.parquet")
        since = dt.datetime.now(dt.UTC).replace(tzinfo=None) - dt.timedelta(days=CROWD_DAYS)
        con = duckdb.connect()
        try:
            rows = con.execute(
                f"SELECT provider, site, list(DISTINCT coalesce(user_name, client_ip)) FILTER (WHERE ts >= ?) "
                f"FROM read_parquet('{glob}', union_by_name = true) GROUP BY ALL",
                [since],
            ).fetchall()
        except duckdb.Error as e:
            log.warning("shadowgate: alerts cannot read what was seen before (%s); everything counts as new", e)
            return
        finally:
            con.close()
        for provider, site, users in rows:
            if provider and provider != UNKNOWN_PROVIDER:
                self.seen_providers.add(provider)
            elif site:
                self.seen_sites.add(site)
            self.crowds[provider or ""].update(u for u in users or () if u)

    def _drain(self, policy: AlertsPolicy) -> None:
        queue = self._queue
        for _ in range(len(queue)):
            table, row = queue.popleft()
            for alert in self.alerts_of(table, row, policy):
                self._raise(alert, policy)

    def alerts_of(self, table: str, row: Any, policy: AlertsPolicy) -> list[Alert]:
        found: list[Alert] = []
        if table == AI_REQUESTS.name:
            who = row.user_name or row.client_ip or "?"
            provider = row.provider
            if provider and provider != UNKNOWN_PROVIDER and provider not in self.seen_providers:
                self.seen_providers.add(provider)
                found.append(Alert("new_app", provider, f"New AI app: {provider}",
                                   f"{who} used {provider} ({row.host}), not seen before", who, row.host, provider))  # fmt: skip
            if provider == UNKNOWN_PROVIDER and row.site and row.site not in self.seen_sites:
                self.seen_sites.add(row.site)
                found.append(Alert("unknown_endpoint", row.site, f"Unknown AI endpoint: {row.host}",
                                   f"{who} called an AI API on {row.host}, which the catalog does not know", who, row.host))  # fmt: skip
            found.extend(self._crowd(policy, provider, row.category, who, row.host))
            if row.dlp_action in ("block", "would_block"):
                found.append(Alert("dlp_block", f"{who}|{row.host}", f"DLP {row.dlp_action.replace('_', ' ')}: {who}",
                                   f"a prompt from {who} to {row.host} held {row.dlp_findings}", who, row.host, provider))  # fmt: skip
            if row.decision in ("rate_limit", "would_rate_limit"):
                found.append(Alert("budget_crossed", f"{row.rule_id}|{who}", f"Budget exceeded: {row.rule_id}",
                                   f"{who} is over budget {row.rule_id}; calls are refused", who, row.host, provider))  # fmt: skip
            elif row.budget_status:
                for near in row.budget_status.split(","):
                    budget = near.split(":", 1)[0]
                    found.append(Alert("budget_crossed", f"{budget}|{who}|near", f"Budget nearly used: {budget}",
                                       f"{who} has used {near.rsplit(':', 1)[-1]} of budget {budget}", who, row.host, provider))  # fmt: skip
            if row.inspect_note == PINNED_PASSED_NOTE:
                found.append(Alert("pinned_passthrough", f"{who}|{row.host}", f"Pinned client passed through: {row.host}",
                                   f"a client of {who} pins certificates; its traffic to {row.host} is not inspected", who, row.host, provider))  # fmt: skip
        elif table == HELD_CALLS:
            found.append(_held(row))
        elif table == MCP_CALLS.name and row.decision in APPROVAL_EVENTS:
            found.append(_approval_end(row))
        elif table == MCP_CALLS.name and row.decision in ("block", "would_block"):
            who = row.user_name or row.client_ip or "?"
            found.append(Alert("mcp_refusal", f"{who}|{row.host}|{row.tool_name}", f"MCP call refused: {row.tool_name or row.method}",
                               f"{who} called {row.tool_name or row.method} on {row.host}; rule {row.rule_id}", who, row.host))  # fmt: skip
        elif table == MCP_TOOLS.name and row.filtered:
            who = row.user_name or "?"
            found.append(Alert("mcp_refusal", f"{who}|{row.host}|{row.tool_name}", f"MCP tool hidden: {row.tool_name}",
                               f"the tool {row.tool_name} of {row.host} was withheld from {who}; rule {row.rule_id}", who, row.host))  # fmt: skip
        for alert in found:  # the call that raised it: ai_requests / mcp_calls request_id, the SIEM's event.id
            alert.request_id = alert.request_id or getattr(row, "request_id", None)
        return found

    def _crowd(self, policy: AlertsPolicy, provider: str | None, category: str | None, who: str, host: str | None) -> list[Alert]:  # fmt: skip
        rules = policy.rules_for("unapproved_users")
        if not rules or not provider:
            return []
        by_provider, by_category = statuses(self.settings.policy)
        if (by_provider.get(provider) or by_category.get(category or "")) == SANCTIONED:
            return []
        users = self.crowds[provider]
        if who in users:
            return []
        users.add(who)
        return [
            Alert(
                "unapproved_users",
                f"{provider}|{rule.users}",
                f"{provider} reached {rule.users} users",
                f"{len(users)} people now use {provider}, which is not sanctioned (latest: {who})",
                who,
                host,
                provider,
            )  # fmt: skip
            for rule in rules
            if len(users) == rule.users
        ]

    def _check_health(self, policy: AlertsPolicy) -> None:
        if not policy.rules_for("storage_failure"):
            return
        alerts = []
        writer = self.settings.writer
        if writer is not None:
            if writer.last_error:
                alerts.append(Alert("storage_failure", "storage", "Storage is failing", writer.last_error))
            if writer.rows_dropped > self._rows_dropped_seen:
                lost = writer.rows_dropped - self._rows_dropped_seen
                self._rows_dropped_seen = writer.rows_dropped
                alerts.append(Alert("storage_failure", "storage-loss", "Rows lost", f"{lost} rows could not be stored"))
        feed = self.siem_feed()
        if feed is not None:
            if feed.last_error:
                alerts.append(Alert("storage_failure", "siem", "SIEM feed failing", feed.last_error))
            if feed.lost > self._siem_lost_seen:
                lost = feed.lost - self._siem_lost_seen
                self._siem_lost_seen = feed.lost
                alerts.append(Alert("storage_failure", "siem-loss", "SIEM events lost", f"{lost} events were dropped"))
        dropped = self.telemetry_dropped()
        if dropped > self._otel_dropped_seen:
            lost = dropped - self._otel_dropped_seen
            self._otel_dropped_seen = dropped
            alerts.append(Alert("storage_failure", "otel-loss", "Telemetry events lost",
                                f"{lost} OpenTelemetry events were dropped: the OTLP exporter is not keeping up"))  # fmt: skip
        for alert in alerts:
            self._raise(alert, policy)

    # --- deduplicate, rate-limit, deliver, record ---------------------------------------------

    def _raise(self, alert: Alert, policy: AlertsPolicy) -> None:
        for rule in policy.rules_for(alert.event):
            key = (rule.id, alert.key)
            now = time.monotonic()
            last = self._last_sent.get(key)
            sent = self._sent_times[rule.id]
            while sent and now - sent[0] > 3600:
                sent.popleft()
            if (last is not None and now - last < rule.every) or len(sent) >= rule.max_per_hour:
                self._suppressed[key] += 1
                continue
            self._last_sent[key] = now
            sent.append(now)
            self._deliver(rule, alert, policy, self._suppressed.pop(key, 0))

    def _deliver(self, rule: AlertRule, alert: Alert, policy: AlertsPolicy, suppressed: int) -> None:
        alert = _writable(alert)
        fields = {"event": alert.event, "rule": rule.id, "user": alert.user, "host": alert.host,
                  "app": alert.provider, "proxy": HOSTNAME, "suppressed": suppressed or None}  # fmt: skip
        row = AlertRow(utc_from_timestamp(time.time()), rule.id, alert.event, alert.key, f"{alert.title}: {alert.text}",
                       alert.user, alert.host, alert.provider, ",".join(rule.to), suppressed=suppressed)  # fmt: skip
        alert_id = uuid.uuid4().hex
        errors = []
        for name in rule.to:
            dest = policy.destinations[name]
            try:
                if dest.webhook:
                    post_json(dest.webhook, webhook_payload(dest.shape, alert.title, alert.text, fields))
                elif dest.email and dest.smtp:
                    password = secret_from(dest.password_env, dest.password_file)
                    server = SmtpServer.parse(dest.smtp, starttls=dest.starttls, user=dest.user, password=password)
                    body = alert.text + "\n\n" + "\n".join(f"{k}: {v}" for k, v in fields.items() if v is not None)
                    send_mail(server, dest.sender, dest.email, f"[shadowgate] {alert.title}", body)
                elif dest.syslog:
                    send_syslog(dest.syslog, alert_event(row, alert_id, alert.request_id))
            except DeliveryError as e:
                errors.append(f"{name}: {e}")
            except Exception as e:  # a bug here fails this destination, not the alert's others or its record
                log.exception("shadowgate: alert %s: destination %s failed", rule.id, name)
                errors.append(f"{name}: {type(e).__name__}")
        self.raised += 1
        if errors:
            self.failed += 1
            log.error("shadowgate: alert %s not delivered: %s", rule.id, "; ".join(errors))
        row.delivered = not errors
        row.delivery_error = "; ".join(errors)[:1000] or None
        feed = self.siem_feed()
        if feed is not None:  # delivery errors stay out: the alerts table and the log have them
            feed.put_event(alert_event(row, alert_id, alert.request_id))
        writer = self.settings.writer
        if writer is not None:
            writer.submit(ALERTS.name, row)


def _writable(alert: Alert) -> Alert:
    """Names from clients may hold lone surrogates (an MCP tool "\\ud800"): U+FFFD for mail and files."""
    texts = {k: as_utf8(v) for k in ("key", "title", "text", "user", "host") if isinstance(v := getattr(alert, k), str)}
    return replace(alert, **texts)


def _held(held: HeldCall) -> Alert:
    tool = held.tool or "(no tool name)"
    return Alert("mcp_approval_requested", f"{held.requester}|{held.host}|{held.tool}",
                 f"MCP call held for approval: {tool}",
                 f"{held.requester}'s agent called {tool} on {held.host} ({held.reason}); it waits for an approver",
                 held.requester, held.host, request_id=held.request_id)  # fmt: skip


def _approval_end(row: Any) -> Alert:
    """A held call that did not go on: denied, refused without a decision, timed out, abandoned."""
    who, tool, rule = row.user_name or row.client_ip or "?", row.tool_name or row.method, row.rule_id
    call = f"{who}'s call to {tool} on {row.host}"
    if row.decision == DENIED and row.approver:
        title, text = f"MCP call denied: {tool}", f"{row.approver} denied {call}; rule {rule}"
    elif row.decision == DENIED:
        title = f"MCP call refused without a decision: {tool}"
        text = f"no approver could be told of {call} (or holding it failed), so it was refused; rule {rule}"
    elif row.decision == TIMEOUT:
        title, text = (
            f"MCP call not decided in time: {tool}",
            f"no approver decided on {call} in time; refused; rule {rule}",
        )
    else:
        title = f"MCP call abandoned while held: {tool}"
        text = f"the client left while {call} waited for approval; it was not sent; rule {rule}"
    return Alert(APPROVAL_EVENTS[row.decision], f"{who}|{row.host}|{row.tool_name}", title, text, who, row.host,
                 request_id=row.request_id)  # fmt: skip
