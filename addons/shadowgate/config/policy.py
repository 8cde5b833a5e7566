"""Decide: the organisation's decisions, kept apart from the catalog's facts.

A policy is an ordered list of rules; the first rule whose match fits a request decides, and its
id is recorded with the decision. With no file, or no matching rule, the proxy observes and
allows. `mode: observe` turns every action into the one it *would* have taken (would_block, ...)
while traffic flows untouched: the first phase of a rollout.

A broken file is rejected with its file, line and reason, and the proxy keeps the policy it had.
"""

from __future__ import annotations

import fnmatch
import functools
import ipaddress
import os
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from pathlib import Path
from typing import Any

from shadowgate.config.catalog import HostIndex
from shadowgate.config.catalog import check_host_pattern
from shadowgate.config.catalog_facts import RISK_LEVELS
from shadowgate.config.catalog_facts import TRAINING
from shadowgate.config.policy_accounts import WEB_MATCH_KEYS
from shadowgate.config.policy_accounts import AccountsPolicy
from shadowgate.config.policy_accounts import parse_accounts
from shadowgate.config.policy_accounts import web_match
from shadowgate.config.policy_alerts import AlertsPolicy
from shadowgate.config.policy_alerts import parse_alerts
from shadowgate.config.policy_approval import ApprovalPolicy
from shadowgate.config.policy_approval import ApprovalRule
from shadowgate.config.policy_approval import canonical_identity
from shadowgate.config.policy_approval import check_approval
from shadowgate.config.policy_approval import parse_approval
from shadowgate.config.policy_approval import parse_server_approval
from shadowgate.config.policy_approval import tool_form
from shadowgate.config.policy_injection import InjectionPolicy
from shadowgate.config.policy_injection import parse_injection
from shadowgate.config.policy_prices import PriceOverride
from shadowgate.config.policy_prices import parse_prices
from shadowgate.config.policy_responses import ResponsesPolicy
from shadowgate.config.policy_responses import parse_responses
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import did_you_mean
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key
from shadowgate.config.yamlfile import load_yaml
from shadowgate.config.yamlfile import one_or_more

ALLOW = "allow"
BLOCK = "block"
COACH = "coach"
REDIRECT = "redirect"
PASSTHROUGH = "passthrough"
RATE_LIMIT = "rate_limit"
ACTIONS = (ALLOW, BLOCK, COACH, REDIRECT, PASSTHROUGH)
OBSERVE_PREFIX = "would_"
# `provider: unknown` meets an endpoint the catalog does not list that speaks a known AI wire format
# (its rows say provider = 'unknown'): never a host that is simply not AI.
UNKNOWN_PROVIDER = "unknown"
# `match: all` is the explicit catch-all; an empty or missing match is refused as a likely mistake.
MATCH_ALL = "all"


@dataclass(frozen=True, slots=True)
class Facts:
    """What a rule can match on. None means unknown (e.g. the model before TLS is decrypted)."""

    host: str
    provider: str | None = None  # catalog id; None for unknown hosts
    category: str | None = None
    wire_format: str | None = None
    model: str | None = None
    user: str | None = None
    group: str | None = None
    client_ip: str | None = None
    other_models: tuple[str, ...] = ()  # fallbacks and batch requests' models, judged like model
    # What names a model the call runs that the proxy cannot see (a stored prompt, a saved
    # gateway config): judged as the strictest model any rule could name.
    model_reference: str | None = None
    # The catalog's risk facts about the provider (config/catalog_facts.py): its derived level and
    # the training setting of its worst plan tier. None for a host the catalog does not list.
    risk: str | None = None
    trains_on_inputs: str | None = None
    # Chat web apps (shadowgate.webapps): what the request does, whose account, the file it carries.
    activity: str | None = None  # prompt, upload, download, share, login, visit, other
    account: str | None = None  # corporate, other-workspace, personal, anonymous, unknown
    file_type: str | None = None  # the uploaded file's extension, lower-case
    file_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class Gateway:
    """The sanctioned AI gateway a redirect rule sends calls to."""

    openai_base_url: str | None  # OpenAI-compatible route, e.g. https://llm.corp.example/v1
    anthropic_base_url: str | None  # Messages route, e.g. https://llm.corp.example/anthropic
    key_env: str | None  # the environment variable holding the gateway key; never the key
    model_map: dict[str, str] = field(default_factory=dict)

    def key(self) -> str | None:
        return os.environ.get(self.key_env) if self.key_env else None


