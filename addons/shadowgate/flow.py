"""What the stages hand each other about one flow, in flow.metadata.

Identify creates the FlowRecord, Decide sets its decision, Act and Redact add what they did,
Meter adds the Outcome, and Record turns both into an ai_requests row. Every stage's hook on an
AI call is wrapped in `timed_hook`, so the row's proxy_overhead_us is all of shadowgate's time.
"""

from __future__ import annotations

import functools
import itertools
import os
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from mitmproxy import http

from shadowgate.config.attribution import KeySighting
from shadowgate.config.attribution import Person
from shadowgate.config.catalog import Provider
from shadowgate.config.policy import DEFAULT_DECISION
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Route

METADATA_KEY = "shadowgate"  # flow.metadata[...] -> FlowRecord
OUTCOME_KEY = "shadowgate_outcome"  # flow.metadata[...] -> Outcome, once Meter has measured the answer
# flow.metadata[...] -> True: a stage reads this answer whole in its `response` hook (an MCP JSON
# answer, checked off the event loop), so Meter must not stream it.
HOLD_ANSWER_KEY = "shadowgate_hold_answer"

# 32 hex digits like a UUID4's, unique across processes by the random prefix; a counter instead
# of uuid4() spares a getrandom() system call per request.
_REQUEST_ID_PREFIX = os.urandom(8).hex()
_request_counter = itertools.count()


def new_request_id() -> str:
    return f"{_REQUEST_ID_PREFIX}{next(_request_counter):016x}"


@dataclass(slots=True)
class FlowRecord:
    """Everything shadowgate learns about one flow, carried in flow.metadata between hooks."""

    started: float
    client_ip: str
    person: Person
    host: str
    site: str
    provider: Provider | None
    route: Route | None
    method: str
    path: str
    user_agent: str | None = None
    facts: RequestFacts | None = None
    key: KeySighting | None = None
    account_hint: str | None = None
    decision: Decision = DEFAULT_DECISION
    request_bytes: int = 0
    # The body is not read: it is larger than shadowgate_max_parse_bytes. The policy decided
    # without it, and a decision that needed it refused the request (Decide.decide_unread).
    body_unread: bool = False
    # Decided and acted on at requestheaders, before the body (a declared length above the
    # limit): the body then streams through, and the request hooks leave the decision alone.
    decided_on_headers: bool = False
    inspected: bool = True
    inspect_note: str | None = None
    # Identify: the host is an AI service (catalogued as usage, or listed under the policy's
    # `inspect`), so a body on any of its paths is an AI call's input: DLP scans it whatever its
    # endpoint (stages/redact.py), and its model is read where the body names one.
    ai_host: bool = False
    overhead_ns: int = 0
    redirect_target: str | None = None
    budget_status: str | None = None
    dlp_findings: str | None = None
    dlp_action: str | None = None
    # Content security (stages/screen.py, stages/answer.py): detector and type names, never text.
    injection_flags: str | None = None
    injection_action: str | None = None
    response_findings: str | None = None
    response_action: str | None = None
    # Reversible DLP: turns the model's answer back into the user's values (memory only).
    restore: Callable[[str], str] | None = None
    placeholders: Any = None  # the request's shadowgate.dlp.Placeholders, for event-wise stream restoring
    # Identify's parse of the request body, keyed by the raw bytes it came from: DLP reuses it
    # unless a stage has rewritten the body since (memory only, never recorded).
    parsed_body: tuple[bytes, Any] | None = None
    # A chat web app's request (shadowgate.webapps.WebFacts): activity, account, files; memory only.
    web: Any = None
    request_id: str = field(default_factory=lambda: new_request_id())

    def policy_facts(self) -> Facts:
        """What the policy can match this request on."""
        return Facts(
            host=self.host,
            provider=self.provider.id if self.provider else None,
            category=self.provider.category if self.provider else None,
            wire_format=self.route.wire_format if self.route else None,
            model=self.facts.model if self.facts else None,
            other_models=self.facts.other_models if self.facts else (),
            model_reference=self.facts.model_reference if self.facts else None,
            user=self.person.user,
            group=self.person.group,
            client_ip=self.client_ip,
            risk=self.provider.risk if self.provider else None,
            trains_on_inputs=self.provider.facts.worst_training if self.provider else None,
            **(self.web.policy_facts() if self.web is not None else {}),
        )


@dataclass(slots=True)
class Outcome:
    """What came back: Meter's measurement of the response (or of the error that ended the flow)."""

    status_code: int | None = None
    response: ResponseFacts | None = None
    usage_estimated: bool = False
    latency_ms: float | None = None
    ttft_ms: float | None = None
    response_bytes: int | None = None
    error_type: str | None = None


def flow_record(flow: http.HTTPFlow) -> FlowRecord | None:
    return flow.metadata.get(METADATA_KEY)


def timed_hook[A](hook: Callable[[A, http.HTTPFlow], Any]) -> Callable[[A, http.HTTPFlow], Any]:
    """Adds a hook's time on the event loop to its AI call's proxy_overhead_us.

    Every stage's hook on an AI call wears this, so the column is all of shadowgate's hook time,
    not a chosen part of it. A hook that returns a coroutine (a huge body handed to a thread) is
    timed up to that point, and the coroutine times its own work back on the loop. The hooks
    that end the row (Meter.response, Meter.error) count themselves. Not in it: telemetry's
    response hook, after the row (a few microseconds), and per-chunk stream taps.
    Elapsed time, not CPU time: a wait for the GIL held by a writer or DLP thread counts too.
    """

    @functools.wraps(hook)
    def timed(self: A, flow: http.HTTPFlow) -> Any:
        started = time.perf_counter_ns()
        try:
            return hook(self, flow)
        finally:
            rec = flow.metadata.get(METADATA_KEY)
            if rec is not None:
                rec.overhead_ns += time.perf_counter_ns() - started

    return timed


def client_ip_of(flow: http.HTTPFlow) -> str:
    """The client's address as people write it (an IPv4-mapped IPv6 address without its prefix)."""
    peer = flow.client_conn.peername
    return str(peer[0]).removeprefix("::ffff:") if peer else ""


def proxy_user_of(flow: http.HTTPFlow) -> str | None:
    """The proxy-auth user mitmproxy's proxyauth addon put on the flow, if any."""
    return (flow.metadata.get("proxyauth") or (None,))[0]


class RecentIds:
    """Ids remembered (response ids already counted, files uploaded unread), the oldest
    forgotten first beyond `limit` (event loop only)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._ids: OrderedDict[str, None] = OrderedDict()

    def __contains__(self, key: object) -> bool:
        return key in self._ids

    def add(self, response_id: str) -> bool:
        """Remember an id; False when it was counted already."""
        if response_id in self._ids:
            self._ids.move_to_end(response_id)
            return False
        self._ids[response_id] = None
        if len(self._ids) > self.limit:
            self._ids.popitem(last=False)
        return True
