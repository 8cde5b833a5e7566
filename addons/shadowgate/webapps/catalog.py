"""The `web_apps:` section of providers.yaml: each chat app's endpoints, as data.

An endpoint says how to recognise a request (method, host, path regex, optional header or field
conditions, HTTP or a WebSocket frame) and where its facts are (field paths, see paths.py):
the prompt text, file names, sizes and types, the model, the conversation id, the temporary-chat
flag and the account. Each endpoint names its public source and the date it was checked.
A request to an app's host that matches none of its endpoints is not a prompt (it is telemetry,
an anti-bot check, a page asset): it adds no ai_requests row.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Iterable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

from shadowgate.config.catalog import HostIndex
from shadowgate.config.catalog import check_host_pattern
from shadowgate.config.catalog import normalise_host
from shadowgate.config.policy_accounts import ACCOUNT_KINDS
from shadowgate.config.policy_accounts import ACTIVITIES
from shadowgate.config.requestpath import path_readings
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key
from shadowgate.config.yamlfile import load_yaml
from shadowgate.resources import PROVIDERS_YAML
from shadowgate.webapps.codecs import BODY_KINDS
from shadowgate.webapps.paths import FieldPath
from shadowgate.webapps.paths import PathError
from shadowgate.webapps.paths import compile_path

TRANSPORTS = ("http", "websocket")
SCANS = ("text", "strings", "file", "none")
_ENDPOINT_KEYS = {
    "id", "method", "host", "path", "activity", "transport", "body", "when", "text", "files", "model",
    "conversation", "temporary", "account", "refuse", "rewrite_ok", "scan", "wire_format", "source", "verified",
}  # fmt: skip
_ACCOUNT_KEYS = {"header", "path_group", "field", "anonymous_path_group", "missing", "unlisted"}
_APP_KEYS = {"verified", "endpoints", "notes"}
_OWN = object()  # fpath(key): the endpoint's own value for the key


@dataclass(frozen=True, slots=True)
class AccountSpec:
    """Where the account id is, and what its absence means."""

    header: str | None = None  # a request header carrying the workspace/account id
    path_group: str | None = None  # a named group of the path regex carrying the org id
    field: FieldPath | None = None  # a body field
    anonymous: tuple[str, str] | None = None  # (path group, value) that means signed out
    missing: str = "unknown"  # the kind when no id is sent (ChatGPT: personal)
    unlisted: str = "other-workspace"  # the kind of an id the policy does not list


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int = 403
    json: Any = None  # the body shape; "{message}" anywhere in a string is replaced


@dataclass(frozen=True, slots=True)
class WebEndpoint:
    app: str  # the catalog provider id
    id: str  # "<app>.<id>": unique across the section
    method: str
    path: re.Pattern[str]
    activity: str
    line: int
    hosts: HostIndex[bool] | None = None  # None: the app's own hosts
    transport: str = "http"
    body: str = "json"
    when_headers: tuple[tuple[str, re.Pattern[str]], ...] = ()
    when_fields: tuple[tuple[FieldPath, str], ...] = ()
    text: tuple[FieldPath, ...] = ()
    file_name: FieldPath | None = None
    file_size: FieldPath | None = None
    file_type: FieldPath | None = None
    file_data: FieldPath | None = None  # base64 file content inside the body (Grok)
    model: FieldPath | None = None
    model_header: str | None = None
    conversation: FieldPath | None = None
    conversation_group: str | None = None
    temporary: FieldPath | None = None
    account: AccountSpec = field(default_factory=AccountSpec)
    refuse: Refusal | None = None
    rewrite_ok: bool = False  # a redacted body is proven to be accepted: redact, else block
    scan: str = "none"
    wire_format: str | None = None  # an API wire format on the app's host (Codex on chatgpt.com)
    source: str = ""
    verified: datetime.date | None = None


@dataclass(frozen=True, slots=True)
class WebApp:
    id: str
    verified: datetime.date | None
    endpoints: tuple[WebEndpoint, ...]
    notes: str = ""


class WebApps:
    """Every app's endpoints, looked up by the request's app (or storage host), method and path."""

    def __init__(self, apps: Iterable[WebApp] = (), source: str = "<memory>") -> None:
        self.source = source
        self.apps: dict[str, WebApp] = {a.id: a for a in apps}
        # Endpoints on hosts outside their app's own (shared storage hosts): by host first.
        self._foreign = HostIndex(
            (h, a.id) for a in self.apps.values() for e in a.endpoints if e.hosts for h in e.hosts.patterns()
        )

    def __bool__(self) -> bool:
        return bool(self.apps)

    def app(self, provider_id: str | None) -> WebApp | None:
        return self.apps.get(provider_id) if provider_id else None

    def on_foreign_host(self, host: str) -> bool:
        return bool(self._foreign.get(host))

    def app_of(self, provider_id: str | None, host: str) -> str | None:
        """The app a request belongs to: its provider's, else the app whose storage host it is."""
        if provider_id in self.apps:
            return provider_id
        return self._foreign.get(host)

    def candidates(
        self, provider_id: str | None, host: str, method: str, path: str, transport: str = "http"
    ) -> list[tuple[WebEndpoint, re.Match[str]]]:
        """The endpoints a request may be, judged from what is known before its body, with their
        matches: those in the server's readings of the path first, then those in the path as sent.

        The path is read as the API path reads it (config/requestpath.py: escapes decoded, dot
        segments and `//` resolved, `;params` dropped; patterns ignore case): the apps sit behind
        a CDN that normalises URLs before the origin routes them, so `/backend-api/f/%63onversation`
        or `/api/organizations/<corp>/../<personal>/...` is the endpoint, and its path groups (org,
        conversation) are those of the server's reading (red-team F54). A match in any reading
        makes a candidate (an endpoint once per distinct set of groups): matching more only makes
        the proxy stricter, and classify() takes the strictest account the readings give."""
        host = normalise_host(host)
        endpoints = [
            endpoint
            for app in self.apps.values()
            for endpoint in app.endpoints
            if (endpoint.transport == transport and (endpoint.method == method or transport != "http"))
            and (endpoint.hosts.get(host) if endpoint.hosts is not None else app.id == provider_id)
        ]
        out: list[tuple[WebEndpoint, re.Match[str]]] = []
        seen: set[tuple[str, tuple[tuple[str, str | None], ...]]] = set()
        for reading in dict.fromkeys((*path_readings(path), path.split("?", 1)[0].split("#", 1)[0])):
            for endpoint in endpoints:
                m = endpoint.path.fullmatch(reading)
                if m is not None and (key := (endpoint.id, tuple(m.groupdict().items()))) not in seen:
                    seen.add(key)
                    out.append((endpoint, m))
        return out

    def endpoints(self) -> list[WebEndpoint]:
        return [e for a in self.apps.values() for e in a.endpoints]


