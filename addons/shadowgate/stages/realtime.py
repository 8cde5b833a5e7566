"""WebSocket AI sessions: OpenAI Realtime, Gemini Live, and any WebSocket to a catalogued AI host.

The policy is applied at the upgrade (a refused upgrade never reaches the provider) and again
when a client message names another model (OpenAI `session.update`, Gemini `setup`). Every client
message is read whatever its encoding (wireformats/wsframes.py: one JSON event, SignalR JSON
records or SignalR MessagePack hub messages, several per message, a MessagePack value, plain
text), and DLP scans its documents the way Redact scans a request body (stages/realtime_checks.py):
a finding the policy blocks drops the message and tells the client in the session's own shape
(the provider's error event; a SignalR Completion with the error), a redaction rewrites it in the
encoding it came in. Audio inside JSON events passes unscanned.

A message that cannot be read (a binary message in no known encoding, a malformed SignalR one,
one over shadowgate_max_parse_bytes) is a scan that cannot run: it is refused when DLP or the
injection screen fails closed (their `on_error: block`, the default), and the session's row
records it (inspect_note, dlp_action / injection_action `error`). The one exception is media: a
speech API's (catalog category image-voice) raw audio in binary messages.

The `injection:` policy screens the same messages' text as Screen screens a request (who wrote
what: screening/frames.py), with the end of the session's earlier text joined on, so an
instruction split across messages is seen; a block drops the message. The `responses:` policy
inspects the model's text deltas as Answer inspects a stream, with the bounded hold-back across
messages (a server message of no known shape, such as a SignalR hub message, is inspected whole):
a redaction rewrites the messages, a block cuts the session with an error event in the provider's
shape (nothing of the model's goes out after it). Held text is released as an extra message:
mitmproxy sends a message the hook injects after the one being handled and after any already
read, so from then on every server message is sent by injection too, until the injected ones have
gone, and the order holds.

Each session becomes one ai_requests row when it ends (stages/realtime_session.py). mitmproxy
keeps every message of a WebSocket flow in memory; after a message is handled only the latest is
kept, so an hour of audio does not grow the proxy.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl
from urllib.parse import urlsplit

from mitmproxy import ctx
from mitmproxy import http
from mitmproxy import websocket

from shadowgate.config.catalog import normalise_host
from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import COACH
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import RATE_LIMIT
from shadowgate.config.policy import REDIRECT
from shadowgate.config.policy import Decision
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import Policy
from shadowgate.config.policy import strictness
from shadowgate.config.policy_injection import BLOCK as INJECTION_BLOCK
from shadowgate.config.policy_responses import BLOCK as RESPONSES_BLOCK
from shadowgate.flow import FlowRecord
from shadowgate.mcp.hosted import hosted_verdict
from shadowgate.screening.frames import ServerFrames
from shadowgate.screening.frames import TooDeep
from shadowgate.screening.prompts import SEAM
from shadowgate.stages.act import api_error
from shadowgate.stages.act import refusal_text
from shadowgate.stages.answer import AnswerBlocked
from shadowgate.stages.answer import Inspection
from shadowgate.stages.answer import refusal
from shadowgate.stages.decide import Decide
from shadowgate.stages.hostagree import DECISION_HOST_KEY
from shadowgate.stages.identify import new_flow_record
from shadowgate.stages.realtime_checks import MEDIA_CATEGORY
from shadowgate.stages.realtime_checks import Checked
from shadowgate.stages.realtime_checks import check
from shadowgate.stages.realtime_checks import error_message
from shadowgate.stages.realtime_checks import model_needed
from shadowgate.stages.realtime_session import INJECTION_RANK
from shadowgate.stages.realtime_session import Session
from shadowgate.stages.realtime_session import account
from shadowgate.stages.realtime_session import session_outcome
from shadowgate.stages.realtime_session import session_reservation
from shadowgate.stages.record import Record
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.stages.redact import dlp_verdict
from shadowgate.stages.screen import verdict
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.common import dig
from shadowgate.wireformats.common import tool_models
from shadowgate.wireformats.realtime import client_model
from shadowgate.wireformats.realtime import message_json
from shadowgate.wireformats.wsframes import Frame
from shadowgate.wireformats.wsframes import Opaque
from shadowgate.wireformats.wsframes import UnparsedJson
from shadowgate.wireformats.wsframes import Unreadable
from shadowgate.wireformats.wsframes import read_message

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


# The query keys a realtime URL names its model by: OpenAI's `model`, Azure's `deployment`.
_MODEL_KEYS = frozenset({"model", "deployment"})


def url_models(path: str) -> list[str]:
    """Every model a realtime URL may name, each distinct value once, in order.

    Servers read a query differently: Python's parse_qs keeps the first of a repeated key,
    Starlette the last; some match keys in any case, take PHP's `model[]=` or `;` as a separator.
    A URL that names one model in one of these ways and another in another is judged by every
    one of them (the strictest decision), not by the one this parser would have picked."""
    query = path.partition("?")[2].replace(";", "&")
    models: list[str] = []
    for key, value in parse_qsl(query):
        name = key.strip().casefold()
        name = name[: name.find("[")] if "[" in name else name  # model[] and model[0] alike
        if name in _MODEL_KEYS and value not in models:
            models.append(value)
    return models


def strictest_model(policy: Policy, rec: FlowRecord, models: list[str]) -> str | None:
    """The one of these models the policy is strictest with (the first among equals): a server
    may read any of them, so the session is judged and recorded by that one."""
    if len(models) <= 1:
        return models[0] if models else None
    facts = rec.policy_facts()
    return max(models, key=lambda model: strictness(policy.decide(replace(facts, model=model))))


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
        rec = new_flow_record(settings, flow, host, provider, route)
        model = self._strictest_model(rec, url_models(request.path))
        rec.facts = RequestFacts(operation="realtime", model=model, streaming=True)
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

    def _strictest_model(self, rec: FlowRecord, models: list[str]) -> str | None:
        return strictest_model(self.settings.policy, rec, models)

    def response(self, flow: http.HTTPFlow) -> None:
        session = flow.metadata.get(REALTIME_KEY)
        if session is None or flow.response is None:
            return
        if flow.response.status_code != 101:
            self._record(session, flow.response.status_code, None)  # refused here, or by the provider
        elif flow.websocket is not None:
            self._hold_usage(session)  # the upgrade's estimate gives way to what the session uses
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
        dlp, injection = self.settings.policy.dlp, self.settings.policy.injection
        screened = dlp is not None or injection is not None
        frame, why = self._read(session, message)
        rec = session.rec
        if self._over_budget(flow, session, message, frame):
            return None
        for doc in frame.docs if frame is not None else ():
            # A session.update that switches the model, or adds one a tool or the transcription
            # runs (red-team F44), is judged again.
            model, others = client_model(doc), tool_models(dig(doc, "session"))
            if rec.facts is None or (model in (None, rec.facts.model) and set(others) <= set(rec.facts.other_models)):
                continue
            rec.facts = replace(
                rec.facts,
                model=model or rec.facts.model,
                other_models=tuple(dict.fromkeys(rec.facts.other_models + others)),
            )
            rec.decision = self.decide.decide(rec)
            self._hold_usage(session)  # decide() reserved a new call's estimate: this is no new call
            refusal = _refusal(rec.decision)
            if refusal is not None:
                session.refused = refusal[1]
                self._refuse_message(flow, session, message, refusal[1])
                return None
        if frame is not None and self._refuses_hosted_mcp(flow, session, message, frame):
            return None
        if not screened:
            if isinstance(why, UnparsedJson) and (needed := _unparsed_needs(self.settings.policy)):
                # JSON the proxy cannot parse may name a model it would refuse (red-team F1), or
                # a hosted MCP server (F29).
                session.unreadable += 1
                self._refuse_message(flow, session, message, f"shadowgate: the message was not sent: {why}; {needed}.")
            return None
        if frame is None:
            self._unreadable(flow, session, message, why)
            return None
        if len(message.content) > SCAN_IN_THREAD_CHARS:
            return self._check_off_loop(flow, session, message, frame)
        self._checked(flow, session, message, frame, check(frame, dlp, injection, session.tails))
        return None

    def _count_answers(self, session: Session, used: int, unasked: int) -> None:
        """After a server message: hold the session's new usage, and count each answer the server
        gave to a turn it detected itself (voice activity, Live `realtimeInput`) as a request per
        minute, as a `response.create` is: the next client message meets the limit (F53)."""
        if session_reservation(session) != used:
            self._hold_usage(session)
        budgets = self.settings.policy.budgets
        if budgets and session.unasked_answers > unasked:
            facts = session.rec.policy_facts()
            for _ in range(session.unasked_answers - unasked):
                self.decide.budgets.note_request(budgets, facts)

    def _hold_usage(self, session: Session) -> None:
        """Count the session's usage so far against its subject's daily budgets while it runs: it
        holds the session's reservation (enforce/budgets.py), which the row replaces at the end."""
        budgets = self.settings.policy.budgets
        if budgets:
            rec = session.rec
            self.decide.budgets.hold(rec.request_id, budgets, rec.policy_facts(), session_reservation(session))

    def _over_budget(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, frame: Frame | None
    ) -> bool:
        """A client message once the session's subject has used a daily budget up (red-team F23):
        refused with an error event, and every later one dropped, so a session stops within one
        answer of the budget. A message that asks for an answer (`response.create`, Gemini
        `clientContent`) is a request per minute too, and it and audio that may start a turn the
        server detects meet a full window: refused, that message only, as the window frees within
        the minute (red-team F53, F73). True when the message was refused."""
        policy = self.settings.policy
        rec = session.rec
        if not policy.budgets:
            return False
        asks = sum(1 for doc in frame.docs if _asks_for_answer(doc)) if frame is not None else 0
        tracker, facts = self.decide.budgets, rec.policy_facts()
        if asks:
            self._hold_usage(session)  # keeps the reservation from lapsing in a long session
        daily = tracker.check(policy.budgets, facts, per_minute=False)
        verdict = daily
        for doc in frame.docs if frame is not None else ():
            if (detects := _turn_detection(doc)) is not None:
                session.turn_detection = detects
        # Audio starts a turn only where the server detects turns in it; push-to-talk audio is
        # sent ahead of its own request (red-team F94).
        turns = asks or (
            frame is not None and session.turn_detection and any(_may_start_turn(doc) for doc in frame.docs)
        )
        if daily.exceeded is None and turns:
            verdict = tracker.check(policy.budgets, facts, per_minute=True)
        if verdict.exceeded is None:
            if asks:
                tracker.note_request(policy.budgets, facts)
                session.answers_pending += asks
                self._hold_usage(session)  # the answers asked for count until they end
            return False
        if policy.observe:
            if rec.decision.action in (ALLOW, COACH):  # nothing stricter recorded yet
                rec.decision = Decision(OBSERVE_PREFIX + RATE_LIMIT, verdict.exceeded.id, verdict.reason)
            return False
        exceeded = verdict.exceeded.id
        rec.decision = Decision(RATE_LIMIT, exceeded, verdict.reason, None, verdict.retry_after, verdict.reset_at)
        text = f"shadowgate: {verdict.reason}"
        log.info("shadowgate: a realtime session to %s is over budget: %s", rec.host, verdict.reason)
        if daily.exceeded is not None:
            session.refused = text  # today's budget is spent: nothing more this session
        self._refuse_message(flow, session, message, text)
        return True

    def _refuses_hosted_mcp(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, frame: Frame
    ) -> bool:
        """A `session.update` or `response.create` giving the model an MCP server the policy does
        not allow (red-team F29): the provider would call it with the session's data. The message
        is dropped with an error event; the session goes on. True when it was refused."""
        policy = self.settings.policy
        rec = session.rec
        refusal = hosted_verdict(rec, policy, frame.docs) if policy.mcp is not None else None
        if refusal is None:
            return False
        log.info("shadowgate: a realtime message to %s names a refused MCP server: %s", rec.host, refusal.message)
        if rec.decision.action in (ALLOW, COACH, OBSERVE_PREFIX + ALLOW):
            observed = OBSERVE_PREFIX + BLOCK if policy.observe else BLOCK
            rec.decision = Decision(observed, refusal.rule_id, refusal.message)
        if policy.observe:
            return False
        self._refuse_message(flow, session, message, refusal.message)
        return True

    def _read(self, session: Session, message: websocket.WebSocketMessage) -> tuple[Frame | None, Unreadable | None]:
        """The message's documents (and what its SignalR handshake chose), or why there are none."""
        limit = self.settings.max_parse_bytes
        try:
            if limit and len(message.content) > limit:
                raise Unreadable(f"a message over the {limit}-byte limit the proxy reads")
            frame = read_message(message.content, message.is_text, session.protocol)
        except Unreadable as e:
            session.current = (message, None)
            return None, e
        session.protocol = frame.protocol or session.protocol
        session.current = (message, frame)
        return frame, None

    def _unreadable(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, why: Unreadable | None
    ) -> None:
        """A message DLP and the screen cannot read: refused unless the policy lets scan errors pass."""
        provider = session.rec.provider
        if isinstance(why, Opaque) and provider is not None and provider.category == MEDIA_CATEGORY:
            return  # a speech API's raw audio: media, as the audio fields of a JSON event are
        session.unreadable += 1
        log.info("shadowgate: a WebSocket message to %s cannot be read: %s", session.rec.host, why)
        if self._fails_closed():
            self._refuse_message(
                flow,
                session,
                message,
                f"shadowgate: the message was not sent: {why}; the proxy cannot inspect it, and company "
                "policy does not send what it cannot inspect.",
            )

    async def _check_off_loop(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, frame: Frame
    ) -> None:
        policy = self.settings.policy
        try:
            checked = await asyncio.to_thread(check, frame, policy.dlp, policy.injection, dict(session.tails))
            self._checked(flow, session, message, frame, checked)
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
        frame: Frame,
        checked: Checked,
    ) -> None:
        policy = self.settings.policy
        if checked.scanned is not None and policy.dlp is not None:
            if self._apply(flow, session, message, frame, policy.dlp, checked):
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
                    f"shadowgate: the message was not sent: {checked.why}; the proxy cannot screen it.",
                )
                return
        else:
            column, action = verdict(checked.screened, injection, policy.observe)
            if column:
                session.injection_names.update(column.split(","))
                if INJECTION_RANK.get(action, 0) > INJECTION_RANK.get(session.injection_action, 0):
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
        frame: Frame, dlp: DlpPolicy, checked: Checked,
    ) -> bool:  # fmt: skip
        """Carry out the DLP verdict; True when the message was refused."""
        assert checked.scanned is not None
        cleaned, counts, actions = checked.scanned
        if not counts and not checked.hidden:
            return False
        counts = counts + checked.hidden
        actions = actions | checked.hidden_actions
        session.dlp_counts.update(counts)
        session.dlp_actions.update(actions)
        observe = self.settings.policy.observe
        _, action, blocking = dlp_verdict(counts, actions, dlp, observe)
        if checked.unredactable and not observe:
            # Found only where the message hides it (an encoding inside a string): not rewritable.
            blocking = sorted({*blocking, *checked.unredactable})
            session.dlp_actions.add(BLOCK)
        if blocking:
            found = ", ".join(blocking)
            self._refuse_message(
                flow,
                session,
                message,
                f"shadowgate: the message contains {found}; company policy does not allow sending it to "
                f"{session.rec.host}.",
            )
            return True
        if action == "redact":
            message.content = frame.encode(cleaned)
        return False

    def _refuse_message(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, text: str
    ) -> None:
        """Drop a client message and tell the client, in its protocol's error shape."""
        message.drop()
        current = session.current
        frame = current[1] if current is not None and current[0] is message else None
        data, is_text = error_message(session.rec.route, session.protocol, frame, text)
        self._to_client(flow, session, data, is_text)

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
        greeting = session.protocol is not None and not session.greeted
        session.greeted = session.greeted or greeting
        used, unasked = session_reservation(session), session.unasked_answers
        if session.answers is None and session.protocol is None:
            body = message_json(message.content)
            if isinstance(body, dict):
                account(session, body)
            self._count_answers(session, used, unasked)
            self._deliver(flow, session, message, None)
            return
        try:
            frame = read_message(message.content, message.is_text, session.protocol, greeting=greeting)
        except Unreadable as e:
            self._unreadable_answer(flow, session, message, e)
            return
        for doc in frame.docs:
            if isinstance(doc, dict):
                account(session, doc)
        self._count_answers(session, used, unasked)
        out = None
        if session.answers is not None:
            out = self._inspect_answer(flow, session, message, frame)
            if session.cut:
                return
        self._deliver(flow, session, message, out)

    def _unreadable_answer(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, why: Unreadable
    ) -> None:
        """A server message the answer inspection cannot read: cut unless its errors may pass."""
        provider = session.rec.provider
        responses = self.settings.policy.responses
        media = isinstance(why, Opaque) and provider is not None and provider.category == MEDIA_CATEGORY
        if session.answers is None or media:
            self._deliver(flow, session, message, None)
            return
        log.info("shadowgate: a WebSocket answer from %s cannot be read: %s", session.rec.host, why)
        session.rec.response_action = "error"
        if responses is None or responses.on_error == RESPONSES_BLOCK:
            self._cut(
                flow, session, message, f"shadowgate: the answer was withheld: {why}, which the proxy cannot inspect."
            )
        else:
            self._deliver(flow, session, message, None)

    def _inspect_answer(
        self, flow: http.HTTPFlow, session: Session, message: websocket.WebSocketMessage, frame: Frame
    ) -> list[bytes] | None:
        """The messages to send for this one (None: itself, unchanged); cuts the session on a block."""
        answers = session.answers
        assert answers is not None
        events: list[Any] = []
        changed = False
        try:
            for doc in frame.docs:
                events += answers.feed(doc)
                changed = changed or answers.changed
        except AnswerBlocked as e:
            self._cut(flow, session, message, refusal(str(e)))
            return None
        except Exception as e:
            if isinstance(e, TooDeep):  # an answer built to be unread: said as such, no traceback
                log.info("shadowgate: a WebSocket answer from %s is not inspected: %s", session.rec.host, e)
            else:
                log.exception("shadowgate: realtime answer inspection failed")
            session.rec.response_action = "error"
            responses = self.settings.policy.responses
            why = str(e) if isinstance(e, TooDeep) else "its inspection failed"
            if responses is None or responses.on_error == RESPONSES_BLOCK:
                self._cut(flow, session, message, f"shadowgate: the answer was withheld: {why}.")
            else:
                session.answers = None  # allowed: the rest goes out uninspected
            return None
        if not changed:
            return None
        if frame.one_document_per_message:
            return [frame.encode([e], reuse=False) for e in events]
        return [frame.encode(events, reuse=False)]

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

    # --- the row ----------------------------------------------------------------------------------

    def _record(self, session: Session, status: int | None, error: str | None) -> None:
        if session.recorded:
            return
        session.recorded = True
        self.record.ai_request(session.rec, session_outcome(session, self.settings.policy, status, error))


