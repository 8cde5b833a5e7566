"""Chat web apps: what a browser's request to ChatGPT, Claude, Gemini, ... does, and DLP on it.

Two addons, because the facts must exist before Decide and the scan must follow Act:

    WebApps     (after Identify, before Decide) classifies the request by the catalog's web_apps
                endpoints: activity, text, files, model, conversation, account (rec.web), so
                rules can match `activity` and `account`. A request to a catalogued app that is
                none of its endpoints (telemetry, anti-bot checks, assets) loses its FlowRecord:
                it is no AI call and adds no ai_requests row.
    WebAppsDlp  (after Act) scans every text field of a prompt, the fallback strings of a body
                whose text was not found, and the text of uploaded files. A finding blocks or
                logs; a redaction is written back only on endpoints marked `rewrite_ok` (proven
                to be accepted), and blocks elsewhere. Refusals take the app's own error shape.
                It also records a page navigation the policy blocked or coached (activity
                `visit`) and each client WebSocket frame that is a prompt (Microsoft Copilot).

Record writes the web_activity row when the flow ends (Record.ai_request), so the row carries
the final decision, DLP verdict and status.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import Counter
from collections import OrderedDict
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http
from mitmproxy import websocket

from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import COACH
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import RATE_LIMIT
from shadowgate.config.policy import Decision
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.requestpath import path_readings
from shadowgate.config.yamlfile import ConfigError
from shadowgate.dlp import TYPES
from shadowgate.dlp import ScanTimeout
from shadowgate.enforce.hosts import identity_host
from shadowgate.flow import METADATA_KEY
from shadowgate.flow import FlowRecord
from shadowgate.flow import flow_record
from shadowgate.flow import timed_hook
from shadowgate.stages.act import Act
from shadowgate.stages.act import is_browser_navigation
from shadowgate.stages.act import refusal_text
from shadowgate.stages.decide import Decide
from shadowgate.stages.identify import URL_FINDING_KEY
from shadowgate.stages.identify import new_flow_record
from shadowgate.stages.realtime import REALTIME_KEY
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.stages.redact import ScanFailed
from shadowgate.stages.redact import body_scan
from shadowgate.stages.redact import dlp_verdict
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import scanned_path
from shadowgate.stages.redact import shared_scanner
from shadowgate.stages.redact import url_findings
from shadowgate.stages.redact import url_text
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.stages.settings import expand_path
from shadowgate.storage.store import utc_from_timestamp
from shadowgate.webapps.catalog import WebApps as WebAppCatalog
from shadowgate.webapps.catalog import WebEndpoint
from shadowgate.webapps.catalog import load_web_apps
from shadowgate.webapps.classify import ERROR
from shadowgate.webapps.classify import FileFacts
from shadowgate.webapps.classify import WebFacts
from shadowgate.webapps.classify import classify
from shadowgate.webapps.codecs import MultipartBody
from shadowgate.webapps.codecs import RawBody
from shadowgate.webapps.codecs import decode_any
from shadowgate.webapps.codecs import json_error
from shadowgate.webapps.codecs import load_json
from shadowgate.webapps.content import file_text
from shadowgate.webapps.rows import visit_row
from shadowgate.webapps.rows import web_activity_row
from shadowgate.wireformats import UNPARSED_JSON_NOTE
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.common import every_string
from shadowgate.wireformats.common import header_map
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.decoding import decode_body
from shadowgate.wireformats.scope import KeyStep
from shadowgate.wireformats.scope import Piece
from shadowgate.wireformats.scope import apply_ranges
from shadowgate.wireformats.scope import request_pieces
from shadowgate.wireformats.wsframes import Unreadable
from shadowgate.wireformats.wsframes import read_message

log = logging.getLogger(__name__)

PENDING_KEY = "shadowgate_web_pending"  # flow.metadata: a candidate endpoint, classify on the body
UNMATCHED_KEY = "shadowgate_web_unmatched"  # flow.metadata: an app's request that is no endpoint (its app)
# The fallback scan of an app's request that matches no endpoint reads every string of at least
# MIN_UNMATCHED_STRING characters for secrets (a key needs no space: `aws_access_key_id=AKIA...`),
# and for personal data only strings that look like text (a space, some length), so anti-bot
# tokens, ids and the telemetry that names the signed-in user neither flag nor break the app.
MIN_FALLBACK_TEXT = 16
MIN_UNMATCHED_STRING = 8
# Each string is one scan (tens of µs however short): a body with more goes to a thread.
UNMATCHED_INLINE_STRINGS = 64
# The joins of a body's strings (red-team F40) read every one, keys and short ones too (~1.5 ms for
# 256 of them, ~16 ms for 3,000 in 19 KB of JSON): a body with more goes to a thread too.
JOINED_INLINE_STRINGS = 256
_READ_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})  # carry no body an app stores


def refusal(endpoint: WebEndpoint | None, status: int, message: str) -> http.Response:
    """A refusal in the app's own error shape when the catalog knows it, else a plain-text 403."""
    headers = {"cache-control": "no-store"}
    spec = endpoint.refuse if endpoint is not None else None
    if spec is None or spec.json is None:
        return http.Response.make(status, message.encode(), {**headers, "content-type": "text/plain; charset=utf-8"})
    body = _fill(spec.json, message)
    code = spec.status if status == 403 else status
    return http.Response.make(code, json.dumps(body).encode(), {**headers, "content-type": "application/json"})


