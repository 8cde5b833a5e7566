"""The catalog: which hosts belong to which AI service, and which paths speak which wire format.

Loaded from providers.yaml (facts only). Host matching walks DNS labels through two dicts, so
"api.openai.com.evil.example" and "notopenai.com" can never match OpenAI, and a lookup costs a
handful of dict probes. tldextract (bundled suffix list, never the network) guards the catalog
against entries that would swallow a whole public suffix and names the site of unknown hosts.
"""

from __future__ import annotations

import datetime
import functools
import hashlib
import re
import threading
from collections.abc import Collection
from collections.abc import Iterable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

import tldextract

from shadowgate.config.catalog_facts import UNKNOWN
from shadowgate.config.catalog_facts import URL
from shadowgate.config.catalog_facts import Facts
from shadowgate.config.catalog_facts import load_facts
from shadowgate.config.catalog_lifecycle import Lifecycle
from shadowgate.config.catalog_lifecycle import load_lifecycle
from shadowgate.config.requestpath import path_readings
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key
from shadowgate.config.yamlfile import load_yaml
from shadowgate.resources import PROVIDERS_YAML
from shadowgate.wireformats.base import Route

DEFAULT_CATALOG = PROVIDERS_YAML

# The bundled Public Suffix List snapshot: no URLs to fetch, no cache directory to write.
_suffixes = tldextract.TLDExtract(suffix_list_urls=(), cache_dir=None, fallback_to_snapshot=True)

_ID = re.compile(r"[a-z0-9][a-z0-9-]*")
_HOST_LABEL = re.compile(r"[a-z0-9_]([a-z0-9_-]*[a-z0-9_])?")
_PATH_PREFIX = re.compile(r"/[A-Za-z0-9._~!$&'()*+,;=:@%/-]*")
_PROVIDER_KEYS = {
    "id",
    "name",
    "vendor",
    "category",
    "hosts",
    "paths",
    "shared_hosts",
    "asset_hosts",
    "wire_formats",
    "otel_provider",
    "pricing_provider",
    "notes",
    "source",
    "verified",
    "facts",
    "lifecycle",
    "endpoints",
    "stream_usage",
}
# `stream_usage`: how the service's Chat Completions streams report usage. "include_usage": only
# when the request asks with stream_options.include_usage, which the service accepts, so the
# proxy asks for it (stages/stream_usage.py). "azure_api_version": the same where the request's
# Azure OpenAI api-version has the option (the v1 API, previews from 2024-08-01-preview; not the
# dated GA versions, which refuse it). Unset: unknown, the request is left alone.
STREAM_USAGE_VALUES = ("include_usage", "azure_api_version")
# Categories that are not usage: a visit to a vendor's marketing or docs site is interest in it.
INTEREST_CATEGORIES = frozenset({"vendor-site"})


@dataclass(frozen=True, slots=True)
class Provider:
    id: str
    name: str
    vendor: str
    category: str
    hosts: tuple[str, ...]
    wire_formats: tuple[str, ...]
    otel_provider: str
    pricing_provider: str | None
    notes: str
    paths: tuple[str, ...] = ()  # path prefixes: the entry is an AI feature on a shared host
    # The vendor's documentation or SDK source that names the hosts: one page, or one per group
    # of hosts when the vendor documents them on different pages.
    sources: tuple[str, ...] = ()
    verified: datetime.date | None = None  # when someone last checked the hosts against the sources
    facts: Facts = field(default=UNKNOWN)
    lifecycle: Lifecycle | None = None  # renamed, acquired, retiring or retired (config/catalog_lifecycle.py)
    # Routes of this service alone, each on some of its hosts (an API whose input is the URL:
    # a GET to Jina Reader). Never matched against unknown hosts, as wire formats are.
    endpoints: tuple[Endpoint, ...] = ()
    stream_usage: str | None = None  # see STREAM_USAGE_VALUES
    # Hosts the entry shares with other services, on which only its `paths` are its own (Azure
    # OpenAI's regional multi-service endpoint); `hosts` are then wholly the entry's.
    shared_hosts: tuple[str, ...] = ()
    # Where the service serves what its answers link to (generated images, files): a link there
    # in an answer is the provider's, not an exfiltration, and its signed query no leak.
    asset_hosts: tuple[str, ...] = ()

    def serves_assets_on(self, host: str) -> bool:
        host = host.lower()
        return any(host == p or (p.startswith("*.") and host.endswith(p[1:])) for p in self.asset_hosts)

    def claims(self) -> Iterator[tuple[str, str]]:
        """Every (host pattern, path prefix) the entry claims; "" for a whole host."""
        for host in self.hosts:
            for prefix in self.paths if self.paths and not self.shared_hosts else ("",):
                yield host, prefix
        for host in self.shared_hosts:
            for prefix in self.paths:
                yield host, prefix

    @property
    def source(self) -> str | None:
        """The first (main) source, or None for an entry nobody has sourced yet."""
        return self.sources[0] if self.sources else None

    @property
    def risk(self) -> str:
        return self.facts.risk

    @property
    def is_usage(self) -> bool:
        """False for vendor sites: shown as interest in a service, never counted as using it."""
        return self.category not in INTEREST_CATEGORIES


