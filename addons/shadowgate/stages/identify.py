"""Identify: which AI service a request goes to, what it asks for, and who sends it.

Host first (the catalog), then request shape: a request to an unknown host that matches a wire
format's endpoint and body shape is recorded as an unknown AI endpoint. The stage leaves one
FlowRecord in the flow's metadata; Decide (the next stage) adds the policy's decision to it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable
from dataclasses import replace
from typing import Any

from mitmproxy import http

from shadowgate.config.attribution import account_hint
from shadowgate.config.catalog import Provider
from shadowgate.config.catalog import site_of
from shadowgate.config.requestpath import request_methods
from shadowgate.enforce.hosts import identity_host
from shadowgate.flow import METADATA_KEY
from shadowgate.flow import FlowRecord
from shadowgate.flow import client_ip_of
from shadowgate.flow import flow_record
from shadowgate.flow import proxy_user_of
from shadowgate.flow import timed_hook
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats import CHARSET_NOTE
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import UNPARSED_JSON_NOTE
from shadowgate.wireformats import charset_problem
from shadowgate.wireformats import read_json_body
from shadowgate.wireformats.base import RequestFacts
from shadowgate.wireformats.base import Route
from shadowgate.wireformats.common import header_map
from shadowgate.wireformats.common import router_header_models
from shadowgate.wireformats.decoding import GRPC_BATCH_METHODS
from shadowgate.wireformats.decoding import grpc_first_message
from shadowgate.wireformats.decoding import grpc_may_run_a_model
from shadowgate.wireformats.decoding import grpc_method
from shadowgate.wireformats.decoding import grpc_model_fields
from shadowgate.wireformats.decoding import grpc_models
from shadowgate.wireformats.decoding import grpc_nested_models
from shadowgate.wireformats.decoding import grpc_operation
from shadowgate.wireformats.decoding import is_grpc
from shadowgate.wireformats.decoding import readable_content
from shadowgate.wireformats.unknown import unknown_endpoint_facts

# Bodies above this are parsed off the event loop so one huge prompt cannot stall other flows.
PARSE_INLINE_BYTES = 512 * 1024
_QUIET_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "CONNECT"})
UNREAD_NOTE = "body not read: larger than shadowgate_max_parse_bytes"

# Moved to shadowgate.flow; still importable from here for the stages that import them so.
on_the_clock = timed_hook
__all__ = ["METADATA_KEY", "Identify", "flow_record", "on_the_clock"]


# Set when requestheaders made a record: a stage that later drops it (WebApps, for a chat app's
# telemetry) has decided, and the late-body check must not record the request after all.
IDENTIFIED_KEY = "shadowgate_identified"
# Set when a request that is no AI call (a GET on an AI host) is recorded for what DLP found in
# its URL: Redact scans it, WebApps keeps its record.
URL_FINDING_KEY = "shadowgate_url_finding"
# Set when the route of a catalogued service came from the shape of its request (the service has
# no wire format of its own): a body that does not look like it makes it an unknown endpoint.
SHAPE_ROUTE_KEY = "shadowgate_shape_route"


class Identify:
    name = "shadowgate_identify"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    @timed_hook
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        catalog = self.settings.catalog
        if catalog is None:
            return
        request = flow.request
        host = identity_host(flow)
        # An AI feature on a shared host (an entry with paths) is told apart by its path.
        provider = catalog.match(host, request.path)
        # Every method the request may mean (an override header can turn a GET into a POST),
        # each against every reading of the path (config/requestpath.py).
        methods = request_methods(request.method, request.headers)
        route = next((r for m in methods if (r := catalog.route(provider, m, request.path, host))), None)
        # An AI host: a catalogued service (not a vendor's site), or one the operator listed under
        # `inspect` (an internal model server): every body it is sent is an AI call's input.
        ai_host = provider.is_usage if provider is not None else bool(self.settings.policy.inspect.get(host))
        bodiless = _quiet(methods) and not _declares_body(request)
        shape_route = False
        if route is None and provider is not None and not bodiless and _reads_by_shape(provider):
            # A catalogued service the catalog gives no wire format (an OpenAI-compatible relay):
            # a call is recognised by its shape, as an unknown host's is (red-team F31). (Page
            # loads and assets carry no body: never matched against every endpoint.)
            route = next((r for m in methods if (r := catalog.route(None, m, request.path, host))), None)
            shape_route = route is not None
        url_finding = False
        known = provider is not None or ai_host
        if route is None and (not known or bodiless):
            # Not an AI call (web assets, telemetry GETs, every non-AI host), unless the URL of a
            # request to an AI service carries what DLP looks for: then it is recorded and acted on.
            # (A WebSocket upgrade is Realtime's: it records the session.)
            if not ai_host or "upgrade" in request.headers:
                return
            if not self._url_finding(flow):
                return
            url_finding = True
        rec = new_flow_record(self.settings, flow, host, provider, route)
        rec.ai_host = ai_host
        flow.metadata[METADATA_KEY] = rec
        if shape_route:
            flow.metadata[SHAPE_ROUTE_KEY] = True
        if url_finding:
            flow.metadata[URL_FINDING_KEY] = True
        flow.metadata[IDENTIFIED_KEY] = True  # a later stage may drop the record (WebApps): final
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_parse_bytes:
            # Too big to buffer: decided on its headers now (Decide, Act), then streamed through
            # unread (Act sets request.stream once no stage refused it). The facts are the
            # path's (a Gemini or Bedrock model); a rule that needs the body refuses it.
            rec.request_bytes = int(length)
            rec.body_unread = rec.decided_on_headers = True
            rec.inspect_note = UNREAD_NOTE
            self._understand(flow, rec, None)

    def _url_finding(self, flow: http.HTTPFlow) -> bool:
        """Whether DLP finds something it acts on in a URL's decoded path and query."""
        dlp = self.settings.policy.dlp
        if dlp is None:
            return False
        from shadowgate.stages.redact import scanned_path  # redact imports this module
        from shadowgate.stages.redact import url_findings

        try:
            return bool(url_findings(scanned_path(flow), dlp))
        except Exception:
            return True  # recorded, and Redact's own scan of it fails closed (dlp.on_error)

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # A plain method: mitmproxy awaits what a hook returns only when it is awaitable, so the
        # common small body costs no coroutine, and only a huge one is parsed on a thread.
        rec = flow_record(flow)
        if flow.response or flow.error:
            return None
        if rec is None:
            self._late_body(flow)
            return None
        raw = flow.request.raw_content
        if raw is not None:
            rec.request_bytes = len(raw)
        if rec.decided_on_headers:
            return None  # understood from the path at requestheaders; the body passed unread
        if raw is not None and len(raw) > self.settings.max_parse_bytes:
            # A body without a declared length (chunked, HTTP/2) that grew past the limit: it is
            # buffered but not parsed, and decided as one too big to read (Decide).
            rec.body_unread = True
            rec.inspect_note = UNREAD_NOTE
            self._understand(flow, rec, None)
            return None
        if (rec.route is None and not rec.ai_host) or not raw:
            self._understand(flow, rec, None)
            return None
        content = readable_content(flow.request)  # every content coding undone, as upstream reads it
        if rec.provider is not None and (why := charset_problem(content, flow.request.headers.get("content-type"))):
            # Decided as an unread body (Decide): what the upstream reads is not what we would check.
            rec.body_unread = True
            rec.inspect_note = f"{CHARSET_NOTE}: {why}"
            self._understand(flow, rec, None)
            return None
        if len(content) > PARSE_INLINE_BYTES:
            return self._parse_off_loop(flow, rec, content)
        body, unparsed, batch = read_request(
            rec.route, content, flow.request.headers.get("content-type"), flow.request.path
        )
        rec.parsed_body = (raw, body)
        _note_unparsed(rec, unparsed)
        self._understand(flow, rec, body, batch)
        return None

    def _late_body(self, flow: http.HTTPFlow) -> None:
        """A GET (or HEAD, OPTIONS) to a catalogued host that turned out to carry a body (over
        HTTP/2 no header has to announce it): an unknown endpoint, recorded, never "not AI"."""
        request = flow.request
        catalog = self.settings.catalog
        if not request.raw_content or catalog is None or flow.metadata.get(IDENTIFIED_KEY):
            return
        host = identity_host(flow)
        provider = catalog.match(host, request.path)
        inspected = provider is None and bool(self.settings.policy.inspect.get(host))
        if provider is not None or inspected:
            flow.metadata[METADATA_KEY] = rec = new_flow_record(self.settings, flow, host, provider, None)
            rec.request_bytes = len(request.raw_content)
            rec.ai_host = inspected or provider is not None and provider.is_usage

    async def _parse_off_loop(self, flow: http.HTTPFlow, rec: FlowRecord, content: bytes) -> None:
        content_type = flow.request.headers.get("content-type")
        body, unparsed, batch = await asyncio.to_thread(
            read_request, rec.route, content, content_type, flow.request.path
        )
        _note_unparsed(rec, unparsed)
        started = time.perf_counter_ns()
        self._understand(flow, rec, body, batch)
        rec.overhead_ns += time.perf_counter_ns() - started

    def _understand(self, flow: http.HTTPFlow, rec: FlowRecord, body: Any, batch: RequestFacts | None = None) -> None:
        """The request's facts from its parsed body, with the batch a body that is not JSON holds
        and every model a gateway's config header names, which model rules judge as well."""
        self._facts_from_body(flow, rec, body)
        if batch is not None and rec.route is None and is_grpc(flow.request.headers.get("content-type", "")):
            operation, streamed = grpc_operation(flow.request.path)
            batch = replace(batch, operation=operation, streaming=streamed)
            if grpc_may_run_a_model(flow.request.path) and batch.model is None and batch.model_reference is None:
                # A generation call whose model field this does not know, or a method the proxy
                # does not know that may run one (red-team F111): judged as any model.
                batch = replace(batch, model_reference="a gRPC call whose model the proxy cannot find")
        header_models, reference = router_header_models(flow.request.headers)
        others = (batch.other_models if batch else ()) + header_models
        if (others or reference or batch) and flow_record(flow) is rec:
            facts = rec.facts or RequestFacts(operation=rec.route.operation if rec.route else "")
            rec.facts = replace(
                facts,
                operation=facts.operation or (batch.operation if batch else ""),
                streaming=facts.streaming or bool(batch and batch.streaming),
                # A model a body that is not JSON names (a gRPC message, an audio file's form).
                model=facts.model or (batch.model if batch else None),
                other_models=tuple(dict.fromkeys(facts.other_models + others)),
                model_reference=facts.model_reference or reference or (batch.model_reference if batch else None),
                output_cap=batch.output_cap if batch else facts.output_cap,
                uncapped=batch.uncapped if batch else facts.uncapped,
                unbounded=facts.unbounded or (batch.unbounded if batch else None),
                prompt_chars=max(facts.prompt_chars, batch.prompt_chars if batch else 0),
                # A multipart request's billed quantity (an audio file to transcribe).
                billed_unit=facts.billed_unit or (batch.billed_unit if batch else None),
                billed_units=facts.billed_units
                if facts.billed_units is not None
                else batch.billed_units
                if batch
                else None,
            )

    def _facts_from_body(self, flow: http.HTTPFlow, rec: FlowRecord, body: Any) -> None:
        if rec.route is not None:
            parser = PARSERS[rec.route.parser]
            by_shape = rec.provider is None or SHAPE_ROUTE_KEY in flow.metadata
            if by_shape and not rec.body_unread and not parser.looks_like(body):
                # A path that looked like an AI API but a body that does not (a body too big to
                # read is judged by its path: kept, and decided as unread). On an unknown host:
                # no AI call. On an AI host: an endpoint no route knows, scanned as such, or
                # without a body, no AI call unless its URL holds a finding (as at requestheaders).
                flow.metadata.pop(SHAPE_ROUTE_KEY, None)
                rec.route = None
                if not rec.ai_host:
                    del flow.metadata[METADATA_KEY]
                    return
                if not flow.request.raw_content:
                    if self._url_finding(flow):
                        flow.metadata[URL_FINDING_KEY] = True
                    else:
                        del flow.metadata[METADATA_KEY]
                    return
            else:
                rec.facts = parser.parse_request(rec.route, flow.request.headers, body)
                return
        if body is not None:  # an endpoint no route knows on an AI host: still its model
            rec.facts = unknown_endpoint_facts(body, flow.request.path)


