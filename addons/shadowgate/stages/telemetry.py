"""Telemetry: every AI call as an OpenTelemetry GenAI span and metric points, exported over OTLP.

Off by default, and then free: the hooks return at once and no SDK object exists. When on, the
event loop only copies what the Meter left on the flow into a small immutable TelemetryEvent and
enqueues it. One exporter thread prices the call, creates the span and aggregates the metric
points; the SDK's BatchSpanProcessor exports spans from its own thread, and a metrics thread
exports the points every interval through the SDK's metric exporter. A collector that refuses
connections or hangs costs dropped telemetry, never a delayed request, and its errors reach the
log as at most one line every 30 seconds. `done` flushes what is queued.

MCP calls (addons/shadowgate/stages/mcp.py hands each finished one to Telemetry.mcp_call) become points of
mcp.client.operation.duration, and tools/call ones an `execute_tool {tool}` span.

No prompt or response text and no key is exported unless content capture is switched on, and
then only the request's message text (gen_ai.input.messages). Tool arguments and results never
are.

This module is the addon only; the work is in shadowgate.telemetry: config (options and OTEL_*
variables), events (what the event loop copies), pipeline (the exporter thread), metrics (the
aggregated points), capture (opt-in message text), sdklog (rate-limited logging).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import TYPE_CHECKING

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http

from shadowgate.stages.identify import METADATA_KEY
from shadowgate.stages.meter import OUTCOME_KEY
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.telemetry.config import OPTIONS
from shadowgate.telemetry.config import OtelConfig
from shadowgate.telemetry.config import resolve_config
from shadowgate.telemetry.events import mcp_event
from shadowgate.telemetry.events import telemetry_event
from shadowgate.telemetry.pipeline import Pipeline

if TYPE_CHECKING:
    from shadowgate.mcp.session import McpCall


log = logging.getLogger(__name__)

SHUTDOWN_SECONDS = 5.0  # done() waits at most this long for the last export


class Telemetry:
    name = "shadowgate_telemetry"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.config = OtelConfig()
        self._pipeline: Pipeline | None = None

    def load(self, loader) -> None:
        for name, typespec, default, help in OPTIONS:
            loader.add_option(name=name, typespec=typespec, default=default, help=help)

    def configure(self, updated: set[str]) -> None:
        if not any(name.startswith("shadowgate_otel_") for name in updated):
            return
        try:
            config = resolve_config(ctx.options, os.environ)
        except ValueError as e:
            raise exceptions.OptionsError(str(e)) from e
        if not config.enabled and ctx.options.shadowgate_otel_enabled:
            log.info("shadowgate: OpenTelemetry export stays off (OTEL_SDK_DISABLED, or both exporters none)")
        if config == self.config:
            return
        pipeline = None
        if config.enabled:
            try:
                pipeline = Pipeline(config, self.settings)
            except Exception as e:
                raise exceptions.OptionsError(f"cannot start OpenTelemetry export: {e}") from e
            log.info(
                "shadowgate: OpenTelemetry traces -> %s, metrics -> %s (every %d ms)",
                ",".join(config.traces) or "none",
                ",".join(config.metrics) or "none",
                config.metric_interval_ms,
            )
        old, self._pipeline, self.config = self._pipeline, pipeline, config
        if old is not None:
            # Its last export may hang on a dead collector: never on the event loop.
            threading.Thread(
                target=old.close, args=(SHUTDOWN_SECONDS,), name="shadowgate-otel-close", daemon=True
            ).start()

    def response(self, flow: http.HTTPFlow) -> None:
        if self._pipeline is not None and flow.response is not None:
            self._submit(flow, flow.response.timestamp_end or time.time())

    def error(self, flow: http.HTTPFlow) -> None:
        if self._pipeline is not None:
            self._submit(flow, flow.error.timestamp if flow.error else time.time())

    def mcp_call(self, call: McpCall, end: float) -> None:
        """A finished MCP request (addons/shadowgate/stages/mcp.py): on the event loop, only a copy and an enqueue."""
        pipeline = self._pipeline
        if pipeline is not None:
            pipeline.submit(mcp_event(call, end))

    def _submit(self, flow: http.HTTPFlow, end: float) -> None:
        # The only telemetry work on the event loop: copy plain values, enqueue.
        pipeline = self._pipeline
        rec = flow.metadata.get(METADATA_KEY)
        out = flow.metadata.get(OUTCOME_KEY)
        if pipeline is not None and rec is not None and out is not None:
            pipeline.submit(telemetry_event(flow, rec, out, end, pipeline.capture_content))

    def done(self) -> None:
        # SIGTERM runs done(): what was queued is exported, within SHUTDOWN_SECONDS.
        pipeline, self._pipeline = self._pipeline, None
        if pipeline is not None:
            pipeline.close(SHUTDOWN_SECONDS)
