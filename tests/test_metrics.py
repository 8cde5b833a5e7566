"""Prometheus metrics through the proxy port (http://shadowgate.health/metrics), against a real
mitmdump: the text format, requests by decision, DLP actions, the SIEM feed, policy reloads, the
writer's numbers; and the Grafana dashboard's queries name only metrics that exist."""

from __future__ import annotations

import json
import os
import re
import time
import types
from pathlib import Path

import httpx

from shadowgate.events.metrics import LogCounter
from shadowgate.events.metrics import Metrics
from shadowgate.events.metrics import exposition
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import AiRequest
from tests.support.receivers import wait_for
from tests.test_redact import PROMPT

ROOT = Path(__file__).resolve().parent.parent
# Exposition format 0.0.4: a sample is NAME{LABEL="VALUE",...} NUMBER
SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*",?)*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse(text: str) -> dict[tuple[str, frozenset], float]:
    """Every sample, checking the format: HELP and TYPE before a metric's samples, numbers that parse."""
    samples: dict[tuple[str, frozenset], float] = {}
    typed: set[str] = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            name, kind = line.split()[2:4]
            assert kind in ("counter", "gauge") and name not in typed, line
            typed.add(name)
            continue
        if line.startswith("# HELP "):
            continue
        m = SAMPLE.match(line)
        assert m and m[1] in typed, f"not a valid sample line: {line!r}"
        samples[(m[1], frozenset(LABEL.findall(m[2] or "")))] = float(m[3])
    return samples


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def scrape(proxy) -> dict:
    with httpx.Client(proxy=proxy.url("metrics")) as client:
        response = client.get("http://shadowgate.health/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    return parse(response.text)


POLICY = """\
rules:
  - id: block-deepseek
    match: {provider: deepseek}
    action: block
dlp: {secrets: block, pii: log}
"""
BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_the_metrics_count_what_a_real_proxy_did(proxy, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    siem = tmp_path / "siem.jsonl"
    before = scrape(proxy)
    with proxy.options(shadowgate_policy=str(policy), shadowgate_siem=[f"json:{siem}"]):
        with proxy.client("metrics-user") as client:
            for _ in range(2):
                assert client.post("https://api.openai.com/v1/chat/completions", json=BODY).status_code == 200
            assert client.post("https://api.deepseek.com/v1/chat/completions", json=BODY).status_code == 403
            secret = {**BODY, "messages": [{"role": "user", "content": PROMPT}]}
            assert client.post("https://api.openai.com/v1/chat/completions", json=secret).status_code == 403
        reloads = value(scrape(proxy), "shadowgate_policy_reloads_total")

        # Decide reloads a changed file; the metrics count every policy put in force.
        policy.write_text(POLICY + "\n# edited\n")
        os.utime(policy, (time.time() + 5, time.time() + 5))

        def reloaded_and_sent() -> dict | None:
            samples = scrape(proxy)
            done = value(samples, "shadowgate_policy_reloads_total") > reloads
            return samples if done and value(samples, "shadowgate_siem_events_sent_total") >= 2 else None

        after = wait_for(reloaded_and_sent, what="the policy reload and the SIEM lines")

    def grew(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert (
        grew("shadowgate_requests_total", provider="openai", decision="allow") == 3
    )  # the DLP block is allowed by policy
    assert grew("shadowgate_requests_total", provider="deepseek", decision="block") == 1
    assert grew("shadowgate_dlp_actions_total", action="block") == 1
    assert grew("shadowgate_siem_events_sent_total") == 2  # the block and the DLP block
    assert value(after, "shadowgate_policy_reloads_total") >= 2  # the option set, then the edit
    assert value(after, "shadowgate_ready") == 1
    assert value(after, "shadowgate_rows_written_total") >= value(before, "shadowgate_rows_written_total")
    assert value(after, "shadowgate_storage_bytes") > 0
    assert ("shadowgate_writer_lag_seconds", frozenset()) in after
    assert value(after, "shadowgate_rows_dropped_total") == 0
    assert [json.loads(line)["event"]["action"] for line in siem.read_text().splitlines()] == ["block", "dlp_block"]


def test_exposition_escapes_labels_and_counts_rows_and_logs():
    import logging

    m = Metrics()
    m.row_submitted(AI_REQUESTS.name, AiRequest(provider='we"ird\\', decision="would_block", inspected=False))
    m.row_submitted(
        AI_REQUESTS.name, AiRequest(provider="openai", decision="allow", inspected=True, dlp_action="redact")
    )
    counter = LogCounter()
    logger = logging.getLogger("test-metrics")
    logger.addHandler(counter)
    try:
        logger.error("boom")
        logger.warning("hm")
        logger.info("not counted")
    finally:
        logger.removeHandler(counter)
    m.logs = counter
    samples = parse(exposition(m, False, None, {}))
    assert value(samples, "shadowgate_requests_total", provider='we\\"ird\\\\', decision="would_block") == 1
    assert value(samples, "shadowgate_not_inspected_total", provider='we\\"ird\\\\') == 1
    assert value(samples, "shadowgate_dlp_actions_total", action="redact") == 1
    assert value(samples, "shadowgate_log_errors_total", level="error") == 1
    assert value(samples, "shadowgate_log_errors_total", level="warning") == 1
    assert value(samples, "shadowgate_ready") == 0


def test_writer_lag_grows_only_while_rows_wait_without_progress(monkeypatch):
    # A clock of our own: on a loaded CI machine even "just now" took over 10 ms of wall time.
    clock = [1000.0]
    monkeypatch.setattr("shadowgate.events.metrics.time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    m = Metrics()
    assert m.writer_lag(10, 0) == 0
    assert m.writer_lag(10, 5) == 0  # progress was just seen
    clock[0] += 0.5
    assert m.writer_lag(10, 5) == 0.5
    assert m.writer_lag(15, 5) == 0


def test_the_grafana_dashboard_queries_metrics_that_exist():
    dashboard = json.loads((ROOT / "deploy" / "grafana-shadowgate.json").read_text())
    text = exposition(Metrics(), True, None, {})
    ours_names = set(re.findall(r"^# TYPE (\S+)", text, re.M)) | {
        "shadowgate_rows_written_total",
        "shadowgate_rows_dropped_total",
        "shadowgate_writer_backlog_rows",
        "shadowgate_writer_lag_seconds",
        "shadowgate_storage_bytes",
    }  # fmt: skip  (the writer's, present when a writer is)
    otel = {"gen_ai_client_token_usage_sum", "gen_ai_client_operation_duration_seconds_bucket",
            "gen_ai_client_operation_time_to_first_chunk_seconds_bucket"}  # fmt: skip
    named = set()
    for panel in dashboard["panels"]:
        for target in panel["targets"]:
            expr = re.sub(r"by \([^)]*\)", "", target["expr"])  # grouping labels are not metrics
            named |= set(re.findall(r"\b((?:shadowgate|gen_ai)_[a-z_]+)\b", expr))
    assert named - ours_names - otel == set(), named - ours_names - otel
    assert {"shadowgate_requests_total", "shadowgate_dlp_actions_total", "shadowgate_policy_reloads_total"} <= named
    assert named & otel == otel
