"""The web_activity row of a classified chat-app request, and what its ai_requests row counts.

A prompt is one ai_requests row (operation chat, tokens estimated from the text and flagged);
every other activity (an upload, a share, a prepare call) is a web_activity row only. The ids a
request names become keyed HMAC fingerprints here; the text and the ids themselves never reach a
row.
"""

from __future__ import annotations

import math
import time

from shadowgate.flow import FlowRecord
from shadowgate.flow import Outcome
from shadowgate.storage.rows import WebActivityRow
from shadowgate.storage.store import utc_from_timestamp
from shadowgate.webapps.classify import WebFacts
from shadowgate.webapps.classify import fingerprint
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Usage

CHARS_PER_TOKEN = 4  # Meter's rule of thumb: the apps report no usage to the browser


def web_activity_row(
    rec: FlowRecord, web: WebFacts, secret: bytes, status: int | None, transport: str = "http", ts: float | None = None
) -> WebActivityRow:
    files = web.files
    return WebActivityRow(
        ts=utc_from_timestamp(rec.started if ts is None else ts),
        request_id=rec.request_id,
        user_name=rec.person.user,
        user_group=rec.person.group,
        client_ip=rec.client_ip,
        app=web.app,
        host=rec.host,
        endpoint=web.endpoint.id,
        activity=web.activity,
        account_kind=web.account_kind,
        account_fingerprint=fingerprint(secret, web.app, "account", web.account_id),
        conversation_fingerprint=fingerprint(secret, web.app, "conversation", web.conversation),
        model=web.model,
        temporary=web.temporary,
        text_chars=web.text_chars if web.texts else None,
        file_type=web.file_type,
        file_bytes=web.file_bytes,
        file_count=len(files) or None,
        dlp_findings=rec.dlp_findings,
        dlp_action=rec.dlp_action,
        decision=rec.decision.action,
        rule_id=rec.decision.rule_id,
        parse_status=web.parse_status,
        status_code=status,
        transport=transport,
    )


def visit_row(
    rec: FlowRecord, app: str, status: int | None, endpoint: str = "visit", parse_status: str = "ok"
) -> WebActivityRow:
    """A page navigation the policy blocked or coached: the attempt, so the report can show who tried.
    Also a request that matches no endpoint but whose text DLP refused (endpoint `unmatched`)."""
    return WebActivityRow(
        ts=utc_from_timestamp(rec.started or time.time()),
        request_id=rec.request_id,
        user_name=rec.person.user,
        user_group=rec.person.group,
        client_ip=rec.client_ip,
        app=app,
        host=rec.host,
        endpoint=endpoint,
        activity="visit" if endpoint == "visit" else "other",
        account_kind="unknown",
        decision=rec.decision.action,
        rule_id=rec.decision.rule_id,
        dlp_findings=rec.dlp_findings,
        dlp_action=rec.dlp_action,
        parse_status=parse_status,
        status_code=status,
        transport="http",
    )


def counts_as_ai_request(rec: FlowRecord, out: Outcome) -> bool:
    """Whether a web-app request is an ai_requests row (a prompt), estimating its tokens if so."""
    web: WebFacts | None = rec.web
    if web is None:
        return True
    if web.activity != "prompt":
        return False
    if rec.route is None and out.status_code is not None and 200 <= out.status_code < 300:
        resp = out.response or ResponseFacts()
        if resp.usage.is_empty():
            # The browser gets no usage: input from the prompt's characters, output unknown.
            resp.usage = Usage(input_tokens=math.ceil(web.text_chars / CHARS_PER_TOKEN))
            out.response = resp
            out.usage_estimated = True
    return True
