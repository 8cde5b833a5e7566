"""The exporter thread: prices each call, creates its span, aggregates its metric points.

Created only when export is on. The event loop only calls submit(); everything else runs on the
exporter thread, the SDK's span processor thread or the metrics thread.
"""

from __future__ import annotations

import queue
import threading
from typing import TYPE_CHECKING
from typing import Any

from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.telemetry import semconv as sc
from shadowgate.telemetry.capture import captured_content
from shadowgate.telemetry.config import OtelConfig
from shadowgate.telemetry.config import package_version
from shadowgate.telemetry.events import McpEvent
from shadowgate.telemetry.events import TelemetryEvent
from shadowgate.telemetry.metrics import Aggregates
from shadowgate.telemetry.sdklog import THROTTLE
from shadowgate.telemetry.sdklog import quiet_sdk_logs

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter


EVENT_QUEUE_LIMIT = 16_384  # events waiting for the exporter thread; beyond this they are dropped


_STOP = object()


def _with_set(attrs: dict[str, Any], *pairs: tuple[str, Any]) -> dict[str, Any]:
    """attrs plus each (name, value) whose value is set: an attribute is left out, never empty."""
    attrs.update((name, value) for name, value in pairs if value)
    return attrs


def _decision_attributes(attrs: dict[str, Any], e: TelemetryEvent | McpEvent) -> None:
    """What shadowgate decided, and the row to go to: on every span, AI call or MCP request."""
    attrs[sc.SG_REQUEST_ID] = e.request_id
    attrs[sc.SG_DECISION] = e.decision
    attrs[sc.SG_RULE_ID] = e.rule_id
    for kind, count in e.dlp_findings:
        attrs[sc.SG_DLP_FINDINGS_PREFIX + kind] = count