def _fill(shape: Any, message: str) -> Any:
    if isinstance(shape, str):
        return shape.replace("{message}", message)
    if isinstance(shape, dict):
        return {k: _fill(v, message) for k, v in shape.items()}
    if isinstance(shape, list):
        return [_fill(v, message) for v in shape]
    return shape


class WebApps:
    """Classify chat-web-app requests before the policy decides (see the module docstring)."""

    name = "shadowgate_webapps"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.apps = WebAppCatalog()
        # Bytes written so far to each blob in pieces (Azure Put Block / Append Block), so a size
        # rule judges the file, not the piece (red-team F110). Per process, the oldest forgotten.
        self.blob_bytes: OrderedDict[tuple[str, str], int] = OrderedDict()

    def configure(self, updated: set[str]) -> None:
        if "shadowgate_providers" not in updated and self.apps:
            return
        catalog = self.settings.catalog
        if catalog is None:
            return
        try:
            self.apps = load_web_apps(expand_path(ctx.options.shadowgate_providers), provider_ids=catalog.providers)
        except ConfigError as e:
            raise exceptions.OptionsError(str(e)) from e

    @timed_hook
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        catalog = self.settings.catalog
        if flow.response or flow.error or not flow.live or catalog is None or not self.apps:
            return
        request = flow.request
        if "upgrade" in request.headers:
            return  # a WebSocket: Realtime owns the upgrade, WebAppsDlp reads its frames
        rec = flow_record(flow)
        host = rec.host if rec is not None else identity_host(flow)
        provider = rec.provider if rec is not None else catalog.match_host(host)
        app = self.apps.app(provider.id if provider else None)
        if app is None and not self.apps.on_foreign_host(host):
            return
        candidates = self.apps.candidates(provider.id if provider else None, host, request.method, request.path)
        if not candidates:
            if rec is not None and app is not None and rec.route is None and not flow.metadata.get(URL_FINDING_KEY):
                del flow.metadata[METADATA_KEY]  # telemetry, anti-bot, assets: not an AI call
                flow.metadata[UNMATCHED_KEY] = rec.provider.id if rec.provider else None
            elif rec is None and app is None and request.method not in _READ_METHODS:
                # A write to an app's storage host (listed under inspect:) that no endpoint
                # describes: its body is still scanned, as on the app's own hosts (red-team F28).
                flow.metadata[UNMATCHED_KEY] = self.apps.app_of(None, host)
            return
        endpoint = candidates[0][0]
        if rec is None:
            owner = provider if app is not None else catalog.providers.get(endpoint.app)
            rec = new_flow_record(self.settings, flow, host, owner, None)
            flow.metadata[METADATA_KEY] = rec
            length = request.headers.get("content-length", "")
            if length.isdigit() and int(length) > self.settings.max_parse_bytes:
                request.stream = True
                rec.request_bytes = int(length)
        if endpoint.wire_format is not None and rec.route is None:
            # An API on the app's host (Codex on chatgpt.com): Identify, Redact and Meter treat
            # it as that wire format, because the route is set before Identify reads the body.
            formats = catalog.wire_formats.get(endpoint.wire_format) or ()
            if formats:
                rec.route = Route(endpoint.wire_format, formats[0].parser, formats[0].operation)
        flow.metadata[PENDING_KEY] = True

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> None:
        rec = flow_record(flow)
        if rec is None or not flow.metadata.pop(PENDING_KEY, False) or flow.response or flow.error:
            return
        request = flow.request
        content, unreadable = (None, None) if request.stream else readable_body(request)
        facts = classify(
            self.apps,
            rec.provider.id if rec.provider else None,
            rec.host,
            request.method,
            request.path,
            header_map(request.headers),
            content,
            self.settings.policy.accounts,
        )
        if facts is None:
            if rec.route is None and not flow.metadata.get(URL_FINDING_KEY):
                del flow.metadata[METADATA_KEY]  # a candidate path, but not by its body: no AI call
                if request.method not in _READ_METHODS:
                    # Not the endpoint by its headers or body (an Azure Put Block to ChatGPT's file
                    # storage, another GraphQL query): still scanned as any unlisted request is
                    # (red-team F28), since `when:` narrows what a request is, not what DLP reads.
                    flow.metadata[UNMATCHED_KEY] = self.apps.app_of(rec.provider.id if rec.provider else None, rec.host)
            return
        if unreadable is not None:
            # Coded in a way the proxy cannot undo: nothing of it was read (DLP refuses it).
            facts.parse_status, facts.unreadable = ERROR, unreadable
            facts.texts, facts.fallback, facts.body = [], [], None
            for file in facts.files:
                file.data = None
        elif facts.json_error is not None:
            # Looks like JSON, does not parse: decided as an unread body (Decide refuses it while
            # DLP or a model rule needs it, rule shadowgate:body-unparsed), as on the API path.
            rec.body_unread = True
            rec.inspect_note = f"{UNPARSED_JSON_NOTE}: {facts.json_error}"
        if request.stream and facts.activity == "upload" and not facts.files:
            facts.files = [FileFacts(None, rec.request_bytes, request.headers.get("content-type"))]
        if facts.activity == "upload" and facts.files and _BLOB_PIECE.search(request.path.partition("?")[2]):
            # The blob as the storage names it: its path decoded (`/file-%78` is `/file-x`: red-team F125).
            key = (rec.host, path_readings(request.path)[-1])
            facts.files[0].size = self.blob_bytes.get(key, 0) + rec.request_bytes
            flow.metadata[BLOB_PIECE_KEY] = (key, rec.request_bytes)
        rec.web = facts
        if facts.activity == "prompt" and rec.route is None:
            accept = request.headers.get("accept", "")
            rec.facts = RequestFacts("chat", facts.model, "event-stream" in accept, facts.text_chars)

    def response(self, flow: http.HTTPFlow) -> None:
        # A piece the storage took adds to its blob's size (a refused one wrote nothing).
        piece = flow.metadata.get(BLOB_PIECE_KEY)
        if piece is None or flow.response is None or not 200 <= flow.response.status_code < 300:
            return
        key, size = piece
        self.blob_bytes[key] = self.blob_bytes.pop(key, 0) + size
        if len(self.blob_bytes) > BLOB_MEMORY:
            self.blob_bytes.popitem(last=False)