@dataclass(frozen=True, slots=True)
class Match:
    providers: frozenset[str] | None = None
    categories: frozenset[str] | None = None
    hosts: HostIndex[bool] | None = None
    wire_formats: frozenset[str] | None = None
    models: tuple[str, ...] | None = None  # globs
    users: tuple[str, ...] | None = None  # globs
    groups: tuple[str, ...] | None = None  # globs
    networks: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None
    risks: frozenset[str] | None = None  # low | medium | high
    training: frozenset[str] | None = None  # trains_on_inputs of the worst tier
    activities: frozenset[str] | None = None  # web apps: prompt, upload, ...
    accounts: frozenset[str] | None = None  # web apps: corporate, personal, ...
    file_types: tuple[str, ...] | None = None  # globs on the uploaded file's extension
    min_file_bytes: int | None = None  # the uploaded file is at least this big

    @property
    def needs_request(self) -> bool:
        """True when only a decrypted request can tell (model, wire format, web-app activity)."""
        return self.wire_formats is not None or self.models is not None or self.web is not None

    @property
    def web(self) -> tuple | None:
        """The web-app keys, None when the match names none of them."""
        keys = (self.activities, self.accounts, self.file_types, self.min_file_bytes)
        return keys if any(k is not None for k in keys) else None

    def check(self, facts: Facts) -> str | None:
        """None when the facts match; otherwise the first reason they do not."""
        if self.providers is not None and _provider_of(facts) not in self.providers:
            return f"provider {facts.provider or 'none'} not in {sorted(self.providers)}"
        if self.categories is not None and facts.category not in self.categories:
            return f"category {facts.category or 'none'} not in {sorted(self.categories)}"
        if self.hosts is not None and not self.hosts.get(facts.host):
            return f"host {facts.host} not in {self.hosts.patterns()}"
        if self.wire_formats is not None and facts.wire_format not in self.wire_formats:
            return f"wire format {facts.wire_format or 'none'} not in {sorted(self.wire_formats)}"
        # Any model the call runs (Policy.decide hands rules one at a time; a budget sees them all:
        # a fallback, a tool's, a batch's), and a model named by reference could be any of them
        # (red-team F68).
        runs = (facts.model, *facts.other_models)
        if (
            self.models is not None
            and facts.model_reference is None
            and not any(_model_matches(m, self.models) for m in runs)
        ):
            return f"model {facts.model or 'none'} matches none of {list(self.models)}"
        if self.users is not None and not _user_matches(facts.user, self.users):
            return f"user {facts.user or 'none'} matches none of {list(self.users)}"
        if self.groups is not None and not _glob_any(facts.group, self.groups):
            return f"group {facts.group or 'none'} matches none of {list(self.groups)}"
        if self.networks is not None and not _in_networks(facts.client_ip, self.networks):
            return f"client {facts.client_ip or 'none'} outside {[str(n) for n in self.networks]}"
        if self.risks is not None and facts.risk not in self.risks:
            return f"risk {facts.risk or 'none'} not in {sorted(self.risks)}"
        if self.training is not None and facts.trains_on_inputs not in self.training:
            return f"trains_on_inputs {facts.trains_on_inputs or 'none'} not in {sorted(self.training)}"
        if self.web is not None:
            return self._check_web(facts)
        return None

    def _check_web(self, facts: Facts) -> str | None:
        if self.activities is not None and facts.activity not in self.activities:
            return f"activity {facts.activity or 'none'} not in {sorted(self.activities)}"
        if self.accounts is not None and facts.account not in self.accounts:
            return f"account {facts.account or 'none'} not in {sorted(self.accounts)}"
        if self.file_types is not None and not _glob_any(facts.file_type, self.file_types):
            return f"file type {facts.file_type or 'none'} matches none of {list(self.file_types)}"
        if self.min_file_bytes is not None and (facts.file_bytes or 0) < self.min_file_bytes:
            return f"file of {facts.file_bytes or 0} bytes is under {self.min_file_bytes}"
        return None


@dataclass(frozen=True, slots=True)
class Rule:
    id: str
    line: int
    match: Match
    action: str
    message: str = ""
    alternative: str = ""  # where to go instead, named in errors and pages
    coach_api: str = ALLOW  # what coach means for API clients, which cannot click: allow or block
    coach_minutes: int = 60
    gateway: Gateway | None = None
    browser_url: str | None = None  # redirect: where a browser navigation is sent (302)
    headers: tuple[tuple[str, str], ...] = ()  # injected on matching requests (tenant restrictions)


@dataclass(frozen=True, slots=True)
class Budget:
    id: str
    line: int
    per: str  # user | group
    match: Match
    tokens_per_day: int | None = None
    usd_per_day: float | None = None
    requests_per_minute: int | None = None
    warn_at: float = 0.8


DLP_ACTIONS = ("redact", "block", "log", "off")
DEFAULT_BUDGET_US_PER_BYTE = 5.0


@dataclass(frozen=True, slots=True)
class DlpPolicy:
    """What to do with secrets and personal data found in prompts. Absent: DLP is off."""

    secrets: str = "redact"  # for every secret type: redact | block | log | off
    pii: str = "redact"  # for every PII type
    types: dict[str, str] = field(default_factory=dict)  # per-type overrides
    reversible: bool = False  # restore the placeholders in the model's answer
    on_error: str = BLOCK  # a scan that fails or runs out of time: block (fail closed) or allow
    budget_ms: float = 250.0
    # CPU a scan may take per byte of body beyond budget_ms: a body of thousands of short strings
    # (a fine-tuning file, an agent's tool results) costs ~2.5 µs a byte (red-team F81, round-6b
    # G18); still linear, so no body holds a thread for long. 0: budget_ms whatever the size.
    budget_us_per_byte: float = DEFAULT_BUDGET_US_PER_BYTE
    # the opt-in types (person names) that `types` asks for with an action other than off
    opt_in: frozenset[str] = frozenset()

    def action_for(self, type_: str, kind: str) -> str:
        return self.types.get(type_) or (self.secrets if kind == "secret" else self.pii)

    @property
    def changes_traffic(self) -> bool:
        """Whether a finding could refuse or rewrite a request (an action of block or redact):
        a log-only policy has nothing to fail closed for."""
        return any(a in ("block", "redact") for a in (self.secrets, self.pii, *self.types.values()))


MCP_INJECTION_ACTIONS = ("flag", "block")