def _turn_detection(doc: Any) -> bool | None:
    """Whether a session.update (OpenAI) or setup (Gemini Live) switches the server's turn
    detection on or off; None when it does not say."""
    if not isinstance(doc, dict):
        return None
    if doc.get("type") == "session.update":
        # The beta reads `session.turn_detection`, GA `session.audio.input.turn_detection`: off
        # only when every place the update names says off, as a server may read either (red-team
        # F107: `turn_detection: null` beside a GA `server_vad` left detection on).
        session = doc.get("session")
        said = [
            holder["turn_detection"] is not None
            for holder in (session, dig(session, "audio", "input"))
            if isinstance(holder, dict) and "turn_detection" in holder
        ]
        if said:
            return any(said)
    if dig(doc, "setup", "realtimeInputConfig", "automaticActivityDetection", "disabled") is True:
        return False
    return None


def _may_start_turn(doc: Any) -> bool:
    """Audio that the server's voice activity detection may turn into a turn it answers."""
    if not isinstance(doc, dict):
        return False
    return doc.get("type") in ("input_audio_buffer.append", "input_audio_buffer.commit") or "realtimeInput" in doc


def _asks_for_answer(doc: Any) -> bool:
    # Live's `realtimeInput` text is a turn of its own (its audio is one when the server's voice
    # activity detection says so: counted as the answer ends, Realtime._count_answers).
    # A clientContent asks only with `turnComplete: true`: without it the server only adds the
    # turns to the context (red-team F86).
    # A Live `toolResponse` makes the model go on, and `realtimeInput.activityEnd` ends a
    # push-to-talk turn: each is answered (red-team F114).
    return isinstance(doc, dict) and (
        doc.get("type") == "response.create"
        or dig(doc, "clientContent", "turnComplete") is True
        or dig(doc, "realtimeInput", "text") is not None
        or dig(doc, "realtimeInput", "activityEnd") is not None
        or isinstance(doc.get("toolResponse"), dict)
    )


def _unparsed_needs(policy: Policy) -> str | None:
    """Why a client message that is not JSON the proxy can parse must not pass unscreened."""
    if (needed := model_needed(policy)) is not None:
        return needed
    return "the MCP policy applies to the tools a message may give the model" if policy.mcp is not None else None


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
