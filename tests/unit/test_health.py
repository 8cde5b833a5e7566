"""Health's answers in-process (mitmproxy's taddons and tflow): /live, /ready and what makes the
proxy not ready. tests/test_health.py asks a real proxy through its port."""

from __future__ import annotations

import json

import pytest
from mitmproxy.test import taddons
from mitmproxy.test import tflow

from shadowgate.stages.health import Health
from shadowgate.stages.settings import ShadowgateSettings


def ask(health: Health, path: str, host: str = "shadowgate.health") -> tuple[int, dict] | None:
    flow = tflow.tflow()
    flow.request.host, flow.request.path = host, path
    health.requestheaders(flow)
    if flow.response is None:
        return None
    assert flow.response.headers["cache-control"] == "no-store"
    return flow.response.status_code, json.loads(flow.response.content)


@pytest.fixture
def settings(tmp_path):
    settings = ShadowgateSettings()
    with taddons.context(settings) as tctx:
        tctx.configure(settings, confdir=str(tmp_path / "conf"), shadowgate_db=str(tmp_path / "h.duckdb"))
        yield settings
        settings.done()


def test_live_answers_even_when_nothing_is_loaded():
    assert ask(Health(ShadowgateSettings()), "/live") == (200, {"status": "live"})


def test_not_ready_without_catalog_or_writer():
    status, body = ask(Health(ShadowgateSettings()), "/")
    assert status == 503 and body["status"] == "degraded"
    assert body["problems"] == ["catalog not loaded", "no writer"]


def test_ready_with_catalog_and_writer(settings):
    status, body = ask(Health(settings), "/ready")
    assert status == 200
    assert body == {"status": "ready", "problems": [], "policy": settings.policy.source, "mode": "enforce", "rules": 0,
                    "rows_written": 0, "rows_dropped": 0, "rows_waiting": 0}  # fmt: skip


def test_a_storage_error_makes_it_not_ready(settings):
    settings.writer.last_error = "disk full"
    status, body = ask(Health(settings), "/")
    assert status == 503 and body["problems"] == ["storage: disk full"]


def test_other_hosts_and_answered_flows_are_left_alone(settings):
    assert ask(Health(settings), "/", host="api.openai.com") is None
    flow = tflow.tflow(resp=True)
    flow.request.host = "shadowgate.health"
    answered = flow.response
    Health(settings).requestheaders(flow)
    assert flow.response is answered