def load_web_apps(path: str | Path = PROVIDERS_YAML, provider_ids: Iterable[str] | None = None) -> WebApps:
    """The web_apps section of a catalog file (empty when it has none). ConfigError: file, line, reason."""
    doc = load_yaml(path)
    if not isinstance(doc, dict):
        raise ConfigError(path, line_of(doc, 1), "the catalog must be a mapping")
    raw = doc.get("web_apps")
    if raw is None:
        return WebApps(source=str(path))
    if not isinstance(raw, dict):
        raise ConfigError(path, line_of_key(doc, "web_apps"), "'web_apps' must map provider ids to apps")
    known = set(provider_ids) if provider_ids is not None else _provider_ids(doc)
    apps = []
    seen: set[str] = set()
    for app_id, spec in raw.items():
        line = line_of_key(raw, app_id)
        if app_id not in known:
            raise ConfigError(path, line, f"web_apps: {app_id!r} is not a provider id in the catalog")
        apps.append(_app(path, str(app_id), spec, line, seen))
    return WebApps(apps, source=str(path))


def _provider_ids(doc: dict) -> set[str]:
    providers = doc.get("providers")
    return {str(p.get("id")) for p in providers if isinstance(p, dict)} if isinstance(providers, list) else set()


def _app(path: str | Path, app_id: str, spec: Any, line: int | None, seen: set[str]) -> WebApp:
    if not isinstance(spec, dict):
        raise ConfigError(path, line, f"web_apps.{app_id}: must be a mapping with 'endpoints'")
    _no_unknown(path, spec, _APP_KEYS, f"web_apps.{app_id}")
    endpoints = spec.get("endpoints")
    if not isinstance(endpoints, list) or not endpoints:
        raise ConfigError(path, line_of(spec, line), f"web_apps.{app_id}: 'endpoints' must be a non-empty list")
    parsed = []
    for raw in endpoints:
        endpoint = _endpoint(path, app_id, raw)
        if endpoint.id in seen:
            raise ConfigError(path, endpoint.line, f"web_apps.{app_id}: duplicate endpoint id {endpoint.id!r}")
        seen.add(endpoint.id)
        parsed.append(endpoint)
    verified = _date(path, spec, "verified", f"web_apps.{app_id}")
    return WebApp(app_id, verified, tuple(parsed), str(spec.get("notes") or ""))


