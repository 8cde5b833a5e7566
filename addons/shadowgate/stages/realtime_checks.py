"""What a WebSocket session's client message is checked for, and how a refusal is said.

`check(frame, ...)` runs DLP and the injection screen over one client message's documents
(wireformats/wsframes.py: JSON, SignalR JSON or MessagePack records, plain text) on any thread.
Every string is text but for media and structure keys (wireformats.common): a session's message
has no fixed prompt field (a Copilot `context`, a SignalR hub method's arguments), so an
unknown field is scanned rather than trusted. The texts a message hides in an encoding inside a
string (`Frame.hidden`) are scanned and screened too; a finding there that the policy would
redact refuses the message instead, since it is nowhere literally in the message to rewrite.

`error_message()` is the refusal in the session's own shape: the provider's error event, or for
a SignalR connection a Completion with the error for each waiting call (else a Close).
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass
from typing import Any

from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import Policy
from shadowgate.config.policy_injection import InjectionPolicy
from shadowgate.dlp import TYPES
from shadowgate.dlp import Placeholders
from shadowgate.screening.frames import TooDeep
from shadowgate.screening.frames import client_texts
from shadowgate.screening.prompts import PROMPT
from shadowgate.screening.prompts import TOOL_RESULT
from shadowgate.screening.prompts import BudgetExceeded
from shadowgate.screening.prompts import screen_texts
from shadowgate.stages.act import api_error
from shadowgate.stages.redact import body_scan
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from shadowgate.wireformats import signalr
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.common import has_duplicate_keys
from shadowgate.wireformats.wsframes import Frame

UNREADABLE_NOTE = "client WebSocket messages in an encoding the proxy cannot read"
MEDIA_CATEGORY = "image-voice"  # speech APIs stream raw audio in binary messages by design


@dataclass(slots=True)
class Checked:
    scanned: tuple[Any, Counter, set[str]] | None  # DLP: (cleaned documents, counts, actions)
    hidden: Counter  # DLP findings in the hidden texts, by type
    hidden_actions: set[str]  # and the actions they call for
    unredactable: list[str]  # of those, the types the policy would redact: they block instead
    screened: dict[str, set[str]] | None  # injection: detectors by kind; None when the screen failed
    texts: list[tuple[str, str]]  # what was screened, (kind, text)
    why: str = "the injection screen ran out of time"  # why screened is None


def check(frame: Frame, dlp: DlpPolicy | None, injection: InjectionPolicy | None, tails: dict[str, str]) -> Checked:
    """DLP and the injection screen of one client message. DLP raises past its budget (fails
    closed); a screen past its budget comes back as screened=None."""
    scanned = None
    hidden: Counter = Counter()
    hidden_actions: set[str] = set()
    unredactable: list[str] = []
    if dlp is not None:
        # The API path's scan (stages/redact.py): every string the provider reads, each alone and
        # joined, so a value split across two parts of one item, or across the instructions and
        # a tool's description, is found (red-team F51).
        scan, _ = body_scan(dlp)
        docs = list(frame.docs)
        cleaned = scan.json(docs)
        scanned = (list(cleaned) if cleaned is not docs else docs, Counter(scan.counts), set(scan.actions))
        if "redact" in scanned[2]:
            scanned = (_rewritten(scanned[0], docs), *scanned[1:])
        if scan.unredactable:
            unredactable.append("a value that cannot be redacted in place")
        if frame.hidden:
            _, hidden, hidden_actions = scan_json(
                frame.hidden, shared_scanner(), Placeholders(), dlp, every_string=True
            )
            unredactable = sorted(t for t in hidden if dlp.action_for(t, TYPES.get(t, "pii")) == "redact")
    if injection is None:
        return Checked(scanned, hidden, hidden_actions, unredactable, None, [])
    try:
        every = client_texts(frame.docs)
    except TooDeep as e:  # unread is not clean: failed like a screen out of time (on_error)
        return Checked(scanned, hidden, hidden_actions, unredactable, None, [], str(e))
    texts = [(k, t) for k, t in every if injection.screens(TOOL_RESULT if k == TOOL_RESULT else PROMPT)]
    if injection.screens(PROMPT):
        texts += [(PROMPT, t) for t in frame.hidden]
    try:
        # The end of the earlier messages goes first, so the screen sees the seam to this one.
        screened = screen_texts([*tails.items(), *texts], injection.budget_ms / 1000)
    except BudgetExceeded:
        return Checked(scanned, hidden, hidden_actions, unredactable, None, texts)
    return Checked(scanned, hidden, hidden_actions, unredactable, screened, texts)


def model_needed(policy: Policy) -> str | None:
    """Why a client message the proxy cannot parse must not pass on a session that neither DLP nor
    the screen reads: a rule or budget that matches on the model, which a `session.update` in that
    message could switch (red-team F1). None when no model matters."""
    for rule in policy.rules:
        if rule.match.models is not None:
            return f"policy rule '{rule.id}' matches on the model, which the message may change"
    for budget in policy.budgets:
        if budget.match.models is not None:
            return f"budget '{budget.id}' counts by model, which the message may change"
    return None


def _rewritten(cleaned: list[Any], docs: list[Any]) -> list[Any]:
    """The documents to send after a redaction. A value found in a repeated key's shadowed value
    is not in the cleaned copy (it holds each key once), so the copy can be the very document
    that came in, which the frame would send as its original bytes, secret included (red-team
    F2): such a document is written out anew, each key once."""
    return [
        _fresh(new) if new is old and has_duplicate_keys(old) else new for new, old in zip(cleaned, docs, strict=True)
    ]


def _fresh(doc: Any) -> Any:
    return dict(doc) if isinstance(doc, dict) else list(doc) if isinstance(doc, list) else doc


def error_message(route: Route | None, protocol: str | None, frame: Frame | None, text: str) -> tuple[bytes, bool]:
    """(message, is_text) telling the client its message was refused, in the session's shape."""
    if protocol in (signalr.JSON, signalr.MESSAGEPACK):
        return signalr.refusal(protocol, text, signalr.waiting_invocations(frame.docs) if frame is not None else [])
    if route is not None and route.parser == "gemini":
        event = json.loads(api_error("gemini", 403, text).content or b"{}")
    else:
        body = json.loads(api_error("openai-responses", 403, text).content or b"{}")
        event = {"type": "error", "event_id": f"shadowgate_{int(time.time() * 1000)}", **body}
    return json.dumps(event).encode(), True
