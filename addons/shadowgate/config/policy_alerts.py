"""The policy's `alerts:` section: what is worth telling someone about, and where to tell them.

    alerts:
      destinations:
        secops: {webhook: "https://hooks.slack.com/services/...", shape: slack}
        mail: {email: [secops@example.com], smtp: "mail.example.com:587", starttls: true,
               user: shadowgate, password_env: SG_SMTP_PASSWORD, from: shadowgate@example.com}
        siem: {syslog: "udp://siem.example.com:514"}
      rules:
        - {id: new-apps, event: new_app, to: [secops]}
        - {id: crowd, event: unapproved_users, users: 10, to: [mail], every: 24h}
        - {id: dlp-blocks, event: dlp_block, to: [secops, siem], every: 1h, max_per_hour: 20}

`every` is the deduplication window: an alert with the same key (the app, the user and host,
...) is sent at most once per window; later ones are counted as suppressed. `max_per_hour`
caps what one rule sends in an hour, whatever the keys. docs/alerts.md has every event.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import mapping_line
from shadowgate.config.yamlfile import whole_number

EVENTS = (
    "new_app",
    "unknown_endpoint",
    "unapproved_users",
    "dlp_block",
    "budget_crossed",
    "mcp_refusal",
    "pinned_passthrough",
    "storage_failure",
    "mcp_approval_requested",
    "mcp_approval_denied",
    "mcp_approval_timeout",
)
SHAPES = ("json", "slack", "teams")
_DEST_KEYS = {
    "webhook",
    "shape",
    "email",
    "smtp",
    "starttls",
    "user",
    "password_env",
    "password_file",
    "from",
    "syslog",
}
_RULE_KEYS = {"id", "event", "to", "every", "max_per_hour", "users"}  # not "on": YAML 1.1 reads it as true
_DURATION = re.compile(r"^(\d+)\s*(s|m|h|d)$")
_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400}


@dataclass(frozen=True, slots=True)
class AlertDestination:
    name: str
    webhook: str | None = None
    shape: str = "json"
    email: tuple[str, ...] = ()
    smtp: str | None = None  # host:port
    starttls: bool = False
    user: str | None = None
    password_env: str | None = None
    password_file: str | None = None
    sender: str = "shadowgate@localhost"
    syslog: str | None = None  # udp://, tcp:// or tls://HOST:PORT

    @property
    def kind(self) -> str:
        return "webhook" if self.webhook else "email" if self.email else "syslog"


@dataclass(frozen=True, slots=True)
class AlertRule:
    id: str
    event: str
    to: tuple[str, ...]
    every: float = 3600.0
    max_per_hour: int = 30
    users: int = 5  # unapproved_users: how many distinct people make a crowd
    line: int = 0


@dataclass(frozen=True, slots=True)
class AlertsPolicy:
    destinations: dict[str, AlertDestination]
    rules: tuple[AlertRule, ...]

    def rules_for(self, event: str) -> list[AlertRule]:
        return [r for r in self.rules if r.event == event]


def duration_seconds(path: str | Path, raw: Any, line: int, what: str) -> float:
    if isinstance(raw, int) and not isinstance(raw, bool) and raw >= 0:
        return float(raw)
    match = _DURATION.match(str(raw).strip()) if isinstance(raw, str) else None
    if match is None:
        raise ConfigError(path, line, f"{what} is a duration such as 30m, 1h or 1d (or seconds), not {raw!r}")
    return float(int(match[1]) * _SECONDS[match[2]])


def _strings(path: str | Path, raw: Any, line: int, what: str) -> tuple[str, ...]:
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(i, str) and i.strip() for i in items):
        raise ConfigError(path, line, f"{what} is a name or a list of names")
    return tuple(i.strip() for i in items)


def _destination(path: str | Path, name: str, raw: Any) -> AlertDestination:
    line = mapping_line(
        path, raw, _DEST_KEYS, f"alert destination {name!r} must be a mapping", f"alert destination {name!r}"
    )
    kinds = [k for k in ("webhook", "email", "syslog") if raw.get(k)]
    if len(kinds) != 1:
        raise ConfigError(path, line, f"alert destination {name!r} needs exactly one of webhook, email, syslog")
    shape = raw.get("shape", "json")
    if shape not in SHAPES:
        raise ConfigError(path, line, f"alert destination {name!r}: shape is one of {', '.join(SHAPES)}")
    webhook = raw.get("webhook")
    if webhook is not None and not re.match(r"https?://[^/\s]+", str(webhook)):
        raise ConfigError(path, line, f"alert destination {name!r}: webhook must be an http(s) URL")
    syslog = raw.get("syslog")
    if syslog is not None and not re.match(r"(udp|tcp|tls)://[^/\s:]+:\d+$", str(syslog)):
        raise ConfigError(path, line, f"alert destination {name!r}: syslog is udp://, tcp:// or tls://HOST:PORT")
    email = _strings(path, raw["email"], line, "email") if raw.get("email") else ()
    if email and not re.match(r"[^\s:]+:\d+$", str(raw.get("smtp", ""))):
        raise ConfigError(path, line, f"alert destination {name!r}: e-mail needs smtp: HOST:PORT")
    return AlertDestination(
        name=name,
        webhook=webhook,
        shape=shape,
        email=email,
        smtp=raw.get("smtp"),
        starttls=bool(raw.get("starttls", False)),
        user=raw.get("user"),
        password_env=raw.get("password_env"),
        password_file=raw.get("password_file"),
        sender=raw.get("from") or "shadowgate@localhost",
        syslog=syslog,
    )


def _rule(path: str | Path, raw: Any, destinations: dict[str, AlertDestination]) -> AlertRule:
    line = mapping_line(path, raw, _RULE_KEYS, "an alert rule must be a mapping with an id", "alert rule")
    rule_id = raw.get("id")
    if not isinstance(rule_id, str) or not rule_id.strip():
        raise ConfigError(path, line, "an alert rule needs a non-empty 'id'")
    event = raw.get("event")
    if event not in EVENTS:
        raise ConfigError(path, line, f"alert rule {rule_id!r}: 'event' is one of {', '.join(EVENTS)}, not {event!r}")
    to = _strings(path, raw.get("to"), line, f"alert rule {rule_id!r}: 'to'")
    for name in to:
        if name not in destinations:
            raise ConfigError(path, line, f"alert rule {rule_id!r}: no destination called {name!r}")
    max_per_hour = whole_number(path, raw, "max_per_hour", 30, line, f"alert rule {rule_id!r}: max_per_hour")
    users = whole_number(path, raw, "users", 5, line, f"alert rule {rule_id!r}: users")
    return AlertRule(
        id=rule_id.strip(),
        event=event,
        to=to,
        every=duration_seconds(path, raw.get("every", "1h"), line, f"alert rule {rule_id!r}: every"),
        max_per_hour=max_per_hour,
        users=users,
        line=line,
    )


def parse_alerts(path: str | Path, raw: Any) -> AlertsPolicy:
    line = mapping_line(
        path, raw, {"destinations", "rules"}, "'alerts' must be a mapping with destinations and rules", "alerts"
    )
    raw_dests = raw.get("destinations") or {}
    if not isinstance(raw_dests, dict):
        raise ConfigError(path, line, "alerts.destinations must be a mapping of name to destination")
    destinations = {str(name): _destination(path, str(name), d) for name, d in raw_dests.items()}
    raw_rules = raw.get("rules") or []
    if not isinstance(raw_rules, list):
        raise ConfigError(path, line, "alerts.rules must be a list")
    rules = tuple(_rule(path, r, destinations) for r in raw_rules)
    seen: set[str] = set()
    for rule in rules:
        if rule.id in seen:
            raise ConfigError(path, rule.line, f"duplicate alert rule id {rule.id!r}")
        seen.add(rule.id)
    return AlertsPolicy(destinations, rules)