@dataclass(frozen=True, slots=True)
class McpServer:
    """One allowed MCP server (host glob) and what its tools may do."""

    id: str
    line: int
    hosts: tuple[str, ...]  # globs, e.g. "mcp.atlassian.com", "*.mcp.corp.example"
    allow_tools: tuple[str, ...] | None = None  # globs; None: every tool not denied
    deny_tools: tuple[str, ...] = ()  # globs; deny wins over allow
    max_argument_bytes: int | None = None
    max_result_bytes: int | None = None
    injection: str = "flag"  # tool results with injection patterns: flag (record) or block
    # Who this entry is for (user, group, client), matched as rules match. Entries for one host
    # are tried in order, so a group's own entry goes before everyone's.
    match: Match = field(default_factory=Match)
    approve: ApprovalRule | None = None  # calls held for an approver (config/policy_approval.py)

    def matches_host(self, host: str) -> bool:
        return any(fnmatch.fnmatchcase(host, p) for p in self.hosts)

    def tool_allowed(self, tool: str) -> bool:
        # Deny also by the folded name (a server that looks tools up loosely runs DELETE_REPO or
        # fullwidth delete_repo as delete_repo); allow stays exact, so both err towards refusing.
        folded = tool_form(tool)
        if any(fnmatch.fnmatchcase(tool, p) or fnmatch.fnmatchcase(folded, tool_form(p)) for p in self.deny_tools):
            return False
        return self.allow_tools is None or any(fnmatch.fnmatchcase(tool, p) for p in self.allow_tools)


@dataclass(frozen=True, slots=True)
class McpPolicy:
    """The policy's `mcp:` section. Absent: MCP calls are recorded, nothing is blocked."""

    servers: tuple[McpServer, ...] = ()
    unlisted: str = BLOCK  # MCP servers on no listed host: block or allow (servers listed at all)
    # Opt-in: tool arguments and results (after DLP) stored in mcp_calls, cut to this many characters.
    store_content: bool = False
    store_max_chars: int = 4096
    approval: ApprovalPolicy | None = None

    def server_for(self, host: str) -> McpServer | None:
        """The first entry listing this host, whoever asks (what is decrypted, what is listed)."""
        for server in self.servers:
            if server.matches_host(host):
                return server
        return None

    def server_for_facts(self, facts: Facts) -> tuple[McpServer | None, McpServer | None]:
        """(the first entry for this host whose match fits the person, the first entry for the host)."""
        first = None
        for server in self.servers:
            if server.matches_host(facts.host):
                first = first or server
                if server.match.check(facts) is None:
                    return server, first
        return None, first


@dataclass(frozen=True, slots=True)
class Decision:
    action: str  # allow, block, coach, redirect, passthrough, rate_limit, or would_<action>
    rule_id: str
    reason: str = ""
    rule: Rule | None = None
    retry_after: int | None = None  # rate_limit: seconds to wait before trying again (bounded)
    reset_at: str | None = None  # rate_limit: when the budget allows calls again (ISO 8601)

    @property
    def enforced(self) -> bool:
        return not self.action.startswith(OBSERVE_PREFIX)


DEFAULT_DECISION = Decision(ALLOW, "default", "no rule matched: observe and allow")
# How strict an enforced action is; an observe-mode would_* decision ranks below every enforced one.
_STRICTNESS = {BLOCK: 5, RATE_LIMIT: 4, REDIRECT: 3, COACH: 2, PASSTHROUGH: 1, ALLOW: 1}


def strictness(decision: Decision) -> int:
    rank = _STRICTNESS.get(decision.action.removeprefix(OBSERVE_PREFIX), 1)
    return rank * 2 if decision.enforced else 1