@dataclass(frozen=True, slots=True)
class Endpoint:
    wire_format: str
    method: str
    path: re.Pattern[str]
    operation: str
    parser: str
    streaming: bool
    hosts: tuple[str, ...] = ()  # a provider's own endpoint: only on these of its hosts


def normalise_host(host: str) -> str:
    """Lower-case, without a trailing dot, port or IPv6 brackets."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[1 : host.find("]")] if "]" in host else host[1:]
    if host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host.rstrip(".")


@functools.lru_cache(maxsize=8192)  # tldextract costs ~25 µs a call, and hosts repeat
def site_of(host: str) -> str:
    """The registrable domain ('evil.example' for 'api.openai.com.evil.example'), else the host."""
    host = normalise_host(host)
    result = _suffixes(host)
    if result.domain and result.suffix:
        return f"{result.domain}.{result.suffix}"
    if result.suffix or ":" in host or host.replace(".", "").isdigit():
        return host  # an IP address or a bare public suffix
    # A private TLD (.internal, .corp, .example): the last two labels name the site.
    return ".".join(host.split(".")[-2:])


def is_public_suffix(domain: str) -> bool:
    result = _suffixes(domain)
    return bool(result.suffix) and not result.domain


class HostIndex[T]:
    """Host patterns (exact names and "*.domain") to values, matched label by label."""

    def __init__(self, patterns: Iterable[tuple[str, T]] = ()) -> None:
        self._exact: dict[str, T] = {}
        self._below: dict[str, T] = {}
        for pattern, value in patterns:
            if pattern.startswith("*."):
                self._below[pattern[2:]] = value
            else:
                self._exact[pattern] = value

    def __bool__(self) -> bool:
        return bool(self._exact or self._below)

    def get(self, host: str) -> T | None:
        host = normalise_host(host)
        if (found := self._exact.get(host)) is not None:
            return found
        dot = host.find(".")
        while dot != -1:
            if (found := self._below.get(host[dot + 1 :])) is not None:
                return found
            dot = host.find(".", dot + 1)
        return None

    def patterns(self) -> list[str]:
        return sorted([*self._exact, *(f"*.{s}" for s in self._below)])


class Catalog:
    def __init__(
        self,
        providers: Iterable[Provider],
        wire_formats: dict[str, tuple[Endpoint, ...]],
        source: str = "<memory>",
    ) -> None:
        self.source = source
        self.providers: dict[str, Provider] = {p.id: p for p in providers}
        self.wire_formats = wire_formats
        self._hosts = HostIndex((h, p) for p in self.providers.values() for h, prefix in p.claims() if not prefix)
        # AI features on a shared host (a SaaS app's assistant endpoints): host, then path prefix.
        # Prefixes are kept lower-case without a trailing slash: a path is compared in every reading
        # a server may give it, case-insensitively (config/requestpath.py), so /Chat or /chat;x on a
        # forgiving server still counts; matching more than the server serves only makes us stricter.
        by_host: dict[str, list[tuple[str, Provider]]] = {}
        for p in self.providers.values():
            for h, prefix in p.claims():
                if prefix:
                    by_host.setdefault(h, []).append((prefix.rstrip("/").lower(), p))
        self._paths = HostIndex((h, tuple(sorted(entries, key=lambda e: -len(e[0])))) for h, entries in by_host.items())
        # Unknown hosts are fingerprinted against every endpoint; specific paths go first so that
        # "/openai/deployments/x/chat/completions" is Azure before it is generic OpenAI.
        self._all_endpoints = tuple(
            sorted(
                (e for eps in wire_formats.values() for e in eps),
                key=lambda e: e.path.pattern.startswith("(?:/[^?#]*)?"),
            )
        )
        self._endpoints_by_provider = {
            p.id: (*p.endpoints, *(e for wf in p.wire_formats for e in wire_formats[wf]))
            for p in self.providers.values()
        }
        self.match_host = functools.lru_cache(maxsize=8192)(self._hosts.get)
        self._route = functools.lru_cache(maxsize=4096)(self._route_uncached)

    def match(self, host: str, path: str | None = None) -> Provider | None:
        """The service a request belongs to: an AI feature's path on a shared host first, then the host."""
        if path and self._paths and (entries := self._paths.get(host)):
            readings = [reading.lower() for reading in path_readings(path)]  # normalised: no trailing slash
            for bare, provider in entries:
                if any(reading == bare or reading.startswith(bare + "/") for reading in readings):
                    return provider
        return self.match_host(host)

    def has_paths_on(self, host: str) -> bool:
        """True when an entry claims some paths of this (shared) host: decrypt it to tell which."""
        return bool(self._paths) and self._paths.get(host) is not None

    def path_scoped_hosts(self) -> list[str]:
        """Hosts that carry an AI feature on some paths only: decrypt them to tell which requests."""
        return self._paths.patterns()

    def route(self, provider: Provider | None, method: str, path: str, host: str | None = None) -> Route | None:
        """Which wire format and operation a request speaks, judged from method and path (and,
        for a provider's own endpoints, the host).

        The path is read as a server may read it (config/requestpath.py: escapes decoded, dot
        segments resolved, case ignored, ...), so a respelled path still names its route."""
        pid = provider.id if provider else None
        host = normalise_host(host) if host and provider is not None and provider.endpoints else None
        for reading in path_readings(path):
            if (route := self._route(pid, method.upper(), reading, host)) is not None:
                return route
        return None

    def _route_uncached(self, provider_id: str | None, method: str, path: str, host: str | None) -> Route | None:
        endpoints = self._endpoints_by_provider[provider_id] if provider_id else self._all_endpoints
        for endpoint in endpoints:
            if endpoint.method != method or (endpoint.hosts and not _host_is_one_of(host, endpoint.hosts)):
                continue
            m = endpoint.path.fullmatch(path)
            if m is None:
                continue
            return Route(
                wire_format=endpoint.wire_format,
                parser=endpoint.parser,
                operation=endpoint.operation,
                model_from_path=m.groupdict().get("model"),
                streaming_from_path=endpoint.streaming,
            )
        return None

    def host_patterns(self) -> list[str]:
        """Every host pattern that must reach the proxy, path-scoped hosts included."""
        return sorted({*self._hosts.patterns(), *self._paths.patterns()})