# A piece of a blob written in parts (Azure Blob: Put Block, Append Block), from its query.
_BLOB_PIECE = re.compile(r"(?:^|&)comp=(?:block|appendblock)(?:&|$)", re.IGNORECASE)
BLOB_MEMORY = 10_000
BLOB_PIECE_KEY = "shadowgate_blob_piece"  # flow.metadata: ((host, path), bytes) of a piece in flight


class WebAppsDlp:
    """After Act: DLP on web prompts and uploads, app-shaped refusals, visits and frames."""

    name = "shadowgate_webapps_dlp"

    def __init__(self, settings: ShadowgateSettings, decide: Decide, webapps: WebApps, act: Act) -> None:
        self.settings = settings
        self.decide = decide
        self.webapps = webapps  # the classifying addon, which holds the loaded web_apps section
        self.act = act  # its coach page and "continue" allowances
        # (user, app) -> the coach decision a prompt or upload met: the next page navigation to the
        # app shows the interstitial (a fetch cannot show a page; rules on account or activity
        # never match a navigation, which carries neither).
        self.pending_coach: dict[tuple[str, str], Decision] = {}

    @property
    def apps(self) -> WebAppCatalog:
        return self.webapps.apps

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        rec = flow_record(flow)
        if rec is None:
            if UNMATCHED_KEY in flow.metadata:
                return self._unmatched(flow, flow.metadata.pop(UNMATCHED_KEY))
            self._visit(flow)
            return None
        web: WebFacts | None = rec.web
        if web is None or flow.error:
            return None
        if rec.decision.action == COACH and not is_browser_navigation(flow.request):
            if len(self.pending_coach) > 100_000:
                self.pending_coach.clear()
            self.pending_coach[(rec.person.user or rec.client_ip or "-", web.app)] = rec.decision
        if flow.response is not None:
            self._in_app_shape(flow, rec, web)
            return None
        dlp = self.settings.policy.dlp
        if dlp is None or web.endpoint.wire_format is not None:
            return None  # an API wire format is Redact's
        request = flow.request
        try:
            if web.unreadable is not None:
                raise _Unscannable(web.unreadable)
            if request.stream and web.endpoint.scan != "none":
                raise _Unscannable("the body is too large to scan")
            if web.parse_status == ERROR and not web.fallback:
                raise _Unscannable("the body could not be read")
            others = [*web.fallback, *self._file_texts(web.files), *_url_texts(scanned_path(flow), dlp)]
            if isinstance(web.body, MultipartBody):  # field and file names: text the app stores
                others += [part.header_text for part in web.body.parts]
            unlisted = _unlisted_strings(web)
            if not web.texts and not others and not unlisted:
                return None
            chars = sum(map(len, web.texts)) + sum(map(len, others)) + sum(map(len, unlisted))
            chars = max(chars, len(request.raw_content or b""))  # the joins walk all of it, numbers too
            doc = _joined_doc(web)
            joined = len(every_string(doc, keys=True)) if doc is not None else 0
            if (
                chars > SCAN_IN_THREAD_CHARS
                or len(unlisted) > UNMATCHED_INLINE_STRINGS
                or joined > JOINED_INLINE_STRINGS
            ):
                return self._scan_off_loop(flow, rec, web, dlp, others, unlisted)
            self._apply(flow, rec, web, dlp, *_scan(web.texts, others, unlisted, doc, dlp))
        except Exception as e:
            self._failed(flow, rec, web, dlp, e)
        return None

    async def _scan_off_loop(
        self,
        flow: http.HTTPFlow,
        rec: FlowRecord,
        web: WebFacts,
        dlp: DlpPolicy,
        others: list[str],
        unlisted: list[str],
    ) -> None:
        try:
            scanned = await asyncio.to_thread(_scan, web.texts, others, unlisted, _joined_doc(web), dlp)
            started = time.perf_counter_ns()
            self._apply(flow, rec, web, dlp, *scanned)
            rec.overhead_ns += time.perf_counter_ns() - started
        except Exception as e:
            self._failed(flow, rec, web, dlp, e)

    def _file_texts(self, files: list[FileFacts]) -> list[str]:
        limit = self.settings.max_parse_bytes or 10 * 1024 * 1024
        return [t for f in files if (t := file_text(f, limit))]

    def _failed(self, flow: http.HTTPFlow, rec: FlowRecord, web: WebFacts, dlp: DlpPolicy, e: Exception) -> None:
        if not isinstance(e, _Unscannable):
            log.exception("shadowgate: DLP on a web-app request failed")
        rec.dlp_action = "error"
        if dlp.on_error != ALLOW and not self.settings.policy.observe:
            reason = str(e) if isinstance(e, _Unscannable) else "the scanner failed"
            flow.response = refusal(web.endpoint, 403, f"shadowgate: not sent: {reason}, and DLP fails closed.")

    def _apply(
        self, flow: http.HTTPFlow, rec: FlowRecord, web: WebFacts, dlp: DlpPolicy,
        cleaned: list[str], counts: Counter, actions: set[str], rewritable: bool,
    ) -> None:  # fmt: skip
        if not counts:
            return
        observe = self.settings.policy.observe
        rec.dlp_findings, rec.dlp_action, blocking = dlp_verdict(counts, actions, dlp, observe)
        can_rewrite = web.endpoint.rewrite_ok and rewritable and web.body is not None and web.parse_status == "ok"
        if rec.dlp_action in ("redact", "would_redact") and not can_rewrite:
            # No proof the app accepts a rewritten body: the finding blocks instead.
            rec.dlp_action = OBSERVE_PREFIX + BLOCK if observe else BLOCK
            blocking = [] if observe else sorted(counts)
        if blocking:
            message = (
                f"shadowgate: the {web.activity} contains {', '.join(blocking)}; company policy does not allow "
                f"sending it to {rec.host}."
            )
            flow.response = refusal(web.endpoint, 403, message)
            return
        if rec.dlp_action == "redact" and web.body is not None:
            doc = web.body.doc
            replacements = iter(cleaned)
            for path in web.endpoint.text:
                doc = path.replace(doc, lambda _s: next(replacements))
            flow.request.headers.pop("content-encoding", None)  # written back as read: decoded
            flow.request.content = web.body.encode(doc)

    def _in_app_shape(self, flow: http.HTTPFlow, rec: FlowRecord, web: WebFacts) -> None:
        """Act refused (block, rate limit, a coach the client cannot click): say it as the app would."""
        decision = rec.decision
        action = decision.action
        if action not in (BLOCK, RATE_LIMIT, COACH) or flow.response is None or web.endpoint.refuse is None:
            return
        if is_browser_navigation(flow.request):
            return
        text = refusal_text(decision, "blocked") if action != RATE_LIMIT else f"shadowgate: {decision.reason}"
        retry = flow.response.headers.get("retry-after")
        flow.response = refusal(web.endpoint, flow.response.status_code, text)
        if retry:
            flow.response.headers["retry-after"] = retry

    # --- an app's request that is none of its endpoints: its text still gets DLP ---------------

    def _unmatched(self, flow: http.HTTPFlow, app: str | None) -> Awaitable[None] | None:
        """Fail safe when an app renames an endpoint or adds one (memories, project docs, a
        title): every string of the body of 8 characters or more is scanned for secrets, and
        text-like strings (a space, some length) for personal data too, since the apps' own
        ids and telemetry (which names the signed-in user in every batch) would flag, log and
        block otherwise. A secret found, or any finding that refuses, leaves a web_activity row
        (`unmatched`, `unparsed`); a block or redact verdict refuses the request (a body no
        endpoint describes cannot be rewritten)."""
        dlp = self.settings.policy.dlp
        request = flow.request
        if dlp is None or app is None or flow.response or flow.error or request.stream:
            return None
        content, unreadable = readable_body(request)
        content_type = request.headers.get("content-type", "")
        try:
            if unreadable is not None:
                raise _Unscannable(unreadable)
            texts = _url_texts(scanned_path(flow), dlp)
            doc = None  # the parsed body, whose strings are joined besides (red-team F40)
            joined = 0
            if content and len(content) <= (self.settings.max_parse_bytes or len(content)):
                body = decode_any(content, content_type)
                if body is None and (why := json_error(content, content_type)) is not None:
                    raise _Unscannable(f"{UNPARSED_JSON_NOTE} ({why})")
                doc = body.doc if body is not None else None
                strings = every_string(doc, keys=True) if body is not None else self._raw_texts(content, content_type)
                joined = len(strings) if body is not None else 0
                if isinstance(body, MultipartBody):
                    # A multipart body's files (and parts without a field name, as in
                    # multipart/mixed) are in no field: each is read as an uploaded file is, and
                    # the part headers (field and file names) are text the app stores (red-team F47).
                    for part in body.parts:
                        strings += [part.header_text]
                        if part.filename is not None or part.name is None:
                            strings += self._raw_texts(part.data, part.content_type or "")
                texts += dict.fromkeys(t for t in strings if len(t) >= MIN_UNMATCHED_STRING)
        except Exception as e:
            self._unmatched_failed(flow, app, dlp, e)
            return None
        if not texts and doc is None:
            return None
        if (
            len(texts) > UNMATCHED_INLINE_STRINGS
            or max(sum(map(len, texts)), len(content)) > SCAN_IN_THREAD_CHARS
            or joined > JOINED_INLINE_STRINGS
        ):
            return self._unmatched_off_loop(flow, app, texts, doc, dlp)
        try:
            self._refuse_unmatched(flow, app, dlp, *_scan_unmatched_body(texts, doc, dlp))
        except Exception as e:
            self._unmatched_failed(flow, app, dlp, e)
        return None

    async def _unmatched_off_loop(
        self, flow: http.HTTPFlow, app: str, texts: list[str], doc: Any, dlp: DlpPolicy
    ) -> None:
        try:
            self._refuse_unmatched(flow, app, dlp, *await asyncio.to_thread(_scan_unmatched_body, texts, doc, dlp))
        except Exception as e:
            self._unmatched_failed(flow, app, dlp, e)

    def _refuse_unmatched(
        self, flow: http.HTTPFlow, app: str, dlp: DlpPolicy, counts: Counter, actions: set[str]
    ) -> None:
        if not counts:
            return
        observe = self.settings.policy.observe
        refuse = bool(actions & {"block", "redact"})
        rec = self._unmatched_record(flow, app)
        rec.dlp_findings, rec.dlp_action, _ = dlp_verdict(counts, actions, dlp, observe)
        if refuse and observe:
            rec.dlp_action = OBSERVE_PREFIX + BLOCK
        elif refuse:
            rec.dlp_action = BLOCK
            message = f"shadowgate: the request contains {', '.join(sorted(counts))}; company policy does not allow sending it to {rec.host}."
            flow.response = refusal(None, 403, message)
        self._unmatched_row(flow, app, rec)

    def _raw_texts(self, content: bytes, content_type: str) -> list[str]:
        """A body that is no JSON, form or multipart: read as an uploaded file is (text, UTF-16,
        Office XML), and as UTF-8 besides, which finds a key in a binary body too."""
        limit = self.settings.max_parse_bytes or len(content)
        text = file_text(FileFacts(None, len(content), content_type.split(";")[0].strip() or None, content), limit)
        raw = content.decode("utf-8", "replace")
        return [raw] if text is None or text == raw else [text, raw]

    def _unmatched_failed(self, flow: http.HTTPFlow, app: str, dlp: DlpPolicy, e: Exception) -> None:
        """A body that cannot be read, a scan that failed or ran out of time: refused unless
        dlp.on_error allows (mitmproxy would forward the request of a hook that raised), and
        recorded either way."""
        if not isinstance(e, ScanFailed | ScanTimeout | _Unscannable):
            log.exception("shadowgate: DLP on a web-app request failed")
        rec = self._unmatched_record(flow, app)
        rec.dlp_action = "error"
        if dlp.on_error != ALLOW and not self.settings.policy.observe:
            reason = str(e) if isinstance(e, _Unscannable) else "the DLP scan failed"
            flow.response = refusal(None, 403, f"shadowgate: not sent: {reason}, and DLP fails closed.")
        self._unmatched_row(flow, app, rec)

    def _unmatched_record(self, flow: http.HTTPFlow, app: str) -> FlowRecord:
        catalog = self.settings.catalog
        host = identity_host(flow)
        return new_flow_record(self.settings, flow, host, catalog.providers.get(app) if catalog else None, None)

    def _unmatched_row(self, flow: http.HTTPFlow, app: str, rec: FlowRecord) -> None:
        if self.settings.record is not None:
            status = flow.response.status_code if flow.response is not None else None
            self.settings.record.web_activity(
                visit_row(rec, app, status, endpoint="unmatched", parse_status="unparsed")
            )

    # --- page visits the policy refused, and WebSocket frames ---------------------------------

    def _visit(self, flow: http.HTTPFlow) -> None:
        catalog = self.settings.catalog
        request = flow.request
        if catalog is None or flow.error or not is_browser_navigation(request):
            return
        host = identity_host(flow)
        provider = catalog.match_host(host)
        if provider is None or provider.category != "chat-web":
            return
        decided = self.decide.unidentified(flow)
        if decided is None:
            return
        facts, decision = decided
        coach = self.pending_coach.pop((facts.user or facts.client_ip or "-", provider.id), None)
        if coach is not None and flow.response is None:
            # The page unless the person holds a consent token (enforce/coach.py); "continue" is Act's.
            self.act._coach(flow, None, facts, coach)
            decision = coach
        if decision.action.removeprefix(OBSERVE_PREFIX) not in (BLOCK, COACH):
            return
        if decision.action == COACH and flow.response is None:
            decision = Decision("coach_allowed", decision.rule_id, "the user chose to continue", decision.rule)
        rec = new_flow_record(self.settings, flow, host, provider, None)
        rec.decision = decision
        record = self.settings.record
        if record is not None:
            record.web_activity(visit_row(rec, provider.id, flow.response.status_code if flow.response else None))

    def websocket_message(self, flow: http.HTTPFlow) -> None:
        # After Realtime's hook (which reads and scans the message and may drop it): one row per
        # prompt record (a SignalR message may carry several), and one per message it could not read.
        catalog = self.settings.catalog
        if flow.websocket is None or catalog is None or not flow.websocket.messages:
            return
        message = flow.websocket.messages[-1]
        if not message.from_client:
            return
        host = identity_host(flow)
        provider = catalog.match_host(host)
        if provider is None or self.apps.app(provider.id) is None:
            return
        session = flow.metadata.get(REALTIME_KEY)
        rec = session.rec if session is not None else new_flow_record(self.settings, flow, host, provider, None)
        docs = _frame_docs(session, message)
        record = self.settings.record
        if docs is None:
            if session is not None and session.unreadable and record is not None:
                row = visit_row(rec, provider.id, None, endpoint="unreadable-message", parse_status=ERROR)
                row.transport, row.ts = "websocket", utc_from_timestamp(message.timestamp)
                row.decision = BLOCK if message.dropped else rec.decision.action
                row.dlp_action = "error" if self.settings.policy.dlp is not None else None
                record.web_activity(row)
            return
        for doc in docs:
            facts = classify(
                self.apps, provider.id, host, "GET", flow.request.path, header_map(flow.request.headers),
                json.dumps(doc, default=_json_safe, skipkeys=True).encode(), self.settings.policy.accounts, transport="websocket",
            )  # fmt: skip
            if facts is None:
                continue
            row = web_activity_row(rec, facts, self.settings.secret, None, transport="websocket", ts=message.timestamp)
            if message.dropped:
                row.decision = BLOCK
            if record is not None:
                record.web_activity(row)


