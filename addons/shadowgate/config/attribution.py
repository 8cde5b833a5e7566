"""Attribute: who made a call, and with which key (as a keyed fingerprint, never the key).

User comes from proxy authentication, else from the organisation's network map (CIDR → user,
group), else it is the client IP. Keys are fingerprinted with HMAC-SHA256 under a secret that
stays on the proxy, so the database can say "these 40 calls used the same key" and nothing more.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl

from shadowgate.config.policy_approval import canonical_identity
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import did_you_mean
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import load_yaml


@dataclass(frozen=True, slots=True)
class Person:
    user: str
    group: str | None


@dataclass(frozen=True, slots=True)
class _NetworkEntry:
    network: ipaddress.IPv4Network | ipaddress.IPv6Network
    user: str | None
    group: str | None


class Directory:
    """The organisation's map of networks and proxy-auth users to people and groups."""

    def __init__(
        self, networks: list[_NetworkEntry] | None = None, user_groups: Mapping[str, str] | None = None
    ) -> None:
        # Longest prefix first, so a /32 for one laptop beats the /16 of its office.
        self._networks = sorted(networks or [], key=lambda e: -e.network.prefixlen)
        self._user_groups = dict(user_groups or {})
        self._by_ip = functools.lru_cache(maxsize=65536)(self._lookup_ip)

    def size(self) -> tuple[int, int]:
        """How many networks and how many proxy users the map names."""
        return len(self._networks), len(self._user_groups)

    def person(self, proxy_user: str | None, client_ip: str) -> Person:
        """The person behind a call. A proxy user is taken in the one form approvals compare
        people in (canonical_identity: NFKC, case-folded, spaces collapsed), as an LDAP directory
        matches names: `ALICE` and fullwidth `ａｌｉｃｅ` log in as alice, so they are alice, with
        alice's group, rules and budgets. A name that form rejects (control characters, `*`)
        stays as typed, and has no group."""
        if proxy_user:
            user = canonical_identity(proxy_user) or proxy_user
            return Person(user, self._user_groups.get(user))
        return self._by_ip(client_ip)

    def _lookup_ip(self, client_ip: str) -> Person:
        try:
            address = ipaddress.ip_address(client_ip)
        except ValueError:
            return Person(client_ip, None)
        if address.version == 6 and address.ipv4_mapped:
            address = address.ipv4_mapped
        for entry in self._networks:
            if address.version == entry.network.version and address in entry.network:
                user = entry.user or client_ip
                return Person(user, entry.group or self._user_groups.get(canonical_identity(user) or user))
        return Person(client_ip, None)


def load_directory(path: str | Path) -> Directory:
    """Load the attribution map. Raises ConfigError with file and line."""
    doc = load_yaml(path)
    if doc is None:
        return Directory()
    if not isinstance(doc, dict):
        raise ConfigError(path, line_of(doc, 1), "the attribution map must be a mapping with 'networks' and/or 'users'")
    unknown = set(doc) - {"networks", "users"}
    if unknown:
        raise ConfigError(path, line_of(doc, 1), f"unknown keys {sorted(unknown)} (expected 'networks', 'users')")
    networks: list[_NetworkEntry] = []
    for entry in doc.get("networks") or []:
        line = line_of(entry)
        if not isinstance(entry, dict) or "cidr" not in entry:
            raise ConfigError(path, line, "each network needs a 'cidr' (and a 'user' and/or 'group')")
        try:
            network = ipaddress.ip_network(str(entry["cidr"]), strict=False)
        except ValueError as e:
            raise ConfigError(path, line, f"bad cidr {entry['cidr']!r}: {e}") from e
        _only_known_keys(path, line, entry, ("cidr", "user", "group"), f"network {entry['cidr']}")
        if not entry.get("user") and not entry.get("group"):
            raise ConfigError(path, line, f"network {entry['cidr']} needs a 'user' or a 'group'")
        networks.append(_NetworkEntry(network, _opt_str(entry.get("user")), _opt_str(entry.get("group"))))
    user_groups: dict[str, str] = {}
    users = doc.get("users") or {}
    if not isinstance(users, dict):
        raise ConfigError(path, line_of(users, line_of(doc)), "'users' must map user names to {group: ...}")
    for name, spec in users.items():
        if isinstance(spec, dict):
            _only_known_keys(path, line_of(spec, line_of(users)), spec, ("group",), f"user {name!r}")
        group = spec.get("group") if isinstance(spec, dict) else spec
        if not isinstance(group, str) or not group:
            raise ConfigError(path, line_of(spec, line_of(users)), f"user {name!r} needs a group")
        key = canonical_identity(str(name))
        if key is None:
            raise ConfigError(
                path, line_of(spec, line_of(users)), f"user {name!r} names nobody (control or glob characters)"
            )
        if key in user_groups and user_groups[key] != group:
            raise ConfigError(
                path,
                line_of(spec, line_of(users)),
                f"user {name!r} is also listed in another spelling with another group",
            )
        user_groups[key] = group  # looked up in the form person() gives the proxy user
    return Directory(networks, user_groups)


