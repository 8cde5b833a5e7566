"""Decide: the organisation's decisions, kept apart from the catalog's facts.

The default policy observes everything and blocks nothing. A policy file can name extra hosts to
decrypt (so internal or unlisted AI endpoints are fingerprinted by request shape) and hosts that
must never be decrypted (pinned apps, banking, health). A broken file is rejected with its file,
line and reason; the proxy keeps the policy it had.
"""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from addons.catalog import HostIndex
from addons.catalog import check_host_pattern
from addons.yamlfile import ConfigError
from addons.yamlfile import line_of
from addons.yamlfile import load_yaml

ALLOW = "allow"


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # allow (block, coach, redirect, ... arrive with the enforcement rules)
    rule_id: str
    reason: str = ""


DEFAULT_DECISION = Decision(ALLOW, "default", "observe: no rule blocks this")


@dataclass(slots=True)
class Policy:
    source: str = "<default: observe everything, block nothing>"
    inspect: HostIndex[bool] = field(default_factory=HostIndex)
    passthrough: HostIndex[bool] = field(default_factory=HostIndex)

    def decrypts(self, host: str, catalogued: bool, intercept_all: bool) -> bool:
        """Whether the proxy terminates TLS for this host (and so can meter it)."""
        if self.passthrough.get(host):
            return False
        return catalogued or intercept_all or bool(self.inspect.get(host))

    def decide(self, request: Any) -> Decision:
        return DEFAULT_DECISION


_KEYS = {"inspect", "passthrough"}


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file. Raises ConfigError with file, line and reason."""
    doc = load_yaml(path)
    if doc is None:
        return Policy(source=str(path))
    if not isinstance(doc, dict):
        raise ConfigError(path, line_of(doc, 1), "a policy must be a mapping")
    unknown = set(doc) - _KEYS
    if unknown:
        raise ConfigError(
            path, line_of(doc, 1), f"unknown keys {sorted(map(str, unknown))} (expected {sorted(_KEYS)})"
        )
    return Policy(
        source=str(path),
        inspect=_host_list(path, doc, "inspect"),
        passthrough=_host_list(path, doc, "passthrough"),
    )


def _host_list(path: str | Path, doc: dict, key: str) -> HostIndex[bool]:
    raw = doc.get(key) or []
    if not isinstance(raw, list):
        raise ConfigError(path, line_of(raw, line_of(doc)), f"'{key}' must be a list of hosts")
    hosts = []
    for item in raw:
        try:
            hosts.append((check_host_pattern(item), True))
        except ValueError as e:
            raise ConfigError(path, line_of(raw, line_of(doc)), f"'{key}': {e}") from None
    return HostIndex(hosts)
