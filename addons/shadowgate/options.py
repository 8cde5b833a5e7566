"""The core shadowgate_* options as data: name, type, default, help and the allowed values.

stages/settings.py declares them from this table in load() and validates them in configure();
a docs generator can list them from here without starting a proxy. Logs and telemetry declare
their own options beside the code that reads them (stages/logs.py, telemetry/config.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from shadowgate.config.catalog import DEFAULT_CATALOG

DEFAULT_DB = "~/.shadowgate/shadowgate.duckdb"
INTERCEPT_MODES = ("catalog", "all")
HOST_DISCOVERY_MODES = ("named", "anonymous", "off")
DEFAULT_MAX_PARSE_BYTES = 16 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Option:
    name: str
    typespec: Any  # a type, or Sequence[str] as mitmproxy spells list options
    default: object
    help: str
    choices: tuple[str, ...] | None = None


OPTIONS = (
    Option(
        "shadowgate_db",
        str,
        DEFAULT_DB,
        "The DuckDB database file with the ai_requests view. Rows are sealed into Parquet segments in "
        "'<name>.segments/' next to it; the proxy never holds the file open.",
    ),
    Option(
        "shadowgate_providers",
        str,
        str(DEFAULT_CATALOG),
        "The catalog of AI services, hosts and wire formats (providers.yaml).",
    ),
    Option(
        "shadowgate_providers_extra",
        Sequence[str],
        [],
        "Company overlay files over the catalog, applied in order: entries with a new id are added, an "
        "existing id is replaced, and a host an overlay claims leaves the shipped entry.",
    ),
    Option(
        "shadowgate_policy",
        str,
        "",
        "The organisation's policy file. Empty: observe everything, block nothing.",
    ),
    Option(
        "shadowgate_users",
        str,
        "",
        "Attribution map: networks (CIDR) and proxy-auth users to people and groups.",
    ),
    Option(
        "shadowgate_intercept",
        str,
        "catalog",
        "Which TLS connections to decrypt: 'catalog' (catalogued AI hosts plus the policy's 'inspect' "
        "hosts) or 'all' (everything but the policy's 'passthrough' hosts, to find unlisted AI endpoints "
        "by request shape).",
        choices=INTERCEPT_MODES,
    ),
    Option(
        "shadowgate_host_discovery",
        str,
        "named",
        "Record TLS connections to uncatalogued hosts whose name looks like AI (host_sightings, for "
        "'shadowgate catalog candidates'): 'named' with the person, 'anonymous' with a keyed fingerprint "
        "instead of the person, or 'off'. Host names only, never paths.",
        choices=HOST_DISCOVERY_MODES,
    ),
    Option(
        "shadowgate_fingerprint_key",
        str,
        "",
        "File with the HMAC secret for API key fingerprints (created if missing). Instances that share it "
        "produce comparable fingerprints. Default: <confdir>/shadowgate-fingerprint.key",
    ),
    Option(
        "shadowgate_max_parse_bytes",
        int,
        DEFAULT_MAX_PARSE_BYTES,
        "Request and response bodies above this size pass through unparsed (usage estimated). Such a "
        "request is decided on its headers before the body is sent; one whose decision needs the body "
        "(DLP, a model rule, the MCP policy) is refused with 413.",
    ),
    Option(
        "shadowgate_retention_days",
        int,
        0,
        "Keep per-request detail (every table: ai_requests, web_activity, mcp_calls, host_sightings, alerts, "
        "...) for this many days; older days keep only their daily totals (ai_requests_daily, "
        "mcp_calls_daily, web_activity_daily). 0 keeps everything.",
    ),
    Option(
        "shadowgate_budget_retry_after",
        int,
        60,
        "The longest Retry-After (seconds) a budget's 429 sends. The reset time goes in the message and "
        "the x-shadowgate-budget-reset header: SDKs honour Retry-After, and sleeping until a daily budget "
        "resets would hang them for hours.",
    ),
    Option(
        "shadowgate_budget_timezone",
        str,
        "UTC",
        "The time zone whose midnight starts a budget day (an IANA name such as Europe/Berlin, or UTC).",
    ),
    Option(
        "shadowgate_dlp_scan_metadata",
        bool,
        False,
        "DLP also scans a request's own bookkeeping: the top-level 'metadata', 'user', 'safety_identifier' "
        "and 'labels' fields, which the provider stores but the model never reads (they carry user ids "
        "and emails on every request, so they are left out by default).",
    ),
    Option(
        "shadowgate_dlp_scan_headers",
        Sequence[str],
        [],
        "Request header names (globs, e.g. 'x-context-*') whose values DLP scans like prompt text. "
        "Credentials (authorization, x-api-key) are the provider's own and are never worth listing.",
    ),
)