def _endpoint(path: str | Path, app_id: str, raw: Any) -> WebEndpoint:
    line = line_of(raw) or 0
    if not isinstance(raw, dict):
        raise ConfigError(path, line, f"web_apps.{app_id}: an endpoint must be a mapping")
    what = f"web_apps.{app_id} endpoint {raw.get('id', '?')!r}"
    _no_unknown(path, raw, _ENDPOINT_KEYS, what)
    for key in ("id", "path", "activity", "source", "verified"):
        if raw.get(key) in (None, ""):
            raise ConfigError(path, line, f"{what}: needs '{key}'")

    def choice(key: str, options: tuple[str, ...], default: str) -> str:
        value = raw.get(key, default)
        if value not in options:
            raise ConfigError(path, line_of_key(raw, key), f"{what}: {key} must be one of {', '.join(options)}")
        return value

    def fpath(key: str, spec: Any = _OWN) -> FieldPath | None:
        value = raw.get(key) if spec is _OWN else spec
        if value is None:
            return None
        try:
            return compile_path(value)
        except PathError as e:
            raise ConfigError(path, line_of_key(raw, key) or line, f"{what}: {key}: {e}") from None

    try:
        # Case-insensitive, as the API path's endpoints (config/catalog.py): a server that folds
        # case serves `/backend-api/F/Conversation` too, and matching more only makes us stricter.
        pattern = re.compile(str(raw["path"]), re.IGNORECASE)
    except re.error as e:
        raise ConfigError(path, line_of_key(raw, "path"), f"{what}: bad path regex: {e}") from None
    transport = choice("transport", TRANSPORTS, "http")
    method = str(raw.get("method") or ("GET" if transport == "websocket" else "")).upper()
    if not method:
        raise ConfigError(path, line, f"{what}: needs 'method'")
    activity = choice("activity", ACTIVITIES, "other")
    text_spec = raw.get("text") or []
    if not isinstance(text_spec, list):
        raise ConfigError(path, line_of_key(raw, "text"), f"{what}: text must be a list of field paths")
    files = raw.get("files") or {}
    if not isinstance(files, dict) or set(files) - {"name", "size", "type", "data"}:
        raise ConfigError(path, line_of_key(raw, "files"), f"{what}: files takes name, size, type and data paths")
    model = raw.get("model")
    model_header = None
    if isinstance(model, dict):  # {header: x-goog-ext-...}
        model_header, model = str(model.get("header") or "").lower() or None, None
    conversation = raw.get("conversation")
    conversation_group = None
    if isinstance(conversation, dict):
        conversation_group, conversation = conversation.get("path_group"), None
        if conversation_group not in pattern.groupindex:
            raise ConfigError(path, line_of_key(raw, "conversation"), f"{what}: no path group {conversation_group!r}")
    default_scan = {"prompt": "text", "upload": "file"}.get(activity, "none")
    return WebEndpoint(
        app=app_id,
        id=f"{app_id}.{raw['id']}",
        method=method,
        path=pattern,
        activity=activity,
        line=line,
        hosts=_hosts(path, raw, what),
        transport=transport,
        body=choice("body", BODY_KINDS, "json"),
        when_headers=_when_headers(path, raw, what),
        when_fields=tuple((fpath("when", k), str(v)) for k, v in ((raw.get("when") or {}).get("field") or {}).items()),  # type: ignore[misc]
        text=tuple(p for p in (fpath("text", t) for t in text_spec) if p is not None),
        file_name=fpath("files", files.get("name")),
        file_size=fpath("files", files.get("size")),
        file_type=fpath("files", files.get("type")),
        file_data=fpath("files", files.get("data")),
        model=fpath("model", model) if model is not None else None,
        model_header=model_header,
        conversation=fpath("conversation", conversation) if conversation is not None else None,
        conversation_group=conversation_group,
        temporary=fpath("temporary"),
        account=_account(path, raw, what, pattern, fpath),
        refuse=_refuse(path, raw, what),
        rewrite_ok=raw.get("rewrite_ok", False) is True,
        scan=choice("scan", SCANS, default_scan),
        wire_format=str(raw["wire_format"]) if raw.get("wire_format") else None,
        source=str(raw["source"]),
        verified=_date(path, raw, "verified", what),
    )