@dataclass(slots=True)
class Policy:
    source: str = "<default: observe everything, block nothing>"
    observe: bool = False
    inspect: HostIndex[bool] = field(default_factory=HostIndex)
    passthrough: HostIndex[bool] = field(default_factory=HostIndex)
    rules: tuple[Rule, ...] = ()
    budgets: tuple[Budget, ...] = ()
    dlp: DlpPolicy | None = None
    mcp: McpPolicy | None = None
    prices: tuple[PriceOverride, ...] = ()  # negotiated rates (config/policy_prices.py)
    injection: InjectionPolicy | None = None
    responses: ResponsesPolicy | None = None
    alerts: AlertsPolicy | None = None
    accounts: AccountsPolicy = field(default_factory=AccountsPolicy)

    def decrypts(self, host: str, catalogued: bool, intercept_all: bool, facts: Facts | None = None) -> bool:
        """Whether the proxy terminates TLS for this host (and so can meter and enforce)."""
        if self.passthrough.get(host):
            return False
        connection = self.decide_connection(facts or Facts(host=host))
        if connection is not None and connection.action == PASSTHROUGH:
            return False
        named = any(r.match.hosts is not None and r.match.hosts.get(host) for r in self.rules)
        named = named or (self.mcp is not None and self.mcp.server_for(host) is not None)
        return catalogued or intercept_all or bool(self.inspect.get(host)) or named

    def decide(self, facts: Facts) -> Decision:
        """The first matching rule's decision. A model that an upstream may read as another
        (`GPT-4o`, `openai/gpt-4o`: see model_forms) is judged in each form, and so is each of
        the other models the call may run (fallbacks, a batch's requests): the strictest wins,
        the first (the model as sent) among equals. A call that also runs a model it names only
        by reference is judged as well as the strictest model a rule could name (any_model)."""
        if facts.file_type is not None and "," in facts.file_type:
            # Several files, or a file read as several types (its name, declared type and bytes
            # disagree): each type is judged, the strictest holds.
            kinds = facts.file_type.split(",")
            return max((self.decide(replace(facts, file_type=kind)) for kind in kinds), key=strictness)
        if facts.model_reference is not None:
            known = self.decide(replace(facts, model_reference=None))
            return max([known, self.any_model(facts)], key=strictness)
        forms = model_forms(facts.model) if facts.model is not None else ()
        if facts.other_models:
            others = (f for m in facts.other_models for f in model_forms(m))
            forms = tuple(dict.fromkeys((*forms, *others)))
            facts = replace(facts, other_models=())
        if len(forms) <= 1:
            # One form: the model as sent, or the one other model a call without its own runs
            # (a batch file of one model), which must be the one judged.
            return self._first_match(replace(facts, model=forms[0]) if forms else facts)
        decisions = [self._first_match(replace(facts, model=form)) for form in forms]
        return max(decisions, key=strictness)  # max keeps the first of equals

    def any_model(self, facts: Facts) -> Decision:
        """The strictest decision the call could get for any model: each rule, in order, whose
        only mismatch may be the model, up to the first that matches whatever the model is."""
        decisions = []
        for rule in self.rules:
            if rule.match.models is None:
                if rule.match.check(facts) is None:
                    decisions.append(self._decision(rule))
                    break
            elif replace(rule.match, models=None).check(facts) is None:
                decisions.append(self._decision(rule))
        else:
            decisions.append(DEFAULT_DECISION)
        decision = max(decisions, key=strictness)
        if decision.rule is None or decision.rule.match.models is None:
            return decision
        why = f"{facts.model_reference} names a model the proxy cannot see, judged as any model the rule names"
        return replace(decision, reason=f"{decision.reason} ({why})" if decision.reason else why)

    def _first_match(self, facts: Facts) -> Decision:
        for rule in self.rules:
            if rule.match.check(facts) is None:
                return self._decision(rule)
        return DEFAULT_DECISION

    def decide_connection(self, facts: Facts) -> Decision | None:
        """The decision for a whole connection, from what is known before decrypting it.

        None when a rule that needs the request (model, wire format) could still match: the
        connection must be decrypted to decide.
        """
        for rule in self.rules:
            if rule.match.check(facts) is not None:
                if not rule.match.needs_request:
                    continue
                # The mismatch may be only the unknown model/wire format: check the rest.
                probe = Facts(**{**_as_dict(facts), "wire_format": None, "model": None, **_NO_WEB_FACTS})
                relaxed = Match(**{**_as_dict(rule.match), "wire_formats": None, "models": None, **_NO_WEB_KEYS})
                if relaxed.check(probe) is None:
                    return None
                continue
            if rule.match.needs_request:
                return None
            return self._decision(rule)
        return DEFAULT_DECISION

    def explain(self, facts: Facts) -> list[tuple[Rule, str | None]]:
        """Each rule in order with why it does not match (None: it matches), up to the first match."""
        steps = []
        for rule in self.rules:
            reason = rule.match.check(facts)
            steps.append((rule, reason))
            if reason is None:
                break
        return steps

    def _decision(self, rule: Rule) -> Decision:
        action = OBSERVE_PREFIX + rule.action if self.observe and rule.action != ALLOW else rule.action
        return Decision(action, rule.id, rule.message, rule)


_NO_WEB_FACTS: dict[str, Any] = {"activity": None, "account": None, "file_type": None, "file_bytes": None}
_NO_WEB_KEYS: dict[str, Any] = {"activities": None, "accounts": None, "file_types": None, "min_file_bytes": None}


def _as_dict(obj: Any) -> dict[str, Any]:
    return {name: getattr(obj, name) for name in obj.__slots__}


def _provider_of(facts: Facts) -> str | None:
    if facts.provider is None and facts.wire_format is not None:
        return UNKNOWN_PROVIDER
    return facts.provider


# Dashes and hyphens that read as "-" (NFKC leaves U+2010..U+2015 and U+2212 alone).
_DASHES = str.maketrans(dict.fromkeys("\u2010\u2011\u2012\u2013\u2014\u2015\u2212\u2043\ufe58", "-"))


@functools.lru_cache(maxsize=4096)
def fold_model(value: str) -> str:
    """A model name as a lenient upstream may read it: NFKC, case-folded, trimmed, without format
    characters (zero-width, bidi), with dash look-alikes as "-". A configured glob folds the same
    way (its `*`, `?` and `[...]` are untouched)."""
    text = unicodedata.normalize("NFKC", value).casefold().translate(_DASHES)
    return "".join(c for c in text if unicodedata.category(c) != "Cf").strip()


@functools.lru_cache(maxsize=4096)
def model_forms(value: str) -> tuple[str, ...]:
    """The model as sent, then as folded, then folded without a `vendor/` (or `models/`) prefix, as
    routers and gateways strip it: each distinct form once. A plain lower-case ASCII name (nearly
    every call) is its only form."""
    if value.isascii() and "/" not in value and value == value.strip().lower():
        return (value,)
    folded = fold_model(value)
    # OpenRouter's `vendor/model@preset/name` runs vendor/model with a preset's settings: the
    # part before `@` is the model (red-team F62).
    base = folded.partition("@")[0].strip()
    return tuple(
        dict.fromkeys(f for f in (value, folded, folded.rpartition("/")[2].strip(), base, base.rpartition("/")[2]) if f)
    )


