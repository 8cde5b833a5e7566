"""OpenTelemetry export, end to end: real SDK traffic through a real mitmdump, a real OTLP/HTTP
receiver decoding the protobufs, and collectors that refuse connections or hang.

One exporting proxy (otel_proxy) serves the tests that differ only in options, changed at run time
(otel_proxy.options); tests of the environment, of start-up and of stopping start their own. The
option checks are in tests/unit/test_telemetry.py."""

from __future__ import annotations

import datetime as dt
import json
import os
import statistics
import time
import uuid
from types import SimpleNamespace

import pytest

from shadowgate.demo.fakeupstream import load_cases
from shadowgate.storage.pricing import Pricing
from shadowgate.telemetry import semconv as sc
from shadowgate.telemetry.capture import captured_content
from shadowgate.telemetry.config import OPTIONS
from shadowgate.telemetry.config import OtelConfig
from shadowgate.telemetry.config import resolve_config
from tests.otlp_receiver import SPAN_KIND_CLIENT
from tests.otlp_receiver import STATUS_CODE_ERROR
from tests.otlp_receiver import OtlpReceiver
from tests.otlp_receiver import refused_endpoint
from tests.test_meter import send_case

CASES = load_cases()
PLANTED_KEY = "sk-proj-PLANTEDotelKEY0123456789abcdef"
PLANTED_GOOGLE_KEY = "AIzaPLANTEDotelGoogleKey0123456789"
PROMPT = f"otel-secret-prompt-{uuid.uuid4().hex}"
FAST_EXPORT = {"OTEL_BSP_SCHEDULE_DELAY": "100"}
SDK_LOG_LINE = "shadowgate: OpenTelemetry: "


def otel_args(endpoint: str, *extra: str, interval_ms: int = 200) -> tuple[str, ...]:
    return (
        "--set", "shadowgate_otel_enabled=true",
        "--set", f"shadowgate_otel_endpoint={endpoint}",
        "--set", f"shadowgate_otel_metric_interval_ms={interval_ms}",
        *extra,
    )  # fmt: skip


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch):
    """No OTEL_* variable from the outside world reaches a proxy these tests start."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)
    for name, value in FAST_EXPORT.items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="module")
def receiver():
    r = OtlpReceiver().start()
    yield r
    r.stop()


GATEWAY_KEY = "sk-corp-gateway-PLANTED-otel-0123456789"
POLICY = """\
rules:
  - id: gateway-itself
    match: {host: llm.corp.test}
    action: allow
  - id: block-deepseek
    match: {provider: deepseek}
    action: block
  - id: openai-to-gateway
    match: {provider: openai, user: "otel_redirected*"}
    action: redirect
    gateway: {openai_base_url: "https://llm.corp.test/v1", key_env: SG_OTEL_GATEWAY_KEY}