class Pipeline:
    """The SDK providers and the exporter thread that feeds them. Created only when enabled."""

    def __init__(self, config: OtelConfig, settings: ShadowgateSettings) -> None:
        from opentelemetry.sdk.resources import Resource

        quiet_sdk_logs()
        self.config = config
        self.capture_content = config.capture_content
        self.pricing = settings.pricing
        self.dropped = 0
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        resource = Resource.create()
        name = config.service_name
        if not name and str(resource.attributes.get(sc.SERVICE_NAME, "")).startswith("unknown_service"):
            name = sc.DEFAULT_SERVICE_NAME
        if name:
            resource = resource.merge(Resource({sc.SERVICE_NAME: name}))
        resource = resource.merge(Resource({sc.SERVICE_VERSION: package_version()}))
        self._span_processors: list = []
        self.tracer = self._tracer(resource) if config.traces else None
        self.metrics = Aggregates(resource, self._metric_exporters()) if config.metrics else None
        self._stopping = threading.Event()
        self._threads = [threading.Thread(target=self._run, name="shadowgate-otel", daemon=True)]
        if self.metrics is not None:
            self._threads.append(
                threading.Thread(target=self._export_metrics, name="shadowgate-otel-metrics", daemon=True)
            )
        for thread in self._threads:
            thread.start()

    def _tracer(self, resource):
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace import SpanKind
        from opentelemetry.trace import Status
        from opentelemetry.trace import StatusCode

        self._client_kind = SpanKind.CLIENT
        self._error_status = lambda description: Status(StatusCode.ERROR, description)
        provider = TracerProvider(resource=resource, shutdown_on_exit=False)
        for name in self.config.traces:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

                exporter = OTLPSpanExporter(**self._otlp_args("v1/traces"))
            else:
                from opentelemetry.sdk.trace.export import ConsoleSpanExporter

                exporter = ConsoleSpanExporter()
            processor = BatchSpanProcessor(exporter, max_queue_size=self.config.span_queue_size)
            provider.add_span_processor(processor)
            self._span_processors.append(processor)
        return provider.get_tracer(sc.INSTRUMENTATION_SCOPE, package_version(), schema_url=sc.SCHEMA_URL)

    def _metric_exporters(self) -> list[MetricExporter]:
        exporters: list[MetricExporter] = []
        for name in self.config.metrics:
            if name == "otlp":
                from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

                exporters.append(OTLPMetricExporter(**self._otlp_args("v1/metrics")))
            else:
                from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

                exporters.append(ConsoleMetricExporter())
        return exporters

    def _otlp_args(self, path: str) -> dict:
        args: dict[str, Any] = {}
        if self.config.endpoint:
            args["endpoint"] = f"{self.config.endpoint}/{path}"
        if self.config.headers:
            args["headers"] = dict(self.config.headers)
        return args

    # --- the event loop's side ---

    def submit(self, event: TelemetryEvent | McpEvent) -> None:
        if self._queue.qsize() >= EVENT_QUEUE_LIMIT:
            self.dropped += 1
            return
        self._queue.put(event)

    # --- the exporter thread ---

    def _run(self) -> None:
        reported = 0
        while True:
            event = self._queue.get()
            if event is _STOP:
                return
            if isinstance(event, threading.Event):  # flush(): everything before it is recorded
                event.set()
                continue
            try:
                if isinstance(event, McpEvent):
                    self.record_mcp(event)
                else:
                    self.record(event)
            except Exception as e:
                THROTTLE.warn("could not record a call: %s: %s", type(e).__name__, e)
            if self.dropped != reported:
                reported = self.dropped
                THROTTLE.warn("the exporter thread fell behind; %d calls were not recorded", reported)

    def record(self, e: TelemetryEvent) -> None:
        """Everything one call costs in telemetry, off the event loop."""
        cost = self._quote(e)
        error_type = e.error_type or (str(e.status_code) if e.status_code and e.status_code >= 400 else None)
        common = _with_set(
            {
                sc.GEN_AI_OPERATION_NAME: e.operation,
                sc.GEN_AI_PROVIDER_NAME: e.provider_name,
                sc.SERVER_ADDRESS: e.server_address,
            },
            (sc.SERVER_PORT, e.server_port),
            (sc.GEN_AI_REQUEST_MODEL, e.request_model),
            (sc.GEN_AI_RESPONSE_MODEL, e.response_model),
            (sc.ERROR_TYPE, error_type),
        )
        if self.tracer is not None:
            self._span(e, common, error_type, cost)
        if self.metrics is not None:
            self._record_metrics(e, common, cost)

    def record_mcp(self, e: McpEvent) -> None:
        """An MCP request: a duration point; a tools/call also an execute_tool span."""
        tool_call = e.method == "tools/call"
        common = _with_set(
            {sc.MCP_METHOD_NAME: e.method, sc.SERVER_ADDRESS: e.server_address},
            (sc.SERVER_PORT, e.server_port),
            (sc.GEN_AI_OPERATION_NAME, sc.OPERATION_EXECUTE_TOOL if tool_call else None),
            (sc.GEN_AI_TOOL_NAME, e.tool_name if tool_call else None),
            (sc.MCP_PROTOCOL_VERSION, e.protocol_version),
            (sc.ERROR_TYPE, e.error_type),
            (sc.RPC_RESPONSE_STATUS_CODE, None if e.error_code is None else str(e.error_code)),
        )
        if self.metrics is not None:
            self.metrics.record(
                sc.METRIC_MCP_CLIENT_OPERATION_DURATION, tuple(common.items()), max(e.end - e.start, 0.0)
            )
        if self.tracer is None or not tool_call:
            return
        attrs = _with_set(
            dict(common),
            (sc.JSONRPC_REQUEST_ID, e.rpc_id),
            (sc.MCP_SESSION_ID, e.session_id),
            (sc.ENDUSER_ID, e.user),
            (sc.SG_MCP_SERVER_NAME, e.server_name),
        )
        attrs[sc.NETWORK_PROTOCOL_NAME] = "http"
        attrs[sc.NETWORK_TRANSPORT] = "tcp"
        attrs[sc.SG_MCP_TRANSPORT] = e.transport
        _decision_attributes(attrs, e)
        name = f"{sc.OPERATION_EXECUTE_TOOL} {e.tool_name}" if e.tool_name else sc.OPERATION_EXECUTE_TOOL
        self._emit_span(name, e.start, e.end, attrs, e.error_type)

    def _emit_span(self, name: str, start: float, end: float, attrs: dict, error_type: str | None) -> None:
        tracer = self.tracer
        if tracer is None:  # callers check first: traces are off
            return
        span = tracer.start_span(name, kind=self._client_kind, start_time=int(start * 1e9), attributes=attrs)
        if error_type:
            span.set_status(self._error_status(error_type))
        span.end(end_time=int(max(end, start) * 1e9))

    def _quote(self, e: TelemetryEvent) -> float | None:
        # As ShadowgateSettings._price_rows: the served model first, then the requested one.
        if not e.pricing_provider:
            return None
        tokens = (e.input_tokens, e.output_tokens, e.cached_input_tokens, e.cache_creation_input_tokens)
        for model in dict.fromkeys(m for m in (e.response_model, e.request_model) if m):
            quote = self.pricing.quote(e.pricing_provider, model, *tokens)
            if quote is not None:
                return quote.cost_usd
        return None

    def _span(self, e: TelemetryEvent, common: dict, error_type: str | None, cost: float | None) -> None:
        attrs = dict(common)
        optional = (
            (sc.GEN_AI_REQUEST_STREAM, e.streaming),
            (sc.GEN_AI_USAGE_INPUT_TOKENS, e.input_tokens),
            (sc.GEN_AI_USAGE_OUTPUT_TOKENS, e.output_tokens),
            (sc.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS, e.cached_input_tokens),
            (sc.GEN_AI_USAGE_CACHE_CREATION_INPUT_TOKENS, e.cache_creation_input_tokens),
            (sc.GEN_AI_USAGE_REASONING_OUTPUT_TOKENS, e.reasoning_tokens),
            (sc.GEN_AI_RESPONSE_FINISH_REASONS, e.finish_reasons or None),
            (sc.GEN_AI_RESPONSE_ID, e.response_id),
            (sc.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK, e.ttft_ms / 1000 if e.ttft_ms is not None else None),
            (sc.ENDUSER_ID, e.user),
            (sc.SG_CATEGORY, e.category),
            (sc.SG_COST_USD, cost),
        )
        attrs.update((k, v) for k, v in optional if v is not None)
        _decision_attributes(attrs, e)
        attrs[sc.SG_USAGE_ESTIMATED] = e.usage_estimated
        attrs[sc.SG_INSPECTED] = e.inspected
        if e.request_body:
            attrs.update(captured_content(e.request_body, e.content_encoding))
        name = f"{e.operation} {e.request_model}" if e.request_model else e.operation
        self._emit_span(name, e.start, e.end, attrs, error_type)

    def _record_metrics(self, e: TelemetryEvent, common: dict, cost: float | None) -> None:
        # No enduser.id here: metric attributes must stay low-cardinality.
        m = self.metrics
        if m is None:  # the caller checks first: metrics are off
            return
        key = tuple(common.items())
        m.record(sc.METRIC_OPERATION_DURATION, key, max(e.end - e.start, 0.0))
        if e.input_tokens is not None:
            m.record(sc.METRIC_TOKEN_USAGE, (*key, (sc.GEN_AI_TOKEN_TYPE, sc.GEN_AI_TOKEN_TYPE_INPUT)), e.input_tokens)
        if e.output_tokens is not None:
            m.record(
                sc.METRIC_TOKEN_USAGE, (*key, (sc.GEN_AI_TOKEN_TYPE, sc.GEN_AI_TOKEN_TYPE_OUTPUT)), e.output_tokens
            )
        if e.ttft_ms is not None:
            m.record(sc.METRIC_TIME_TO_FIRST_CHUNK, key, e.ttft_ms / 1000)
        base = ((sc.GEN_AI_OPERATION_NAME, e.operation), (sc.GEN_AI_PROVIDER_NAME, e.provider_name))
        m.record(sc.METRIC_DECISIONS, (*base, (sc.SG_DECISION, e.decision), (sc.SG_RULE_ID, e.rule_id)), 1)
        if cost is not None:
            m.record(sc.METRIC_COST, (*base, (sc.GEN_AI_REQUEST_MODEL, e.request_model or "")), cost)
        for kind, count in e.dlp_findings:
            m.record(sc.METRIC_DLP_FINDINGS, (*base, (sc.SG_DLP_FINDING_TYPE, kind)), count)

    def _export_metrics(self) -> None:
        """The metrics thread: export every interval, and once more at shutdown."""
        metrics = self.metrics
        if metrics is None:  # the thread is started only with metrics on
            return
        interval = self.config.metric_interval_ms / 1000
        while not self._stopping.wait(interval):
            metrics.export()
        metrics.export()

    def flush(self, timeout: float = 30.0) -> None:
        """Record what is queued and export it now (scripts/bench_telemetry.py)."""
        reached = threading.Event()
        self._queue.put(reached)
        reached.wait(timeout)
        for processor in self._span_processors:
            processor.force_flush()
        if self.metrics is not None:
            self.metrics.export()

    def close(self, timeout: float) -> None:
        """Record what is queued, then flush and shut the providers down; wait at most `timeout`.

        The SDK's own shutdown waits up to 30 s on a stuck collector, so it runs on a helper
        thread: past the deadline the process may exit and the rest is lost, not the proxy's time.
        """
        helper = threading.Thread(target=self._shutdown, name="shadowgate-otel-shutdown", daemon=True)
        helper.start()
        helper.join(timeout)
        if helper.is_alive():
            THROTTLE.warn("export did not finish within %.0f s of shutdown; the rest is dropped", timeout)

    def _shutdown(self) -> None:
        self._queue.put(_STOP)
        self._threads[0].join()
        self._stopping.set()
        for thread in self._threads[1:]:
            thread.join()  # its last export
        for processor in self._span_processors:
            try:
                processor.shutdown()
            except Exception as e:
                THROTTLE.warn("span export at shutdown failed: %s", e)
        if self.metrics is not None:
            self.metrics.shutdown()
