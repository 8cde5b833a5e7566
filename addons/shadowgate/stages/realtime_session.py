"""A WebSocket AI session's state and the ai_requests row it becomes (stages/realtime.py).

The session row: the model from the URL or the session messages, usage summed from the server's
usage events (OpenAI `response.done`, Gemini `usageMetadata`, each taken as that turn's count),
its duration as latency_ms, the bytes each way, what DLP and the injection screen found over all
its client messages, and, when some client message could not be read, a note and an `error`
DLP / injection action (a scan that could not run).
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass
from dataclasses import field

from mitmproxy import websocket

from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import Policy
from shadowgate.screening.frames import ServerFrames
from shadowgate.stages.realtime_checks import UNREADABLE_NOTE
from shadowgate.stages.redact import dlp_verdict
from shadowgate.storage.schema import FlowRecord
from shadowgate.storage.schema import Outcome
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Usage
from shadowgate.wireformats.common import DEFAULT_OUTPUT_TOKENS
from shadowgate.wireformats.common import dig
from shadowgate.wireformats.realtime import gemini_usage
from shadowgate.wireformats.realtime import openai_usage
from shadowgate.wireformats.wsframes import Frame

INJECTION_RANK = {None: 0, "flag": 1, "would_block": 2, "error": 3, "block": 4}
_USAGE = ("input_tokens", "output_tokens", "cached_input_tokens", "reasoning_tokens")


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
    protocol: str | None = None  # the SignalR encoding the client's handshake chose
    current: tuple[websocket.WebSocketMessage, Frame | None] | None = None  # the last client message, read
    unreadable: int = 0  # client messages DLP and the screen could not read
    greeted: bool = False  # the server's SignalR handshake answer went by
    answers_pending: int = 0  # answers the client asked for that have not ended yet
    turn_detection: bool = True  # the server detects turns in the audio (off: push-to-talk)
    unasked_answers: int = 0  # answers that ended with none asked for (server VAD, Live realtimeInput)


def account(session: Session, body: dict) -> None:
    """What a server message says of the session: the model, a response's id, status and usage."""
    kind = body.get("type")
    if kind in ("session.created", "session.updated"):
        session.response_model = dig(body, "session", "model") or session.response_model
    elif kind == "response.done":
        _answer_ended(session)
        response = body.get("response") or {}
        session.response_id = response.get("id") or session.response_id
        if isinstance(response.get("status"), str):
            session.finish.append(response["status"])
        _add_usage(session, openai_usage(response.get("usage")))
    if isinstance(body.get("usageMetadata"), dict):
        _add_usage(session, gemini_usage(body["usageMetadata"]))
    if dig(body, "serverContent", "turnComplete") is True:
        _answer_ended(session)


def _answer_ended(session: Session) -> None:
    if session.answers_pending:
        session.answers_pending -= 1
    else:  # the server answered a turn it detected itself: a request all the same (red-team F53)
        session.unasked_answers += 1


def session_tokens(session: Session) -> int:
    """The session's tokens so far, as its row will count them (input plus output)."""
    return session.usage["input_tokens"] + session.usage["output_tokens"]


def session_reservation(session: Session) -> int:
    """What the session holds against its subject's daily budgets while it runs: its tokens so
    far, and an answer's worth for each one asked for and not ended, so a burst of
    `response.create` (or of sessions) sees the answers in flight (red-team F50)."""
    return session_tokens(session) + session.answers_pending * DEFAULT_OUTPUT_TOKENS


def _add_usage(session: Session, usage: Usage | None) -> None:
    if usage is None:
        return
    session.usage_seen = True
    for name in _USAGE:
        value = getattr(usage, name)
        if value is not None:
            session.usage[name] += value


def session_outcome(session: Session, policy: Policy, status: int | None, error: str | None) -> Outcome:
    """The session's outcome, with its record's DLP, injection and byte columns filled in."""
    rec = session.rec
    if session.dlp_counts:
        rec.dlp_findings, rec.dlp_action, _ = dlp_verdict(
            session.dlp_counts, session.dlp_actions, policy.dlp or DlpPolicy(), policy.observe
        )
    usage = Usage(**{k: session.usage.get(k) for k in _USAGE}) if session.usage_seen else Usage()
    if session.usage_seen:
        usage.input_tokens = usage.input_tokens or 0
        usage.output_tokens = usage.output_tokens or 0
    rec.request_bytes = session.client_bytes
    if session.unreadable:
        rec.inspect_note = UNREADABLE_NOTE
        if policy.dlp is not None and rec.dlp_action != BLOCK:
            rec.dlp_action = "error"  # a scan that could not run, as DLP records one
        if policy.injection is not None and INJECTION_RANK.get(session.injection_action, 0) < INJECTION_RANK["error"]:
            session.injection_action = "error"
    rec.injection_flags = ",".join(sorted(session.injection_names)) or None
    rec.injection_action = session.injection_action
    return Outcome(
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
