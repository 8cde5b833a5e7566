"""What one chat-app request does: its endpoint, activity, text, files, model, conversation, account.

`classify()` runs on the request's method, host, path, headers and body and returns WebFacts, or
None when the request is none of the app's endpoints (telemetry, anti-bot checks, assets), which
then counts as nothing. It never raises on a body: a body that is not what its endpoint says is
`unparsed`, a prompt endpoint without its text is `no-text`, and both hand every string they can
find to DLP instead (the fail-safe when an app changes its format).
The text, ids and file bytes stay in memory; rows get counts, kinds and keyed fingerprints.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from shadowgate.config.policy_accounts import AccountsPolicy
from shadowgate.webapps.catalog import WebApps
from shadowgate.webapps.catalog import WebEndpoint
from shadowgate.webapps.codecs import Body
from shadowgate.webapps.codecs import MultipartBody
from shadowgate.webapps.codecs import RawBody
from shadowgate.webapps.codecs import decode_any
from shadowgate.webapps.codecs import decode_body
from shadowgate.webapps.codecs import json_error
from shadowgate.webapps.paths import decode_b64
from shadowgate.wireformats.common import every_string

OK, NO_TEXT, UNPARSED, ERROR = "ok", "no-text", "unparsed", "error"
_MODEL_ID = re.compile(r'"([0-9a-f]{8,32})"')


@dataclass(slots=True)
class FileFacts:
    name: str | None = None
    size: int | None = None
    content_type: str | None = None
    data: bytes | None = None  # memory only: for the content scan

    @property
    def extension(self) -> str | None:
        # As a server or an OS reads the name: trailing dots and blanks dropped (`report.pdf `).
        name = (self.name or "").strip().rstrip(". ")
        if "." in name:
            return name.rsplit(".", 1)[1].lower()[:16] or None
        return _EXTENSIONS.get((self.content_type or "").split(";")[0].strip().lower())

    @property
    def kinds(self) -> set[str]:
        """What the file is, by every reading: its name, its declared type and its first bytes.
        A rule on `file_type` judges each (round-6b F109: a PDF named `report.txt`, or sent as
        `application/octet-stream`, was no PDF); a file with none is "unknown"."""
        declared = _EXTENSIONS.get((self.content_type or "").split(";")[0].strip().lower())
        named = {k for k in (self.extension, declared) if k}
        sniffed = sniffed_type(self.data)
        if sniffed == "zip" and named & _ZIP_FORMATS:
            sniffed = None  # an Office document is a ZIP by format, not an archive (red-team H2)
        found = named | ({sniffed} if sniffed else set())
        return found or {"unknown"}


# File signatures (the first bytes), for the formats a rule is likely to name.
_SIGNATURES = (
    (b"%PDF-", "pdf"), (b"\x89PNG\r\n\x1a\n", "png"), (b"\xff\xd8\xff", "jpg"), (b"GIF87a", "gif"),
    (b"GIF89a", "gif"), (b"PK\x03\x04", "zip"), (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "doc"),
    (b"{\\rtf", "rtf"), (b"ID3", "mp3"), (b"OggS", "ogg"), (b"fLaC", "flac"), (b"\x1a\x45\xdf\xa3", "webm"),
)  # fmt: skip


# Formats whose files are ZIP containers: their first bytes say zip, their name says what they are.
_ZIP_FORMATS = frozenset({"docx", "xlsx", "pptx", "docm", "xlsm", "pptm", "odt", "ods", "odp", "epub", "jar", "apk"})


def sniffed_type(data: bytes | None) -> str | None:
    """A file's format from its first bytes, or None."""
    if not data:
        return None
    for signature, kind in _SIGNATURES:
        if data.startswith(signature):
            return kind
    if data[:4] == b"RIFF" and data[8:12] in (b"WEBP", b"WAVE"):
        return "webp" if data[8:12] == b"WEBP" else "wav"
    if data[4:8] == b"ftyp":
        return "mp4"
    return None


_EXTENSIONS = {
    "text/plain": "txt", "text/csv": "csv", "application/json": "json", "application/pdf": "pdf",
    "image/png": "png", "image/jpeg": "jpg", "image/gif": "gif", "image/webp": "webp",
    "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "docx",
    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet": "xlsx",
    "application/vnd.openxmlformats-officedocument.presentationml.presentation": "pptx",
}  # fmt: skip


