"""Every shadowgate_* option, declared in load() and validated in configure().

The other addons read the loaded catalog, policy, attribution map and writer from here, so a
file is parsed once and a bad one is rejected once, with its file, line and reason. At start-up a
bad file stops the proxy; on a later change the previous configuration stays in force.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import logging
import os
import threading
import time
from pathlib import Path

from mitmproxy import connection
from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy.utils.asyncio_utils import create_task

from shadowgate.config.attribution import Directory
from shadowgate.config.attribution import Person
from shadowgate.config.attribution import KeyFingerprinter
from shadowgate.config.attribution import load_directory
from shadowgate.config.attribution import load_or_create_secret
from shadowgate.config.catalog import DEFAULT_CATALOG
from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import load_catalog
from shadowgate.enforce.budgets import BudgetTracker
from shadowgate.config.catalog import site_of
from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import COACH
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import RATE_LIMIT
from shadowgate.config.policy import REDIRECT
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.config.policy import Policy
from shadowgate.config.policy import load_policy
from shadowgate.storage.pricing import Pricing
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.schema import MCP_CALLS_DAILY
from shadowgate.storage.schema import MCP_TOOLS
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.schema import FlowRecord
from shadowgate.storage.schema import Outcome
from shadowgate.storage.schema import ai_request_row
from shadowgate.storage.schema import COST_COLUMN
from shadowgate.storage.schema import MODEL_COLUMN
from shadowgate.storage.schema import PRICED_MODEL_COLUMN
from shadowgate.storage.schema import PROVIDER_COLUMN
from shadowgate.storage.schema import RESPONSE_MODEL_COLUMN
from shadowgate.storage.schema import TOKEN_COLUMNS
from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import compact_closed_days
from shadowgate.storage.store import drop_expired_days
from shadowgate.storage.store import summarise_closed_days
from shadowgate.storage.store import utc_from_timestamp
from shadowgate.wireformats import PARSERS
from shadowgate.config.yamlfile import ConfigError

log = logging.getLogger(__name__)

DEFAULT_DB = "~/.shadowgate/shadowgate.duckdb"

# The shadowgate_* values in force, kept at module level because this module outlives a reload
# of addons/shadowgate.py: mitmproxy re-runs an edited -s script and its options fall back to
# their defaults, dropping every --set value (the database, the policy) without a word.
_options_in_force: dict[str, object] = {}
INTERCEPT_MODES = ("catalog", "all")
SUMMARISE_DAYS_PER_ROUND = 7  # ~0.1 s per day of 10k requests measured (scripts/bench_report.py)


class ShadowgateSettings:
    name = "shadowgate_settings"

    def __init__(self) -> None:
        self.catalog: Catalog | None = None
        self.policy = Policy()
        self.directory = Directory()
        self.fingerprinter: KeyFingerprinter | None = None
        self.writer: SegmentWriter | None = None
        self.pricing = Pricing()
        self.budgets = BudgetTracker()
        self.secret = b""
        self.intercept_all = False
        self.max_parse_bytes = 16 * 1024 * 1024
        self.retention_days = 0
        self._policy_mtime: float | None = None
        self._watcher: asyncio.Task | None = None
        self._running = False

    def load(self, loader) -> None:
        loader.add_option(
            name="shadowgate_db",
            typespec=str,
            default=DEFAULT_DB,
            help="""
            The DuckDB database file with the ai_requests view. Rows are sealed into Parquet
            segments in '<name>.segments/' next to it; the proxy never holds the file open.
            """,
        )
        loader.add_option(
            name="shadowgate_providers",
            typespec=str,
            default=str(DEFAULT_CATALOG),
            help="The catalog of AI services, hosts and wire formats (providers.yaml).",
        )
        loader.add_option(
            name="shadowgate_policy",
            typespec=str,
            default="",
            help="The organisation's policy file. Empty: observe everything, block nothing.",
        )
        loader.add_option(
            name="shadowgate_users",
            typespec=str,
            default="",
            help="Attribution map: networks (CIDR) and proxy-auth users to people and groups.",
        )
        loader.add_option(
            name="shadowgate_intercept",
            typespec=str,
            default="catalog",
            help="""
            Which TLS connections to decrypt: 'catalog' (catalogued AI hosts plus the policy's
            'inspect' hosts) or 'all' (everything but the policy's 'passthrough' hosts, to find
            unlisted AI endpoints by request shape).
            """,
        )
        loader.add_option(
            name="shadowgate_fingerprint_key",
            typespec=str,
            default="",
            help="""
            File with the HMAC secret for API key fingerprints (created if missing). Instances
            that share it produce comparable fingerprints. Default: <confdir>/shadowgate-fingerprint.key
            """,
        )
        loader.add_option(
            name="shadowgate_max_parse_bytes",
            typespec=int,
            default=16 * 1024 * 1024,
            help="Request and response bodies above this size pass through unparsed (usage estimated).",
        )
        loader.add_option(
            name="shadowgate_retention_days",
            typespec=int,
            default=0,
            help="""
            Keep per-request detail (ai_requests, policy_events, mcp_calls, mcp_tools) for this
            many days; older days keep only their daily totals (ai_requests_daily,
            mcp_calls_daily). 0 keeps everything.
            """,
        )

    def configure(self, updated: set[str]) -> None:
        try:
            if "shadowgate_providers" in updated or self.catalog is None:
                self.catalog = load_catalog(
                    _expand(ctx.options.shadowgate_providers), known_parsers=PARSERS
                )
            if "shadowgate_policy" in updated:
                path = ctx.options.shadowgate_policy
                self._policy_mtime = _mtime(_expand(path)) if path else None
                self.policy = load_policy(_expand(path)) if path else Policy()
            if "shadowgate_users" in updated:
                path = ctx.options.shadowgate_users
                self.directory = load_directory(_expand(path)) if path else Directory()
        except ConfigError as e:
            raise exceptions.OptionsError(str(e)) from e
        if "shadowgate_intercept" in updated:
            mode = ctx.options.shadowgate_intercept
            if mode not in INTERCEPT_MODES:
                raise exceptions.OptionsError(
                    f"shadowgate_intercept must be one of {', '.join(INTERCEPT_MODES)}, not {mode!r}"
                )
            self.intercept_all = mode == "all"
        if "shadowgate_max_parse_bytes" in updated:
            if ctx.options.shadowgate_max_parse_bytes < 0:
                raise exceptions.OptionsError("shadowgate_max_parse_bytes must be >= 0")
            self.max_parse_bytes = ctx.options.shadowgate_max_parse_bytes
        if "shadowgate_retention_days" in updated:
            if ctx.options.shadowgate_retention_days < 0:
                raise exceptions.OptionsError("shadowgate_retention_days must be >= 0 (0 keeps everything)")
            self.retention_days = ctx.options.shadowgate_retention_days
        if "shadowgate_fingerprint_key" in updated or self.fingerprinter is None:
            key_path = ctx.options.shadowgate_fingerprint_key or str(
                Path(ctx.options.confdir).expanduser() / "shadowgate-fingerprint.key"
            )
            try:
                self.secret = load_or_create_secret(key_path)
                self.fingerprinter = KeyFingerprinter(self.secret)
            except OSError as e:
                raise exceptions.OptionsError(f"cannot read or create {key_path}: {e}") from e
        if "shadowgate_db" in updated:
            self._open_writer(_expand(ctx.options.shadowgate_db))
        if self._running:
            self._remember_options()

    def _restore_options_after_reload(self) -> None:
        lost = {
            name: value
            for name, value in _options_in_force.items()
            if name in ctx.options and getattr(ctx.options, name) != value
        }
        if lost:
            log.warning("shadowgate: the addon script was reloaded; restoring %s", ", ".join(sorted(lost)))
            ctx.options.update(**lost)

    def _remember_options(self) -> None:
        for name in ctx.options.keys():
            if name.startswith("shadowgate_"):
                _options_in_force[name] = getattr(ctx.options, name)

    def _open_writer(self, db_path: str) -> None:
        writer = SegmentWriter(
            db_path,
            [AI_REQUESTS, POLICY_EVENTS, MCP_CALLS, MCP_TOOLS],
            rollups=[AI_REQUESTS_DAILY, MCP_CALLS_DAILY],
            enrich=self._price_rows,
            housekeeping=self._housekeeping,
        )
        try:
            writer.start()
        except Exception as e:
            raise exceptions.OptionsError(f"cannot prepare the database at {db_path}: {e}") from e
        old, self.writer = self.writer, writer
        if old is not None:
            old.close()
        log.info("shadowgate: recording to %s (segments in %s)", writer.db_path, writer.segments)

    def _price_rows(self, table: str, rows: list[tuple]) -> list[tuple]:
        """Runs on the writer thread: pricing never costs the event loop anything."""
        if table != AI_REQUESTS.name:
            return rows
        catalog = self.catalog
        priced = []
        for row in rows:
            provider = catalog.providers.get(row[PROVIDER_COLUMN]) if catalog else None
            quote = None
            if provider and provider.pricing_provider:
                quote = self.pricing.quote(
                    provider.pricing_provider,
                    row[RESPONSE_MODEL_COLUMN] or row[MODEL_COLUMN],
                    *(row[i] for i in TOKEN_COLUMNS),
                )
                if quote is None and row[RESPONSE_MODEL_COLUMN] and row[MODEL_COLUMN]:
                    quote = self.pricing.quote(
                        provider.pricing_provider, row[MODEL_COLUMN], *(row[i] for i in TOKEN_COLUMNS)
                    )
            if quote is not None:
                row = list(row)
                row[COST_COLUMN] = quote.cost_usd
                row[PRICED_MODEL_COLUMN] = quote.model_id
                row = tuple(row)
            priced.append(row)
            self._count_for_budgets(row)
        return priced

    def _count_for_budgets(self, row: tuple) -> None:
        budgets = self.policy.budgets
        if not budgets:
            return
        value = dict(zip(AI_REQUESTS.column_names, row))
        facts = Facts(
            value["host"], value["provider"], value["category"], value["wire_format"], value["model"],
            value["user_name"], value["user_group"], value["client_ip"],
        )
        tokens = (value["input_tokens"] or 0) + (value["output_tokens"] or 0)
        self.budgets.add(budgets, facts, tokens, value["cost_usd"], value["ts"])

    def _housekeeping(self) -> None:
        """Writer thread, every 30 s: today's budget totals; per finished day one file and its
        daily totals; detail past the retention period dropped (after its totals are safe)."""
        writer = self.writer
        if writer is None:
            return
        self.budgets.rebuild(self.policy.budgets, writer.segments)
        today = dt.datetime.now(dt.UTC).date()
        for table in writer.tables:
            compact_closed_days(writer.segments, table, today)
        for rollup in writer.rollups:
            summarise_closed_days(writer.segments, rollup, today, limit=SUMMARISE_DAYS_PER_ROUND)
        if self.retention_days:
            keep_from = today - dt.timedelta(days=self.retention_days)
            rollups = {r.source: r for r in writer.rollups}
            for table in writer.tables:
                dropped = drop_expired_days(writer.segments, table, keep_from, rollups.get(table))
                if dropped:
                    log.info("shadowgate: retention dropped %d day(s) of %s detail before %s", dropped, table, keep_from)

    # --- decide: the policy's rules, then the budgets ---------------------------------------

    def decide(self, rec: FlowRecord) -> Decision:
        facts = rec.policy_facts()
        policy = self.policy
        decision = policy.decide(facts)
        if decision.action.removeprefix(OBSERVE_PREFIX) not in (ALLOW, COACH, REDIRECT) or not policy.budgets:
            return decision
        verdict = self.budgets.check(policy.budgets, facts)
        if verdict.near:
            rec.budget_status = ",".join(verdict.near)
            log.info("shadowgate: %s is near budget: %s", facts.user, rec.budget_status)
        if verdict.exceeded is None:
            self.budgets.note_request(policy.budgets, facts)
            return decision
        action = OBSERVE_PREFIX + RATE_LIMIT if policy.observe else RATE_LIMIT
        return Decision(action, verdict.exceeded.id, verdict.reason, None, verdict.retry_after)

    def connection_facts(self, host: str, client: connection.Client, proxy_user: str | None) -> Facts:
        """What is known of a connection before it is decrypted."""
        provider = self.catalog.match_host(host) if self.catalog else None
        client_ip = str(client.peername[0]).removeprefix("::ffff:") if client.peername else ""
        person = self.directory.person(proxy_user, client_ip)
        return Facts(
            host=host.lower(),
            provider=provider.id if provider else None,
            category=provider.category if provider else None,
            user=person.user,
            group=person.group,
            client_ip=client_ip,
        )

    # --- record what is not a metered AI call ---------------------------------------------------

    def record_connection(self, facts: Facts, note: str, decision: Decision | None = None) -> None:
        """An AI connection that is never decrypted: one row, marked not inspected."""
        if self.writer is None or self.catalog is None:
            return
        provider = self.catalog.match_host(facts.host)
        rec = FlowRecord(
            started=time.time(),
            client_ip=facts.client_ip or "",
            person=Person(facts.user or facts.client_ip or "", facts.group),
            host=facts.host,
            site=site_of(facts.host),
            provider=provider,
            route=None,
            method="CONNECT",
            path="",
            inspected=False,
            inspect_note=note,
        )
        if decision is not None:
            rec.decision = decision
        self.writer.submit(AI_REQUESTS.name, ai_request_row(rec, Outcome()))

    def record_event(self, event: str, user: str, flow, host: str, provider: str | None, rule_id: str, detail: str = "") -> None:
        if self.writer is None:
            return
        client_ip = str(flow.client_conn.peername[0]).removeprefix("::ffff:") if flow.client_conn.peername else ""
        group = self.directory.person(user, client_ip).group
        row = (utc_from_timestamp(time.time()), event, user, group, client_ip, host, provider, rule_id, detail)
        self.writer.submit(POLICY_EVENTS.name, row)

    # --- policy reload ------------------------------------------------------------------------

    async def _watch_policy(self) -> None:
        """Reload the policy when its file changes; a broken file keeps the old policy."""
        while True:
            await asyncio.sleep(1.0)
            path = ctx.options.shadowgate_policy
            if not path:
                continue
            path = _expand(path)
            mtime = await asyncio.to_thread(_mtime, path)
            if mtime == self._policy_mtime:
                continue
            self._policy_mtime = mtime
            try:
                policy = await asyncio.to_thread(load_policy, path)
            except ConfigError as e:
                log.error("shadowgate: policy not reloaded, the previous one stays in force: %s", e)
                continue
            except Exception as e:  # a policy can never crash the proxy
                log.error("shadowgate: policy not reloaded (%s); the previous one stays in force", e)
                continue
            self.policy = policy
            log.info("shadowgate: policy reloaded from %s (%d rules, %d budgets)", path, len(policy.rules), len(policy.budgets))

    def running(self) -> None:
        self._restore_options_after_reload()
        self._running = True
        self._remember_options()
        if self._watcher is None:
            self._watcher = create_task(self._watch_policy(), name="shadowgate policy watcher", keep_ref=True)
            threading.Thread(target=self._warm_then_freeze, name="shadowgate-pricing-warm", daemon=True).start()
        # With mitmproxy's default (eager) a request connects upstream before any hook runs, so
        # a blocked call would still reach the provider, and CONNECT fails where egress to the
        # provider is firewalled. Lazy connects only once our hooks let the request go.
        if ctx.options.connection_strategy != "lazy":
            log.info("shadowgate: setting connection_strategy=lazy")
            ctx.options.update(connection_strategy="lazy")

    def _warm_then_freeze(self) -> None:
        self.pricing.warm()
        # What is loaded by now (mitmproxy, the catalog, the policy, the price list: ~140k
        # objects) lives as long as the process. Frozen, the garbage collector stops walking it:
        # under load a full collection paused the event loop for ~64 ms, and ~3 ms after this
        # (scripts/bench_overhead.py --gc-probe, 2026-12-02). Collect first, so no garbage of
        # start-up is kept for good; this one collection takes ~0.1 s, once.
        gc.collect()
        gc.freeze()

    def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None
        # SIGTERM runs done(): every row submitted so far is sealed before the process exits.
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _expand(path: str) -> str:
    return str(Path(path).expanduser())


def _mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None
