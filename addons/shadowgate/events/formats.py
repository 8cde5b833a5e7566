"""The three wire shapes of a SIEM event: a JSON line, an RFC 5424 syslog message, a CEF record.

RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD] MSG` with facility local0 (16) unless
configured, MSGID = event.action, one structured-data element `shadowgate@32473` (32473 is the
enterprise number RFC 5612 reserves for documentation, so no registered vendor's names are
taken) with the fields SIEM rules key on, and the JSON event as MSG. CEF (ArcSight's Common
Event Format, revision 25): `CEF:0|vendor|product|version|signature|name|severity|extension`,
with the standard extension keys (src, suser, dhost, act, request, requestMethod, cs1..cs6 with
labels); over syslog it is the MSG of an RFC 5424 message, as Sentinel's CEF connector reads it.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any

from shadowgate import __version__
from shadowgate.events.schema import get

FORMATS = ("json", "syslog", "cef")
SD_ID = "shadowgate@32473"
LOCAL0 = 16
_SD_FIELDS = (
    ("action", "event.action"),
    ("outcome", "event.outcome"),
    ("rule", "rule.id"),
    ("user", "user.name"),
    ("group", "user.group.name"),
    ("src", "source.ip"),
    ("host", "destination.domain"),
    ("provider", "shadowgate.provider"),
    ("dlp", "shadowgate.dlp.action"),
    ("id", "event.id"),
)
# CEF extension key -> event field; custom strings carry their label (cs1Label=...).
_CEF_FIELDS = (
    ("rt", "@timestamp"),
    ("act", "event.action"),
    ("outcome", "event.outcome"),
    ("src", "source.ip"),
    ("suser", "user.name"),
    ("dhost", "destination.domain"),
    ("request", "url.path"),
    ("requestMethod", "http.request.method"),
    ("requestClientApplication", "user_agent.original"),
    ("externalId", "event.id"),
    ("msg", "message"),
)
_CEF_CUSTOM = (
    ("rule", "rule.id"),
    ("provider", "shadowgate.provider"),
    ("group", "user.group.name"),
    ("model", "gen_ai.request.model"),
    ("dlp", "shadowgate.dlp.action"),
    ("dlpFindings", "shadowgate.dlp.findings"),
)


_CONTROL = re.compile(r"[\x00-\x1f\x7f\u0085\u2028\u2029]")


def json_line(event: dict[str, Any]) -> str:
    return json.dumps(event, ensure_ascii=False, separators=(",", ":"), default=str)


def syslog_severity(severity: int) -> int:
    """CEF 0..10 to syslog 0..7: 8+ error, 6-7 warning, 4-5 notice, else informational."""
    return 3 if severity >= 8 else 4 if severity >= 6 else 5 if severity >= 4 else 6


def _sd_value(value: Any) -> str:
    # RFC 5424 6.3.3: '"', '\' and ']' are escaped with a backslash inside PARAM-VALUE. Control
    # characters become spaces: a user or tool name is the client's to choose, and a line break in
    # it would otherwise start a forged record in a file or stream that splits records on lines.
    text = _CONTROL.sub(" ", str(value))
    return text.replace("\\", "\\\\").replace('"', '\\"').replace("]", "\\]")


def _header_token(value: Any, limit: int) -> str:
    """A header field: printable US-ASCII without spaces, or the nil value '-'."""
    text = "".join(c for c in str(value or "") if 33 <= ord(c) <= 126)[:limit]
    return text or "-"


def rfc5424(event: dict[str, Any], msg: str, *, facility: int = LOCAL0, app: str = "shadowgate") -> str:
    """One RFC 5424 message (without transport framing)."""
    pri = facility * 8 + syslog_severity(int(get(event, "event.severity") or 4))
    params = " ".join(f'{name}="{_sd_value(v)}"' for name, field in _SD_FIELDS if (v := get(event, field)) is not None)
    sd = f"[{SD_ID} {params}]" if params else "-"
    return (
        f"<{pri}>1 {get(event, '@timestamp')} {_header_token(get(event, 'observer.hostname'), 255)} "
        f"{_header_token(app, 48)} {os.getpid()} {_header_token(get(event, 'event.action'), 32)} {sd} {msg}"
    )


def _cef_header(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def _cef_value(value: Any) -> str:
    return str(value).replace("\\", "\\\\").replace("=", "\\=").replace("\r", "\\r").replace("\n", "\\n")


def cef(event: dict[str, Any]) -> str:
    action = get(event, "event.action") or "event"
    extension = [f"{key}={_cef_value(v)}" for key, field in _CEF_FIELDS if (v := get(event, field)) is not None]
    for i, (label, field) in enumerate(_CEF_CUSTOM, start=1):
        if (value := get(event, field)) is not None:
            extension.append(f"cs{i}={_cef_value(value)} cs{i}Label={label}")
    name = f"AI {action.replace('_', ' ')}"
    header = "|".join(
        _cef_header(v)
        for v in ("CEF:0", "shadowgate", "shadowgate", __version__, action, name, get(event, "event.severity") or 4)
    )
    return f"{header}|{' '.join(extension)}"


def render(fmt: str, event: dict[str, Any], *, network: bool) -> str:
    """The text of one event. JSON stays a bare line everywhere (a Vector or Fluent Bit socket
    source reads it); CEF sent over the network travels inside a syslog message."""
    if fmt == "cef":
        body = cef(event)
        return rfc5424(event, body) if network else body
    if fmt == "syslog":
        return rfc5424(event, json_line(event))
    return json_line(event)