def _host_is_one_of(host: str | None, patterns: tuple[str, ...]) -> bool:
    """Whether a (normalised) host is one of an entry's host patterns: an exact name, or a name
    below the domain of a `*.domain` one (a Databricks workspace, a Copilot API host)."""
    if host is None:
        return False
    return host in patterns or any(p.startswith("*.") and host.endswith(p[1:]) for p in patterns)


# --- loading and validation -------------------------------------------------------------------


def load_catalog(
    path: str | Path = DEFAULT_CATALOG, known_parsers: Iterable[str] = (), extra: Iterable[str | Path] = ()
) -> Catalog:
    """Load and validate providers.yaml, then each company overlay in `extra` over it, in order.

    An overlay is a YAML file with a `providers:` list (and optionally `categories:`), validated
    the same way. An overlay entry whose id is already catalogued replaces that entry (a
    correction); a new id adds a service. A host an overlay claims leaves the entries listed
    before it, so a company's internal gateway or its correction always wins and a catalog update
    never overwrites local knowledge. Raises ConfigError naming file, line and reason.

    The same files with the same contents give the same Catalog object (it is not changed after
    it is built): a settings load costs ~0.2 s of CPU to parse and check the catalog, and every
    settings load in one process (each test's addons, a reload) reads the same bytes again.
    """
    known_parsers, extra = tuple(known_parsers), tuple(extra)  # read twice below
    key = _contents_key(path, known_parsers, extra)
    if key is not None and (known := _LOADED.get(key)) is not None:
        return known
    catalog = _load_catalog(path, known_parsers, extra)
    if key is not None:
        with _LOADED_LOCK:  # the console's threads load catalogs too
            while len(_LOADED) >= _KEEP_LOADED:
                del _LOADED[next(iter(_LOADED))]  # the oldest
            _LOADED[key] = catalog
    return catalog