"""


# The OTEL_* variables of the world outside, which the session proxy inherited at its start.
OUTSIDE_OTEL_VARIABLES = [name for name in os.environ if name.startswith("OTEL_")]


@pytest.fixture
def otel_proxy(proxy_with, receiver):
    """Telemetry on, exporting to the receiver; intercept=all so unknown endpoints are metered;
    a policy that blocks one provider and redirects some users to a gateway. The session proxy:
    its exporters are set up from these options and its environment when the options change,
    as at a start (a start's own reading of the environment is tested below with starts)."""
    environ: dict[str, str | None] = {name: None for name in OUTSIDE_OTEL_VARIABLES}
    return proxy_with(
        POLICY,
        environ={**environ, **FAST_EXPORT, "SG_OTEL_GATEWAY_KEY": GATEWAY_KEY},
        shadowgate_otel_enabled=True,
        shadowgate_otel_endpoint=receiver.endpoint,
        shadowgate_otel_metric_interval_ms=200,
        shadowgate_intercept="all",
    )


def span_for(receiver: OtlpReceiver, request_id: str, timeout: float = 15.0) -> dict:
    def find(r):
        return next((s for s in r.spans() if s["attributes"].get(sc.SG_REQUEST_ID) == request_id), None)

    span = receiver.wait_for(find, timeout)
    assert span is not None, f"no span for {request_id}"
    return span


def openai_chat(proxy, user: str, **kwargs):
    import openai

    with proxy.sdk_http(user) as http:
        client = openai.OpenAI(api_key=PLANTED_KEY, http_client=http)
        result = client.chat.completions.create(
            model="gpt-4o-mini", messages=[{"role": "user", "content": PROMPT}], **kwargs
        )
        return list(result) if kwargs.get("stream") else result


def epoch(ts: dt.datetime) -> float:
    return ts.replace(tzinfo=dt.UTC).timestamp()


def test_chat_call_is_one_genai_client_span(otel_proxy, receiver):
    completion = openai_chat(otel_proxy, "otel_chat")
    [row] = otel_proxy.rows("user_name = 'otel_chat'", expect=1)
    span = span_for(receiver, row["request_id"])
    assert span["name"] == "chat gpt-4o-mini"
    assert span["kind"] == SPAN_KIND_CLIENT
    assert span["scope"] == "shadowgate" and span["schema_url"] == sc.SCHEMA_URL
    assert span["resource"]["service.name"] == "shadowgate"
    a = span["attributes"]
    assert a["gen_ai.operation.name"] == "chat"
    assert a["gen_ai.provider.name"] == "openai"
    assert a["gen_ai.request.model"] == "gpt-4o-mini"
    assert a["gen_ai.response.model"] == completion.model
    assert a["gen_ai.request.stream"] is False
    assert a["gen_ai.usage.input_tokens"] == completion.usage.prompt_tokens
    assert a["gen_ai.usage.output_tokens"] == completion.usage.completion_tokens
    assert a.get("gen_ai.usage.cache_read.input_tokens") == row["cached_input_tokens"]
    assert a["gen_ai.response.id"] == completion.id
    assert a["gen_ai.response.finish_reasons"] == tuple(c.finish_reason for c in completion.choices)
    assert "gen_ai.response.time_to_first_chunk" not in a  # not a stream
    assert a["server.address"] == "api.openai.com" and a["server.port"] == 443
    assert "error.type" not in a and span["status"] != STATUS_CODE_ERROR
    assert a["enduser.id"] == "otel_chat"
    assert a["shadowgate.decision"] == "allow" and a["shadowgate.rule_id"] == "default"
    assert a["shadowgate.category"] == "api"
    assert a["shadowgate.usage_estimated"] is False and a["shadowgate.inspected"] is True
    quote = Pricing().quote(
        "openai", completion.model, row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]
    )
    assert a["shadowgate.cost_usd"] == pytest.approx(quote.cost_usd) == pytest.approx(row["cost_usd"])
    assert "gen_ai.input.messages" not in a and "gen_ai.system" not in a
    # The flow's real times: the row's start, and its latency.
    assert span["start_ns"] / 1e9 == pytest.approx(epoch(row["ts"]), abs=0.002)
    assert (span["end_ns"] - span["start_ns"]) / 1e6 == pytest.approx(row["latency_ms"], abs=2)


def test_stream_span_has_time_to_first_chunk(otel_proxy, receiver):
    chunks = openai_chat(otel_proxy, "otel_stream", stream=True, stream_options={"include_usage": True})
    usage = next(c.usage for c in chunks if c.usage)
    [row] = otel_proxy.rows("user_name = 'otel_stream'", expect=1)
    a = span_for(receiver, row["request_id"])["attributes"]
    assert a["gen_ai.request.stream"] is True
    assert a["gen_ai.usage.input_tokens"] == usage.prompt_tokens
    assert a["gen_ai.response.time_to_first_chunk"] == pytest.approx(row["ttft_ms"] / 1000, abs=1e-3)
    points = receiver.wait_for(lambda r: r.metrics().get(sc.METRIC_TIME_TO_FIRST_CHUNK))
    assert points and points[0]["bounds"] == sc.DURATION_BUCKETS


def test_provider_error_sets_error_type(otel_proxy, receiver):
    case = CASES["gemini-error-429"]
    with otel_proxy.client("otel_error") as client:
        response = send_case(client, case)
    assert response.status_code == 429
    [row] = otel_proxy.rows("user_name = 'otel_error'", expect=1)
    span = span_for(receiver, row["request_id"])
    a = span["attributes"]
    assert span["name"] == "generate_content gemini-2.5-pro"
    assert a["gen_ai.provider.name"] == "gcp.gemini"
    assert a["error.type"] == "RESOURCE_EXHAUSTED" == row["error_type"]
    assert span["status"] == STATUS_CODE_ERROR