def _frame_docs(session: Any, message: websocket.WebSocketMessage) -> list[Any] | None:
    """The documents of a client message (as Realtime read it, else read here); None: unreadable."""
    current = session.current if session is not None else None
    if current is not None and current[0] is message:
        return current[1].docs if current[1] is not None else None
    try:
        return read_message(message.content, message.is_text, session.protocol if session else None).docs
    except Unreadable:
        return None


def _json_safe(value: Any) -> Any:
    """A MessagePack value JSON has no form for (bin, ext): its size, for the catalog's paths."""
    if isinstance(value, bytes | bytearray):
        return f"<{len(value)} bytes>"
    return repr(value)


class _Unscannable(Exception):
    pass


def readable_body(request: http.Request) -> tuple[bytes, str | None]:
    """(the body as the app's server reads it, None), every content coding undone as the API path
    undoes them (wireformats.decoding.decode_body: `x-gzip`, stacked `gzip, gzip`, which
    mitmproxy's own decoder hands back raw: red-team F35); (the raw bytes, why) when that cannot
    be done (an unknown coding, corrupt data), and DLP refuses the body."""
    raw = request.raw_content or b""
    try:
        return decode_body(raw, request.headers.get("content-encoding")), None
    except UndecodableBody as e:
        return raw, f"its body cannot be read as the app will read it ({e})"