def load_configured_catalog(providers: str | Path, extra: Iterable[str | Path] = ()) -> Catalog:
    """The catalog as the proxy loads it from shadowgate_providers and shadowgate_providers_extra,
    and as every command loads it from --providers and --extra: '~' expanded, the overlays merged
    in order, every wire format checked against the proxy's parsers. One loader for both, so that
    a policy `shadowgate policy check` passes is one the proxy starts with, and the reverse."""
    from shadowgate.wireformats import PARSERS

    return load_catalog(
        Path(providers).expanduser(), known_parsers=PARSERS, extra=[Path(p).expanduser() for p in extra]
    )


# Catalogs already loaded, by what they were loaded from (_contents_key); the last few only.
_LOADED: dict[tuple, Catalog] = {}
_LOADED_LOCK = threading.Lock()
_KEEP_LOADED = 4


def _contents_key(path: str | Path, known_parsers: Iterable[str], extra: Iterable[str | Path]) -> tuple | None:
    """What a load depends on: each file's name and the digest of its bytes (so a file rewritten
    within the same clock tick is still told apart), the parsers and today's date (a `verified`
    date in the future is refused). None when a file cannot be read: the load then says why."""
    files = []
    for name in (path, *extra):
        try:
            data = Path(name).read_bytes()
        except OSError:
            return None
        files.append((str(name), hashlib.blake2b(data, digest_size=16).digest()))
    return (tuple(files), frozenset(known_parsers), datetime.date.today())


def _load_catalog(path: str | Path, known_parsers: Iterable[str], extra: Iterable[str | Path]) -> Catalog:
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(path, line_of(doc, 1), "the catalog must be a mapping")
    categories = doc.get("categories")
    if "providers" in doc and not {"categories", "wire_formats"} & doc.keys():
        raise ConfigError(
            path,
            line_of(doc),
            "this looks like a company overlay (providers: without categories:): give it over the catalog "
            "with --extra FILE (the proxy's shadowgate_providers_extra), not as the catalog itself",
        )
    if not isinstance(categories, dict) or not categories:
        raise ConfigError(path, line_of(doc), "'categories' must be a non-empty mapping")
    wire_formats = _load_wire_formats(path, doc.get("wire_formats"), set(known_parsers))
    parsers = set(known_parsers)
    providers = _load_providers(path, doc, categories, wire_formats, known_parsers=parsers)
    sources = [str(path)]
    for overlay_path in extra:
        overlay = load_yaml(overlay_path)
        if not isinstance(overlay, dict):
            raise ConfigError(overlay_path, line_of(overlay, 1), "an overlay must be a mapping")
        _no_unknown_keys(overlay_path, overlay, {"categories", "providers"}, "overlay")
        more = overlay.get("categories", {})
        if not isinstance(more, dict):
            raise ConfigError(overlay_path, line_of(overlay), "'categories' must be a mapping")
        categories = {**categories, **more}
        providers = _overlay(
            providers, _load_providers(overlay_path, overlay, categories, wire_formats, providers, parsers)
        )
        sources.append(str(overlay_path))
    return Catalog(providers.values(), wire_formats, source=", ".join(sources))


