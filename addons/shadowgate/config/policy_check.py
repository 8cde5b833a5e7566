"""A policy checked against the catalog: rules that can never match are errors, rules that an
earlier rule always wins over are warnings.

`load_policy` checks a file on its own (shape, types, actions). Whether `provider: deepsek` or
`category: chat` can ever match depends on the catalog the proxy runs with, so that check is here,
shared by `shadowgate policy check` and the proxy's start-up and reload: a typo in an id would
otherwise leave a block rule that silently never fires.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import replace

from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import HostIndex
from shadowgate.config.policy import REDIRECT
from shadowgate.config.policy import UNKNOWN_PROVIDER
from shadowgate.config.policy import Match
from shadowgate.config.policy import Policy
from shadowgate.config.policy import Rule
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import did_you_mean


def check_policy(policy: Policy, catalog: Catalog) -> list[str]:
    """Raise ConfigError (file:line) for an id the catalog does not know; return warnings, each
    "file:line: text", for rules that can never take effect."""
    providers = {*catalog.providers, UNKNOWN_PROVIDER}
    categories = {p.category for p in catalog.providers.values()} | set(getattr(catalog, "categories", ()))
    wire_formats = set(catalog.wire_formats)
    for owner, line, match in _matches(policy):
        _known(policy.source, line, owner, "provider", match.providers, providers)
        _known(policy.source, line, owner, "category", match.categories, categories)
        _known(policy.source, line, owner, "wire_format", match.wire_formats, wire_formats)
    for entry in policy.prices:  # a negotiated rate for a misspelt provider would never apply
        _known(policy.source, entry.line, "prices", "provider", frozenset({entry.provider}), providers)
    warnings = []
    warnings += [
        f"{policy.source}:{rule.line}: rule {rule.id!r}: {problem}; the proxy refuses every call it redirects "
        "(403) until the variable is set where the proxy runs"
        for rule, problem in gateway_problems(policy, "in this environment")
    ]
    for i, rule in enumerate(policy.rules):
        if (why := _never_matches(rule.match, catalog)) is not None:
            warnings.append(f"{policy.source}:{rule.line}: rule {rule.id!r} can never match: {why}")
            continue
        for earlier in policy.rules[:i]:
            if _covers(earlier.match, rule.match, catalog):
                warnings.append(
                    f"{policy.source}:{rule.line}: rule {rule.id!r} is shadowed by rule {earlier.id!r} "
                    f"(line {earlier.line}): every request it matches meets {earlier.id!r} first"
                )
                break
        else:
            warnings += _shadowed_hosts(policy, i, catalog)
    return warnings


def gateway_problems(policy: Policy, where: str = "in the proxy's environment") -> list[tuple[Rule, str]]:
    """Enforced redirect rules whose gateway key is missing here, each with what is wrong: the
    proxy refuses every call such a rule redirects (stages/act.py), an outage rather than a
    control. Read from this process's environment: at start-up and reload the proxy's own, in
    `shadowgate policy check` the shell's (run it where the proxy runs). Observe mode sends
    nothing anywhere, so it has no problem."""
    if policy.observe:
        return []
    problems = []
    for rule in policy.rules:
        gateway = rule.gateway
        if rule.action != REDIRECT or gateway is None:
            continue
        if not gateway.key_env:
            problems.append((rule, "the gateway has no key_env"))
        elif not gateway.key():
            problems.append((rule, f"gateway key variable {gateway.key_env} is not set {where}"))
    return problems


def _shadowed_hosts(policy: Policy, i: int, catalog: Catalog) -> list[str]:
    """A rule that names hosts but no provider or category (a header rule, say) still meets the
    catalog's facts about each host: `match: {host: chatgpt.com}` after `match: {category: chat-web}`
    never sees chatgpt.com. One warning per earlier rule, naming the hosts it takes."""
    rule = policy.rules[i]
    match = rule.match
    if match.hosts is None or match.providers is not None or match.categories is not None:
        return []
    taken: dict[str, list[str]] = {}
    for host in match.hosts.patterns():
        provider = None if host.startswith("*.") or catalog.has_paths_on(host) else catalog.match_host(host)
        if provider is None:
            continue  # a glob, a shared host or a host the catalog does not know: no facts to compare
        narrow = replace(match, hosts=HostIndex([(host, True)]), providers=frozenset({provider.id}))
        for earlier in policy.rules[:i]:
            if _covers(earlier.match, narrow, catalog):
                taken.setdefault(earlier.id, []).append(host)
                break
    lines = {r.id: r.line for r in policy.rules}
    return [
        f"{policy.source}:{rule.line}: rule {rule.id!r} never sees {', '.join(hosts)}: "
        f"rule {earlier_id!r} (line {lines[earlier_id]}) meets {'its' if len(hosts) == 1 else 'their'} requests first"
        for earlier_id, hosts in sorted(taken.items(), key=lambda item: lines[item[0]])
    ]


def _matches(policy: Policy) -> Iterable[tuple[str, int, Match]]:
    for rule in policy.rules:
        yield f"rule {rule.id!r}", rule.line, rule.match
    for budget in policy.budgets:
        yield f"budget {budget.id!r}", budget.line, budget.match


def _known(source: str, line: int, owner: str, key: str, values: frozenset[str] | None, known: set[str]) -> None:
    for value in sorted(values or ()):
        if value not in known:
            hint = did_you_mean(value, known)
            raise ConfigError(source, line, f"{owner}: match.{key}: {value!r} is not in the catalog{hint}")


def _never_matches(match: Match, catalog: Catalog) -> str | None:
    """Why no request can meet this match (provider and category that contradict), or None."""
    if match.providers is None or match.categories is None:
        return None
    listed = match.providers - {UNKNOWN_PROVIDER}
    if any(catalog.providers[p].category in match.categories for p in listed):
        return None
    if UNKNOWN_PROVIDER in match.providers:
        return None  # an unknown endpoint has no category, but it may still meet provider: unknown
    return f"none of providers {sorted(match.providers)} is in categories {sorted(match.categories)}"


def _covers(wide: Match, narrow: Match, catalog: Catalog) -> bool:
    """True when every request that meets `narrow` also meets `wide` (conservatively: False when unsure)."""
    if not _covers_providers(wide, narrow, catalog):
        return False
    if wide.hosts is not None and (
        narrow.hosts is None or not set(narrow.hosts.patterns()) <= set(wide.hosts.patterns())
    ):
        return False
    for key in ("wire_formats", "risks", "training"):
        if not _subset(getattr(wide, key), getattr(narrow, key)):
            return False
    for key in ("models", "users", "groups", "activities", "accounts", "file_types"):
        w, n = getattr(wide, key), getattr(narrow, key)
        if w is not None and (n is None or not set(n) <= set(w)):
            return False
    if wide.min_file_bytes is not None and (narrow.min_file_bytes or 0) < wide.min_file_bytes:
        return False
    if wide.networks is not None:
        if narrow.networks is None or not all(_inside(n, wide.networks) for n in narrow.networks):
            return False
    return True


def _covers_providers(wide: Match, narrow: Match, catalog: Catalog) -> bool:
    if not _subset(wide.providers, narrow.providers):
        return False
    if wide.categories is None:
        return True
    if narrow.categories is not None:
        return narrow.categories <= wide.categories
    if narrow.providers is None or UNKNOWN_PROVIDER in narrow.providers:
        return False
    return all(catalog.providers[p].category in wide.categories for p in narrow.providers)


def _subset(wide: frozenset[str] | None, narrow: frozenset[str] | None) -> bool:
    return wide is None or (narrow is not None and narrow <= wide)


def _inside(
    net: ipaddress.IPv4Network | ipaddress.IPv6Network,
    wide: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network],
) -> bool:
    return any(net.version == w.version and net.subnet_of(w) for w in wide)  # type: ignore[arg-type]


__all__ = ["check_policy", "gateway_problems"]