def _url_texts(path: str, dlp: DlpPolicy) -> list[str]:
    """The decoded path and query of a request, as one more text to scan, when DLP finds anything
    in them (a cached check: most URLs repeat, and almost all are clean)."""
    return [url_text(path)] if url_findings(path, dlp) else []


def _scan_unmatched(texts: list[str], dlp: DlpPolicy) -> tuple[Counter, set[str]]:
    """(counts, actions) of the strings of a request no endpoint describes: secrets in every
    string, personal data only in text-like ones (see WebAppsDlp._unmatched). Each string is
    scanned on its own: joined, a name in one string and an id in the next would read as a
    secret assigned to a name. The CPU budget is dlp.budget_ms, as for every scan."""
    scanner = shared_scanner().including(dlp.opt_in)
    deadline = time.thread_time() + dlp.budget_ms / 1000
    counts: Counter = Counter()
    actions: set[str] = set()
    for text in texts:
        text_like = len(text) >= MIN_FALLBACK_TEXT and " " in text.strip()
        for f in scanner.scan(text, deadline):
            kind = TYPES.get(f.type, "pii")
            if kind != "secret" and not text_like:
                continue
            action = dlp.action_for(f.type, kind)
            if action == "off":
                continue
            counts[f.type] += 1
            actions.add(action)
    return counts, actions