def test_unknown_endpoint_names_its_wire_format_as_provider(otel_proxy, receiver):
    body = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": PROMPT}]}
    with otel_proxy.client("otel_vllm") as client:
        assert client.post("https://llm.internal.test/v1/chat/completions", json=body).status_code == 200
    [row] = otel_proxy.rows("user_name = 'otel_vllm'", expect=1)
    a = span_for(receiver, row["request_id"])["attributes"]
    assert a["gen_ai.provider.name"] == "openai-chat"
    assert a["server.address"] == "llm.internal.test"
    assert "shadowgate.category" not in a and "shadowgate.cost_usd" not in a


def test_policy_decisions_are_on_spans_and_counted(otel_proxy, receiver):
    import openai

    with otel_proxy.sdk_http("otel_blocked") as http:
        client = openai.OpenAI(
            api_key=PLANTED_KEY, base_url="https://api.deepseek.com/v1", http_client=http, max_retries=0
        )
        with pytest.raises(openai.PermissionDeniedError):
            client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": PROMPT}])
    completion = openai_chat(otel_proxy, "otel_redirected_amy")
    [blocked] = otel_proxy.rows("user_name = 'otel_blocked'", expect=1)
    [redirected] = otel_proxy.rows("user_name = 'otel_redirected_amy'", expect=1)
    b = span_for(receiver, blocked["request_id"])["attributes"]
    assert (b["shadowgate.decision"], b["shadowgate.rule_id"]) == ("block", "block-deepseek")
    assert b["gen_ai.provider.name"] == "deepseek" and b["server.address"] == "api.deepseek.com"
    assert blocked["status_code"] == 403 and b["error.type"] == (blocked["error_type"] or "403")
    r = span_for(receiver, redirected["request_id"])["attributes"]
    assert (r["shadowgate.decision"], r["shadowgate.rule_id"]) == ("redirect", "openai-to-gateway")
    # The provider the user called; the server that answered: the company gateway.
    assert r["gen_ai.provider.name"] == "openai" and r["gen_ai.response.model"] == completion.model
    assert (r["server.address"], r["server.port"]) == ("llm.corp.test", 443)

    def counted(rec):
        points = rec.metrics().get(sc.METRIC_DECISIONS, [])
        return {
            (p["attributes"]["shadowgate.decision"], p["attributes"]["shadowgate.rule_id"])
            for p in points
            if p["value"] > 0
        }

    assert receiver.wait_for(
        lambda rec: {("block", "block-deepseek"), ("redirect", "openai-to-gateway")} <= counted(rec)
    )
    assert GATEWAY_KEY.encode() not in b"".join(receiver.raw)


def test_metrics_have_semconv_names_buckets_and_no_user_ids(otel_proxy, receiver):
    openai_chat(otel_proxy, "otel_metrics_user")
    wanted = {sc.METRIC_OPERATION_DURATION, sc.METRIC_TOKEN_USAGE, sc.METRIC_DECISIONS, sc.METRIC_COST}
    metrics = receiver.wait_for(lambda r: (m := r.metrics()) and wanted <= set(m) and m)
    assert metrics, f"got {sorted(receiver.metrics())}"
    duration = metrics[sc.METRIC_OPERATION_DURATION]
    assert {p["kind"] for p in duration} == {"histogram"} and duration[0]["unit"] == "s"
    assert all(p["bounds"] == sc.DURATION_BUCKETS for p in duration)
    tokens = metrics[sc.METRIC_TOKEN_USAGE]
    assert all(p["bounds"] == sc.TOKEN_BUCKETS and p["unit"] == "{token}" for p in tokens)
    assert {p["attributes"]["gen_ai.token.type"] for p in tokens} == {"input", "output"}
    chat = [p for p in duration if p["attributes"].get("gen_ai.request.model") == "gpt-4o-mini"]
    assert chat and chat[0]["attributes"]["gen_ai.operation.name"] == "chat"
    assert chat[0]["attributes"]["gen_ai.provider.name"] == "openai"
    assert chat[0]["attributes"]["server.address"] == "api.openai.com"
    decisions = metrics[sc.METRIC_DECISIONS]
    assert "allow" in {p["attributes"]["shadowgate.decision"] for p in decisions}
    assert all(p["kind"] == "sum" for p in decisions)
    cost = [p for p in metrics[sc.METRIC_COST] if p["attributes"]["gen_ai.provider.name"] == "openai"]
    assert cost and cost[0]["value"] > 0 and cost[0]["unit"] == "USD"
    # No user id on any metric point: neither the attribute nor any user's name as a value.
    for points in metrics.values():
        for p in points:
            assert "enduser.id" not in p["attributes"]
            assert not any(str(v).startswith("otel_") for v in p["attributes"].values())


