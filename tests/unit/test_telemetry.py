"""Telemetry.configure in-process (mitmproxy's taddons): a bad option is an OptionsError, so
mitmdump refuses to start and a change at run time is rolled back. The configuration rules
themselves (options over environment, off unless enabled) are in tests/test_telemetry.py."""

from __future__ import annotations

import os

import pytest
from mitmproxy.exceptions import OptionsError
from mitmproxy.test import taddons

from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.stages.telemetry import Telemetry


@pytest.fixture
def telemetry_context(monkeypatch):
    for name in [n for n in os.environ if n.startswith("OTEL_")]:
        monkeypatch.delenv(name)
    telemetry = Telemetry(ShadowgateSettings())
    with taddons.context(telemetry) as tctx:
        yield telemetry, tctx
        telemetry.done()


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("shadowgate_otel_traces_exporter", "zipkin", "shadowgate_otel_traces_exporter must be otlp, console"),
        ("shadowgate_otel_endpoint", "localhost:4318", "shadowgate_otel_endpoint must be an http(s):// base URL"),
    ],
)
@pytest.mark.parametrize("enabled", [True, False])
def test_bad_options_are_rejected_whether_on_or_off(telemetry_context, option, value, message, enabled):
    telemetry, tctx = telemetry_context
    with pytest.raises(OptionsError) as e:
        tctx.configure(telemetry, shadowgate_otel_enabled=enabled, **{option: value})
    assert message in str(e.value)
    assert tctx.options.shadowgate_otel_enabled is False and telemetry.config.enabled is False  # rolled back


def test_switched_on_and_off_at_run_time(telemetry_context):
    telemetry, tctx = telemetry_context
    tctx.configure(telemetry, shadowgate_otel_enabled=True, shadowgate_otel_traces_exporter="console",
                   shadowgate_otel_metrics_exporter="none")  # fmt: skip
    assert telemetry.config.enabled and telemetry.config.traces == ("console",) and telemetry.config.metrics == ()
    tctx.configure(telemetry, shadowgate_otel_enabled=False)
    assert telemetry.config.enabled is False