def _hosts(path: str | Path, raw: dict, what: str) -> HostIndex[bool] | None:
    hosts = raw.get("host")
    if hosts is None:
        return None
    hosts = hosts if isinstance(hosts, list) else [hosts]
    try:
        return HostIndex((check_host_pattern(h), True) for h in hosts)
    except ValueError as e:
        raise ConfigError(path, line_of_key(raw, "host"), f"{what}: host: {e}") from None


def _when_headers(path: str | Path, raw: dict, what: str) -> tuple[tuple[str, re.Pattern[str]], ...]:
    when = raw.get("when") or {}
    if not isinstance(when, dict) or set(when) - {"header", "field"}:
        raise ConfigError(path, line_of_key(raw, "when"), f"{what}: when takes 'header' and 'field' conditions")
    headers = when.get("header") or {}
    try:
        return tuple((str(k).lower(), re.compile(str(v), re.IGNORECASE)) for k, v in headers.items())
    except (re.error, AttributeError) as e:
        raise ConfigError(path, line_of_key(raw, "when"), f"{what}: when.header: {e}") from None


def _account(path: str | Path, raw: dict, what: str, pattern: re.Pattern[str], fpath: Any) -> AccountSpec:
    spec = raw.get("account")
    if spec is None:
        return AccountSpec()
    where = line_of_key(raw, "account")
    if not isinstance(spec, dict):
        raise ConfigError(path, where, f"{what}: account must be a mapping")
    _no_unknown(path, spec, _ACCOUNT_KEYS, f"{what} account")
    for key in ("path_group",):
        if spec.get(key) is not None and spec[key] not in pattern.groupindex:
            raise ConfigError(path, where, f"{what}: account.{key}: the path has no group {spec[key]!r}")
    anonymous = spec.get("anonymous_path_group")
    if anonymous is not None:
        if not isinstance(anonymous, dict) or len(anonymous) != 1 or next(iter(anonymous)) not in pattern.groupindex:
            raise ConfigError(path, where, f"{what}: account.anonymous_path_group is {{group: value}} of the path")
        anonymous = next(iter(anonymous.items()))
    for key, default in (("missing", "unknown"), ("unlisted", "other-workspace")):
        if spec.get(key, default) not in ACCOUNT_KINDS:
            raise ConfigError(path, where, f"{what}: account.{key} must be one of {', '.join(ACCOUNT_KINDS)}")
    return AccountSpec(
        header=str(spec["header"]).lower() if spec.get("header") else None,
        path_group=spec.get("path_group"),
        field=fpath("account", spec.get("field")),
        anonymous=(str(anonymous[0]), str(anonymous[1])) if anonymous else None,
        missing=spec.get("missing", "unknown"),
        unlisted=spec.get("unlisted", "other-workspace"),
    )


def _refuse(path: str | Path, raw: dict, what: str) -> Refusal | None:
    spec = raw.get("refuse")
    if spec is None:
        return None
    if not isinstance(spec, dict) or set(spec) - {"status", "json"}:
        raise ConfigError(path, line_of_key(raw, "refuse"), f"{what}: refuse takes 'status' and 'json'")
    status = spec.get("status", 403)
    if not isinstance(status, int) or not 200 <= status <= 599:
        raise ConfigError(path, line_of_key(raw, "refuse"), f"{what}: refuse.status must be an HTTP status")
    return Refusal(status, spec.get("json"))


def _date(path: str | Path, raw: dict, key: str, what: str) -> datetime.date | None:
    value = raw.get(key)
    if value is None:
        return None
    if not isinstance(value, datetime.date) or isinstance(value, datetime.datetime):
        raise ConfigError(path, line_of_key(raw, key), f"{what}: {key} must be a date, YYYY-MM-DD")
    return value


def _no_unknown(path: str | Path, raw: dict, allowed: set[str], what: str) -> None:
    unknown = sorted(set(map(str, raw)) - allowed)
    if unknown:
        raise ConfigError(path, line_of_key(raw, unknown[0]) or line_of(raw), f"{what}: unknown keys {unknown}")