def read_request(
    route: Route | None, content: bytes, content_type: str | None, path: str = ""
) -> tuple[Any, str | None, RequestFacts | None]:
    """(the body's JSON value or None, why a JSON-looking body cannot be read, the batch a body
    that is not JSON holds for its route's format). Run off the loop for a big body."""
    body, unparsed = read_json_body(content, content_type)
    if route is None and body is None and is_grpc(content_type or ""):
        return body, unparsed, grpc_request_facts(content, path)
    if body is not None or unparsed is not None or route is None:
        return body, unparsed, None
    return body, unparsed, PARSERS[route.parser].batch_in_body(content, content_type or "")


def grpc_request_facts(content: bytes, path: str = "") -> RequestFacts:
    """Gemini's and Vertex's gRPC transport names the model in the request's field 1 (red-team
    F26), anywhere in the first message and maybe more than once, the last value winning (F55):
    that one is the model, the others judged too. A message the proxy cannot walk names a model
    it cannot see: judged as any model (and DLP refuses it: bodyscan)."""
    message = grpc_first_message(content)
    if message is not None and grpc_method(path) in GRPC_BATCH_METHODS:
        # A batch names its model inside it and in each request it inlines, whose output caps
        # are not read here: every model found is judged, and what it may spend has no bound
        # a budget can hold (red-team F111).
        models = grpc_nested_models(message)
        if models is None:
            return RequestFacts(operation="", model_reference="a gRPC message the proxy cannot read")
        models = list(dict.fromkeys(models))
        return RequestFacts(
            operation="",
            model=models[0] if models else None,
            other_models=tuple(models[1:]),
            unbounded="a gRPC batch's requests are not read for their output caps",
        )
    fields, endpoints = grpc_model_fields(path)
    models = grpc_models(message, fields, endpoints) if message is not None else None
    if models is None:
        return RequestFacts(operation="", model_reference="a gRPC message the proxy cannot read")
    return RequestFacts(operation="", model=models[-1] if models else None, other_models=tuple(models[:-1]))