def _load_providers(
    path: str | Path,
    doc: dict,
    categories: dict,
    wire_formats: dict[str, tuple[Endpoint, ...]],
    known_ids: Iterable[str] = (),
    known_parsers: Collection[str] = (),
) -> dict[str, Provider]:
    """A file's entries; a lifecycle successor may name one of them or one of `known_ids` (the base)."""
    known_ids = set(known_ids)
    raw_providers = doc.get("providers")
    if not isinstance(raw_providers, list):
        raise ConfigError(path, line_of(doc), "'providers' must be a list")
    providers: dict[str, Provider] = {}
    seen_hosts: dict[tuple[str, str], str] = {}
    successor_lines: dict[str, int | None] = {}
    for raw in raw_providers:
        provider = _load_provider(path, raw, categories, wire_formats, known_parsers)
        if provider.lifecycle and provider.lifecycle.successor:
            raw_lifecycle = raw["lifecycle"]
            successor_lines[provider.id] = line_of_key(raw_lifecycle, "successor") or line_of(raw)
        if provider.id in providers:
            raise ConfigError(path, line_of(raw), f"duplicate provider id {provider.id!r}")
        for host, prefix in provider.claims():
            if (host, prefix) in seen_hosts:
                raise ConfigError(
                    path, line_of(raw), f"host {host + prefix!r} is already listed by {seen_hosts[host, prefix]!r}"
                )
            seen_hosts[host, prefix] = provider.id
        providers[provider.id] = provider
    for pid, line in successor_lines.items():
        successor = providers[pid].lifecycle.successor  # type: ignore[union-attr]
        if successor not in providers and successor not in known_ids:
            raise ConfigError(path, line, f"provider {pid!r}: lifecycle.successor {successor!r} is no catalogued id")
    return providers


def _overlay(base: dict[str, Provider], overlay: dict[str, Provider]) -> dict[str, Provider]:
    claimed = {claim for p in overlay.values() for claim in p.claims()}
    merged: dict[str, Provider] = {}
    for pid, provider in base.items():
        if pid in overlay:
            continue
        lost = {host for host, prefix in provider.claims() if (host, prefix) in claimed}
        hosts = tuple(h for h in provider.hosts if h not in lost)
        shared = tuple(h for h in provider.shared_hosts if h not in lost)
        if hosts:
            changed = hosts != provider.hosts or shared != provider.shared_hosts
            merged[pid] = replace(provider, hosts=hosts, shared_hosts=shared) if changed else provider
    return {**merged, **overlay}


def _no_unknown_keys(path: str | Path, raw: dict, allowed: set[str], what: str) -> None:
    unknown = [key for key in raw if str(key) not in allowed]
    if unknown:
        raise ConfigError(
            path,
            line_of_key(raw, unknown[0]) or 1,
            f"{what}: unknown keys {sorted(map(str, unknown))} (expected {sorted(allowed)})",
        )


def _load_wire_formats(path: str | Path, raw: Any, known_parsers: set[str]) -> dict[str, tuple[Endpoint, ...]]:
    if not isinstance(raw, dict) or not raw:
        raise ConfigError(path, None, "'wire_formats' must be a non-empty mapping")
    formats: dict[str, tuple[Endpoint, ...]] = {}
    for wf_id, spec in raw.items():
        if not isinstance(spec, dict) or not isinstance(spec.get("endpoints"), list):
            raise ConfigError(path, line_of(spec), f"wire format {wf_id!r} needs an 'endpoints' list")
        endpoints = [
            _endpoint(path, ep, line_of(ep, line_of(spec)), str(wf_id), f"wire format {wf_id!r}", known_parsers)
            for ep in spec["endpoints"]
        ]
        formats[str(wf_id)] = tuple(endpoints)
    return formats


