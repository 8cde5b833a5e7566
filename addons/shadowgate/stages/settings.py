"""The core shadowgate_* options (declared from shadowgate/options.py) and the configuration they load.

The other stages read the loaded catalog, policy, attribution map and price list from here, so a
file is parsed once and a bad one is rejected once, with its file, line and reason. At start-up a
bad file stops the proxy; on a later change the previous configuration stays in force. Deciding
is Decide's job (stages/decide.py, which also reloads a changed policy file); recording is
Record's (stages/record.py).
"""

from __future__ import annotations

import gc
import logging
import os
import threading
from pathlib import Path
from typing import TYPE_CHECKING

from mitmproxy import connection
from mitmproxy import ctx
from mitmproxy import exceptions

from shadowgate.config.ai_names import ai_name_reason
from shadowgate.config.attribution import Directory
from shadowgate.config.attribution import KeyFingerprinter
from shadowgate.config.attribution import load_directory
from shadowgate.config.attribution import load_or_create_secret
from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import load_configured_catalog
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.config.policy import Policy
from shadowgate.config.policy import load_policy
from shadowgate.config.policy_check import check_policy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.options import DEFAULT_MAX_PARSE_BYTES
from shadowgate.options import INTERCEPT_MODES
from shadowgate.options import OPTIONS
from shadowgate.storage.pricing import Pricing

if TYPE_CHECKING:
    from mitmproxy import http

    from shadowgate.stages.record import Record
    from shadowgate.storage.store import SegmentWriter

log = logging.getLogger(__name__)

__all__ = ["ShadowgateSettings", "expand_path", "file_mtime"]

# The shadowgate_* values in force, kept at module level because this module outlives a reload
# of addons/shadowgate.py: mitmproxy re-runs an edited -s script and its options fall back to
# their defaults, dropping every --set value (the database, the policy) without a word.
_options_in_force: dict[str, object] = {}


