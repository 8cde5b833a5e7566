"""WebSocket AI sessions: OpenAI Realtime, Gemini Live, and any WebSocket to a catalogued AI host.

The policy is applied at the upgrade (a refused upgrade never reaches the provider) and again
when a client message names another model (OpenAI `session.update`, Gemini `setup`). DLP scans
every client text frame the way Redact scans a request body (`conversation.item.create` text,
`input_text`, `instructions`, Gemini `clientContent` / `realtimeInput` text); a finding the policy
blocks drops the frame and tells the client, a redaction rewrites it. Audio frames pass unscanned.

The `injection:` policy screens the same frames' text as Screen screens a request (who wrote what:
screening/frames.py), with the end of the session's earlier text joined on, so an instruction split
across messages is seen; a block drops the frame. The `responses:` policy inspects the model's text
deltas as Answer inspects a stream, with the bounded hold-back across messages: a redaction rewrites
the frames, a block cuts the session with an error event in the provider's shape (nothing of the
model's goes out after it). Held text is released as an extra message: mitmproxy sends a message
the hook injects after the one being handled and after any already read, so from then on every
server message is sent by injection too, until the injected ones have gone, and the order holds.

Each session becomes one ai_requests row when it ends: the model from the URL or the session
messages, usage summed from the server's usage events (OpenAI `response.done`, Gemini
`usageMetadata`, each taken as that turn's count), its duration as latency_ms, and the bytes each
way. mitmproxy keeps every message of a WebSocket flow in memory; after a message is handled only
the latest is kept, so an hour of audio does not grow the proxy.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections import Counter
from collections.abc import Awaitable
from dataclasses import dataclass
from dataclasses import field
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from mitmproxy import ctx
from mitmproxy import http
from mitmproxy import websocket

from shadowgate.config.catalog import normalise_host
from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import COACH
from shadowgate.config.policy import RATE_LIMIT
from shadowgate.config.policy import REDIRECT
from shadowgate.config.policy import Decision
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy_injection import BLOCK as INJECTION_BLOCK
from shadowgate.config.policy_injection import InjectionPolicy
from shadowgate.config.policy_responses import BLOCK as RESPONSES_BLOCK
from shadowgate.dlp import Placeholders
from shadowgate.screening.frames import ServerFrames
from shadowgate.screening.frames import client_texts
from shadowgate.screening.prompts import PROMPT
from shadowgate.screening.prompts import SEAM
from shadowgate.screening.prompts import TOOL_RESULT
from shadowgate.screening.prompts import BudgetExceeded
from shadowgate.screening.prompts import screen_texts
from shadowgate.stages.act import api_error
from shadowgate.stages.act import refusal_text
from shadowgate.stages.answer import AnswerBlocked
from shadowgate.stages.answer import Inspection
from shadowgate.stages.answer import refusal
from shadowgate.stages.decide import Decide
from shadowgate.stages.hostagree import DECISION_HOST_KEY
from shadowgate.stages.identify import new_flow_record
from shadowgate.stages.record import Record
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.stages.redact import dlp_verdict
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from shadowgate.stages.screen import verdict
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.storage.schema import FlowRecord
from shadowgate.storage.schema import Outcome
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.base import Usage
from shadowgate.wireformats.common import dig
from shadowgate.wireformats.realtime import client_model
from shadowgate.wireformats.realtime import gemini_usage
from shadowgate.wireformats.realtime import message_json
from shadowgate.wireformats.realtime import openai_usage

log = logging.getLogger(__name__)

REALTIME_KEY = "shadowgate_realtime"
OPENAI_REALTIME = Route("openai-realtime", "openai-responses", "realtime")
GEMINI_LIVE = Route("gemini-live", "gemini", "realtime")
OTHER_WEBSOCKET = Route("websocket", "openai-chat", "realtime")
NOT_WEBSOCKET_RULE = "shadowgate:upgrade-not-websocket"


def websocket_route(path: str, catalogued: bool) -> Route | None:
    """Which realtime protocol an upgrade speaks; any WebSocket to a catalogued AI host counts."""
    lowered = urlsplit(path).path.lower()
    if "bidigeneratecontent" in lowered:
        return GEMINI_LIVE
    if lowered.rstrip("/").endswith("/realtime"):
        return OPENAI_REALTIME
    return OTHER_WEBSOCKET if catalogued else None


def _is_upgrade(request: http.Request) -> bool:
    # Any Upgrade, not only a well-formed WebSocket one: mitmproxy relays a 101 that is not a
    # WebSocket it recognises as raw TCP, which must not happen on an AI host (see response()).
    return "upgrade" in request.headers


@dataclass(slots=True)
class Session:
    rec: FlowRecord
    usage: Counter = field(default_factory=Counter)
    usage_seen: bool = False
    response_model: str | None = None
    response_id: str | None = None
    finish: list[str] = field(default_factory=list)
    client_bytes: int = 0
    server_bytes: int = 0
    dlp_counts: Counter = field(default_factory=Counter)
    dlp_actions: set[str] = field(default_factory=set)
    refused: str | None = None  # why every further client message is dropped
    recorded: bool = False
    injection_names: set[str] = field(default_factory=set)
    injection_action: str | None = None
    tails: dict[str, str] = field(default_factory=dict)  # the end of the text sent so far, per kind
    answers: ServerFrames | None = None
    cut: bool = False  # the answer inspection ended the session: the model's messages are dropped
    queued: int = 0  # messages injected to the client that mitmproxy has not sent yet


class Realtime:
    name = "shadowgate_realtime"

    def __init__(self, settings: ShadowgateSettings, decide: Decide, record: Record) -> None:
        self.settings = settings
        self.decide = decide
        self.record = record

    # --- the upgrade ------------------------------------------------------------------------------

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or not _is_upgrade(flow.request):
            return
        settings = self.settings
        if settings.catalog is None:
            return
        request = flow.request
        host = flow.metadata.get(DECISION_HOST_KEY) or normalise_host(flow.client_conn.sni or request.host)
        provider = settings.catalog.match_host(host)
        route = websocket_route(request.path, provider is not None)
        if route is None:
            return
        params = parse_qs(request.path.partition("?")[2])
        models = params.get("model") or params.get("deployment")
        rec = new_flow_record(settings, flow, host, provider, route)
        rec.facts = RequestFacts(operation="realtime", model=models[0] if models else None, streaming=True)
        session = Session(rec)
        flow.metadata[REALTIME_KEY] = session
        responses = settings.policy.responses
        if responses is not None:
            inspection = Inspection(responses, rec, settings.policy.observe)
            session.answers = ServerFrames(inspection.inspect, inspection.rewrite, responses.hold_chars)
        rec.decision = self.decide.decide(rec)
        refusal = _refusal(rec.decision)
        if refusal is not None:
            status, text = refusal
            flow.response = api_error(route.parser, status, text, rec.decision.retry_after if status == 429 else None)
            session.refused = text

    def response(self, flow: http.HTTPFlow) -> None:
        session = flow.metadata.get(REALTIME_KEY)
        if session is None or flow.response is None:
            return
        if flow.response.status_code != 101:
            self._record(session, flow.response.status_code, None)  # refused here, or by the provider
        elif flow.websocket is None:
            # A switch to a protocol that is not a WebSocket mitmproxy can read (another Upgrade
            # token, an odd Sec-WebSocket-Version): mitmproxy would relay it as raw TCP, unseen.
            log.warning(
                "shadowgate: refused a 101 to %s that is not a WebSocket; it would be an unexamined tunnel",
                session.rec.host,
            )
            if flow.killable:
                flow.kill()
            session.rec.decision = Decision(BLOCK, NOT_WEBSOCKET_RULE, "an upgrade to a protocol the proxy cannot read")
            self._record(session, 101, "not a WebSocket: refused")

    def error(self, flow: http.HTTPFlow) -> None:
        session = flow.metadata.get(REALTIME_KEY)
        if session is not None and flow.websocket is None:
            self._record(
                session, flow.response.status_code if flow.response else None, flow.error.msg if flow.error else "error"
            )

    # --- the session ------------------------------------------------------------------------------

    def websocket_message(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        session = flow.metadata.get(REALTIME_KEY)
        if session is None or flow.websocket is None:
            return None
        message = flow.websocket.messages[-1]
        # Only the newest message stays: the layer holds it until it is sent on.
        del flow.websocket.messages[:-1]
        if message.injected:  # ours, already checked: it goes out now
            if not message.from_client:
                session.queued = max(0, session.queued - 1)
            return None
        try:
            if message.from_client:
                return self._client_message(flow, session, message)
            self._server_message(flow, session, message)
        except Exception:
            log.exception("shadowgate: a realtime message could not be handled")
            if message.from_client and self._fails_closed():
                self._refuse_message(
                    flow, session, message, "shadowgate: the message was not sent: it could not be checked."
                )
        return None

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        session = flow.metadata.get(REALTIME_KEY)
        if session is not None:
            ws = flow.websocket
            error = None
            if ws is not None and ws.close_code not in (None, 1000, 1005):
                error = f"close {ws.close_code}"
            self._record(session, 101, error)

    def _client_message(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage
    ) -> Awaitable[None] | None:
        if session.refused is not None:
            message.drop()
            return None
        session.client_bytes += len(message.content)
        body = message_json(message.content)
        rec = session.rec
        model = client_model(body)
        if model and rec.facts is not None and model != rec.facts.model:
            rec.facts = replace(rec.facts, model=model)
            rec.decision = self.decide.decide(rec)
            refusal = _refusal(rec.decision)
            if refusal is not None:
                session.refused = refusal[1]
                self._refuse_message(flow, session, message, refusal[1])
                return None
        dlp, injection = self.settings.policy.dlp, self.settings.policy.injection
        if (dlp is None and injection is None) or (body is None and not message.is_text):
            return None  # audio and other binary frames carry no text to scan
        if body is None:
            body = {"text": message.text}
            wrapped = True
        else:
            wrapped = False
        if len(message.content) > SCAN_IN_THREAD_CHARS:
            return self._check_off_loop(flow, session, message, body, wrapped)
        self._checked(flow, session, message, wrapped, _check(body, dlp, injection, session.tails))
        return None

    async def _check_off_loop(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, body: Any, wrapped: bool
    ) -> None:
        policy = self.settings.policy
        try:
            checked = await asyncio.to_thread(_check, body, policy.dlp, policy.injection, dict(session.tails))
            self._checked(flow, session, message, wrapped, checked)
        except Exception:
            log.exception("shadowgate: realtime DLP scan failed")
            if self._fails_closed():
                self._refuse_message(
                    flow, session, message, "shadowgate: the message was not sent: it could not be checked."
                )

    def _checked(
        self,
        flow: http.HTTPFlow,
        session: Session,
        message: websocket.WebSocketMessage,
        wrapped: bool,
        checked: Checked,
    ) -> None:
        policy = self.settings.policy
        if checked.scanned is not None and policy.dlp is not None:
            if self._apply(flow, session, message, wrapped, policy.dlp, *checked.scanned):
                return
        injection = policy.injection
        if injection is None:
            return
        if checked.screened is None:
            session.injection_action = "error"
            if injection.on_error != ALLOW:
                self._refuse_message(
                    flow,
                    session,
                    message,
                    "shadowgate: the message was not sent: the injection screen ran out of time.",
                )
                return
        else:
            column, action = verdict(checked.screened, injection, policy.observe)
            if column:
                session.injection_names.update(column.split(","))
                if _INJECTION_RANK.get(action, 0) > _INJECTION_RANK.get(session.injection_action, 0):
                    session.injection_action = action
            if action == INJECTION_BLOCK:
                self._refuse_message(
                    flow,
                    session,
                    message,
                    f"shadowgate: the message looks like a prompt injection ({column}); "
                    f"company policy does not allow sending it to {session.rec.host}.",
                )
                return
        for kind, text in checked.texts:
            session.tails[kind] = (session.tails.get(kind, "") + "\n" + text)[-SEAM:]

    def _apply(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage,
        wrapped: bool, dlp: DlpPolicy, cleaned: Any, counts: Counter, actions: set[str],
    ) -> bool:  # fmt: skip
        """Carry out the DLP verdict; True when the message was refused."""
        if not counts:
            return False
        session.dlp_counts.update(counts)
        session.dlp_actions.update(actions)
        rec = session.rec
        _, action, blocking = dlp_verdict(counts, actions, dlp, self.settings.policy.observe)
        if blocking:
            found = ", ".join(blocking)
            self._refuse_message(
                flow,
                session,
                message,
                f"shadowgate: the message contains {found}; company policy does not allow sending it to {rec.host}.",
            )
            return True
        if action == "redact":
            message.text = cleaned["text"] if wrapped else json.dumps(cleaned, ensure_ascii=False)
        return False

    def _refuse_message(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, text: str
    ) -> None:
        """Drop a client message and tell the client, in its protocol's error shape."""
        message.drop()
        self._to_client(flow, session, _error_event(session, text))

    def _to_client(self, flow: http.HTTPFlow, session: Session, data: bytes, is_text: bool = True) -> None:
        session.queued += 1
        ctx.master.commands.call("inject.websocket", flow, True, data, is_text)

    def _fails_closed(self) -> bool:
        dlp, injection = self.settings.policy.dlp, self.settings.policy.injection
        return (dlp is not None and dlp.on_error != ALLOW) or (injection is not None and injection.on_error != ALLOW)

    def _server_message(self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage) -> None:
        session.server_bytes += len(message.content)
        if session.cut:
            message.drop()
            return
        body = message_json(message.content)
        if not isinstance(body, dict):
            self._deliver(flow, session, message, None)
            return
        self._account(session, body)
        out = None
        if session.answers is not None:
            out = self._inspect_answer(flow, session, message, body)
            if session.cut:
                return
        self._deliver(flow, session, message, out)

    def _inspect_answer(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, body: dict
    ) -> list[bytes] | None:
        """The messages to send for this one (None: itself, unchanged); cuts the session on a block."""
        answers = session.answers
        assert answers is not None
        try:
            events = answers.feed(body)
        except AnswerBlocked as e:
            self._cut(flow, session, message, refusal(str(e)))
            return None
        except Exception:
            log.exception("shadowgate: realtime answer inspection failed")
            session.rec.response_action = "error"
            responses = self.settings.policy.responses
            if responses is None or responses.on_error == RESPONSES_BLOCK:
                self._cut(flow, session, message, "shadowgate: the answer was withheld: its inspection failed.")
            else:
                session.answers = None  # allowed: the rest goes out uninspected
            return None
        if not answers.changed:
            return None
        return [json.dumps(e, ensure_ascii=False).encode() for e in events]

    def _cut(self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, text: str) -> None:
        session.cut = True
        session.refused = text
        self._refuse_message(flow, session, message, text)

    def _deliver(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, out: list[bytes] | None
    ) -> None:
        """Send `out` in this message's place, after whatever of ours still waits to go out."""
        if session.queued:
            message.drop()
            for data in [message.content] if out is None else out:
                self._to_client(flow, session, data, message.is_text)
            return
        if out is None:
            return
        if not out:
            message.drop()
            return
        message.content = out[0]
        for data in out[1:]:
            self._to_client(flow, session, data, message.is_text)

    def _account(self, session: Session, body: dict) -> None:
        kind = body.get("type")
        if kind in ("session.created", "session.updated"):
            session.response_model = dig(body, "session", "model") or session.response_model
        elif kind == "response.done":
            response = body.get("response") or {}
            session.response_id = response.get("id") or session.response_id
            if isinstance(response.get("status"), str):
                session.finish.append(response["status"])
            self._add_usage(session, openai_usage(response.get("usage")))
        if isinstance(body.get("usageMetadata"), dict):
            self._add_usage(session, gemini_usage(body["usageMetadata"]))

    @staticmethod
    def _add_usage(session: Session, usage: Usage | None) -> None:
        if usage is None:
            return
        session.usage_seen = True
        for name in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens"):
            value = getattr(usage, name)
            if value is not None:
                session.usage[name] += value

    # --- the row ----------------------------------------------------------------------------------

    def _record(self, session: Session, status: int | None, error: str | None) -> None:
        if session.recorded:
            return
        session.recorded = True
        rec = session.rec
        if session.dlp_counts:
            dlp = self.settings.policy.dlp or DlpPolicy()
            rec.dlp_findings, rec.dlp_action, _ = dlp_verdict(
                session.dlp_counts, session.dlp_actions, dlp, self.settings.policy.observe
            )
        usage = (
            Usage(
                **{
                    k: session.usage.get(k)
                    for k in ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")
                }
            )
            if session.usage_seen
            else Usage()
        )
        if session.usage_seen:
            usage.input_tokens = usage.input_tokens or 0
            usage.output_tokens = usage.output_tokens or 0
        out = Outcome(
            status_code=status,
            response=ResponseFacts(
                model=session.response_model,
                response_id=session.response_id,
                finish_reasons=session.finish,
                usage=usage,
            ),
            latency_ms=round((time.time() - rec.started) * 1000, 3),
            response_bytes=session.server_bytes,
            error_type=error[:60] if error else None,
        )
        rec.request_bytes = session.client_bytes
        rec.injection_flags = ",".join(sorted(session.injection_names)) or None
        rec.injection_action = session.injection_action
        self.record.ai_request(rec, out)