def _endpoint(
    path: str | Path, ep: Any, line: int | None, wire_format: str, what: str, known_parsers: Collection[str],
    hosts: tuple[str, ...] = (),
) -> Endpoint:  # fmt: skip
    if not isinstance(ep, dict):
        raise ConfigError(path, line, f"{what}: an endpoint must be a mapping")
    missing = {"method", "path", "operation", "parser"} - ep.keys()
    if missing:
        raise ConfigError(path, line, f"{what}: endpoint lacks {sorted(missing)}")
    if known_parsers and ep["parser"] not in known_parsers:
        raise ConfigError(path, line, f"{what}: unknown parser {ep['parser']!r}")
    try:
        # Case-insensitive: some servers (IIS, Azure) route /V1/Chat/Completions too.
        pattern = re.compile(str(ep["path"]), re.IGNORECASE)
    except re.error as e:
        raise ConfigError(path, line, f"{what}: bad path regex: {e}") from e
    return Endpoint(
        wire_format=wire_format,
        method=str(ep["method"]).upper(),
        path=pattern,
        operation=str(ep["operation"]),
        parser=str(ep["parser"]),
        streaming=bool(ep.get("streaming", False)),
        hosts=hosts,
    )


def _provider_endpoints(
    path: str | Path, raw: dict, pid: str, hosts: tuple[str, ...], known_parsers: Collection[str]
) -> tuple[Endpoint, ...]:
    """A provider's own `endpoints:` (the wire-format endpoint keys, plus `host`: one of its
    hosts or a list of them, every host when left out). Their wire format is the provider id."""
    specs = raw.get("endpoints", [])
    if not isinstance(specs, list):
        raise ConfigError(path, line_of_key(raw, "endpoints"), f"provider {pid!r}: 'endpoints' must be a list")
    out = []
    for ep in specs:
        line = line_of(ep, line_of(raw))
        named = ep.get("host", list(hosts)) if isinstance(ep, dict) else []
        named = [named] if isinstance(named, str) else named
        if not isinstance(named, list) or any(not isinstance(h, str) or h.lower() not in hosts for h in named):
            raise ConfigError(path, line, f"provider {pid!r}: an endpoint's 'host' must name its own hosts")
        spec = {k: v for k, v in ep.items() if k != "host"}
        out.append(
            _endpoint(path, spec, line, pid, f"provider {pid!r}", known_parsers, tuple(h.lower() for h in named))
        )
    return tuple(out)