def _scan_unmatched_body(texts: list[str], doc: Any, dlp: DlpPolicy) -> tuple[Counter, set[str]]:
    """_scan_unmatched, and the strings of the parsed body (doc) joined as the API path joins a
    body's strings that are not prompt text (BodyScan.pieces): a key of a format that stands on
    its own cut across strings, however short each piece (`["AKIA2OG", "YBAH6ST", "MMNXNN"]`), is
    found (red-team F40). One CPU budget, dlp.budget_ms, for each of the two."""
    counts, actions = _scan_unmatched(texts, dlp)
    if doc is not None:
        scan, _ = body_scan(dlp)
        scan.pieces(_joined_pieces([], doc)[0], own=lambda _piece: False)
        counts += scan.counts
        actions |= scan.actions
    return counts, actions


def _joined_doc(web: WebFacts) -> Any:
    """The parsed body whose strings the joins read (None: a file's bytes, or nothing parsed)."""
    body = web.body
    return None if body is None or isinstance(body, RawBody) else body.doc


def _joined_pieces(texts: list[str], doc: Any) -> tuple[list[Piece], list[int | None]]:
    """The strings of a chat app's body as the API path's joins read them (request_pieces: every
    string and key in document order; no numbers), with the catalog's text paths as the prompt
    pieces, and for each piece the index of the text it is (None: another string). A text is
    known by its value (the paths give values, not places), the same value taken in order; a
    text the body's pieces do not hold as it stands (one inside a JSON document in a string, a
    string the pieces read decoded) is a prompt piece of its own after them."""
    unclaimed: dict[str, list[int]] = {}
    for i, text in enumerate(texts):
        unclaimed.setdefault(text, []).append(i)
    pieces: list[Piece] = []
    text_of: list[int | None] = []
    if doc is not None:
        for piece in request_pieces(doc, include_metadata=True):
            if piece.digits_at is not None:
                continue  # a number: read with its keys' names, never joined (BodyScan.json)
            is_key = bool(piece.path) and isinstance(piece.path[-1], KeyStep)
            claimed = unclaimed.get(piece.text) if piece.encode is None and not is_key else None
            index = claimed.pop(0) if claimed else None
            # request_pieces marks prompt text by the API formats' keys; here the catalog's paths do.
            pieces.append(piece if piece.prompt == (index is not None) else replace(piece, prompt=index is not None))
            text_of.append(index)
    for text, left in unclaimed.items():
        for index in left:
            pieces.append(Piece(("text", index), text, prompt=True))
            text_of.append(index)
    return pieces, text_of