@dataclass(slots=True)
class WebFacts:
    """One classified request (or client WebSocket frame) of a chat web app."""

    endpoint: WebEndpoint
    parse_status: str = OK
    texts: list[str] = field(default_factory=list)  # the prompt's text fields, in path order
    fallback: list[str] = field(default_factory=list)  # every other string, scanned when unsure
    files: list[FileFacts] = field(default_factory=list)
    model: str | None = None
    conversation: str | None = None  # memory only: rows get its fingerprint
    temporary: bool | None = None
    account_kind: str = "unknown"
    account_id: str | None = None  # memory only: rows get its fingerprint
    body: Body | None = None  # for writing a redacted body back
    json_error: str | None = None  # why a body that looks like JSON does not parse (refused as unread)
    unreadable: str | None = None  # why the body cannot be read at all (a content coding): DLP refuses

    @property
    def app(self) -> str:
        return self.endpoint.app

    @property
    def activity(self) -> str:
        return self.endpoint.activity

    @property
    def text_chars(self) -> int:
        return sum(len(t) for t in self.texts)

    @property
    def file_bytes(self) -> int | None:
        sizes = [f.size for f in self.files if f.size is not None]
        return sum(sizes) if sizes else None

    @property
    def file_type(self) -> str | None:
        kinds = sorted({k for f in self.files for k in f.kinds})
        return ",".join(kinds) if kinds else None

    def policy_facts(self) -> dict[str, Any]:
        """The web-app keys of config.policy.Facts."""
        return {
            "activity": self.activity,
            "account": self.account_kind,
            # Every type of every file, comma-separated: Policy.decide judges each, the strictest holds.
            "file_type": self.file_type,
            "file_bytes": max((f.size or 0 for f in self.files), default=None) if self.files else None,
        }


def classify(
    apps: WebApps,
    provider_id: str | None,
    host: str,
    method: str,
    path: str,
    headers: Mapping[str, str],
    content: bytes | None,
    accounts: AccountsPolicy,
    transport: str = "http",
) -> WebFacts | None:
    """The request's facts, or None when it is none of the catalogued endpoints."""
    content_type = headers.get("content-type", "")
    candidates = apps.candidates(provider_id, host, method, path, transport)
    tried: set[str] = set()
    for endpoint, _ in candidates:
        if endpoint.id in tried:
            continue  # another reading of the path: the same endpoint, judged once on all of them
        tried.add(endpoint.id)
        if not all(p.search(headers.get(name, "")) for name, p in endpoint.when_headers):
            continue
        body = _decode(endpoint, content, content_type)
        if endpoint.when_fields and (
            body is None or not all(str(p.first(body.doc)) == v for p, v in endpoint.when_fields)
        ):
            continue
        facts = WebFacts(endpoint)
        matches = [m for e, m in candidates if e is endpoint]
        try:
            _extract(facts, endpoint, matches, headers, body, content, content_type, accounts)
        except Exception:  # a body shaped in a way no path expected: fail safe, scan it all
            facts.parse_status = ERROR
            facts.fallback = _strings_of(body, content)
        return facts
    return None


def candidate_endpoints(
    apps: WebApps, provider_id: str | None, host: str, method: str, path: str, transport: str = "http"
) -> bool:
    """True when a request may be one of the endpoints (the body still has to say so)."""
    return bool(apps.candidates(provider_id, host, method, path, transport))


def _decode(endpoint: WebEndpoint, content: bytes | None, content_type: str) -> Body | None:
    if content is None:
        return None
    if endpoint.wire_format is not None:
        return None  # an API wire format: Identify's parser reads the body
    return decode_body(endpoint.body, content, content_type)


def _extract(
    facts: WebFacts,
    endpoint: WebEndpoint,
    matches: list[re.Match[str]],
    headers: Mapping[str, str],
    body: Body | None,
    content: bytes | None,
    content_type: str,
    accounts: AccountsPolicy,
) -> None:
    facts.body = body
    doc = body.doc if body is not None else None
    facts.account_kind, facts.account_id = strictest_account(endpoint, matches, headers, doc, accounts)
    if endpoint.conversation_group:
        facts.conversation = matches[0].groupdict().get(endpoint.conversation_group)
    if endpoint.wire_format is not None:
        return
    if body is None and content:
        facts.parse_status = UNPARSED
        facts.fallback = _strings_of(decode_any(content, content_type), content)
        if endpoint.body in ("json", "form"):
            facts.json_error = json_error(content, content_type)
        return
    if doc is not None:
        facts.texts = [t for p in endpoint.text for t in p.strings(doc)]
        facts.model = _scalar(endpoint.model.first(doc)) if endpoint.model else None
        if endpoint.conversation:
            facts.conversation = _scalar(endpoint.conversation.first(doc)) or facts.conversation
        if endpoint.temporary:
            flag = endpoint.temporary.first(doc)
            facts.temporary = bool(flag) if flag is not None else None
    if endpoint.model_header and (value := headers.get(endpoint.model_header)):
        found = _MODEL_ID.search(value)
        facts.model = found.group(1) if found else value[:64]
    facts.files = _files(endpoint, body, content, content_type)
    # The first text path is the prompt itself: when it is gone the format changed (a renamed
    # field), even if an attachment's text is still where it was, so every string is scanned.
    primary = endpoint.text[0].strings(doc) if endpoint.text and doc is not None else []
    if endpoint.activity == "prompt" and not any(t.strip() for t in primary):
        facts.parse_status = NO_TEXT
        facts.fallback = _strings_of(body, content)
    elif body is not None and body.has_shadowed():
        # A key given twice: the server may read the value DLP would not, so every value is scanned.
        facts.fallback = _strings_of(body, content)
    elif endpoint.scan == "strings":
        facts.fallback = _strings_of(body, content)