def test_no_key_or_prompt_in_any_exported_byte(otel_proxy, receiver):
    openai_chat(otel_proxy, "otel_leak")
    case = CASES["gemini-generate-thinking-cached"]
    with otel_proxy.client("otel_leak") as client:
        # Gemini puts keys in the query string; the path and headers carry one here too.
        send_case(
            client,
            {**case, "request": {**case["request"], "query": f"key={PLANTED_GOOGLE_KEY}"}},
            **{"x-goog-api-key": PLANTED_GOOGLE_KEY},
        )
    rows = otel_proxy.rows("user_name = 'otel_leak'", expect=2)
    for row in rows:
        span_for(receiver, row["request_id"])
    receiver.wait_for(lambda r: r.metrics().get(sc.METRIC_OPERATION_DURATION))
    raw = b"".join(receiver.raw)
    assert b"otel_leak" in raw  # the search works: enduser.id is there
    for secret in (PLANTED_KEY, PLANTED_GOOGLE_KEY, PROMPT, PLANTED_KEY[8:24]):
        assert secret.encode() not in raw, secret
    for row in rows:
        assert row["key_fingerprint"].encode() not in raw


def test_content_capture_is_opt_in(otel_proxy, receiver):
    import anthropic

    with otel_proxy.options(shadowgate_otel_capture_content=True) as proxy:
        openai_chat(proxy, "otel_capture")
        with proxy.sdk_http("otel_capture") as http:
            client = anthropic.Anthropic(api_key="sk-ant-api03-PLANTED", http_client=http)
            client.messages.create(
                model="claude-sonnet-5",
                max_tokens=50,
                system="be brief",
                messages=[{"role": "user", "content": PROMPT}],
            )
        rows = proxy.rows("user_name = 'otel_capture'", expect=2)
        openai_span, claude_span = (span_for(receiver, r["request_id"])["attributes"] for r in rows)
    assert json.loads(openai_span["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": PROMPT}]}
    ]
    assert json.loads(claude_span["gen_ai.system_instructions"]) == [{"type": "text", "content": "be brief"}]
    assert PROMPT in claude_span["gen_ai.input.messages"]
    raw = b"".join(receiver.raw)
    assert PLANTED_KEY.encode() not in raw and b"sk-ant-api03-PLANTED" not in raw


