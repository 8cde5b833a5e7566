"""Identify: which AI service a request goes to, what it asks for, and who sends it.

Host first (the catalog), then request shape: a request to an unknown host that matches a wire
format's endpoint and body shape is recorded as an unknown AI endpoint. The stage ends with the
policy's decision, so everything after it (act, record) works from one FlowRecord.
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable
from collections.abc import Callable
from typing import Any

from mitmproxy import http

from shadowgate.config.attribution import account_hint
from shadowgate.config.catalog import site_of
from shadowgate.storage.schema import FlowRecord
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats.common import header_map

METADATA_KEY = "shadowgate"
# Bodies above this are parsed off the event loop so one huge prompt cannot stall other flows.
PARSE_INLINE_BYTES = 512 * 1024
_QUIET_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "CONNECT"})


def flow_record(flow: http.HTTPFlow) -> FlowRecord | None:
    return flow.metadata.get(METADATA_KEY)


def on_the_clock[A](hook: Callable[[A, http.HTTPFlow], Any]) -> Callable[[A, http.HTTPFlow], Any]:
    """Adds a hook's time on the event loop to its AI call's proxy_overhead_us.

    Every stage's hook on an AI call wears this, so the column is all of shadowgate's hook time,
    not a chosen part of it. A hook that returns a coroutine (a huge body handed to a thread) is
    timed up to that point, and the coroutine times its own work back on the loop. The hooks
    that write the row (Meter.response, Meter.error) count themselves. Not in it: telemetry's
    response hook, after the row (3-4 us measured), and per-chunk stream taps (~27 us a chunk).
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


class Identify:
    name = "shadowgate_identify"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    @on_the_clock
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        catalog = self.settings.catalog
        if catalog is None:
            return
        request = flow.request
        host = (flow.client_conn.sni or request.host).lower()
        provider = catalog.match_host(host)
        route = catalog.route(provider, request.method, request.path)
        if route is None and (provider is None or request.method in _QUIET_METHODS):
            return  # not an AI call: web assets, telemetry GETs, every non-AI host
        client_ip = str(flow.client_conn.peername[0]).removeprefix("::ffff:") if flow.client_conn.peername else ""
        proxy_user = (flow.metadata.get("proxyauth") or (None,))[0]
        path, _, query = request.path.partition("?")
        headers = header_map(request.headers)  # attribution asks for a dozen names, most absent
        fingerprinter = self.settings.fingerprinter
        rec = FlowRecord(
            started=request.timestamp_start,
            client_ip=client_ip,
            person=self.settings.directory.person(proxy_user, client_ip),
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
        length = headers.get("content-length", "")
        if length.isdigit() and int(length) > self.settings.max_parse_bytes:
            # Too big to parse: stream it through instead of buffering it in memory.
            request.stream = True
            rec.request_bytes = int(length)
        flow.metadata[METADATA_KEY] = rec

    @on_the_clock
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # A plain method: mitmproxy awaits what a hook returns only when it is awaitable, so the
        # common small body costs no coroutine, and only a huge one is parsed on a thread.
        rec = flow_record(flow)
        if rec is None or flow.response or flow.error:
            return None
        raw = flow.request.raw_content
        if raw is not None:
            rec.request_bytes = len(raw)
        if rec.route is None or not raw or len(raw) > self.settings.max_parse_bytes:
            self._understood(flow, rec, None)
            return None
        content = flow.request.get_content(strict=False) or b""
        if len(content) > PARSE_INLINE_BYTES:
            return self._parse_off_loop(flow, rec, content)
        body = parse_json_body(content)
        rec.parsed_body = (raw, body)
        self._understood(flow, rec, body)
        return None

    async def _parse_off_loop(self, flow: http.HTTPFlow, rec: FlowRecord, content: bytes) -> None:
        body = await asyncio.to_thread(parse_json_body, content)
        started = time.perf_counter_ns()
        self._understood(flow, rec, body)
        rec.overhead_ns += time.perf_counter_ns() - started

    def _understood(self, flow: http.HTTPFlow, rec: FlowRecord, body: Any) -> None:
        """The request's facts from its parsed body, then the policy's decision."""
        if rec.route is not None:
            parser = PARSERS[rec.route.parser]
            if rec.provider is None and not parser.looks_like(body):
                # An unknown host whose path looked like an AI API but whose body does not.
                del flow.metadata[METADATA_KEY]
                return
            rec.facts = parser.parse_request(rec.route, flow.request.headers, body)
        rec.decision = self.settings.decide(rec)