def _model_matches(value: str | None, patterns: tuple[str, ...]) -> bool:
    """A model matches a glob as sent, or in any of its forms against the folded glob: so a
    budget counts `GPT-4o` under `gpt-4o*`, and Policy.decide judges each form on its own."""
    if value is None:
        return False
    if _glob_any(value, patterns):
        return True
    forms = model_forms(value)
    return len(forms) > 1 and any(fnmatch.fnmatchcase(f, fold_model(p)) for f in forms[1:] for p in patterns)


def _user_matches(user: str | None, patterns: tuple[str, ...]) -> bool:
    """A user glob as written, or in the canonical form the directory gives proxy users (so a
    rule naming `Alice` still meets alice, who may have logged in as `ALICE`)."""
    if user is None:
        return False
    return any(
        fnmatch.fnmatchcase(user, p) or fnmatch.fnmatchcase(user, canonical_identity(p, pattern=True) or p)
        for p in patterns
    )


def _glob_any(value: str | None, patterns: tuple[str, ...]) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in patterns)


def _in_networks(ip: str | None, networks: Iterable[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    if address.version == 6 and address.ipv4_mapped:
        address = address.ipv4_mapped
    return any(address.version == n.version and address in n for n in networks)


# --- loading and validation -------------------------------------------------------------------

_KEYS = {
    "mode",
    "inspect",
    "passthrough",
    "rules",
    "budgets",
    "dlp",
    "mcp",
    "prices",
    "injection",
    "responses",
    "alerts",
    "accounts",
}
_MCP_SERVER_KEYS = {
    "id",
    "host",
    "match",
    "allow_tools",
    "deny_tools",
    "max_argument_bytes",
    "max_result_bytes",
    "injection",
    "approve_tools",
    "approve_arguments",
}
_MCP_MATCH_KEYS = {"user", "group", "client"}  # an MCP call has no provider, model or wire format
_MATCH_KEYS = {
    "provider",
    "category",
    "host",
    "wire_format",
    "model",
    "user",
    "group",
    "client",
    "risk",
    "trains_on_inputs",
} | WEB_MATCH_KEYS
_RULE_KEYS = {"id", "match", "action", "message", "alternative", "coach", "gateway", "browser_url", "headers"}
_BUDGET_KEYS = {"id", "per", "match", "tokens_per_day", "usd_per_day", "requests_per_minute", "warn_at"}
_HEADER_NAME = re.compile(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+")


def load_policy(path: str | Path) -> Policy:
    """Load and validate a policy file. Raises ConfigError with file, line and reason."""
    doc = load_yaml(path)
    if doc is None:
        return Policy(source=str(path))
    if not isinstance(doc, dict):
        raise ConfigError(path, line_of(doc, 1), "a policy must be a mapping")
    _no_unknown_keys(path, doc, _KEYS, "policy")
    mode = doc.get("mode", "enforce")
    if mode not in ("enforce", "observe"):
        raise ConfigError(path, line_of_key(doc, "mode"), f"mode must be 'enforce' or 'observe', not {mode!r}")
    rules = _list(path, doc, "rules")
    budgets = _list(path, doc, "budgets")
    parsed_rules = tuple(_rule(path, raw) for raw in rules)
    _unique_ids(path, parsed_rules)
    parsed_budgets = tuple(_budget(path, raw) for raw in budgets)
    _unique_ids(path, parsed_budgets)
    policy = Policy(
        source=str(path),
        observe=mode == "observe",
        inspect=_host_index(path, doc, doc.get("inspect"), "inspect"),
        passthrough=_host_index(path, doc, doc.get("passthrough"), "passthrough"),
        rules=parsed_rules,
        budgets=parsed_budgets,
        dlp=_dlp(path, doc["dlp"]) if doc.get("dlp") is not None else None,
        mcp=_mcp(path, doc["mcp"]) if doc.get("mcp") is not None else None,
        prices=parse_prices(path, doc.get("prices")),
        injection=parse_injection(path, doc["injection"]) if doc.get("injection") is not None else None,
        responses=parse_responses(path, doc["responses"]) if doc.get("responses") is not None else None,
        alerts=parse_alerts(path, doc["alerts"]) if doc.get("alerts") is not None else None,
        accounts=parse_accounts(path, doc["accounts"]) if doc.get("accounts") is not None else AccountsPolicy(),
    )
    if policy.mcp is not None:
        approving = [s.id for s in policy.mcp.servers if s.approve is not None]
        destinations = set(policy.alerts.destinations) if policy.alerts is not None else set()
        check_approval(path, policy.mcp.approval, approving, destinations)
    return policy


def _mcp(path: str | Path, raw: Any) -> McpPolicy:
    if not isinstance(raw, dict):
        raise ConfigError(path, line_of(raw), "mcp must be a mapping")
    _no_unknown_keys(path, raw, {"servers", "unlisted", "store_content", "store_max_chars", "approval"}, "mcp")
    unlisted = raw.get("unlisted", BLOCK)
    if unlisted not in (BLOCK, ALLOW):
        raise ConfigError(path, line_of_key(raw, "unlisted"), "mcp.unlisted must be block or allow")
    store = raw.get("store_content", False)
    if not isinstance(store, bool):
        raise ConfigError(path, line_of_key(raw, "store_content"), "mcp.store_content must be true or false")
    max_chars = raw.get("store_max_chars", 4096)
    if not isinstance(max_chars, int) or isinstance(max_chars, bool) or not 0 < max_chars <= 1_000_000:
        raise ConfigError(
            path, line_of_key(raw, "store_max_chars"), "mcp.store_max_chars must be a whole number from 1 to 1000000"
        )
    servers = _list(path, raw, "servers")
    parsed = tuple(_mcp_server(path, s) for s in servers)
    _unique_ids(path, parsed)
    approval = parse_approval(path, raw["approval"]) if raw.get("approval") is not None else None
    return McpPolicy(
        servers=parsed, unlisted=unlisted, store_content=store, store_max_chars=max_chars, approval=approval
    )


def _mcp_server(path: str | Path, raw: Any) -> McpServer:
    line, server_id = _entry(path, raw, _MCP_SERVER_KEYS, "mcp server")

    def globs(key: str) -> tuple[str, ...] | None:
        value = raw.get(key)
        if value is None:
            return None
        values = value if isinstance(value, list) else [value]
        if not all(isinstance(v, str) and v for v in values):
            raise ConfigError(
                path, line_of_key(raw, key), f"mcp server {server_id!r}: {key} must be a glob or a list of globs"
            )
        return tuple(values)

    hosts = globs("host")
    if not hosts:
        raise ConfigError(path, line, f"mcp server {server_id!r}: needs a host (a name or a glob like *.mcp.example)")
    for key in ("max_argument_bytes", "max_result_bytes"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value <= 0):
            raise ConfigError(
                path, line_of_key(raw, key), f"mcp server {server_id!r}: {key} must be a positive whole number"
            )
    injection = raw.get("injection", "flag")
    if injection not in MCP_INJECTION_ACTIONS:
        raise ConfigError(
            path, line_of_key(raw, "injection"), f"mcp server {server_id!r}: injection must be flag or block"
        )
    match = raw.get("match")
    if isinstance(match, dict) and set(map(str, match)) - _MCP_MATCH_KEYS:
        raise ConfigError(
            path,
            line_of_key(raw, "match"),
            f"mcp server {server_id!r}: match takes {', '.join(sorted(_MCP_MATCH_KEYS))}",
        )
    return McpServer(
        id=server_id,
        line=line,
        hosts=tuple(h.lower() for h in hosts),
        allow_tools=globs("allow_tools"),
        deny_tools=globs("deny_tools") or (),
        max_argument_bytes=raw.get("max_argument_bytes"),
        max_result_bytes=raw.get("max_result_bytes"),
        injection=injection,
        match=_match(path, match, f"mcp server {server_id}", line),
        approve=parse_server_approval(path, raw, server_id, globs),
    )


def _dlp(path: str | Path, raw: Any) -> DlpPolicy | None:
    """The dlp section; None when every action in it is off (then nothing is scanned)."""
    from shadowgate.dlp import OPT_IN_TYPES
    from shadowgate.dlp import TYPES

    if not isinstance(raw, dict):
        raise ConfigError(path, line_of(raw), "dlp must be a mapping")
    _no_unknown_keys(
        path, raw, {"secrets", "pii", "types", "reversible", "on_error", "budget_ms", "budget_us_per_byte"}, "dlp"
    )
    actions = {key: _dlp_action(raw.get(key, "redact")) for key in ("secrets", "pii")}
    for key, action in actions.items():
        if action not in DLP_ACTIONS:
            raise ConfigError(path, line_of_key(raw, key), f"dlp.{key} must be one of {', '.join(DLP_ACTIONS)}")
    raw_types = raw.get("types") or {}
    if not isinstance(raw_types, dict):
        raise ConfigError(path, line_of_key(raw, "types"), "dlp.types must map finding types to actions")
    types = {}
    for name, action in raw_types.items():
        if name not in TYPES:
            raise ConfigError(
                path,
                line_of_key(raw_types, name),
                f"dlp.types: unknown type {name!r}{did_you_mean(str(name), TYPES)} "
                "(every type: shadowgate scan --types)",
            )
        types[name] = _dlp_action(action)
        if types[name] not in DLP_ACTIONS:
            raise ConfigError(
                path, line_of_key(raw_types, name), f"dlp.types.{name} must be one of {', '.join(DLP_ACTIONS)}"
            )
    on_error = raw.get("on_error", BLOCK)
    if on_error not in (BLOCK, ALLOW):
        raise ConfigError(path, line_of_key(raw, "on_error"), "dlp.on_error must be block or allow")
    budget = raw.get("budget_ms", 250)
    if not isinstance(budget, int | float) or isinstance(budget, bool) or budget <= 0:
        raise ConfigError(path, line_of_key(raw, "budget_ms"), "dlp.budget_ms must be a positive number")
    per_byte = raw.get("budget_us_per_byte", DEFAULT_BUDGET_US_PER_BYTE)
    if not isinstance(per_byte, int | float) or isinstance(per_byte, bool) or per_byte < 0:
        raise ConfigError(
            path, line_of_key(raw, "budget_us_per_byte"), "dlp.budget_us_per_byte must be a number, 0 or more"
        )
    if set(actions.values()) | set(types.values()) == {"off"}:
        return None
    return DlpPolicy(
        secrets=actions["secrets"],
        pii=actions["pii"],
        types=types,
        reversible=bool(raw.get("reversible", False)),
        on_error=on_error,
        budget_ms=float(budget),
        budget_us_per_byte=float(per_byte),
        opt_in=frozenset(t for t, action in types.items() if t in OPT_IN_TYPES and action != "off"),
    )


def _dlp_action(value: Any) -> Any:
    # YAML 1.1 reads an unquoted `off` as false: `secrets: off` means the action "off".
    return "off" if value is False else value


def _entry(path: str | Path, raw: Any, keys: set[str], what: str) -> tuple[int, str]:
    """The line and id of a rule or budget, after checking its shape."""
    line = line_of(raw) or 0
    if not isinstance(raw, dict):
        raise ConfigError(path, line, f"a {what} must be a mapping with an id")
    _no_unknown_keys(path, raw, keys, what)
    return line, _required_str(path, raw, "id", what)


def _rule(path: str | Path, raw: Any) -> Rule:
    line, rule_id = _entry(path, raw, _RULE_KEYS, "rule")
    action = raw.get("action")
    if action not in ACTIONS:
        raise ConfigError(
            path,
            line_of_key(raw, "action"),
            f"rule {rule_id!r}: action must be one of {', '.join(ACTIONS)}, not {action!r}",
        )
    coach = raw.get("coach") or {}
    if not isinstance(coach, dict) or set(coach) - {"api", "minutes"}:
        raise ConfigError(
            path, line_of(coach, line), f"rule {rule_id!r}: coach takes 'api' (allow|block) and 'minutes'"
        )
    coach_api = coach.get("api", ALLOW)
    if coach_api not in (ALLOW, BLOCK):
        raise ConfigError(path, line_of(coach, line), f"rule {rule_id!r}: coach.api must be allow or block")
    minutes = coach.get("minutes", 60)
    if not isinstance(minutes, int) or minutes < 0:
        raise ConfigError(path, line_of(coach, line), f"rule {rule_id!r}: coach.minutes must be a whole number >= 0")
    gateway = _gateway(path, raw.get("gateway"), rule_id, line) if raw.get("gateway") is not None else None
    browser_url = raw.get("browser_url")
    if action == REDIRECT and gateway is None and browser_url is None:
        raise ConfigError(path, line, f"rule {rule_id!r}: a redirect needs a 'gateway' and/or a 'browser_url'")
    if browser_url is not None and not _is_url(browser_url):
        raise ConfigError(
            path, line_of_key(raw, "browser_url"), f"rule {rule_id!r}: browser_url must be an http(s) URL"
        )
    return Rule(
        id=rule_id,
        line=line,
        match=_rule_match(path, raw, rule_id, line),
        action=action,
        message=str(raw.get("message") or ""),
        alternative=str(raw.get("alternative") or ""),
        coach_api=coach_api,
        coach_minutes=minutes,
        gateway=gateway,
        browser_url=browser_url,
        headers=_headers(path, raw.get("headers"), rule_id, line),
    )


def _rule_match(path: str | Path, raw: dict, rule_id: str, line: int) -> Match:
    match = raw.get("match")
    if match == MATCH_ALL:
        return Match()
    if not match:
        raise ConfigError(
            path,
            line_of_key(raw, "match") if "match" in raw else line,
            f"rule {rule_id!r}: an empty match meets every request; write 'match: {MATCH_ALL}' if that is meant",
        )
    return _match(path, match, rule_id, line)


def _budget(path: str | Path, raw: Any) -> Budget:
    line, budget_id = _entry(path, raw, _BUDGET_KEYS, "budget")
    per = raw.get("per", "user")
    if per not in ("user", "group"):
        raise ConfigError(path, line, f"budget {budget_id!r}: per must be user or group")
    limits = {k: raw.get(k) for k in ("tokens_per_day", "usd_per_day", "requests_per_minute")}
    if all(v is None for v in limits.values()):
        raise ConfigError(
            path, line, f"budget {budget_id!r}: set tokens_per_day, usd_per_day and/or requests_per_minute"
        )
    for key, value in limits.items():
        if value is not None and (not isinstance(value, int | float) or isinstance(value, bool) or value <= 0):
            raise ConfigError(path, line_of_key(raw, key), f"budget {budget_id!r}: {key} must be a positive number")
    warn_at = raw.get("warn_at", 0.8)
    if not isinstance(warn_at, int | float) or not 0 < warn_at <= 1:
        raise ConfigError(path, line, f"budget {budget_id!r}: warn_at must be a fraction in (0, 1]")
    match = _match(path, raw.get("match"), budget_id, line)
    if match.risks is not None or match.training is not None:
        # Budgets are rebuilt from recorded rows, which carry the provider id but not the catalog's
        # facts of the day: a budget keyed on risk would count differently after a catalog update.
        raise ConfigError(path, line, f"{budget_id!r}: budgets match on provider or category, not on risk facts")
    return Budget(
        id=budget_id,
        line=line,
        per=per,
        match=match,
        tokens_per_day=None if limits["tokens_per_day"] is None else int(limits["tokens_per_day"]),
        usd_per_day=None if limits["usd_per_day"] is None else float(limits["usd_per_day"]),
        requests_per_minute=None if limits["requests_per_minute"] is None else int(limits["requests_per_minute"]),
        warn_at=float(warn_at),
    )


def _match(path: str | Path, raw: Any, owner: str, line: int) -> Match:
    if raw is None:
        return Match()
    if not isinstance(raw, dict):
        raise ConfigError(path, line_of(raw, line), f"{owner!r}: match must be a mapping")
    _no_unknown_keys(path, raw, _MATCH_KEYS, f"{owner!r} match")
    where = line_of(raw, line)

    def strings(key: str) -> tuple[str, ...] | None:
        return one_or_more(path, raw.get(key), where, f"{owner!r}: match.{key} must be a string or a list of strings")

    hosts = strings("host")
    host_index = None
    if hosts is not None:
        try:
            host_index = HostIndex((check_host_pattern(h), True) for h in hosts)
        except ValueError as e:
            raise ConfigError(path, where, f"{owner!r}: match.host: {e}") from None
    networks = None
    if (clients := strings("client")) is not None:
        try:
            networks = tuple(ipaddress.ip_network(c, strict=False) for c in clients)
        except ValueError as e:
            raise ConfigError(path, where, f"{owner!r}: match.client: {e}") from None
    providers, categories, formats = strings("provider"), strings("category"), strings("wire_format")
    risks, training = strings("risk"), strings("trains_on_inputs")
    for key, values, allowed in (("risk", risks, RISK_LEVELS), ("trains_on_inputs", training, TRAINING)):
        if bad := sorted(set(values or ()) - set(allowed)):
            raise ConfigError(path, where, f"{owner!r}: match.{key}: {bad[0]!r} is not one of {list(allowed)}")
    return Match(
        providers=frozenset(providers) if providers else None,
        categories=frozenset(categories) if categories else None,
        hosts=host_index,
        wire_formats=frozenset(formats) if formats else None,
        models=strings("model"),
        users=strings("user"),
        groups=strings("group"),
        networks=networks,
        risks=frozenset(risks) if risks else None,
        training=frozenset(training) if training else None,
        **web_match(path, raw, owner, where, strings),
    )


def _gateway(path: str | Path, raw: Any, rule_id: str, line: int) -> Gateway:
    where = line_of(raw, line)
    if not isinstance(raw, dict):
        raise ConfigError(path, where, f"rule {rule_id!r}: gateway must be a mapping")
    _no_unknown_keys(path, raw, {"openai_base_url", "anthropic_base_url", "key_env", "model_map", "key"}, "gateway")
    if "key" in raw:
        raise ConfigError(
            path,
            where,
            f"rule {rule_id!r}: never put the gateway key in the policy; name its environment variable in key_env",
        )
    urls = {k: raw.get(k) for k in ("openai_base_url", "anthropic_base_url")}
    if all(v is None for v in urls.values()):
        raise ConfigError(path, where, f"rule {rule_id!r}: gateway needs openai_base_url and/or anthropic_base_url")
    for key, value in urls.items():
        if value is not None and not _is_url(value):
            raise ConfigError(path, where, f"rule {rule_id!r}: gateway.{key} must be an http(s) URL")
    key_env = raw.get("key_env")
    if key_env is not None and not (isinstance(key_env, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key_env)):
        raise ConfigError(path, where, f"rule {rule_id!r}: gateway.key_env must be an environment variable name")
    model_map = raw.get("model_map") or {}
    if not isinstance(model_map, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in model_map.items()
    ):
        raise ConfigError(path, where, f"rule {rule_id!r}: gateway.model_map must map model names to model names")
    return Gateway(
        openai_base_url=(urls["openai_base_url"] or "").rstrip("/") or None,
        anthropic_base_url=(urls["anthropic_base_url"] or "").rstrip("/") or None,
        key_env=key_env,
        model_map=dict(model_map),
    )


def _headers(path: str | Path, raw: Any, rule_id: str, line: int) -> tuple[tuple[str, str], ...]:
    if raw is None:
        return ()
    if not isinstance(raw, dict):
        raise ConfigError(path, line_of(raw, line), f"rule {rule_id!r}: headers must map names to values")
    out = []
    for name, value in raw.items():
        if not isinstance(name, str) or not _HEADER_NAME.fullmatch(name) or not isinstance(value, str | int):
            raise ConfigError(path, line_of(raw, line), f"rule {rule_id!r}: bad header {name!r}")
        if "\r" in str(value) or "\n" in str(value):
            raise ConfigError(path, line_of(raw, line), f"rule {rule_id!r}: header {name!r} has a line break")
        out.append((name, str(value)))
    return tuple(out)


def _host_index(path: str | Path, doc: dict, raw: Any, key: str) -> HostIndex[bool]:
    raw = raw or []
    if not isinstance(raw, list):
        raise ConfigError(path, line_of(raw, line_of(doc)), f"'{key}' must be a list of hosts")
    hosts = []
    for item in raw:
        try:
            hosts.append((check_host_pattern(item), True))
        except ValueError as e:
            raise ConfigError(path, line_of(raw, line_of(doc)), f"'{key}': {e}") from None
    return HostIndex(hosts)


def _list(path: str | Path, doc: dict, key: str) -> list:
    raw = doc.get(key) or []
    if not isinstance(raw, list):
        raise ConfigError(path, line_of(raw, line_of(doc)), f"'{key}' must be a list")
    return raw


def _required_str(path: str | Path, raw: dict, key: str, what: str) -> str:
    value = raw.get(key)
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(path, line_of(raw), f"a {what} needs a non-empty '{key}'")
    return value.strip()


def _unique_ids(path: str | Path, items: Iterable[Rule | Budget | McpServer]) -> None:
    seen: set[str] = set()
    for item in items:
        if item.id in seen:
            raise ConfigError(path, item.line, f"duplicate id {item.id!r}")
        seen.add(item.id)


def _no_unknown_keys(path: str | Path, raw: dict, allowed: set[str], what: str) -> None:
    unknown = set(map(str, raw)) - allowed
    if unknown:
        raise ConfigError(path, line_of(raw, 1), f"{what}: unknown keys {sorted(unknown)} (expected {sorted(allowed)})")


def _is_url(value: Any) -> bool:
    return isinstance(value, str) and re.match(r"https?://[^/\s]+", value) is not None