def _note_unparsed(rec: FlowRecord, why: str | None) -> None:
    # A body on an AI host that looks like JSON but does not parse is decided as an unread one
    # (Decide): its model and prompts are unknown, so a control that needs them refuses it
    # (red-team F1). On a host the catalog does not know, the body is what would make it AI: not.
    if why is not None and (rec.provider is not None or rec.ai_host):
        rec.body_unread = True
        rec.inspect_note = f"{UNPARSED_JSON_NOTE}: {why}"


def _reads_by_shape(provider: Provider) -> bool:
    """Whether a catalogued service's requests are recognised by the shape of known wire formats:
    an AI service the catalog gives none (an OpenAI-compatible relay, a local runtime). A chat
    web app speaks its own protocol (webapps/), whose paths may look like an API's (`/api/chat`)."""
    return not provider.wire_formats and provider.is_usage and provider.category != "chat-web"


def _quiet(methods: tuple[str, ...]) -> bool:
    return all(m in _QUIET_METHODS for m in methods)


def _declares_body(request: http.Request) -> bool:
    length = request.headers.get("content-length", "")
    return (length.isdigit() and int(length) > 0) or "transfer-encoding" in request.headers


def new_flow_record(
    settings: ShadowgateSettings, flow: http.HTTPFlow, host: str, provider: Provider | None, route: Route | None
) -> FlowRecord:
    """What Identify knows of a request before its body: the person, the service, the key's
    fingerprint. Shared with Realtime, which identifies WebSocket upgrades the same way."""
    request = flow.request
    client_ip = client_ip_of(flow)
    path, _, query = request.path.partition("?")
    headers = header_map(request.headers)  # attribution asks for a dozen names, most absent
    fingerprinter = settings.fingerprinter
    return FlowRecord(
        started=request.timestamp_start,
        client_ip=client_ip,
        person=settings.directory.person(proxy_user_of(flow), client_ip),
        host=host,
        site=site_of(host),
        provider=provider,
        route=route,
        method=request.method,
        path=path[:2048],
        user_agent=(headers.get("user-agent") or "")[:256] or None,
        key=fingerprinter.sighting(headers, query) if fingerprinter else None,
        account_hint=account_hint(headers),
    )