def _unlisted_strings(web: WebFacts) -> list[str]:
    """The strings of a parsed body that its text paths do not hold, object keys too (red-team
    F33): the apps send the model more than the catalog's paths (Claude's custom style, a
    client-written assistant message in ChatGPT), so they are scanned as an unlisted endpoint's
    body is (_scan_unmatched). None when every string is scanned already (the fallback); not a
    text itself, nor a file's base64 (read as the file). A string that is a JSON document (Gemini's
    `f.req`) is read as its strings, so the prompt inside it is not counted twice."""
    body = web.body
    if body is None or web.fallback or isinstance(body, RawBody):
        return []
    # Counted, not a set: the same value a second time outside the paths is another copy, which
    # a redaction in the paths would not reach.
    read = Counter(web.texts)
    if web.endpoint.file_data is not None:
        read.update(v for v in web.endpoint.file_data.values(body.doc) if isinstance(v, str))
    out: list[str] = []
    pending = every_string(body.doc, keys=True)
    pending.reverse()
    while pending:
        text = pending.pop()
        if read[text] > 0:
            read[text] -= 1
        elif len(text) < MIN_UNMATCHED_STRING:
            continue
        elif text.lstrip()[:1] in ("{", "[") and isinstance(inner := load_json(text), dict | list):
            pending += reversed(every_string(inner, keys=True))
        else:
            out.append(text)
    return out