def test_standard_environment_variables_configure_export(fresh_proxy, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-tenant=acme%20corp")
    monkeypatch.setenv("OTEL_SERVICE_NAME", "ai-gateway-eu")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment.name=test,service.namespace=netsec")
    monkeypatch.setenv("OTEL_METRICS_EXPORTER", "none")
    proxy = fresh_proxy("--set", "shadowgate_otel_enabled=true")
    openai_chat(proxy, "otel_env")
    [row] = proxy.rows("user_name = 'otel_env'", expect=1)
    span = span_for(receiver, row["request_id"])
    assert span["resource"]["service.name"] == "ai-gateway-eu"
    assert span["resource"]["service.namespace"] == "netsec"
    assert span["resource"]["deployment.environment.name"] == "test"
    assert receiver.trace_headers[span["request_index"]]["x-tenant"] == "acme corp"
    time.sleep(1)
    assert not any(r["resource"].get("service.name") == "ai-gateway-eu" for r in _metric_resources(receiver))


def _metric_resources(receiver: OtlpReceiver) -> list[dict]:
    from tests.otlp_receiver import attributes

    return [
        {"resource": attributes(rm.resource.attributes)} for m in receiver.metric_requests for rm in m.resource_metrics
    ]


def test_console_exporter_prints_spans(otel_proxy):
    with otel_proxy.options(
        shadowgate_otel_traces_exporter="console", shadowgate_otel_metrics_exporter="none"
    ) as proxy:
        before = len(proxy.log())
        openai_chat(proxy, "otel_console")
        proxy.rows("user_name = 'otel_console'", expect=1)
        deadline = time.monotonic() + 10
        while '"name": "chat gpt-4o-mini"' not in proxy.log()[before:] and time.monotonic() < deadline:
            time.sleep(0.1)
    printed = proxy.log()[before:]
    assert '"name": "chat gpt-4o-mini"' in printed and '"enduser.id": "otel_console"' in printed
    assert PROMPT not in printed and PLANTED_KEY not in printed


@pytest.mark.parametrize("how", ["default-off", "sdk-disabled", "both-exporters-none"])
def test_nothing_is_exported_unless_enabled(fresh_proxy, receiver, monkeypatch, how):
    # The standard variables alone point at the receiver: they must not switch export on.
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "100")
    args: tuple[str, ...] = ()
    if how == "sdk-disabled":
        monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
        args = ("--set", "shadowgate_otel_enabled=true")
    elif how == "both-exporters-none":
        monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
        args = ("--set", "shadowgate_otel_enabled=true", "--set", "shadowgate_otel_metrics_exporter=none")
    user = f"otel_off_{how.replace('-', '_')}"
    proxy = fresh_proxy(*args)
    openai_chat(proxy, user)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    time.sleep(1)
    assert proxy.stop() == 0
    assert not any(s["attributes"].get(sc.SG_REQUEST_ID) == row["request_id"] for s in receiver.spans())
    assert user.encode() not in b"".join(receiver.raw)
    if how != "default-off":
        assert "OpenTelemetry export stays off" in proxy.log()


@pytest.mark.parametrize("collector", ["refused", "hanging"])
def test_broken_collector_changes_nothing_for_clients(fresh_proxy, proxy, collector):
    hanging = OtlpReceiver(mode="hang").start() if collector == "hanging" else None
    endpoint = hanging.endpoint if hanging else refused_endpoint()
    try:
        bad = fresh_proxy(*otel_args(endpoint, interval_ms=100))
        base_latency = _latencies(proxy, "otel_base")
        bad_latency = _latencies(bad, f"otel_{collector}")
        assert bad.alive()
        assert len(bad.rows(f"user_name = 'otel_{collector}'", expect=len(bad_latency))) == len(bad_latency)
        # Generous bounds (2 shared cores); a blocked event loop would cost whole seconds.
        assert max(bad_latency) < 2.0
        assert statistics.median(bad_latency) < statistics.median(base_latency) * 3 + 0.1
        if hanging:
            assert hanging.hits > 0  # the exporters did reach it, and it hung them
        started = time.monotonic()
        assert bad.stop() == 0
        assert time.monotonic() - started < 15  # done() gives the last export a bounded time
    finally:
        if hanging:
            hanging.stop()
    log = bad.log()
    failures = log.count(SDK_LOG_LINE)
    assert failures <= 1, log  # one line per 30 s, whatever the SDK logs
    if collector == "refused":
        assert failures == 1
    assert "Traceback" not in log


def _latencies(proxy, user: str, n: int = 12) -> list[float]:
    import openai

    times = []
    with proxy.sdk_http(user) as http:
        client = openai.OpenAI(api_key="sk-test", http_client=http, max_retries=0)
        for _ in range(n):
            started = time.monotonic()
            client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            times.append(time.monotonic() - started)
            time.sleep(0.1)
    return times


def test_spans_and_metrics_are_flushed_on_sigterm(fresh_proxy, receiver, monkeypatch):
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "60000")
    proxy = fresh_proxy(
        *otel_args(receiver.endpoint, "--set", "shadowgate_otel_service_name=sg-flush", interval_ms=60000)
    )
    for _ in range(3):
        openai_chat(proxy, "otel_flush")
    rows = proxy.rows("user_name = 'otel_flush'", expect=3)
    time.sleep(0.5)
    ids = {r["request_id"] for r in rows}
    assert not ids & {s["attributes"].get(sc.SG_REQUEST_ID) for s in receiver.spans()}  # still queued
    assert proxy.stop() == 0
    assert ids <= {s["attributes"].get(sc.SG_REQUEST_ID) for s in receiver.spans()}
    resources = [r["resource"].get("service.name") for r in _metric_resources(receiver)]
    assert "sg-flush" in resources


