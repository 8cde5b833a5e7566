"""Health's answers in-process (mitmproxy's taddons and tflow): /live, /ready and what makes the
proxy not ready. tests/test_health.py asks a real proxy through its port."""

from __future__ import annotations

import asyncio
import inspect
import json
import shutil

import pytest
from mitmproxy.test import taddons
from mitmproxy.test import tflow

from shadowgate.stages.decide import Decide
from shadowgate.stages.health import Health
from shadowgate.stages.record import Record
from shadowgate.stages.settings import ShadowgateSettings


def ask(health: Health, path: str, host: str = "shadowgate.health") -> tuple[int, dict] | None:
    flow = tflow.tflow()
    flow.request.host, flow.request.path = host, path
    answer = health.requestheaders(flow)
    if inspect.isawaitable(answer):
        asyncio.run(answer)  # as mitmproxy does: a hook's awaitable is awaited
    if flow.response is None:
        return None
    assert flow.response.headers["cache-control"] == "no-store"
    return flow.response.status_code, json.loads(flow.response.content)


REDIRECT_POLICY = """\
mode: {mode}
rules:
  - id: openai-to-gateway
    match: {{provider: openai}}
    action: redirect
    gateway:
      openai_base_url: https://llm.corp.example/v1
      key_env: SG_TEST_GATEWAY_KEY
"""


@pytest.fixture
def tctx(tmp_path):
    settings = ShadowgateSettings()
    decide = Decide(settings)
    record = Record(settings, decide)  # the writer is Record's; Health reads it through settings
    with taddons.context(settings, decide, record) as tctx:
        tctx.configure(settings, confdir=str(tmp_path / "conf"))
        tctx.configure(record, shadowgate_db=str(tmp_path / "h.duckdb"))
        yield tctx
        record.done()


@pytest.fixture
def settings(tctx):
    return tctx.master.addons.get("shadowgate_settings")


def test_live_answers_even_when_nothing_is_loaded():
    assert ask(Health(ShadowgateSettings()), "/live") == (200, {"status": "live"})


def test_not_ready_without_catalog_or_writer():
    status, body = ask(Health(ShadowgateSettings()), "/")
    assert status == 503 and body["status"] == "degraded"
    assert body["problems"] == ["catalog not loaded", "fingerprint key not loaded", "no writer"]


def test_ready_with_catalog_and_writer(settings):
    status, body = ask(Health(settings), "/ready")
    assert status == 200
    assert body == {"status": "ready", "problems": [], "warnings": [], "policy": settings.policy.source, "mode": "none",
                    "rules": 0, "rows_written": 0, "rows_dropped": 0, "rows_waiting": 0}  # fmt: skip


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


@pytest.fixture
def redirect_policy(tctx, settings, tmp_path, monkeypatch):
    """Loads the redirect policy in the given mode, with its gateway key variable unset."""

    def load(mode: str) -> None:
        policy = tmp_path / f"{mode}.yaml"
        policy.write_text(REDIRECT_POLICY.format(mode=mode))
        monkeypatch.delenv("SG_TEST_GATEWAY_KEY", raising=False)
        tctx.configure(settings, shadowgate_policy=str(policy))

    return load


def test_a_redirect_without_its_gateway_key_is_not_ready(settings, redirect_policy, monkeypatch):
    redirect_policy("enforce")
    status, body = ask(Health(settings), "/ready")
    assert status == 503 and body["status"] == "degraded" and body["mode"] == "enforce"
    assert body["problems"] == [
        "rule openai-to-gateway: gateway key variable SG_TEST_GATEWAY_KEY is not set in the proxy's environment"
    ]
    monkeypatch.setenv("SG_TEST_GATEWAY_KEY", "")  # set but empty: still every call refused
    assert ask(Health(settings), "/")[0] == 503
    monkeypatch.setenv("SG_TEST_GATEWAY_KEY", "sk-corp")
    assert ask(Health(settings), "/") == (200, {**body, "status": "ready", "problems": []})


def test_a_redirect_in_observe_mode_needs_no_key(settings, redirect_policy):
    redirect_policy("observe")
    status, body = ask(Health(settings), "/")
    assert (status, body["mode"], body["rules"], body["problems"]) == (200, "observe", 1, [])


def test_a_storage_folder_that_cannot_be_written_is_not_ready_before_any_row(settings):
    segments = settings.writer.segments
    assert ask(Health(settings), "/")[0] == 200
    shutil.rmtree(segments)
    segments.write_text("not a folder")  # as root, permissions would not stop a write: this does
    try:
        status, body = ask(Health(settings), "/")
        assert status == 503 and body["rows_waiting"] == 0
        assert body["problems"] == [f"storage: cannot write to {segments}: File exists"]
    finally:
        segments.unlink()
    assert ask(Health(settings), "/")[0] == 200  # the probe makes the folder again, as the writer would
