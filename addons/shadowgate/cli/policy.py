"""`shadowgate policy check|explain`: try a policy before it goes live."""

from __future__ import annotations

import fnmatch
import sys
from collections.abc import Sequence
from dataclasses import MISSING
from dataclasses import fields

from shadowgate.config.attribution import load_directory
from shadowgate.config.catalog import DEFAULT_CATALOG
from shadowgate.config.catalog import Catalog
from shadowgate.config.catalog import HostIndex
from shadowgate.config.catalog import load_configured_catalog
from shadowgate.config.policy import UNKNOWN_PROVIDER
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import Facts
from shadowgate.config.policy import McpPolicy
from shadowgate.config.policy import Policy
from shadowgate.config.policy import load_policy
from shadowgate.config.policy_check import check_policy
from shadowgate.config.yamlfile import ConfigError


def run_check(
    path: str,
    providers: str = str(DEFAULT_CATALOG),
    extra: Sequence[str] = (),
    strict: bool = False,
    users: str | None = None,
) -> int:
    """Exit 1 on an error (the file is refused, as the proxy would); warnings print on stderr and
    still exit 0, since the proxy starts with them, unless `strict` (a CI gate) makes them errors."""
    try:
        policy = load_policy(path)
        catalog = load_configured_catalog(providers, extra)
        warnings = check_policy(policy, catalog)
        directory = load_directory(users) if users else None
    except ConfigError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    for warning in warnings:
        print(f"warning: {warning}", file=sys.stderr)
    for note in notes(policy) + price_notes(policy, catalog):
        print(f"note: {note}", file=sys.stderr)
    if strict and warnings:
        print(
            f"invalid: {path}: {_count(len(warnings), 'warning')}, and warnings are errors (--strict)", file=sys.stderr
        )
        return 1
    mode = "observe (actions are logged as would_*, nothing is enforced)" if policy.observe else "enforce"
    print(
        f"ok: {path}: {len(policy.rules)} rules, {len(policy.budgets)} budgets, mode {mode}; "
        f"controls: {', '.join(controls(policy)) or 'none'}"
    )
    for rule in policy.rules:
        print(f"  line {rule.line}: {rule.id} -> {rule.action}")
    if directory is not None:
        networks, people = directory.size()
        print(f"ok: {users}: {_count(networks, 'network')}, {_count(people, 'user')}")
    return 0


def notes(policy: Policy) -> list[str]:
    """What depends on how the proxy runs, which this command cannot see (its options): said, but
    neither an error nor a warning."""
    if policy.inspect:
        return []  # some uncatalogued hosts are decrypted: the rule acts on those
    return [
        f"{policy.source}:{rule.line}: rule {rule.id!r} (provider: unknown) acts only on decrypted hosts: "
        "run the proxy with shadowgate_intercept=all, or list the hosts under inspect:"
        for rule in policy.rules
        if rule.match.providers is not None and UNKNOWN_PROVIDER in rule.match.providers
    ]


def price_notes(policy: Policy, catalog: Catalog) -> list[str]:
    """A negotiated rate whose glob covers more list-priced models than the one meant (`gpt-4o*`
    prices every gpt-4o-mini call at gpt-4o's rate): the models it covers, from the price list."""
    from genai_prices.data_snapshot import get_snapshot

    models_by_provider = {p.id: [m.id for m in p.models] for p in get_snapshot().providers}
    found = []
    for entry in policy.prices:
        provider = catalog.providers.get(entry.provider)
        listed = models_by_provider.get(provider.pricing_provider or "", []) if provider else []
        covered = sorted(m for m in listed if fnmatch.fnmatchcase(m, entry.model))
        if len(covered) > 1:
            shown = ", ".join(covered[:8]) + (f" and {len(covered) - 8} more" if len(covered) > 8 else "")
            found.append(
                f"{policy.source}:{entry.line}: prices {entry.model!r} for {entry.provider} covers "
                f"{len(covered)} list-priced models ({shown}), all at this rate; name the models if that is not meant"
            )
    return found


def controls(policy: Policy) -> list[str]:
    """Every section of the policy beyond its rules and budgets that is in force (a section whose
    every action is off is not), found from the Policy's fields, so a new section is named too."""
    named = []
    for spec in fields(Policy):
        if spec.name in ("source", "observe", "rules", "budgets"):
            continue
        value = getattr(policy, spec.name)
        default = spec.default_factory() if spec.default_factory is not MISSING else spec.default
        if value is None or (isinstance(value, HostIndex) and not value) or value == default:
            continue
        named.append(_detail(spec.name, value))
    return named


def _detail(section: str, value: object) -> str:
    if isinstance(value, DlpPolicy):
        overrides = f", {_count(len(value.types), 'type override')}" if value.types else ""
        return f"dlp (secrets {value.secrets}, pii {value.pii}{overrides})"
    if isinstance(value, McpPolicy):
        approving = sum(s.approve is not None for s in value.servers)
        approvals = f", approvals on {approving}" if approving else ""
        return f"mcp ({_count(len(value.servers), 'server')}{approvals}, unlisted {value.unlisted})"
    if isinstance(value, HostIndex):
        return f"{section} ({_count(len(value.patterns()), 'host')})"
    if isinstance(value, tuple):
        return f"{section} ({_count(len(value), 'entry')})"
    return section


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n} {noun if n == 1 else plural}"


def run_explain(
    policy_path: str | None,
    providers: str,
    extra: Sequence[str],
    host: str,
    path: str,
    method: str,
    user: str | None,
    group: str | None,
    model: str | None,
    client: str | None,
    users: str | None = None,
) -> int:
    try:
        policy = load_policy(policy_path) if policy_path else Policy()
        catalog = load_configured_catalog(providers, extra)
        directory = load_directory(users) if users else None
    except ConfigError as e:
        print(f"invalid: {e}", file=sys.stderr)
        return 1
    if directory is not None and (user or client):
        # As the proxy names the caller: its proxy user first, else the map's network for the address.
        person = directory.person(user, client or "")
        user, group = person.user, group or person.group
    provider = catalog.match_host(host)
    route = catalog.route(provider, method.upper(), path)
    facts = Facts(
        host=host.lower(),
        provider=provider.id if provider else None,
        category=provider.category if provider else None,
        wire_format=route.wire_format if route else None,
        model=model or (route.model_from_path if route else None),
        user=user,
        group=group,
        client_ip=client,
        risk=provider.risk if provider else None,
        trains_on_inputs=provider.facts.worst_training if provider else None,
    )
    print(f"request: {method.upper()} https://{facts.host}{path}")
    print(
        f"  provider={facts.provider or 'unknown'} category={facts.category or '-'} "
        f"wire_format={facts.wire_format or '-'} model={facts.model or '-'} "
        f"user={facts.user or '-'} group={facts.group or '-'} client={facts.client_ip or '-'}"
    )
    decrypt = policy.decrypts(facts.host, provider is not None, False, facts)
    print(f"  TLS: {'decrypted' if decrypt else 'passed through, not decrypted'}")
    for rule, reason in policy.explain(facts):
        verdict = "MATCHES" if reason is None else f"no: {reason}"
        print(f"  rule {rule.id} (line {rule.line}, {rule.action}): {verdict}")
    decision = policy.decide(facts)
    print(f"decision: {decision.action} (rule {decision.rule_id}){': ' + decision.reason if decision.reason else ''}")
    return 0