def _scan(
    texts: list[str], others: list[str], unlisted: list[str], doc: Any, dlp: DlpPolicy
) -> tuple[list[str], Counter, set[str], bool]:
    """(the texts with findings redacted, counts, actions, whether every redaction is in the
    texts). `unlisted`: the body's other strings, scanned as an unlisted endpoint's are.

    The texts are scanned as the API path scans a body's prompt text (BodyScan.pieces): each on
    its own, then joined, so a value cut across two `parts`, two user messages or two attachments
    is found and redacted where it lies (red-team F40); then with the body's other strings (doc),
    for a key of a format that stands on its own cut across them. A split value to redact that
    lies partly outside the texts cannot be rewritten: the request is refused."""
    scan, placeholders = body_scan(dlp)
    pieces, text_of = _joined_pieces(texts, doc)
    ranges = scan.pieces(pieces, own=lambda piece: piece.prompt)
    cleaned = list(texts)
    outside_texts = scan.unredactable
    for i, spans in ranges.items():
        index = text_of[i]
        if index is None:
            outside_texts = True
        else:
            cleaned[index] = apply_ranges(texts[index], spans)
    _, more, other_actions = scan_json(list(others), shared_scanner(), placeholders, dlp, every_string=True)
    elsewhere, elsewhere_actions = _scan_unmatched(unlisted, dlp) if unlisted else (Counter(), set())
    outside = other_actions | elsewhere_actions
    rewritable = "redact" not in outside and not outside_texts
    return cleaned, scan.counts + more + elsewhere, scan.actions | outside, rewritable