def _only_known_keys(path: str | Path, line: int | None, entry: dict, known: tuple[str, ...], what: str) -> None:
    """A misspelt key (`usr: alice`) is named as such, not reported as the key it was meant to be
    missing."""
    for key in entry:
        if key not in known:
            hint = did_you_mean(str(key), known) or f" (expected {', '.join(known)})"
            raise ConfigError(path, line, f"{what}: unknown key {str(key)!r}{hint}")


def _opt_str(value: object) -> str | None:
    return str(value) if value not in (None, "") else None


# --- API keys ---------------------------------------------------------------------------------

_SIGV4_CREDENTIAL = re.compile(r"Credential=([A-Z0-9]{16,128})/")
# The shape of a key says what kind of account it belongs to, without revealing it.
_KEY_KINDS = (
    ("sk-ant-admin", "anthropic-admin"),
    ("sk-ant-api", "anthropic-api"),
    ("sk-ant-oat", "anthropic-oauth"),
    ("sk-proj-", "openai-project"),
    ("sk-svcacct-", "openai-service-account"),
    ("sk-admin-", "openai-admin"),
    ("sk-or-", "openrouter"),
    ("sk-", "sk"),
    ("AIza", "google-api-key"),
    ("ya29.", "google-oauth"),
    ("gsk_", "groq"),
    ("xai-", "xai"),
    ("pplx-", "perplexity"),
    ("hf_", "huggingface"),
    ("r8_", "replicate"),
    ("csk-", "cerebras"),
    ("fw_", "fireworks"),
    ("tgp_", "together"),
    ("AKIA", "aws-long-term"),
    ("ASIA", "aws-temporary"),
    ("ghu_", "github-user"),
    ("gho_", "github-oauth"),
    ("github_pat_", "github-pat"),
    ("eyJ", "jwt"),
)


@dataclass(frozen=True, slots=True)
class KeySighting:
    fingerprint: str
    kind: str


class KeyFingerprinter:
    def __init__(self, secret: bytes) -> None:
        self._secret = secret
        self._cache: dict[str, KeySighting] = {}

    def sighting(self, headers: Mapping[str, str], query: str) -> KeySighting | None:
        key = find_api_key(headers, query)
        if key is None:
            return None
        found = self._cache.get(key)
        if found is None:
            digest = hmac.new(self._secret, key.encode("utf-8", "surrogateescape"), hashlib.sha256)
            found = KeySighting("hmac:" + digest.hexdigest()[:32], key_kind(key))
            if len(self._cache) > 100_000:  # keys rotate; keep the cache bounded
                self._cache.clear()
            self._cache[key] = found
        return found


def find_api_key(headers: Mapping[str, str], query: str) -> str | None:
    """The credential a client sent to an AI API, from any of the places providers accept it."""
    for name in ("x-api-key", "api-key", "x-goog-api-key"):
        value = headers.get(name)
        if value:
            return value.strip()
    auth = headers.get("authorization")
    if auth:
        scheme, _, rest = auth.strip().partition(" ")
        if scheme.lower() in ("bearer", "token", "key") and rest:
            return rest.strip()
        if scheme == "AWS4-HMAC-SHA256":
            # The access key id identifies the AWS principal; the signature changes per request.
            m = _SIGV4_CREDENTIAL.search(rest)
            return m.group(1) if m else None
        return auth.strip()
    if query and "key=" in query:
        for name, value in parse_qsl(query, keep_blank_values=False):
            if name == "key" and value:
                return value
    return None


def key_kind(key: str) -> str:
    for prefix, kind in _KEY_KINDS:
        if key.startswith(prefix):
            return kind
    return "other"


def account_hint(headers: Mapping[str, str]) -> str | None:
    """Organisation and project ids clients send, which tell corporate accounts from personal."""
    parts = []
    for header, label in (
        ("openai-organization", "org"),
        ("openai-project", "project"),
        ("anthropic-organization-id", "org"),
        ("x-goog-user-project", "project"),
        ("chatgpt-account-id", "account"),
    ):
        value = headers.get(header)
        if value:
            parts.append(f"{label}={value.strip()[:100]}")
    return ";".join(parts) or None


def load_or_create_secret(path: str | Path) -> bytes:
    """The HMAC secret. Created once with 0600 permissions; shared by instances that share it."""
    path = Path(path).expanduser()
    try:
        data = path.read_bytes().strip()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    data = secrets.token_hex(32).encode()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data + b"\n")
    return data