class ShadowgateSettings:
    name = "shadowgate_settings"

    def __init__(self) -> None:
        self.catalog: Catalog | None = None
        self.policy = Policy()
        self.policy_mtime: float | None = None  # of the policy file in force (Decide reloads on change)
        self.directory = Directory()
        self.fingerprinter: KeyFingerprinter | None = None
        self.pricing = Pricing(lambda: self.policy.prices)  # the policy's negotiated rates first
        self.secret = b""
        self.intercept_all = False
        self.host_discovery = "named"
        self.max_parse_bytes = DEFAULT_MAX_PARSE_BYTES
        self.retention_days = 0
        self.record: Record | None = None  # set by the Record stage
        self._warmed = False
        self._running = False

    def load(self, loader) -> None:
        for option in OPTIONS:
            loader.add_option(option.name, option.typespec, option.default, option.help, option.choices)

    def configure(self, updated: set[str]) -> None:
        try:
            catalog, policy = self.catalog, self.policy
            if {"shadowgate_providers", "shadowgate_providers_extra"} & updated or catalog is None:
                catalog = load_configured_catalog(
                    ctx.options.shadowgate_providers, ctx.options.shadowgate_providers_extra
                )
            if "shadowgate_policy" in updated:
                path = ctx.options.shadowgate_policy
                policy = load_policy(expand_path(path)) if path else Policy()
            # A rule naming a provider the catalog does not know can never fire: refused like a
            # broken file, before either is put in force. Shadowed rules are only warned about.
            for warning in check_policy(policy, catalog):
                log.warning("shadowgate: %s", warning)
            if "shadowgate_policy" in updated:
                path = ctx.options.shadowgate_policy
                self.policy_mtime = file_mtime(expand_path(path)) if path else None
            self.catalog, self.policy = catalog, policy
            if "shadowgate_users" in updated:
                path = ctx.options.shadowgate_users
                self.directory = load_directory(expand_path(path)) if path else Directory()
        except ConfigError as e:
            raise exceptions.OptionsError(_naming_the_option(e)) from e
        if "shadowgate_intercept" in updated:
            mode = ctx.options.shadowgate_intercept
            if mode not in INTERCEPT_MODES:
                raise exceptions.OptionsError(
                    f"shadowgate_intercept must be one of {', '.join(INTERCEPT_MODES)}, not {mode!r}"
                )
            self.intercept_all = mode == "all"
        if "map_remote" in updated and "map_remote" in ctx.options:
            _warn_about_empty_map_remote(ctx.options.map_remote)
        if "shadowgate_host_discovery" in updated:
            self.host_discovery = ctx.options.shadowgate_host_discovery
        if "stream_large_bodies" in updated and ctx.options.stream_large_bodies:
            # mitmproxy sends a body past this size upstream before the request hooks run (a
            # chunked or HTTP/2 one mid-way, with no hook in between): DLP, model rules and the MCP
            # policy would judge it after it left (red-team F20). Shadowgate streams bodies past
            # shadowgate_max_parse_bytes itself, after a decision on the headers.
            raise exceptions.OptionsError(
                "stream_large_bodies cannot be used with shadowgate: it sends request bodies upstream "
                "before DLP and the policy see them. Leave it unset; shadowgate streams request bodies "
                "above shadowgate_max_parse_bytes after deciding on their headers, and mitmproxy's "
                "body_size_limit bounds memory."
            )
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
        # shadowgate_db is Record's: it opens the writer in its own configure().
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
            risk=provider.risk if provider else None,
            trains_on_inputs=provider.facts.worst_training if provider else None,
        )

    def decrypts(self, facts: Facts) -> bool:
        """Whether the proxy terminates TLS for a connection: a catalogued host, a shared host on
        which an entry claims some paths (only a decrypted request shows its path), or a host the
        policy or shadowgate_intercept=all names."""
        catalogued = facts.provider is not None or (self.catalog is not None and self.catalog.has_paths_on(facts.host))
        return self.policy.decrypts(facts.host, catalogued, self.intercept_all, facts)

    # --- recording, for the stages that reach Record through settings ---------------------------

    @property
    def writer(self) -> SegmentWriter | None:
        return self.record.writer if self.record is not None else None

    def record_sighting(self, facts: Facts, decrypted: bool) -> None:
        """A TLS connection to an uncatalogued host: a host_sightings row when its name looks like AI."""
        if self.record is not None and self.host_discovery != "off" and facts.provider is None:
            if (reason := ai_name_reason(facts.host)) is not None:
                self.record.host_sighting(facts, reason, decrypted, anonymous=self.host_discovery == "anonymous")

    def record_connection(self, facts: Facts, note: str, decision: Decision | None = None) -> None:
        if self.record is not None:
            self.record.connection(facts, note, decision)

    def record_event(
        self,
        event: str,
        user: str,
        flow: http.HTTPFlow,
        host: str,
        provider: str | None,
        rule_id: str,
        detail: str = "",
    ) -> None:
        if self.record is not None:
            self.record.policy_event(event, user, flow, host, provider, rule_id, detail)

    # --- lifecycle ----------------------------------------------------------------------------

    def running(self) -> None:
        self._restore_options_after_reload()
        self._running = True
        self._remember_options()
        if not self._warmed:
            self._warmed = True
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
        # under load a full collection paused the event loop for tens of milliseconds, and a few
        # after this (scripts/bench_overhead.py --gc-probe). Collect first, so no garbage of
        # start-up is kept for good; this one collection takes ~0.1 s, once.
        gc.collect()
        gc.freeze()


def _warn_about_empty_map_remote(specs: list[str]) -> None:
    """mitmproxy's map_remote is `|URL-REGEX|REPLACEMENT` or `|FILTER|URL-REGEX|REPLACEMENT`: a
    trailing separator turns the first form into the second with an empty replacement, which
    mitmproxy accepts and which changes no URL. Trying the proxy against a local upstream this
    way then reaches the real host; say so (docs/install.md, "Try it against a local upstream")."""
    for spec in specs:
        parts = spec[1:].split(spec[0], 2) if spec else []
        if len(parts) == 3 and parts[2] == "":
            log.warning(
                "shadowgate: map_remote %r: the replacement is empty, so it changes nothing (a trailing %r "
                "makes %r a flow filter); write %s",
                spec, spec[0], parts[0], spec[0] + spec[0].join(parts[:2]),
            )  # fmt: skip


def _naming_the_option(error: ConfigError) -> str:
    """The error after the option that named its file (`shadowgate_providers: /x: cannot read
    file`): a path alone does not say which --set to correct."""
    options = ctx.options
    named = {
        expand_path(options.shadowgate_policy): "shadowgate_policy",
        expand_path(options.shadowgate_users): "shadowgate_users",
        **{expand_path(p): "shadowgate_providers_extra" for p in options.shadowgate_providers_extra},
        expand_path(options.shadowgate_providers): "shadowgate_providers",
    }
    option = named.get(error.path)
    return f"{option}: {error}" if option else str(error)


def expand_path(path: str) -> str:
    return str(Path(path).expanduser())


def file_mtime(path: str) -> float | None:
    try:
        return os.stat(path).st_mtime_ns / 1e9
    except OSError:
        return None
