"""`shadowgate report`: exact numbers for every section over a small database of known rows."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from shadowgate.report import period as periods
from shadowgate.report import render
from shadowgate.report import weekly
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.store import SegmentWriter
from tests.test_meter import CASES
from tests.test_meter import send_case

SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")
POLICY = """
rules:
  - id: allow-openai
    match: {provider: openai}
    action: allow
  - id: block-deepseek
    match: {provider: deepseek}
    action: block
  - id: coach-chat
    match: {category: chat-web}
    action: coach
"""


def row(ts: str, user: str, group: str, provider: str, host: str, **kw) -> tuple:
    values = {name: None for name in AI_REQUESTS.column_names}
    values.update(
        ts=dt.datetime.fromisoformat(ts),
        request_id=f"{user}-{ts}",
        client_ip="10.0.0.1",
        user_name=user,
        user_group=group,
        host=host,
        site=host,
        provider=provider,
        wire_format="openai-chat",
        method="POST",
        path="/v1/chat/completions",
        status_code=200,
        decision="allow",
        inspected=True,
        usage_estimated=False,
        proxy_overhead_us=10,
    )
    values.update(kw)
    return tuple(values[name] for name in AI_REQUESTS.column_names)


def tokens(i: int, o: int, cost: float | None) -> dict:
    return {"input_tokens": i, "output_tokens": o, "cost_usd": cost}


OAI, DS, CG, ANT = "api.openai.com", "api.deepseek.com", "chatgpt.com", "api.anthropic.com"
ROWS = [
    # --- 2026-W47 (Mon 2026-11-16 .. Sun 2026-11-22): the report's week --------------------------------
    row(
        "2026-11-16 10:00:00",
        "alice",
        "eng",
        "openai",
        OAI,
        category="api",
        model="gpt-4o",
        **tokens(100, 50, 0.01),
        key_fingerprint="hmac:k1",
        key_kind="openai-project",
        account_hint="org=org-corp",
    ),
    row(
        "2026-11-17 09:00:00",
        "alice",
        "eng",
        "openai",
        OAI,
        category="api",
        model="gpt-4o",
        **tokens(200, 100, 0.02),
        key_fingerprint="hmac:k1",
        key_kind="openai-project",
        account_hint="org=org-corp",
    ),
    row(
        "2026-11-17 11:00:00",
        "bob",
        "eng",
        "deepseek",
        DS,
        category="api",
        model="deepseek-chat",
        decision="block",
        rule_id="block-deepseek",
        key_fingerprint="hmac:k2",
        key_kind="sk",
    ),
    row(
        "2026-11-18 08:00:00", "bob", "eng", "chatgpt", CG, category="chat-web", decision="coach", rule_id="coach-chat"
    ),
    row(
        "2026-11-18 12:00:00",
        "carol",
        "sales",
        "unknown",
        "llm.lab.example",
        site="lab.example",
        model="llama-3-70b",
        **tokens(300, 30, None),
        dlp_findings="EMAIL:2,PHONE:1",
        dlp_action="redact",
    ),
    row(
        "2026-11-19 12:00:00",
        "carol",
        "sales",
        "anthropic",
        ANT,
        category="api",
        model="claude-new",
        **tokens(1000, 500, 0.5),
        dlp_findings="EMAIL:1",
        dlp_action="redact",
        budget_status="daily-tokens:tokens:85%",
        key_fingerprint="hmac:k3",
        key_kind="anthropic-api",
        wire_format="anthropic-messages",
    ),
    row(
        "2026-11-20 12:00:00",
        "dave",
        "sales",
        "anthropic",
        ANT,
        category="api",
        model="claude-3-haiku",
        **tokens(10, 5, 0.001),
        decision="rate_limit",
        rule_id="rpm-sales",
        budget_status="daily-tokens:tokens:95%",
        key_fingerprint="hmac:k3",
        key_kind="anthropic-api",
        wire_format="anthropic-messages",
    ),
    row(
        "2026-11-22 23:59:59",
        "erin",
        "ops",
        "anthropic",
        ANT,
        category="api",
        inspected=False,
        inspect_note="pinned",
        wire_format=None,
    ),
    # --- outside: the next week, the previous week (W46), and older history ---------------------------
    row("2026-11-23 00:00:00", "alice", "eng", "openai", OAI, category="api", model="gpt-5", **tokens(1, 1, 1.0)),
    row("2026-11-10 10:00:00", "alice", "eng", "openai", OAI, category="api", model="gpt-4o", **tokens(100, 100, 0.05)),
    row(
        "2026-11-12 10:00:00",
        "bob",
        "eng",
        "deepseek",
        DS,
        category="api",
        model="deepseek-chat",
        **tokens(10, 10, 0.001),
    ),
    row("2026-11-15 23:59:59", "alice", "eng", "openai", OAI, category="api", model="gpt-4o", **tokens(50, 50, 0.01)),
    row(
        "2026-11-02 10:00:00",
        "dave",
        "sales",
        "anthropic",
        ANT,
        category="api",
        model="claude-3-haiku",
        **tokens(5, 5, 0.0),
    ),
]
EVENTS = [
    (dt.datetime(2026, 11, 18, 8, 1), "coach_continue", "bob", "eng", "10.0.0.1", CG, "chatgpt", "coach-chat", None),
    (dt.datetime(2026, 11, 11, 8, 1), "coach_continue", "bob", "eng", "10.0.0.1", CG, "chatgpt", "coach-chat", None),
]


def write_db(
    db: Path, rows: list[tuple], events: list[tuple] = (), instance: str | None = None, mcp: list[tuple] = ()
) -> Path:
    writer = SegmentWriter(db, [AI_REQUESTS, POLICY_EVENTS, *([MCP_CALLS] if mcp else [])], flush_interval=0.05)
    if instance:
        writer._instance = instance  # two proxies on two hosts; in one process they could share a name
    writer.start()
    for r in rows:
        writer.submit("ai_requests", r)
    for e in events:
        writer.submit("policy_events", e)
    for m in mcp:
        writer.submit("mcp_calls", m)
    assert writer.flush()
    writer.close()
    return db


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("report")
    policy = folder / "policy.yaml"
    policy.write_text(textwrap.dedent(POLICY))
    return write_db(folder / "sg.duckdb", ROWS, EVENTS), policy


def args_for(db: Path, policy: Path | None = None, **kw) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    weekly.add_arguments(parser)
    argv = ["--db", str(db)] + (["--policy", str(policy)] if policy else [])
    for key, value in kw.items():
        argv += [f"--{key}", str(value)]
    return parser.parse_args(argv)


def report_json(db: Path, policy: Path | None = None, **kw) -> dict:
    report = weekly.make_report(args_for(db, policy, **kw))
    return json.loads(render.to_json(report))


@pytest.fixture(scope="module")
def doc(data) -> dict:
    return report_json(*data, week="2026-W47")


# --- the period ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "today, label, start",
    [
        (dt.date(2026, 11, 25), "2026-W47", dt.date(2026, 11, 16)),  # a Wednesday: the week before
        (dt.date(2026, 11, 23), "2026-W47", dt.date(2026, 11, 16)),  # Monday: the week just ended
        (dt.date(2026, 11, 22), "2026-W46", dt.date(2026, 11, 9)),  # Sunday: the week is not complete
        (dt.date(2027, 1, 1), "2026-W52", dt.date(2026, 12, 21)),  # inside 2026-W53
    ],
)
def test_default_period_is_the_last_complete_iso_week(today, label, start):
    period = weekly.choose_period(args_for(Path("x")), today)
    assert (period.label, period.start, period.days) == (label, start, 7)
    assert period.previous().start == start - dt.timedelta(days=7)


def test_week_and_dates_periods():
    assert periods.week_period("2026-w1").start == dt.date(2025, 12, 29)
    p = weekly.choose_period(args_for(Path("x"), since="2026-11-16", until="2026-11-18"))
    assert (p.start, p.end, p.previous().start, p.previous().end) == (
        dt.date(2026, 11, 16),
        dt.date(2026, 11, 19),
        dt.date(2026, 11, 13),
        dt.date(2026, 11, 16),
    )
    with pytest.raises(ValueError):
        weekly.choose_period(args_for(Path("x"), week="2026-W47", since="2026-11-16"))
    with pytest.raises(ValueError):
        periods.week_period("2026-47")


def test_period_and_source(doc):
    assert doc["period"] == {
        "label": "2026-W47",
        "since": "2026-11-16",
        "until": "2026-11-22",
        "previous_since": "2026-11-09",
        "previous_until": "2026-11-15",
    }
    assert doc["source"] == "database"


# --- every section, exactly ----------------------------------------------------------------------------------


def test_headline_with_change_against_previous_week(doc):
    h = doc["headline"]
    assert {
        k: (v["value"], v["previous"], v["change"])
        for k, v in h.items()
        if k != "cost_usd" and not k.endswith("_share")
    } == {
        "active_users": (5, 2, 3),
        "requests": (8, 3, 5),  # the rows at 2026-11-22 23:59:59 and 2026-11-15 23:59:59 count, 11-23 00:00 not
        "tokens": (2295, 320, 1975),
        "apps": (5, 2, 3),
    }
    assert h["requests"]["change_pct"] == 166.7
    assert h["cost_usd"]["value"] == pytest.approx(0.531)
    assert h["cost_usd"]["previous"] == pytest.approx(0.061)
    assert h["cost_usd"]["change_pct"] == 770.5
    # Issue 18: only deepseek (blocked) and chatgpt (coached) are unapproved; anthropic and the lab
    # endpoint, named by no rule, are unknown (they used to count as unapproved: 0.75).
    assert h["unapproved_share"]["value"] == 0.25
    assert h["unknown_share"]["value"] == 0.5
    assert h["unapproved_share"]["previous"] == pytest.approx(1 / 3, abs=1e-6)


def test_apps_table(doc):
    apps = {a["app"]: a for a in doc["apps"]}
    assert [a["app"] for a in doc["apps"]] == ["anthropic", "openai", "chatgpt", "deepseek", "unknown:lab.example"]
    assert {
        k: apps["anthropic"][k] for k in ("name", "category", "status", "users", "requests", "tokens", "first_seen")
    } == {
        "name": "Anthropic API",
        "category": "api",
        "status": "unknown",
        "users": 3,
        "requests": 3,
        "tokens": 1515,
        "first_seen": "2026-11-02",
    }
    assert apps["anthropic"]["cost_usd"] == pytest.approx(0.501)
    assert apps["anthropic"]["notes"].startswith("API data not used for training")
    assert (apps["openai"]["status"], apps["openai"]["first_seen"], apps["openai"]["cost_usd"]) == (
        "sanctioned",
        "2026-11-10",
        0.03,
    )
    assert (apps["deepseek"]["status"], apps["deepseek"]["blocked"], apps["deepseek"]["first_seen"]) == (
        "unapproved",
        1,
        "2026-11-12",
    )
    assert (apps["chatgpt"]["status"], apps["chatgpt"]["coached"], apps["chatgpt"]["cost_usd"]) == (
        "unapproved",
        1,
        None,
    )
    assert (apps["unknown:lab.example"]["status"], apps["unknown:lab.example"]["category"]) == ("unknown", None)
    assert sum(a["blocked"] + a["coached"] + a["redirected"] for a in doc["apps"]) == 2


def test_new_this_period(doc):
    new = doc["new"]
    assert [(a["app"], a["first_seen"], a["status"]) for a in new["apps"]] == [
        ("chatgpt", "2026-11-18", "unapproved"),
        ("unknown:lab.example", "2026-11-18", "unknown"),
    ]
    assert new["unknown_endpoints"] == [
        {
            "site": "lab.example",
            "host": "llm.lab.example",
            "wire_formats": "openai-chat",
            "users": 1,
            "requests": 1,
            "first_seen": "2026-11-18",
            "new": True,
        }
    ]
    assert new["models"] == [
        {"model": "llama-3-70b", "app": "unknown:lab.example", "first_seen": "2026-11-18", "users": 1, "requests": 1},
        {"model": "claude-new", "app": "anthropic", "first_seen": "2026-11-19", "users": 1, "requests": 1},
    ]


def test_unapproved_by_user_and_group(doc):
    users = doc["unapproved"]["users"]
    assert [(u["user"], u["group"], u["requests"], u["apps"], u["tokens"], u["main_apps"]) for u in users] == [
        ("bob", "eng", 2, 2, 0, ["chatgpt", "deepseek"]),
        ("carol", "sales", 2, 2, 1830, ["anthropic", "unknown:lab.example"]),
        ("dave", "sales", 1, 1, 15, ["anthropic"]),
        ("erin", "ops", 1, 1, 0, ["anthropic"]),
    ]
    assert [u["cost_usd"] for u in users] == [None, 0.5, 0.001, None]
    groups = doc["unapproved"]["groups"]
    assert [(g["group"], g["users"], g["requests"], g["apps"], g["main_apps"]) for g in groups] == [
        ("sales", 2, 3, 2, ["anthropic", "unknown:lab.example"]),
        ("eng", 1, 2, 2, ["chatgpt", "deepseek"]),
        ("ops", 1, 1, 1, ["anthropic"]),
    ]


def test_top_n_limits_the_unapproved_tables(data):
    doc = report_json(*data, week="2026-W47", top=2)
    assert [u["user"] for u in doc["unapproved"]["users"]] == ["bob", "carol"]
    assert [u["user"] for u in doc["cost"]["top_spenders"]] == ["carol", "alice"]


def test_cost_and_tokens(doc):
    cost = doc["cost"]
    assert [
        (p["provider"], p["requests"], p["input_tokens"], p["output_tokens"], p["tokens"], p["cost_usd"], p["unpriced"])
        for p in cost["by_provider"]
    ] == [
        ("anthropic", 3, 1010, 505, 1515, 0.501, 0),
        ("openai", 2, 300, 150, 450, 0.03, 0),
        ("unknown", 1, 300, 30, 330, None, 1),
        ("chatgpt", 1, None, None, 0, None, 0),
        ("deepseek", 1, None, None, 0, None, 0),
    ]
    assert [(m["model"], m["requests"], m["cost_usd"]) for m in cost["by_model"]][:3] == [
        ("claude-new", 1, 0.5),
        ("gpt-4o", 2, 0.03),
        ("claude-3-haiku", 1, 0.001),
    ]
    assert [(g["group"], g["requests"], g["tokens"], g["cost_usd"]) for g in cost["by_group"]] == [
        ("sales", 3, 1845, 0.501),
        ("eng", 4, 450, 0.03),
        ("ops", 1, 0, None),
    ]
    assert [(u["user"], u["tokens"]) for u in cost["by_user"]] == [
        ("carol", 1830),
        ("alice", 450),
        ("dave", 15),
        ("bob", 0),
        ("erin", 0),
    ]
    assert [(u["user"], u["cost_usd"]) for u in cost["top_spenders"]] == [
        ("carol", 0.5),
        ("alice", 0.03),
        ("dave", 0.001),
        ("bob", None),
        ("erin", None),
    ]
    assert [(d["day"], d["requests"], d["users"], d["tokens"]) for d in cost["daily"]] == [
        ("2026-11-16", 1, 1, 150),
        ("2026-11-17", 2, 2, 300),
        ("2026-11-18", 2, 2, 330),
        ("2026-11-19", 1, 1, 1500),
        ("2026-11-20", 1, 1, 15),
        ("2026-11-22", 1, 1, 0),
    ]
    assert sum(d["requests"] for d in cost["daily_by_app"]) == 8


def test_dlp_counts_never_values(doc):
    assert doc["dlp"]["by_type"] == [
        {"type": "EMAIL", "requests": 2, "findings": 3, "users": 1},
        {"type": "PHONE", "requests": 1, "findings": 1, "users": 1},
    ]
    assert doc["dlp"]["by_app"] == [
        {
            "app": "unknown:lab.example",
            "requests": 1,
            "findings": 3,
            "users": 1,
            "redacted": 1,
            "blocked": 0,
            "logged": 0,
            "errors": 0,
        },
        {
            "app": "anthropic",
            "requests": 1,
            "findings": 1,
            "users": 1,
            "redacted": 1,
            "blocked": 0,
            "logged": 0,
            "errors": 0,
        },
    ]


def test_blind_spots_keys_budgets_and_events(doc):
    assert doc["blind_spots"] == [
        {
            "host": ANT,
            "provider": "anthropic",
            "inspect_note": "pinned",
            "rule": "-",
            "requests": 1,
            "users": 1,
            "first_day": "2026-11-22",
            "last_day": "2026-11-22",
        }
    ]
    keys = [
        (k["provider"], k["key_fingerprint"], k["key_kind"], k["users"], k["user_names"], k["hint"], k["requests"])
        for k in doc["keys"]
    ]
    assert keys == [
        ("anthropic", "hmac:k3", "anthropic-api", 2, ["carol", "dave"], "shared key", 2),
        ("deepseek", "hmac:k2", "sk", 1, ["bob"], "personal?", 1),
        ("openai", "hmac:k1", "openai-project", 1, ["alice"], "corporate (org/project id)", 2),
    ]
    assert doc["budget"]["near_limit"] == [
        {
            "user": "dave",
            "group": "sales",
            "budget": "daily-tokens",
            "unit": "tokens",
            "max_percent": 95,
            "requests": 1,
            "last_day": "2026-11-20",
        },
        {
            "user": "carol",
            "group": "sales",
            "budget": "daily-tokens",
            "unit": "tokens",
            "max_percent": 85,
            "requests": 1,
            "last_day": "2026-11-19",
        },
    ]
    assert doc["budget"]["rate_limited"] == [
        {"user": "dave", "group": "sales", "budgets": "rpm-sales", "requests": 1, "last_day": "2026-11-20"}
    ]
    assert doc["policy_events"] == [{"event": "coach_continue", "provider": "chatgpt", "events": 1, "users": 1}]


def test_since_until_period_and_its_previous(data):
    doc = report_json(*data, since="2026-11-16", until="2026-11-18")
    assert (doc["headline"]["requests"]["value"], doc["headline"]["requests"]["previous"]) == (5, 1)
    assert doc["period"]["previous_since"] == "2026-11-13"


def test_without_policy_nothing_is_sanctioned(data):
    doc = report_json(data[0], week="2026-W47")
    assert {a["status"] for a in doc["apps"]} == {"unknown"}
    # Issue 18: without a policy the share unapproved is unknown (it was 1.0), and everything is unknown.
    assert doc["headline"]["unapproved_share"]["value"] is None
    assert doc["headline"]["unknown_share"]["value"] == 1.0


def test_week_without_traffic_and_empty_database(data, tmp_path):
    doc = report_json(*data, week="2026-W40")
    assert doc["headline"]["requests"] == {"value": 0, "previous": 0, "change": 0, "change_pct": None}
    assert doc["apps"] == [] and doc["cost"]["daily"] == []
    empty = write_db(tmp_path / "empty.duckdb", [])
    assert report_json(empty, week="2026-W47")["headline"]["active_users"]["value"] == 0


# --- MCP ----------------------------------------------------------------------------------------------------

GH, JIRA = "mcp.github.test", "mcp.jira.test"


def mcp_row(ts: str, user: str, group: str, host: str, method: str, tool: str | None = None, **kw) -> tuple:
    values = {name: None for name in MCP_CALLS.column_names}
    values.update(
        ts=dt.datetime.fromisoformat(ts),
        request_id=f"{user}-{ts}-{tool}",
        user_name=user,
        user_group=group,
        client_ip="10.0.0.2",
        host=host,
        server_name=host.split(".")[1],
        session_id=f"{user}-{host}",
        method=method,
        tool_name=tool,
        is_error=False,
        latency_ms=10.0,
        decision="allow",
        rule_id="mcp:" + host.split(".")[1],
        transport="streamable-http",
    )
    values.update(kw)
    return tuple(values[name] for name in MCP_CALLS.column_names)


MCP_ROWS = [
    mcp_row("2026-11-16 09:00:00", "alice", "eng", GH, "initialize"),
    mcp_row("2026-11-16 09:00:01", "alice", "eng", GH, "tools/list", decision="filter", rule_id="mcp:github:tools"),
    mcp_row("2026-11-16 09:00:02", "alice", "eng", GH, "tools/call", "search_code", latency_ms=20.0),
    mcp_row(
        "2026-11-17 09:00:02",
        "alice",
        "eng",
        GH,
        "tools/call",
        "search_code",
        latency_ms=40.0,
        dlp_findings="AWS_ACCESS_KEY:1",
        dlp_action="redact",
    ),
    mcp_row(
        "2026-11-17 10:00:00",
        "bob",
        "eng",
        GH,
        "tools/call",
        "merge_pr",
        decision="block",
        rule_id="mcp:github:tools",
        is_error=True,
    ),
    mcp_row("2026-11-18 10:00:00", "sam", "sre", GH, "tools/call", "merge_pr", rule_id="mcp:github-sre"),
    mcp_row(
        "2026-11-18 11:00:00",
        "bob",
        "eng",
        JIRA,
        "tools/call",
        "get_issue",
        transport="sse",
        injection_flags="instruction,exfil_url",
        dlp_findings="EMAIL:2",
        dlp_action="log",
    ),
    mcp_row(
        "2026-11-19 11:00:00",
        "carol",
        "sales",
        JIRA,
        "tools/call",
        "get_issue",
        decision="block",
        rule_id="mcp:jira:injection",
        injection_flags="instruction",
        is_error=True,
    ),
    mcp_row("2026-11-25 11:00:00", "carol", "sales", JIRA, "tools/call", "outside_the_week"),
]


@pytest.fixture(scope="module")
def mcp_doc(tmp_path_factory) -> dict:
    db = write_db(tmp_path_factory.mktemp("mcp-report") / "sg.duckdb", ROWS[:2], mcp=MCP_ROWS)
    return report_json(db, week="2026-W47")


def test_mcp_sections(mcp_doc):
    mcp = mcp_doc["mcp"]
    assert [
        (
            s["host"],
            s["server_name"],
            s["calls"],
            s["tool_calls"],
            s["users"],
            s["sessions"],
            s["blocked"],
            s["errors"],
            s["transports"],
        )
        for s in mcp["servers"]
    ] == [
        (GH, "github", 6, 4, 3, 3, 1, 1, "streamable-http"),
        (JIRA, "jira", 2, 2, 2, 2, 1, 1, "sse, streamable-http"),
    ]
    assert [(t["host"], t["tool"], t["calls"], t["users"], t["blocked"], t["median_ms"]) for t in mcp["tools"]] == [
        (GH, "merge_pr", 2, 2, 1, 10.0),
        (GH, "search_code", 2, 1, 0, 30.0),
        (JIRA, "get_issue", 2, 2, 1, 10.0),
    ]
    assert [
        (u["user"], u["group"], u["calls"], u["tool_calls"], u["servers"], u["tools"], u["blocked"])
        for u in mcp["users"]
    ] == [
        ("alice", "eng", 4, 2, 1, 1, 0),
        ("bob", "eng", 2, 2, 2, 2, 1),
        ("carol", "sales", 1, 1, 1, 1, 1),
        ("sam", "sre", 1, 1, 1, 1, 0),
    ]
    assert mcp["denials"] == [
        {"rule_id": "mcp:github:tools", "decision": "block", "calls": 1, "users": 1, "tools": ["merge_pr"]},
        {"rule_id": "mcp:github:tools", "decision": "filter", "calls": 1, "users": 1, "tools": []},
        {"rule_id": "mcp:jira:injection", "decision": "block", "calls": 1, "users": 1, "tools": ["get_issue"]},
    ]
    assert mcp["injection"] == [
        {"flag": "instruction", "calls": 2, "servers": 1, "users": 2, "blocked": 1},
        {"flag": "exfil_url", "calls": 1, "servers": 1, "users": 1, "blocked": 0},
    ]
    assert mcp["dlp"] == [
        {"type": "EMAIL", "calls": 1, "findings": 2, "users": 1, "redacted": 0, "blocked": 0, "logged": 1},
        {"type": "AWS_ACCESS_KEY", "calls": 1, "findings": 1, "users": 1, "redacted": 1, "blocked": 0, "logged": 0},
    ]


def test_mcp_in_every_format(tmp_path):
    db = tmp_path / "sg.duckdb"
    write_db(db, ROWS[:2], mcp=MCP_ROWS)
    for fmt in ("md", "html", "rich"):
        out = tmp_path / f"r.{fmt}"
        assert weekly.run_report(args_for(db, week="2026-W47", format=fmt, out=out)) == 0
        text = out.read_text()
        assert "MCP servers" in text and "MCP: top 10 tools" in text and "mcp:jira:injection" in text, fmt
        assert "merge_pr" in text and "AWS_ACCESS_KEY" in text
    assert "| mcp.github.test | github | 6 | 4 | 3 | 3 | 1 | 1 | streamable-http |" in (tmp_path / "r.md").read_text()
    folder = tmp_path / "csv"
    assert weekly.run_report(args_for(db, week="2026-W47", format="csv", out=str(folder) + "/")) == 0
    servers = list(csv.DictReader((folder / "mcp.servers.csv").open()))
    assert [(r["host"], r["calls"]) for r in servers] == [(GH, "6"), (JIRA, "2")]
    assert {"mcp.tools.csv", "mcp.users.csv", "mcp.denials.csv", "mcp.injection.csv", "mcp.dlp.csv"} <= {
        p.name for p in folder.iterdir()
    }


def test_no_mcp_traffic_reads_as_none(doc, data, tmp_path):
    assert doc["mcp"] == {"servers": [], "tools": [], "users": [], "denials": [], "injection": [], "dlp": []}
    md = tmp_path / "r.md"
    assert weekly.run_report(args_for(*data, week="2026-W47", format="md", out=md)) == 0
    assert "## MCP servers\n\n_none_" in md.read_text()
    # Data from before mcp_calls had its newer columns: they read as NULL.
    old = tmp_path / "old.duckdb"
    writer = SegmentWriter(old, [AI_REQUESTS, POLICY_EVENTS], flush_interval=0.05)
    writer.start()
    writer.close()
    from shadowgate.storage.store import Table

    legacy = Table("mcp_calls", MCP_CALLS.columns[:19])
    writer = SegmentWriter(old, [legacy], flush_interval=0.05)
    writer.start()
    writer.submit("mcp_calls", MCP_ROWS[2][:19])
    assert writer.flush()
    writer.close()
    mcp = report_json(old, week="2026-W47")["mcp"]
    assert [(s["host"], s["calls"], s["transports"]) for s in mcp["servers"]] == [(GH, 1, None)]
    assert mcp["dlp"] == []


# --- formats ------------------------------------------------------------------------------------------------


def test_html_is_self_contained_with_svg_charts(data, tmp_path):
    out = tmp_path / "r.html"
    assert weekly.run_report(args_for(*data, week="2026-W47", format="html", out=out)) == 0
    text = out.read_text()
    assert text.count("<svg") == 3 and "<rect" in text
    assert "<script" not in text and "<link" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert not re.search(r"url\(", text)
    assert "Daily requests by app" in text and "Top users of apps not sanctioned" in text  # renamed (issue 18)
    assert "unknown:lab.example" in text and "hmac:k3" in text


def test_markdown_and_csv_render(data, tmp_path):
    md = tmp_path / "r.md"
    assert weekly.run_report(args_for(*data, week="2026-W47", format="md", out=md)) == 0
    text = md.read_text()
    assert text.startswith("# Shadow-AI report 2026-W47")
    assert "| Requests | 8 | 3 | +5 (+166.7%) |" in text
    assert "## DLP findings by type" in text and "| EMAIL | 2 | 3 | 1 |" in text
    one = tmp_path / "apps.csv"
    assert weekly.run_report(args_for(*data, week="2026-W47", format="csv", out=one)) == 0
    rows = list(csv.DictReader(one.open()))
    assert [r["app"] for r in rows][:2] == ["anthropic", "openai"] and rows[0]["requests"] == "3"
    folder = tmp_path / "csv"
    folder.mkdir()
    assert weekly.run_report(args_for(*data, week="2026-W47", format="csv", out=folder)) == 0
    names = sorted(p.name for p in folder.iterdir())
    assert {"headline.csv", "apps.csv", "new.models.csv", "cost.daily.csv", "dlp.by_type.csv", "keys.csv"} <= set(names)
    users = list(csv.DictReader((folder / "unapproved.users.csv").open()))
    assert users[1]["main_apps"] == "anthropic;unknown:lab.example"


def test_rich_renders(data, tmp_path):
    out = tmp_path / "r.txt"
    assert weekly.run_report(args_for(*data, week="2026-W47", format="rich", out=out)) == 0
    text = out.read_text()
    assert "Headline" in text and "AI apps" in text and "Key inventory" in text
    assert any(ch in text for ch in render.SPARKS[1:])
    assert render.sparkline([0, 5, 10]) == "▁▅█"


def test_missing_database_is_an_error(tmp_path, capsys):
    assert weekly.run_report(args_for(tmp_path / "nope.duckdb", format="json")) == 1
    assert "no shadowgate data" in capsys.readouterr().err


# --- next to other processes ----------------------------------------------------------------------------------


def test_report_reads_segments_while_another_process_holds_the_database(data):
    db, policy = data
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True); time.sleep(60)",
            str(db),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        doc = report_json(db, policy, week="2026-W47")
    finally:
        holder.kill()
        holder.wait()
    assert doc["source"] == "segments"
    assert doc["headline"]["requests"]["value"] == 8
    assert [a["app"] for a in doc["apps"]][:2] == ["anthropic", "openai"]


def test_two_instances_data_is_read_as_one(tmp_path):
    db = tmp_path / "two.duckdb"
    write_db(db, ROWS[:4], instance="proxy-a")
    write_db(db, ROWS[4:], instance="proxy-b")
    files = (tmp_path / "two.segments" / "ai_requests").glob("day=2026-11-*/*.parquet")
    assert {f.name.split("-")[1] for f in files} == {"a", "b"}
    assert report_json(db, week="2026-W47")["headline"]["requests"]["value"] == 8


def test_after_retention_the_report_is_the_same_from_daily_totals(data, tmp_path):
    import shutil

    from shadowgate.storage.schema import AI_REQUESTS_DAILY
    from shadowgate.storage.store import drop_expired_days
    from shadowgate.storage.store import summarise_closed_days

    db, policy = data
    shutil.copytree(db.with_name("sg.segments"), tmp_path / "sg.segments")
    segments = tmp_path / "sg.segments"
    before = report_json(segments, policy, week="2026-W47")
    assert summarise_closed_days(segments, AI_REQUESTS_DAILY, dt.date(2026, 11, 28)) == len({r[0].date() for r in ROWS})
    assert drop_expired_days(segments, "ai_requests", dt.date(2026, 11, 23), AI_REQUESTS_DAILY) == 10
    left = sorted(f.name for f in (segments / "ai_requests").glob("day=*"))
    assert left == ["day=1970-01-01", "day=2026-11-23"]  # detail only from the retention cut-off on
    after = report_json(segments, policy, week="2026-W47")
    for doc in (before, after):
        doc.pop("timings_ms", None)
    assert after == before
    assert after["headline"]["requests"] == {"value": 8, "previous": 3, "change": 5, "change_pct": 166.7}


def test_observe_mode_decisions_count_as_what_they_would_have_done(tmp_path):
    db = write_db(tmp_path / "observe.duckdb", [
        row("2026-11-17 11:00:00", "bob", "eng", "deepseek", DS, category="api", decision="would_block"),
        row("2026-11-17 12:00:00", "bob", "eng", "deepseek", DS, category="api", decision="block"),
        row("2026-11-18 08:00:00", "bob", "eng", "chatgpt", CG, category="chat-web", decision="would_coach"),
    ])  # fmt: skip
    apps = {a["app"]: a for a in report_json(db, week="2026-W47")["apps"]}
    assert (apps["deepseek"]["blocked"], apps["deepseek"]["observed"]) == (2, 1)
    assert (apps["chatgpt"]["coached"], apps["chatgpt"]["observed"]) == (1, 1)


def test_end_to_end_with_a_real_proxy(fresh_proxy):
    proxy = fresh_proxy()
    with proxy.client("alice") as client:
        for name in ("openai-chat-cached-reasoning", "anthropic-messages-cache"):
            assert send_case(client, CASES[name]).status_code == 200
    proxy.rows(expect=2)
    today = dt.datetime.now(dt.UTC).date().isoformat()
    result = subprocess.run(
        [SHADOWGATE, "report", "--format", "json", "--db", str(proxy.db), "--since", today, "--until", today],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    doc = json.loads(result.stdout)
    assert doc["headline"]["requests"]["value"] == 2
    assert doc["headline"]["active_users"]["value"] == 1
    assert sorted(a["app"] for a in doc["apps"]) == ["anthropic", "openai"]
    assert doc["headline"]["tokens"]["value"] > 0
