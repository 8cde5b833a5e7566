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
"""

from __future__ import annotations

import bisect
import json
import logging
import os
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING
from typing import Any
from typing import NamedTuple
from urllib.parse import unquote
from urllib.parse import urlsplit

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http

from shadowgate.stages.identify import METADATA_KEY
from shadowgate.stages.meter import OUTCOME_KEY
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.storage.schema import FlowRecord
from shadowgate.storage.schema import Outcome
from shadowgate.telemetry import semconv as sc

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter

    from shadowgate.stages.mcp import McpCall

log = logging.getLogger(__name__)

EXPORTERS = ("otlp", "console", "none")
DEFAULT_METRIC_INTERVAL_MS = 60_000
SPAN_QUEUE_SIZE = 8192  # the SDK's 2048 drops spans in bursts
EVENT_QUEUE_LIMIT = 16_384  # events waiting for the exporter thread; beyond this they are dropped
SHUTDOWN_SECONDS = 5.0  # done() waits at most this long for the last export
LOG_EVERY_SECONDS = 30.0
MAX_CAPTURED_CHARS = 32 * 1024
MAX_SERIES = 2000  # attribute sets per metric: the SDK's default cardinality limit
_OVERFLOW = (("otel.metric.overflow", True),)
_STOP = object()

# Read by the SDK only under auto-instrumentation, so we implement them (and mirror them as options).
ENV_SDK_DISABLED = "OTEL_SDK_DISABLED"
ENV_TRACES_EXPORTER = "OTEL_TRACES_EXPORTER"
ENV_METRICS_EXPORTER = "OTEL_METRICS_EXPORTER"
ENV_SERVICE_NAME = "OTEL_SERVICE_NAME"
ENV_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
ENV_HEADERS = "OTEL_EXPORTER_OTLP_HEADERS"
ENV_METRIC_INTERVAL = "OTEL_METRIC_EXPORT_INTERVAL"
ENV_BSP_MAX_QUEUE_SIZE = "OTEL_BSP_MAX_QUEUE_SIZE"
ENV_PROTOCOLS = (
    "OTEL_EXPORTER_OTLP_PROTOCOL",
    "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
    "OTEL_EXPORTER_OTLP_METRICS_PROTOCOL",
)


# Every shadowgate_otel_* option: (name, type, default, help). An option that is set wins over
# its OTEL_* variable; an unset one ("" or 0) falls back to the variable, then to the default.
OPTIONS = (
    (
        "shadowgate_otel_enabled",
        bool,
        False,
        "Export every AI call as an OpenTelemetry GenAI span and metrics over OTLP/HTTP. OTEL_SDK_DISABLED=true keeps it off.",
    ),
    (
        "shadowgate_otel_endpoint",
        str,
        "",
        "OTLP/HTTP base URL (/v1/traces, /v1/metrics are appended). Default: OTEL_EXPORTER_OTLP_ENDPOINT, else http://localhost:4318.",
    ),
    (
        "shadowgate_otel_headers",
        str,
        "",
        "Export headers 'name=value,name2=value2', added to OTEL_EXPORTER_OTLP_HEADERS.",
    ),
    (
        "shadowgate_otel_traces_exporter",
        str,
        "",
        "otlp, console, otlp,console or none. Default: OTEL_TRACES_EXPORTER, else otlp.",
    ),
    (
        "shadowgate_otel_metrics_exporter",
        str,
        "",
        "otlp, console, otlp,console or none. Default: OTEL_METRICS_EXPORTER, else otlp.",
    ),
    (
        "shadowgate_otel_service_name",
        str,
        "",
        "service.name. Default: OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES' service.name, else shadowgate.",
    ),
    (
        "shadowgate_otel_capture_content",
        bool,
        False,
        "Opt-in: the request's message text on spans (gen_ai.input.messages). Off: no prompt or response text is exported.",
    ),
    (
        "shadowgate_otel_metric_interval_ms",
        int,
        0,
        "Metric export interval in ms. 0: OTEL_METRIC_EXPORT_INTERVAL, else 60000.",
    ),
)


@dataclass(frozen=True, slots=True)
class OtelConfig:
    enabled: bool = False
    traces: tuple[str, ...] = ()  # span exporters: otlp and/or console
    metrics: tuple[str, ...] = ()
    endpoint: str | None = None  # OTLP base URL; None: the exporter reads the OTEL_* variables
    headers: tuple[tuple[str, str], ...] = ()  # added to (and overriding) OTEL_EXPORTER_OTLP_HEADERS
    service_name: str | None = None  # None: OTEL_RESOURCE_ATTRIBUTES' service.name, else "shadowgate"
    capture_content: bool = False
    metric_interval_ms: int = DEFAULT_METRIC_INTERVAL_MS
    span_queue_size: int = SPAN_QUEUE_SIZE


def resolve_config(options: Any, env: Mapping[str, str]) -> OtelConfig:
    """The effective configuration: a shadowgate_otel_* option wins over its OTEL_* variable.

    Raises ValueError naming the option or variable at fault. The environment is read (and so
    can be at fault) only when telemetry is switched on.
    """
    if not options.shadowgate_otel_enabled or env.get(ENV_SDK_DISABLED, "").strip().lower() == "true":
        _validate_options(options)
        return OtelConfig()
    for name in ENV_PROTOCOLS:
        protocol = env.get(name, "").strip()
        if protocol and protocol != "http/protobuf":
            raise ValueError(f"{name}={protocol!r}: shadowgate exports OTLP over http/protobuf only")
    traces = _exporters(
        *_pick(options.shadowgate_otel_traces_exporter, "shadowgate_otel_traces_exporter", env, ENV_TRACES_EXPORTER)
    )
    metrics = _exporters(
        *_pick(options.shadowgate_otel_metrics_exporter, "shadowgate_otel_metrics_exporter", env, ENV_METRICS_EXPORTER)
    )
    endpoint, source = _pick(options.shadowgate_otel_endpoint, "shadowgate_otel_endpoint", env, ENV_ENDPOINT)
    if endpoint:
        _check_endpoint(endpoint, source)
    _parse_headers(*_pick(None, "", env, ENV_HEADERS))
    interval = options.shadowgate_otel_metric_interval_ms
    if interval < 0:
        raise ValueError("shadowgate_otel_metric_interval_ms must be >= 0 (0: OTEL_METRIC_EXPORT_INTERVAL or 60000)")
    if interval == 0:
        interval = _env_int(env, ENV_METRIC_INTERVAL, DEFAULT_METRIC_INTERVAL_MS)
    return OtelConfig(
        enabled=bool(traces or metrics),
        traces=traces,
        metrics=metrics,
        # Set by the option: ours. From the environment: the exporter reads it (and the
        # signal-specific OTEL_EXPORTER_OTLP_{TRACES,METRICS}_ENDPOINT) itself.
        endpoint=options.shadowgate_otel_endpoint.rstrip("/") or None,
        headers=_parse_headers(options.shadowgate_otel_headers, "shadowgate_otel_headers"),
        service_name=options.shadowgate_otel_service_name or env.get(ENV_SERVICE_NAME) or None,
        capture_content=options.shadowgate_otel_capture_content,
        metric_interval_ms=interval,
        span_queue_size=_env_int(env, ENV_BSP_MAX_QUEUE_SIZE, SPAN_QUEUE_SIZE),
    )


def _validate_options(options: Any) -> None:
    """Telemetry is off: still reject a bad option, so a typo shows before anyone switches it on."""
    for name in ("shadowgate_otel_traces_exporter", "shadowgate_otel_metrics_exporter"):
        if getattr(options, name):
            _exporters(getattr(options, name), name)
    if options.shadowgate_otel_endpoint:
        _check_endpoint(options.shadowgate_otel_endpoint, "shadowgate_otel_endpoint")
    _parse_headers(options.shadowgate_otel_headers, "shadowgate_otel_headers")
    if options.shadowgate_otel_metric_interval_ms < 0:
        raise ValueError("shadowgate_otel_metric_interval_ms must be >= 0 (0: OTEL_METRIC_EXPORT_INTERVAL or 60000)")


def _pick(option: str | None, option_name: str, env: Mapping[str, str], env_name: str) -> tuple[str, str]:
    if option:
        return option, option_name
    return env.get(env_name, ""), env_name


def _exporters(value: str, source: str) -> tuple[str, ...]:
    names = tuple(dict.fromkeys(v.strip().lower() for v in (value or "otlp").split(",") if v.strip()))
    if not names or any(n not in EXPORTERS for n in names) or ("none" in names and len(names) > 1):
        raise ValueError(f"{source} must be otlp, console, otlp,console or none, not {value!r}")
    return () if names == ("none",) else names


def _check_endpoint(url: str, source: str) -> None:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        raise ValueError(f"{source} must be an http(s):// base URL such as http://localhost:4318, not {url!r}")
    try:
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError as e:
        raise ValueError(f"{source}: {e}") from None


def _parse_headers(value: str | None, source: str) -> tuple[tuple[str, str], ...]:
    """W3C-baggage-like 'name=value,name2=value2', values URL-encoded (the OTEL_* format)."""
    headers = []
    for number, item in enumerate((value or "").split(","), 1):
        if not item.strip():
            continue
        name, sep, raw = item.partition("=")
        name = unquote(name).strip().lower()
        if not sep or not name or any(c in name for c in " \t\r\n:"):
            # Never echo the entry: headers carry collector credentials.
            raise ValueError(f"{source}: every header must be name=value (entry {number} is not)")
        headers.append((name, unquote(raw).strip()))
    return tuple(headers)


def _env_int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = int(float(raw))
    except ValueError:
        value = -1
    if value <= 0:
        raise ValueError(f"{name} must be a positive number, not {raw!r}")
    return value


class TelemetryEvent(NamedTuple):
    """What one AI call becomes on its way to the exporter thread: plain values, no live objects."""

    request_id: str
    start: float  # epoch seconds: the request's first byte
    end: float  # epoch seconds: the response's last byte, or the error
    operation: str
    provider_name: str  # gen_ai.provider.name
    pricing_provider: str | None
    category: str | None
    request_model: str | None
    response_model: str | None
    streaming: bool | None
    input_tokens: int | None
    output_tokens: int | None
    cached_input_tokens: int | None
    cache_creation_input_tokens: int | None
    reasoning_tokens: int | None
    usage_estimated: bool
    finish_reasons: tuple[str, ...]
    response_id: str | None
    ttft_ms: float | None
    server_address: str
    server_port: int | None
    status_code: int | None
    error_type: str | None
    user: str | None
    decision: str
    rule_id: str
    inspected: bool
    # Only with content capture on: the raw request body and its Content-Encoding.
    request_body: bytes | None = None
    content_encoding: str | None = None
    # DLP findings by type (counts from FlowRecord.dlp_findings; never values).
    dlp_findings: tuple[tuple[str, int], ...] = ()


# input, output, cached input, cache creation input, reasoning: in TelemetryEvent's order.
_Tokens = tuple[int | None, int | None, int | None, int | None, int | None]


def telemetry_event(flow: http.HTTPFlow, rec: FlowRecord, out: Outcome, end: float, capture: bool) -> TelemetryEvent:
    provider, route, facts, resp = rec.provider, rec.route, rec.facts, out.response
    usage = resp.usage if resp is not None else None
    if usage is None:
        tokens: _Tokens = (None, None, None, None, None)
    else:
        tokens = (
            usage.input_tokens,
            usage.output_tokens,
            usage.cached_input_tokens,
            usage.cache_creation_input_tokens,
            usage.reasoning_tokens,
        )
    body = flow.request.raw_content if capture else None
    return TelemetryEvent(
        rec.request_id,
        rec.started,
        end,
        (facts.operation if facts else None) or (route.operation if route else None) or sc.OPERATION_UNKNOWN,
        provider.otel_provider if provider else (route.wire_format if route else "unknown"),
        provider.pricing_provider if provider else None,
        provider.category if provider else None,
        facts.model if facts else None,
        resp.model if resp else None,
        facts.streaming if facts else None,
        *tokens,
        out.usage_estimated,
        tuple(resp.finish_reasons) if resp else (),
        resp.response_id if resp else None,
        out.ttft_ms,
        # The server behind the proxy: the company gateway when the policy redirected the call.
        flow.request.host if rec.redirect_target else rec.host,
        flow.request.port,
        out.status_code,
        out.error_type or (resp.error_type if resp else None),
        rec.person.user,
        rec.decision.action,
        rec.decision.rule_id,
        rec.inspected,
        body,
        flow.request.headers.get("content-encoding") if body else None,
        dlp_findings=_dlp_counts(rec.dlp_findings),
    )


class McpEvent(NamedTuple):
    """One finished MCP request on its way to the exporter thread: names and codes, no content."""

    request_id: str  # mcp_calls.request_id
    start: float
    end: float
    method: str
    tool_name: str | None
    rpc_id: str | None
    session_id: str | None
    protocol_version: str | None
    server_address: str
    server_port: int | None
    server_name: str | None
    transport: str
    error_type: str | None
    error_code: int | None  # the JSON-RPC error code, ours (-32001) for refusals
    user: str | None
    decision: str
    rule_id: str
    dlp_findings: tuple[tuple[str, int], ...] = ()


def mcp_event(call: McpCall, end: float) -> McpEvent:
    error_type = None
    if call.is_error:
        if call.error_code is not None:
            error_type = str(call.error_code)
        elif call.method == "tools/call" and call.answered:
            error_type = sc.ERROR_TYPE_TOOL
        else:
            error_type = sc.ERROR_TYPE_OTHER
    rpc_id = call.rpc_id
    return McpEvent(
        call.request_id,
        call.started,
        end,
        call.method,
        call.tool_name,
        None if rpc_id is None else str(rpc_id),
        call.session_id,
        call.protocol_version,
        call.host,
        call.port,
        call.server_name,
        call.transport,
        error_type,
        call.error_code,
        call.person.user,
        call.decision,
        call.rule_id,
        _dlp_counts(call.dlp_findings),
    )


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


def _dlp_counts(findings: str | None) -> tuple[tuple[str, int], ...]:
    """ "EMAIL:2,JWT:1" (the ai_requests column) as ((type, count), ...): counts, never values."""
    if not findings:
        return ()
    pairs = (item.rpartition(":") for item in findings.split(","))
    return tuple((kind, int(count)) for kind, _, count in pairs if count.isdigit())


class Telemetry:
    name = "shadowgate_telemetry"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.config = OtelConfig()
        self._pipeline: _Pipeline | None = None

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
                pipeline = _Pipeline(config, self.settings)
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


class _Throttle:
    """At most one log line per interval; the lines in between are counted, not lost silently."""

    def __init__(self, interval: float = LOG_EVERY_SECONDS) -> None:
        self.interval = interval
        self._next_at = 0.0
        self._suppressed = 0
        self._lock = threading.Lock()

    def warn(self, message: str, *args: Any) -> None:
        now = time.monotonic()
        with self._lock:
            if now < self._next_at:
                self._suppressed += 1
                return
            self._next_at = now + self.interval
            suppressed, self._suppressed = self._suppressed, 0
        suffix = f" ({suppressed} more since the last such line not shown)" if suppressed else ""
        log.warning("shadowgate: OpenTelemetry: " + message + suffix, *args)


class _SdkLogForwarder(logging.Handler):
    """The SDK logs every failed export (with tracebacks, per batch and retry): one line per 30 s."""

    def __init__(self, throttle: _Throttle) -> None:
        super().__init__(logging.WARNING)
        self.throttle = throttle

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage().splitlines()[0][:300]
        except Exception:
            message = str(record.msg)[:300]
        self.throttle.warn("%s", message)


_THROTTLE = _Throttle()
_forwarder_lock = threading.Lock()
_forwarder_installed = False


def _quiet_sdk_logs() -> None:
    global _forwarder_installed
    with _forwarder_lock:
        if _forwarder_installed:
            return
        sdk_log = logging.getLogger("opentelemetry")
        sdk_log.addHandler(_SdkLogForwarder(_THROTTLE))
        sdk_log.propagate = False
        _forwarder_installed = True


class _Pipeline:
    """The SDK providers and the exporter thread that feeds them. Created only when enabled."""

    def __init__(self, config: OtelConfig, settings: ShadowgateSettings) -> None:
        from opentelemetry.sdk.resources import Resource

        _quiet_sdk_logs()
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
        resource = resource.merge(Resource({sc.SERVICE_VERSION: _version()}))
        self._span_processors: list = []
        self.tracer = self._tracer(resource) if config.traces else None
        self.metrics = _Aggregates(resource, self._metric_exporters()) if config.metrics else None
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
        return provider.get_tracer(sc.INSTRUMENTATION_SCOPE, _version(), schema_url=sc.SCHEMA_URL)

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
                _THROTTLE.warn("could not record a call: %s: %s", type(e).__name__, e)
            if self.dropped != reported:
                reported = self.dropped
                _THROTTLE.warn("the exporter thread fell behind; %d calls were not recorded", reported)

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
            _THROTTLE.warn("export did not finish within %.0f s of shutdown; the rest is dropped", timeout)

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
                _THROTTLE.warn("span export at shutdown failed: %s", e)
        if self.metrics is not None:
            self.metrics.shutdown()


@dataclass(frozen=True, slots=True)
class _MetricSpec:
    name: str
    unit: str
    description: str
    bounds: tuple[float, ...] | None  # histogram bucket boundaries; None: a monotonic sum


_METRICS = (
    _MetricSpec(sc.METRIC_OPERATION_DURATION, sc.UNIT_SECONDS, "GenAI operation duration", sc.DURATION_BUCKETS),
    _MetricSpec(sc.METRIC_TOKEN_USAGE, sc.UNIT_TOKENS, "Number of input and output tokens used", sc.TOKEN_BUCKETS),
    _MetricSpec(
        sc.METRIC_TIME_TO_FIRST_CHUNK,
        sc.UNIT_SECONDS,
        "Time to the first chunk of a streamed response",
        sc.TIME_TO_FIRST_CHUNK_BUCKETS,
    ),
    _MetricSpec(
        sc.METRIC_DECISIONS, sc.UNIT_REQUESTS, "AI calls by policy decision (allow, block, coach, redirect, ...)", None
    ),
    _MetricSpec(sc.METRIC_COST, sc.UNIT_USD, "Estimated cost of AI calls (genai-prices)", None),
    _MetricSpec(sc.METRIC_DLP_FINDINGS, sc.UNIT_FINDINGS, "DLP findings by type", None),
    _MetricSpec(
        sc.METRIC_MCP_CLIENT_OPERATION_DURATION,
        sc.UNIT_SECONDS,
        "Duration of MCP requests, from the request to the last byte of its answer",
        sc.MCP_DURATION_BUCKETS,
    ),
)


class _Aggregates:
    """Cumulative metric points, aggregated on the exporter thread and exported through the
    SDK's MetricExporter interface (OTLP/HTTP or console) as the SDK's own MetricsData.

    Why not the SDK's instruments: each recorded value costs ~20 us there (attribute cleaning,
    view matching, locks), and a call records four to six, a third of the per-call budget.
    Here a value costs a dict lookup and a bisect. Temporality is cumulative, the OTLP default.
    Past MAX_SERIES attribute sets per metric (request.model comes from clients), new ones fold
    into one overflow series, as the SDK does.
    """

    def __init__(self, resource: Any, exporters: list) -> None:
        from opentelemetry.sdk.util.instrumentation import InstrumentationScope

        self.resource = resource
        self.scope = InstrumentationScope(sc.INSTRUMENTATION_SCOPE, _version(), sc.SCHEMA_URL)
        self.exporters = exporters
        self.start_ns = time.time_ns()
        self._points: dict[str, dict[tuple, list]] = {spec.name: {} for spec in _METRICS}
        self._bounds = {spec.name: spec.bounds for spec in _METRICS}
        self._lock = threading.Lock()
        self._export_lock = threading.Lock()

    def record(self, name: str, key: tuple, value: float) -> None:
        bounds = self._bounds[name]
        with self._lock:
            points = self._points[name]
            point = points.get(key)
            if point is None:
                if len(points) >= MAX_SERIES:
                    key = _OVERFLOW
                point = points.get(key)
                if point is None:
                    # A sum: [value]. A histogram: [count, sum, min, max, bucket counts].
                    point = points[key] = [0] if bounds is None else [0, 0, value, value, [0] * (len(bounds) + 1)]
            if bounds is None:
                point[0] += value
                return
            point[0] += 1
            point[1] += value
            if value < point[2]:
                point[2] = value
            if value > point[3]:
                point[3] = value
            point[4][bisect.bisect_left(bounds, value)] += 1

    def snapshot(self) -> Any:
        """MetricsData with every point so far, or None when nothing was recorded."""
        from opentelemetry.sdk.metrics.export import AggregationTemporality
        from opentelemetry.sdk.metrics.export import Histogram
        from opentelemetry.sdk.metrics.export import HistogramDataPoint
        from opentelemetry.sdk.metrics.export import Metric
        from opentelemetry.sdk.metrics.export import MetricsData
        from opentelemetry.sdk.metrics.export import NumberDataPoint
        from opentelemetry.sdk.metrics.export import ResourceMetrics
        from opentelemetry.sdk.metrics.export import ScopeMetrics
        from opentelemetry.sdk.metrics.export import Sum

        now = time.time_ns()
        cumulative = AggregationTemporality.CUMULATIVE
        with self._lock:
            copied = {name: [(key, list(p)) for key, p in points.items()] for name, points in self._points.items()}
        metrics = []
        for spec in _METRICS:
            points = copied[spec.name]
            if not points:
                continue
            data: Sum | Histogram
            if spec.bounds is None:
                data = Sum(
                    [NumberDataPoint(dict(key), self.start_ns, now, p[0]) for key, p in points], cumulative, True
                )
            else:
                data = Histogram(
                    [
                        HistogramDataPoint(
                            dict(key), self.start_ns, now, p[0], p[1], tuple(p[4]), spec.bounds, p[2], p[3]
                        )
                        for key, p in points
                    ],
                    cumulative,
                )
            metrics.append(Metric(spec.name, spec.description, spec.unit, data))
        if not metrics:
            return None
        return MetricsData(
            [ResourceMetrics(self.resource, [ScopeMetrics(self.scope, metrics, sc.SCHEMA_URL)], sc.SCHEMA_URL)]
        )

    def export(self) -> None:
        with self._export_lock:
            data = self.snapshot()
            if data is None:
                return
            for exporter in self.exporters:
                try:
                    exporter.export(data)
                except Exception as e:
                    _THROTTLE.warn("metric export failed: %s: %s", type(e).__name__, e)

    def shutdown(self) -> None:
        for exporter in self.exporters:
            try:
                exporter.shutdown()
            except Exception as e:
                _THROTTLE.warn("metric exporter shutdown failed: %s", e)


def captured_content(body: bytes, content_encoding: str | None) -> dict[str, str]:
    """Opt-in content capture: the request's prompt text in the semconv's JSON message form.

    The text is exactly what DLP scans (wireformats.prompt_strings; the body is the one DLP
    rewrote), grouped by message, up to MAX_CAPTURED_CHARS: no image, audio or tool schema.
    """
    from mitmproxy.net import encoding

    from shadowgate.wireformats import SYSTEM_KEYS
    from shadowgate.wireformats import parse_json_body
    from shadowgate.wireformats import prompt_strings

    try:
        raw = encoding.decode(body, content_encoding) if content_encoding else body
    except Exception:
        return {}
    if not isinstance(raw, bytes):  # a codec name, not a Content-Encoding, decodes to text: not JSON
        return {}
    doc = parse_json_body(raw)
    if not isinstance(doc, dict):
        return {}
    budget = MAX_CAPTURED_CHARS
    system: list[str] = []
    messages: dict[tuple, tuple[str, list[str]]] = {}  # by message path: (role, texts)
    for path, text in prompt_strings(doc):
        if budget <= 0:
            break
        text = text[:budget]
        if not text:
            continue
        budget -= len(text)
        if path[0] in SYSTEM_KEYS:
            system.append(text)
            continue
        # A message is an element of a top-level list (messages, contents, input), else the field.
        top = doc[path[0]]
        at = path[:2] if isinstance(top, list) and len(path) > 1 else path[:1]
        item = top[path[1]] if len(at) == 2 else top
        role = item.get("role") if isinstance(item, dict) else None
        messages.setdefault(at, (role if isinstance(role, str) else "user", []))[1].append(text)
    attrs = {}
    if system:
        attrs[sc.GEN_AI_SYSTEM_INSTRUCTIONS] = json.dumps(
            [{"type": "text", "content": t} for t in system], ensure_ascii=False
        )
    if messages:
        attrs[sc.GEN_AI_INPUT_MESSAGES] = json.dumps(
            [
                {"role": role, "parts": [{"type": "text", "content": t} for t in texts]}
                for role, texts in messages.values()
            ],
            ensure_ascii=False,
        )
    return attrs


def _version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version("shadowgate")
    except PackageNotFoundError:
        return "0"