# --- configuration, in-process ---


def options(**overrides) -> SimpleNamespace:
    """The options' defaults, switched on, with shadowgate_otel_<key>=value overrides."""
    values = {name: default for name, _, default, _ in OPTIONS} | {"shadowgate_otel_enabled": True}
    return SimpleNamespace(**{**values, **{f"shadowgate_otel_{k}": v for k, v in overrides.items()}})


def test_options_win_over_environment():
    env = {
        "OTEL_TRACES_EXPORTER": "console",
        "OTEL_METRICS_EXPORTER": "none",
        "OTEL_SERVICE_NAME": "from-env",
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://env:4318",
        "OTEL_METRIC_EXPORT_INTERVAL": "5000",
        "OTEL_BSP_MAX_QUEUE_SIZE": "100",
    }
    assert resolve_config(options(), env) == OtelConfig(
        enabled=True,
        traces=("console",),
        metrics=(),
        service_name="from-env",
        metric_interval_ms=5000,
        span_queue_size=100,
    )
    config = resolve_config(
        options(
            traces_exporter="otlp,console",
            metrics_exporter="otlp",
            service_name="from-option",
            endpoint="https://collector.example:4318/",
            headers="authorization=Bearer%20x,x-tenant=a",
            metric_interval_ms=250,
            capture_content=True,
        ),
        env,
    )
    assert config == OtelConfig(
        enabled=True,
        traces=("otlp", "console"),
        metrics=("otlp",),
        endpoint="https://collector.example:4318",
        headers=(("authorization", "Bearer x"), ("x-tenant", "a")),
        service_name="from-option",
        capture_content=True,
        metric_interval_ms=250,
        span_queue_size=100,
    )
    assert resolve_config(options(), {}) == OtelConfig(enabled=True, traces=("otlp",), metrics=("otlp",))