def _refusal(decision: Decision) -> tuple[int, str] | None:
    """(status, message) when the policy refuses the session, else None."""
    if not decision.enforced:
        return None
    action = decision.action
    if action == COACH:
        action = BLOCK if decision.rule is not None and decision.rule.coach_api == BLOCK else ALLOW
    if action == BLOCK:
        return 403, refusal_text(decision, "blocked")
    if action == RATE_LIMIT:
        return 429, f"shadowgate: {decision.reason}"
    if action == REDIRECT:
        return 403, refusal_text(decision, "sent to the company gateway") + " Realtime sessions cannot be re-routed."
    return None


_INJECTION_RANK = {None: 0, "flag": 1, "would_block": 2, "error": 3, "block": 4}


@dataclass(slots=True)
class Checked:
    scanned: tuple[Any, Counter, set[str]] | None  # DLP: (cleaned body, counts, actions)
    screened: dict[str, set[str]] | None  # injection: detectors by kind; None when the screen failed
    texts: list[tuple[str, str]]  # what was screened, (kind, text)


def _check(body: Any, dlp: DlpPolicy | None, injection: InjectionPolicy | None, tails: dict[str, str]) -> Checked:
    """DLP and the injection screen of one client message; on any thread. DLP raises past its
    budget (fails closed); a screen past its budget comes back as screened=None."""
    scanned = _scan(body, dlp) if dlp is not None else None
    if injection is None:
        return Checked(scanned, None, [])
    texts = [(k, t) for k, t in client_texts(body) if injection.screens(TOOL_RESULT if k == TOOL_RESULT else PROMPT)]
    try:
        # The end of the earlier messages goes first, so the screen sees the seam to this one.
        screened = screen_texts([*tails.items(), *texts], injection.budget_ms / 1000)
    except BudgetExceeded:
        return Checked(scanned, None, texts)
    return Checked(scanned, screened, texts)


def _error_event(session: Session, text: str) -> bytes:
    route = session.rec.route
    if route is OPENAI_REALTIME or route is OTHER_WEBSOCKET:
        body = json.loads(api_error("openai-responses", 403, text).content or b"{}")
        event = {"type": "error", "event_id": f"shadowgate_{int(time.time() * 1000)}", **body}
    else:
        event = json.loads(api_error("gemini", 403, text).content or b"{}")
    return json.dumps(event).encode()


def _scan(body: Any, dlp: DlpPolicy) -> tuple[Any, Counter, set[str]]:
    """Redact a client message's free text; raises ScanFailed past dlp.budget_ms (fails closed)."""
    return scan_json(body, shared_scanner(), Placeholders(), dlp)