def _load_provider(
    path: str | Path,
    raw: Any,
    categories: dict,
    wire_formats: dict[str, tuple[Endpoint, ...]],
    known_parsers: Collection[str] = (),
) -> Provider:
    line = line_of(raw)
    if not isinstance(raw, dict):
        raise ConfigError(path, line, "a provider must be a mapping")

    def text(key: str, required: bool = True) -> str | None:
        value = raw.get(key)
        if value is None and not required:
            return None
        if not isinstance(value, str) or not value.strip():
            raise ConfigError(path, line, f"provider {raw.get('id', '?')!r}: '{key}' must be a non-empty string")
        return value.strip()

    pid = text("id")
    assert pid is not None
    if not _ID.fullmatch(pid):
        raise ConfigError(path, line, f"provider id {pid!r} must be lower-case letters, digits and '-'")
    _no_unknown_keys(path, raw, _PROVIDER_KEYS, f"provider {pid!r}")
    category = text("category")
    if category not in categories:
        raise ConfigError(path, line, f"provider {pid!r}: unknown category {category!r} (one of {sorted(categories)})")
    hosts = raw.get("hosts")
    if not isinstance(hosts, list) or not hosts:
        raise ConfigError(path, line, f"provider {pid!r}: 'hosts' must be a non-empty list")
    clean_hosts = tuple(_check_host(path, line_of(hosts, line), pid, h) for h in hosts)
    formats = raw.get("wire_formats", [])
    if not isinstance(formats, list):
        raise ConfigError(path, line, f"provider {pid!r}: 'wire_formats' must be a list")
    for wf in formats:
        if wf not in wire_formats:
            raise ConfigError(path, line, f"provider {pid!r}: unknown wire format {wf!r}")
    paths = raw.get("paths", [])
    if not isinstance(paths, list) or any(not isinstance(x, str) or not _PATH_PREFIX.fullmatch(x) for x in paths):
        raise ConfigError(
            path,
            line_of_key(raw, "paths"),
            f"provider {pid!r}: 'paths' must be a list of path prefixes starting with '/'",
        )
    shared = raw.get("shared_hosts", [])
    if not isinstance(shared, list) or (shared and not paths):
        raise ConfigError(
            path,
            line_of_key(raw, "shared_hosts"),
            f"provider {pid!r}: 'shared_hosts' must be a list of hosts, with 'paths' naming the entry's own",
        )
    shared_hosts = tuple(_check_host(path, line_of_key(raw, "shared_hosts"), pid, h) for h in shared)
    assets = raw.get("asset_hosts", [])
    if not isinstance(assets, list):
        raise ConfigError(
            path, line_of_key(raw, "asset_hosts"), f"provider {pid!r}: 'asset_hosts' must be a list of hosts"
        )
    asset_hosts = tuple(_check_host(path, line_of_key(raw, "asset_hosts"), pid, h) for h in assets)
    sources = _sources(path, raw, pid)
    verified = raw.get("verified")
    if verified is not None and (
        not isinstance(verified, datetime.date)
        or isinstance(verified, datetime.datetime)
        or verified > datetime.date.today()
    ):
        raise ConfigError(
            path, line_of_key(raw, "verified"), f"provider {pid!r}: 'verified' must be a past date, YYYY-MM-DD"
        )
    facts = load_facts(path, raw["facts"], pid, line) if "facts" in raw else UNKNOWN
    stream_usage = raw.get("stream_usage")
    if stream_usage is not None and stream_usage not in STREAM_USAGE_VALUES:
        raise ConfigError(
            path,
            line_of_key(raw, "stream_usage"),
            f"provider {pid!r}: 'stream_usage' must be one of {', '.join(STREAM_USAGE_VALUES)}, not {stream_usage!r}",
        )
    lifecycle = (
        load_lifecycle(path, raw["lifecycle"], pid, line_of_key(raw, "lifecycle")) if "lifecycle" in raw else None
    )
    return Provider(
        id=pid,
        name=text("name") or pid,
        vendor=text("vendor") or "",
        category=category or "",
        hosts=clean_hosts,
        wire_formats=tuple(formats),
        otel_provider=text("otel_provider", required=False) or pid,
        pricing_provider=text("pricing_provider", required=False),
        notes=text("notes", required=False) or "",
        paths=tuple(paths),
        sources=sources,
        verified=verified,
        facts=facts,
        lifecycle=lifecycle,
        endpoints=_provider_endpoints(path, raw, pid, clean_hosts, known_parsers),
        stream_usage=stream_usage,
        shared_hosts=shared_hosts,
        asset_hosts=asset_hosts,
    )


def _sources(path: str | Path, raw: dict, pid: str) -> tuple[str, ...]:
    """`source:` is one https URL, or a list of them when the hosts are documented on several pages."""
    value = raw.get("source")
    if value is None:
        return ()
    urls = value if isinstance(value, list) and value else [value]
    for url in urls:
        if not isinstance(url, str) or not URL.fullmatch(url.strip()):
            raise ConfigError(
                path,
                line_of_key(raw, "source"),
                f"provider {pid!r}: 'source' must be an https URL or a non-empty list of them",
            )
    return tuple(url.strip() for url in urls)


def _check_host(path: str | Path, line: int | None, pid: str, host: Any) -> str:
    try:
        return check_host_pattern(host)
    except ValueError as e:
        raise ConfigError(path, line, f"provider {pid!r}: {e}") from None


def check_host_pattern(host: Any) -> str:
    """Validate an exact host name or '*.domain' pattern; returns it normalised."""
    if not isinstance(host, str):
        raise ValueError(f"host {host!r} must be a string")
    name = host.strip().lower()
    bare = name[2:] if name.startswith("*.") else name
    if not bare or any(not _HOST_LABEL.fullmatch(label) for label in bare.split(".")):
        raise ValueError(f"{host!r} is not a host name or '*.domain' (no ports, paths or schemes)")
    if is_public_suffix(bare):
        raise ValueError(f"{host!r} would match a whole public suffix")
    return name