def _files(endpoint: WebEndpoint, body: Body | None, content: bytes | None, content_type: str) -> list[FileFacts]:
    if isinstance(body, RawBody):
        return [FileFacts(None, len(body.data), content_type.split(";")[0].strip() or None, body.data)]
    if isinstance(body, MultipartBody):
        files = [FileFacts(p.filename, len(p.data), p.content_type, p.data) for p in body.files]
        if files:
            return files
    doc = body.doc if body is not None else None
    if doc is None or endpoint.file_name is None and endpoint.file_data is None:
        return []
    names = endpoint.file_name.values(doc) if endpoint.file_name else []
    sizes = endpoint.file_size.values(doc) if endpoint.file_size else []
    types = endpoint.file_type.values(doc) if endpoint.file_type else []
    datas = endpoint.file_data.values(doc) if endpoint.file_data else []
    out = []
    for i in range(max(len(names), len(datas))):
        data = decode_b64(datas[i]) if i < len(datas) and isinstance(datas[i], str) else None
        size = _int(sizes[i]) if i < len(sizes) else (len(data) if data is not None else None)
        out.append(
            FileFacts(
                _scalar(names[i]) if i < len(names) else None, size, _scalar(types[i]) if i < len(types) else None, data
            )
        )
    return out


def strictest_account(
    endpoint: WebEndpoint,
    matches: list[re.Match[str]],
    headers: Mapping[str, str],
    doc: Any,
    accounts: AccountsPolicy,
) -> tuple[str, str | None]:
    """account_of in each reading of the path (matches: the server's readings first): the first
    that is not corporate when any is. Readings that differ in the org id (`/o/<corp>;x/...` read
    as sent, or with its `;params` dropped) leave the proxy unsure which account the server
    serves, so the request is judged as the one the account rules are strictest on (red-team F54)."""
    readings = [account_of(endpoint, m.groupdict(), headers, doc, accounts) for m in matches]
    return next((r for r in readings if r[0] != "corporate"), readings[0])


def account_of(
    endpoint: WebEndpoint,
    groups: Mapping[str, str | None],
    headers: Mapping[str, str],
    doc: Any,
    accounts: AccountsPolicy,
) -> tuple[str, str | None]:
    """(account kind, the raw account id or None)."""
    spec = endpoint.account
    # Compared ignoring case, as the path is matched (catalog.py): `/backend-ANON/` is signed out too.
    if spec.anonymous is not None and (groups.get(spec.anonymous[0]) or "").lower() == spec.anonymous[1].lower():
        return "anonymous", None
    account_id = None
    if spec.header:
        account_id = headers.get(spec.header) or None
    if account_id is None and spec.path_group:
        account_id = groups.get(spec.path_group)
    if account_id is None and spec.field is not None and doc is not None:
        account_id = _scalar(spec.field.first(doc))
    if not account_id:
        return spec.missing, None
    account_id = account_id.strip()
    ids = accounts.ids_for(endpoint.app)
    if ids is None:
        return "unknown", account_id
    return ("corporate" if account_id.lower() in ids else spec.unlisted), account_id


def fingerprint(secret: bytes, app: str, what: str, value: str | None) -> str | None:
    """A keyed HMAC of an account or conversation id (never the id), per app and per kind of id."""
    if not value:
        return None
    key = secret or _PROCESS_KEY
    digest = hmac.new(key, f"{what}\0{app}\0{value}".encode("utf-8", "surrogateescape"), hashlib.sha256)
    return "hmac:" + digest.hexdigest()[:32]


_PROCESS_KEY = os.urandom(32)  # before the settings load the shared key: never an unkeyed hash


def _strings_of(body: Body | None, content: bytes | None) -> list[str]:
    if body is not None and not isinstance(body, RawBody):
        if isinstance(body, MultipartBody):
            return [*every_string(body.doc), *(_text_of(p.data) for p in body.files)]
        return every_string(body.doc)
    return [content.decode("utf-8", "replace")] if content else []


def _text_of(data: bytes) -> str:
    return data.decode("utf-8", "replace")


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, dict | list):
        return None
    return str(value)[:256]


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None
