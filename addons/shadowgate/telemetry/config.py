"""OpenTelemetry export settings: the shadowgate_otel_* options and the standard OTEL_* variables
resolved into one OtelConfig (an option that is set wins over its variable).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from urllib.parse import urlsplit

EXPORTERS = ("otlp", "console", "none")
DEFAULT_METRIC_INTERVAL_MS = 60_000
SPAN_QUEUE_SIZE = 8192  # the SDK's 2048 drops spans in bursts


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


def package_version() -> str:
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version

    try:
        return version("shadowgate")
    except PackageNotFoundError:
        return "0"
