"""Realtime sessions minted over HTTP: their model and hosted MCP tools are judged there.

A WebRTC or SIP voice session never passes the proxy after it is set up: the media goes over
UDP, and the session's model and tools were fixed by the HTTP request that minted its key or
started its call. So those requests are judged like the session itself (red-team F15, F29):

- `POST /v1/realtime/client_secrets` (GA): `{"session": {"model", "tools", ...}}`;
- `POST /v1/realtime/sessions`, `/v1/realtime/transcription_sessions` (beta): `model`, `tools`;
- `POST /v1/realtime/calls` (unified WebRTC call): `?model=` in the query, or a multipart body
  whose `session` field is the session's JSON (its `sdp` field the offer);
- `POST /v1/realtime/calls/{id}/accept` (SIP): the session's JSON;
- Gemini Live ephemeral tokens, `POST /v1alpha/auth_tokens`: `bidiGenerateContentSetup.model`
  locks the Live session's setup, whatever model its WebSocket `setup` then names.

Every model these name (the query read as servers read it, stages/realtime.py url_models) is
judged, the strictest decision holding, and each hosted MCP tool goes through the `mcp:` policy
(mcp/hosted.py) as for a Responses call. A body that cannot be read (a malformed multipart body)
is refused when a model rule or an MCP policy applies. This addon runs after Identify and before
Decide, so the model it sets is the one Decide judges.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from mitmproxy import http

from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import Decision
from shadowgate.config.requestpath import path_readings
from shadowgate.flow import FlowRecord
from shadowgate.flow import flow_record
from shadowgate.mcp.hosted import refuse_hosted
from shadowgate.stages.act import api_error
from shadowgate.stages.identify import PARSE_INLINE_BYTES
from shadowgate.stages.realtime import strictest_model
from shadowgate.stages.realtime import url_models
from shadowgate.stages.realtime_checks import model_needed
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats import read_json_body
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.common import dig
from shadowgate.wireformats.common import tool_models
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.decoding import readable_content
from shadowgate.wireformats.multipart import is_multipart
from shadowgate.wireformats.multipart import parse_multipart

SETUP_PATH = re.compile(
    r"(?:/[^?#]*)?/(?:realtime/(?:client_secrets|sessions|transcription_sessions|calls(?:/[^/]+/accept)?)"
    r"|v1[a-z0-9]*/auth_tokens)/?",
    re.I,
)
UNREADABLE_RULE = "shadowgate:realtime-setup-unreadable"


def is_setup(request: http.Request) -> bool:
    return request.method.upper() == "POST" and any(SETUP_PATH.fullmatch(p) for p in path_readings(request.path))


def setup_documents(content: bytes, content_type: str) -> list[Any]:
    """The JSON documents a setup request's body holds: the body, or its multipart `session`
    fields. Raises UndecodableBody for a multipart body that cannot be split."""
    if is_multipart(content_type):
        docs = []
        for part in parse_multipart(content, content_type):
            if part.name == "session":
                body, _ = read_json_body(content[part.start : part.end])
                docs.append(body)
        return docs
    body, _ = read_json_body(content, content_type)
    return [body]


def setup_models(path: str, docs: list[Any]) -> list[str]:
    """Every model the query and the documents name, each once, in order."""
    models = url_models(path)
    for doc in docs:
        for model in (dig(doc, "model"), dig(doc, "session", "model"), dig(doc, "bidiGenerateContentSetup", "model")):
            model = model.removeprefix("models/") if isinstance(model, str) else None
            if model and model not in models:
                models.append(model)
        for config in (doc, dig(doc, "session")):
            models += [m for m in tool_models(config) if m not in models]
    return models


class RealtimeSetup:
    name = "shadowgate_realtime_setup"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        rec = flow_record(flow)
        if rec is None or rec.decided_on_headers or flow.response or flow.error or not is_setup(flow.request):
            return None
        content = readable_content(flow.request)
        content_type = flow.request.headers.get("content-type", "")
        if len(content) > PARSE_INLINE_BYTES:
            return self._read_off_loop(flow, rec, content, content_type)
        self._judge(flow, rec, lambda: setup_documents(content, content_type))
        return None

    async def _read_off_loop(self, flow: http.HTTPFlow, rec: FlowRecord, content: bytes, content_type: str) -> None:
        try:
            docs = await asyncio.to_thread(setup_documents, content, content_type)
        except UndecodableBody as e:
            self._unreadable(flow, rec, str(e))
            return
        self._judge(flow, rec, lambda: docs)

    def _judge(self, flow: http.HTTPFlow, rec: FlowRecord, read) -> None:
        try:
            docs = read()
        except UndecodableBody as e:
            self._unreadable(flow, rec, str(e))
            return
        policy = self.settings.policy
        model = strictest_model(policy, rec, setup_models(flow.request.path, docs))
        if model is not None:
            base = rec.facts or RequestFacts(operation="realtime")
            rec.facts = replace(base, operation=base.operation or "realtime", model=model)
        refuse_hosted(flow, policy, [d for d in docs if isinstance(d, dict)])

    def _unreadable(self, flow: http.HTTPFlow, rec: FlowRecord, why: str) -> None:
        policy = self.settings.policy
        needed = model_needed(policy) or ("the MCP policy applies to its tools" if policy.mcp is not None else None)
        if needed is None:
            return
        reason = f"the Realtime session request cannot be read ({why}) and {needed}"
        if policy.observe:
            rec.decision = Decision(OBSERVE_PREFIX + BLOCK, UNREADABLE_RULE, reason)
            return
        rec.decision = Decision(BLOCK, UNREADABLE_RULE, reason)
        flow.response = api_error(None, 403, f"shadowgate: refused: {reason}.")
