"""Every shadowgate_* option, declared in load() and validated in configure().

The other addons read the loaded catalog, policy, attribution map and writer from here, so a
file is parsed once and a bad one is rejected once, with its file, line and reason. At start-up a
bad file stops the proxy; on a later change the previous configuration stays in force.
"""

from __future__ import annotations

import logging
from pathlib import Path

from mitmproxy import ctx
from mitmproxy import exceptions

from addons.attribution import Directory
from addons.attribution import KeyFingerprinter
from addons.attribution import load_directory
from addons.attribution import load_or_create_secret
from addons.catalog import DEFAULT_CATALOG
from addons.catalog import Catalog
from addons.catalog import load_catalog
from addons.policy import Policy
from addons.policy import load_policy
from addons.pricing import Pricing
from addons.record import AI_REQUESTS
from addons.record import COST_COLUMN
from addons.record import MODEL_COLUMN
from addons.record import PRICED_MODEL_COLUMN
from addons.record import PROVIDER_COLUMN
from addons.record import RESPONSE_MODEL_COLUMN
from addons.record import TOKEN_COLUMNS
from addons.store import SegmentWriter
from addons.wireformats import PARSERS
from addons.yamlfile import ConfigError

log = logging.getLogger(__name__)

DEFAULT_DB = "~/.shadowgate/shadowgate.duckdb"
INTERCEPT_MODES = ("catalog", "all")


class ShadowgateSettings:
    name = "shadowgate_settings"

    def __init__(self) -> None:
        self.catalog: Catalog | None = None
        self.policy = Policy()
        self.directory = Directory()
        self.fingerprinter: KeyFingerprinter | None = None
        self.writer: SegmentWriter | None = None
        self.pricing = Pricing()
        self.intercept_all = False
        self.max_parse_bytes = 16 * 1024 * 1024

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

    def configure(self, updated: set[str]) -> None:
        try:
            if "shadowgate_providers" in updated or self.catalog is None:
                self.catalog = load_catalog(
                    _expand(ctx.options.shadowgate_providers), known_parsers=PARSERS
                )
            if "shadowgate_policy" in updated:
                path = ctx.options.shadowgate_policy
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
        if "shadowgate_fingerprint_key" in updated or self.fingerprinter is None:
            key_path = ctx.options.shadowgate_fingerprint_key or str(
                Path(ctx.options.confdir).expanduser() / "shadowgate-fingerprint.key"
            )
            try:
                self.fingerprinter = KeyFingerprinter(load_or_create_secret(key_path))
            except OSError as e:
                raise exceptions.OptionsError(f"cannot read or create {key_path}: {e}") from e
        if "shadowgate_db" in updated:
            self._open_writer(_expand(ctx.options.shadowgate_db))

    def _open_writer(self, db_path: str) -> None:
        writer = SegmentWriter(db_path, [AI_REQUESTS], enrich=self._price_rows)
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
        return priced

    def running(self) -> None:
        # With mitmproxy's default (eager) a request connects upstream before any hook runs, so
        # a blocked call would still reach the provider, and CONNECT fails where egress to the
        # provider is firewalled. Lazy connects only once our hooks let the request go.
        if ctx.options.connection_strategy != "lazy":
            log.info("shadowgate: setting connection_strategy=lazy")
            ctx.options.update(connection_strategy="lazy")

    def done(self) -> None:
        # SIGTERM runs done(): every row submitted so far is sealed before the process exits.
        if self.writer is not None:
            self.writer.close()
            self.writer = None


def _expand(path: str) -> str:
    return str(Path(path).expanduser())