def test_off_unless_enabled_and_not_sdk_disabled():
    env = {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318"}
    assert resolve_config(options(enabled=False), env) == OtelConfig()
    assert resolve_config(options(), {**env, "OTEL_SDK_DISABLED": "TRUE"}) == OtelConfig()
    assert resolve_config(options(traces_exporter="none", metrics_exporter="none"), env).enabled is False
    # Off, a broken environment is none of our business; a broken option still is.
    assert resolve_config(options(enabled=False), {"OTEL_TRACES_EXPORTER": "zipkin"}) == OtelConfig()
    with pytest.raises(ValueError, match="shadowgate_otel_metrics_exporter"):
        resolve_config(options(enabled=False, metrics_exporter="prometheus"), {})


@pytest.mark.parametrize(
    "overrides, env, message",
    [
        ({"traces_exporter": "jaeger"}, {}, "shadowgate_otel_traces_exporter must be"),
        ({}, {"OTEL_METRICS_EXPORTER": "prometheus"}, "OTEL_METRICS_EXPORTER must be"),
        ({"traces_exporter": "none,otlp"}, {}, "must be otlp, console"),
        ({"endpoint": "collector:4318"}, {}, "shadowgate_otel_endpoint must be an http(s)://"),
        ({}, {"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x"}, "OTEL_EXPORTER_OTLP_ENDPOINT must be"),
        ({"endpoint": "http://c:99999"}, {}, "shadowgate_otel_endpoint: Port out of range"),
        ({"headers": "no-value-here"}, {}, "shadowgate_otel_headers: every header must be name=value"),
        ({}, {"OTEL_EXPORTER_OTLP_HEADERS": "=secret"}, "OTEL_EXPORTER_OTLP_HEADERS: every header"),
        ({"metric_interval_ms": -1}, {}, "shadowgate_otel_metric_interval_ms must be >= 0"),
        ({}, {"OTEL_METRIC_EXPORT_INTERVAL": "soon"}, "OTEL_METRIC_EXPORT_INTERVAL must be a positive number"),
        ({}, {"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "http/protobuf only"),
    ],
)
def test_bad_values_are_rejected(overrides, env, message):
    with pytest.raises(ValueError) as e:
        resolve_config(options(**overrides), env)
    assert message in str(e.value)
    assert "secret" not in str(e.value)


def test_captured_content_takes_text_parts_only():
    body = {
        "systemInstruction": {"parts": [{"text": "sys"}]},
        "contents": [{"role": "user", "parts": [{"text": "hello"}, {"inlineData": {"data": "AAAA"}}]}],
    }
    attrs = captured_content(json.dumps(body).encode(), None)
    assert json.loads(attrs["gen_ai.input.messages"]) == [
        {"role": "user", "parts": [{"type": "text", "content": "hello"}]}
    ]
    assert json.loads(attrs["gen_ai.system_instructions"]) == [{"type": "text", "content": "sys"}]
    assert captured_content(b"not json", None) == {}
    assert captured_content(b"\x1f\x8bbroken", "gzip") == {}


def test_metric_points_aggregate_as_the_sdk_does(monkeypatch):
    from opentelemetry.sdk.resources import Resource

    from shadowgate.telemetry import metrics

    monkeypatch.setattr(metrics, "MAX_SERIES", 2)
    agg = metrics.Aggregates(Resource.create({}), [])
    assert agg.snapshot() is None
    key = (("gen_ai.operation.name", "chat"),)
    for value in (0.01, 0.011, 100.0):  # on a bound (upper bounds are inclusive), just above, past the last
        agg.record(sc.METRIC_OPERATION_DURATION, key, value)
    for model in ("a", "b", "c", "d"):  # more series than allowed: the rest fold into one
        agg.record(sc.METRIC_COST, (("gen_ai.request.model", model),), 0.5)
    [resource_metrics] = agg.snapshot().resource_metrics
    [scope] = resource_metrics.scope_metrics
    assert scope.scope.name == "shadowgate" and scope.schema_url == sc.SCHEMA_URL
    metrics = {m.name: m for m in scope.metrics}
    [point] = metrics[sc.METRIC_OPERATION_DURATION].data.data_points
    assert (point.count, point.sum, point.min, point.max) == (3, pytest.approx(100.021), 0.01, 100.0)
    assert point.explicit_bounds == sc.DURATION_BUCKETS
    assert (
        point.bucket_counts[0] == point.bucket_counts[1] == point.bucket_counts[-1] == 1
        and sum(point.bucket_counts) == 3
    )
    cost = {tuple(p.attributes.items()): p.value for p in metrics[sc.METRIC_COST].data.data_points}
    assert cost == {
        (("gen_ai.request.model", "a"),): 0.5,
        (("gen_ai.request.model", "b"),): 0.5,
        (("otel.metric.overflow", True),): 1.0,
    }
    assert metrics[sc.METRIC_COST].data.is_monotonic and sc.METRIC_DLP_FINDINGS not in metrics


def test_dlp_counts_are_on_spans_and_captured_content_is_redacted(otel_proxy, receiver, tmp_path):
    import openai

    secret = "AKIAZ7Q3M5X2R3W4T5YB"
    policy = tmp_path / "policy.yaml"
    policy.write_text("dlp: {secrets: redact, pii: redact}\n")
    with otel_proxy.options(shadowgate_otel_capture_content=True, shadowgate_policy=str(policy)) as proxy:
        with proxy.sdk_http("otel_dlp") as http:
            client = openai.OpenAI(api_key=PLANTED_KEY, http_client=http)
            client.chat.completions.create(
                model="gpt-4o-mini", messages=[{"role": "user", "content": f"key {secret} for a@b.example"}]
            )
        [row] = proxy.rows("user_name = 'otel_dlp'", expect=1)
        attributes = span_for(receiver, row["request_id"])["attributes"]
    assert attributes[sc.SG_DLP_FINDINGS_PREFIX + "AWS_ACCESS_KEY"] == 1
    assert attributes[sc.SG_DLP_FINDINGS_PREFIX + "EMAIL"] == 1
    assert "[AWS_ACCESS_KEY_1]" in attributes["gen_ai.input.messages"]
    assert secret.encode() not in b"".join(receiver.raw)
