"""Sanctioned, unapproved and unknown (issue 18): one definition in reports/00_period.sql, the same
numbers with and without --policy, redirected calls as sanctioned use, and the definitions in the report."""

from __future__ import annotations

import textwrap

import duckdb
import pytest

from shadowgate.report import render
from shadowgate.report import weekly
from shadowgate.resources import REPORTS_DIR
from shadowgate.storage.schema import AI_REQUESTS
from tests.test_report import ANT
from tests.test_report import DS
from tests.test_report import OAI
from tests.test_report import args_for
from tests.test_report import data  # noqa: F401, F811  (the fixture: tests/test_report.py's rows and policy)
from tests.test_report import report_json
from tests.test_report import row
from tests.test_report import write_db

REDIRECT_POLICY = """
rules:
  - id: allow-openai
    match: {provider: openai}
    action: allow
  - id: deepseek-to-gateway
    match: {provider: deepseek}
    action: redirect
    gateway: {openai_base_url: "https://gateway.corp.example/v1", key_env: GW_KEY}
"""
REDIRECT_ROWS = [  # 3 calls redirected to the gateway, 1 in observe mode that went to deepseek, 2 openai
    *(
        row(
            f"2026-11-17 1{i}:00:00",
            "bob",
            "eng",
            "deepseek",
            DS,
            category="api",
            decision="redirect",
            rule_id="deepseek-to-gateway",
            redirect_target="gateway.corp.example",
        )
        for i in range(3)
    ),
    row(
        "2026-11-18 10:00:00",
        "bob",
        "eng",
        "deepseek",
        DS,
        category="api",
        decision="would_redirect",
        rule_id="deepseek-to-gateway",
    ),
    row("2026-11-18 11:00:00", "alice", "eng", "openai", OAI, category="api"),
    row("2026-11-18 12:00:00", "alice", "eng", "openai", OAI, category="api"),
]


def shares(doc: dict) -> tuple:
    return tuple(doc["headline"][k]["value"] for k in ("sanctioned_share", "unapproved_share", "unknown_share"))


def test_the_shares_mean_the_same_with_and_without_a_policy(data):  # noqa: F811
    db, policy = data
    # With the policy: openai 2 of 8 sanctioned; deepseek (blocked) and chatgpt (coached) unapproved;
    # anthropic (3) and the unlisted lab endpoint (1) are named by no rule: unknown, not unapproved.
    assert shares(report_json(db, policy, week="2026-W47")) == (0.25, 0.25, 0.5)
    # Without one nothing is known to be sanctioned or unapproved: those shares are unknown, not 100 %.
    without = report_json(db, week="2026-W47")
    assert shares(without) == (None, None, 1.0)
    assert without["headline"]["unapproved_share"] == {
        "value": None,
        "previous": None,
        "change": None,
        "change_pct": None,
    }
    report = weekly.make_report(args_for(db, week="2026-W47"))
    assert "| Share unapproved | unknown | unknown | – |" in render.to_markdown(report)


def test_redirected_calls_are_sanctioned_use(tmp_path):
    db = write_db(tmp_path / "sg.duckdb", REDIRECT_ROWS)
    policy = tmp_path / "policy.yaml"
    policy.write_text(textwrap.dedent(REDIRECT_POLICY))
    doc = report_json(db, policy, week="2026-W47")
    # 3 redirected + 2 openai sanctioned; the observe-mode call really went to deepseek: unapproved.
    assert shares(doc) == (pytest.approx(5 / 6, abs=1e-6), pytest.approx(1 / 6, abs=1e-6), 0.0)
    deepseek = next(a for a in doc["apps"] if a["app"] == "deepseek")
    assert (deepseek["status"], deepseek["redirected"], deepseek["observed"]) == ("unapproved", 4, 1)
    assert [(u["user"], u["requests"], u["unapproved"], u["unknown"]) for u in doc["unapproved"]["users"]] == [
        ("bob", 1, 1, 0)
    ]


def test_the_definitions_are_in_the_report_in_every_format(data, tmp_path):  # noqa: F811
    db, policy = data
    con = duckdb.connect()
    con.execute(
        (REPORTS_DIR / "00_period.sql")
        .read_text()
        .split("-- Every day's rows")[0]
        .replace("FROM (SELECT getvariable", "FROM (SELECT NULL::MAP(VARCHAR, VARCHAR) AS m, getvariable")
    )
    definitions = dict(con.execute("SELECT status, meaning FROM use_status_definitions").fetchall())
    con.close()
    assert set(definitions) == {"sanctioned", "unapproved", "restricted", "unknown"}
    assert "redirected" in definitions["sanctioned"]
    doc = report_json(db, policy, week="2026-W47")
    assert {d["status"]: d["meaning"] for d in doc["definitions"]} == definitions
    for fmt in ("md", "html", "rich"):
        out = tmp_path / f"r.{fmt}"
        assert weekly.run_report(args_for(db, policy, week="2026-W47", format=fmt, out=out)) == 0
        text = " ".join(out.read_text().split())  # rich wraps long cells
        for meaning in definitions.values():
            assert meaning.split(";")[0][:40] in text, (fmt, meaning)
    no_policy = report_json(db, week="2026-W47")["definitions"]
    assert {d["basis"] for d in no_policy} == {"no policy given: every app is unknown"}


def test_one_definition_in_the_sql():
    """No other report file decides what counts as sanctioned: they read `status` or `app_status`."""
    for file in sorted(REPORTS_DIR.glob("[0-9]*.sql")):
        body = "\n".join(line for line in file.read_text().splitlines() if not line.lstrip().startswith("--"))
        if file.name == "00_period.sql":
            assert body.count("CREATE OR REPLACE TEMP MACRO use_status") == 1
            continue
        assert (
            "ps.status" not in body
            and "cs.status" not in body
            and "'redirect'" not in body.replace("('redirect', 'would_redirect')", "")
        ), file.name


AI_COLUMNS = AI_REQUESTS.column_names
NARROW_POLICY = """
rules:
  - id: no-gpt4o
    match: {provider: openai, model: "gpt-4o"}
    action: block
  - id: eng-may-use-deepseek
    match: {provider: deepseek, group: eng}
    action: allow
  - id: no-deepseek
    match: {provider: deepseek}
    action: block
  - id: allow-api
    match: {category: api}
    action: allow
  - id: no-anthropic-for-interns
    match: {provider: anthropic, group: interns}
    action: coach
"""
NARROW_ROWS = [  # new-user F7: openai 2 gpt-4o blocked and 3 gpt-4o-mini allowed; deepseek 1 eng allowed, 1 blocked
    *(
        row(f"2026-11-17 1{i}:00:00", "ann", "sales", "openai", OAI, category="api", model="gpt-4o",
            decision="block", rule_id="no-gpt4o")
        for i in range(2)
    ),
    *(row(f"2026-11-17 1{i}:30:00", "ann", "sales", "openai", OAI, category="api", model="gpt-4o-mini",
          rule_id="allow-api") for i in range(3)),
    row("2026-11-18 10:00:00", "bob", "eng", "deepseek", DS, category="api", rule_id="eng-may-use-deepseek"),
    row("2026-11-18 11:00:00", "ann", "sales", "deepseek", DS, category="api", decision="block", rule_id="no-deepseek"),
]  # fmt: skip


def test_a_rule_narrowed_by_model_or_group_judges_only_the_calls_it_met(tmp_path):
    db = write_db(tmp_path / "sg.duckdb", NARROW_ROWS)
    policy = tmp_path / "policy.yaml"
    policy.write_text(textwrap.dedent(NARROW_POLICY))
    doc = report_json(db, policy, week="2026-W47")
    apps = {a["app"]: a["status"] for a in doc["apps"]}
    # openai: blocking one model does not make the app unapproved; the category's allow rule decides.
    # deepseek: the app is unapproved, but eng's calls an allow rule let through are sanctioned use.
    assert (apps["openai"], apps["deepseek"]) == ("sanctioned", "unapproved")
    # sanctioned: 3 gpt-4o-mini + 1 eng deepseek; unapproved: 2 blocked gpt-4o + 1 blocked deepseek.
    assert shares(doc) == (pytest.approx(4 / 7, abs=1e-6), pytest.approx(3 / 7, abs=1e-6), 0.0)
    assert [(u["user"], u["unapproved"], u["unknown"]) for u in doc["unapproved"]["users"]] == [("ann", 3, 0)]


def test_an_app_only_a_narrowed_rule_restricts_is_restricted_not_unapproved(tmp_path):
    rows = [r for r in NARROW_ROWS if r[AI_COLUMNS.index("provider")] == "openai"]
    db = write_db(tmp_path / "sg.duckdb", rows)
    policy = tmp_path / "policy.yaml"
    policy.write_text("rules:\n  - {id: no-gpt4o, match: {provider: openai, model: gpt-4o}, action: block}\n")
    doc = report_json(db, policy, week="2026-W47")
    assert [(a["app"], a["status"], a["blocked"]) for a in doc["apps"]] == [("openai", "restricted", 2)]
    # The 2 calls the rule blocked are unapproved; the other 3 meet no rule: unknown, not unapproved.
    assert shares(doc) == (0.0, pytest.approx(2 / 5, abs=1e-6), pytest.approx(3 / 5, abs=1e-6))
    assert "restricted" in {d["status"] for d in doc["definitions"]}


def test_without_a_policy_redirected_calls_are_unknown_too(tmp_path):
    """new-user F18: the summary says every request is unknown without --policy; the shares and the
    not-sanctioned tables must say the same, redirected calls included."""
    db = write_db(tmp_path / "sg.duckdb", REDIRECT_ROWS)
    doc = report_json(db, week="2026-W47")
    assert shares(doc) == (None, None, 1.0)
    assert sum(u["requests"] for u in doc["unapproved"]["users"]) == len(REDIRECT_ROWS)


def test_a_connection_the_policy_refused_is_no_blind_spot(tmp_path):
    """new-user F23 (related): a CONNECT refused by a block rule sent nothing; it is not AI traffic
    that went by uninspected. A passthrough, or observe mode's would_block, is."""
    rows = [
        row("2026-11-17 10:00:00", "ann", "sales", "mistral", "api.mistral.ai", category="api", decision="block",
            rule_id="no-mistral", inspected=False, inspect_note="CONNECT refused"),
        row("2026-11-17 11:00:00", "ann", "sales", "deepseek", DS, category="api", decision="would_block",
            rule_id="no-deepseek", inspected=False, inspect_note="not decrypted by policy"),
    ]  # fmt: skip
    rows.append(
        row("2026-11-18 11:00:00", "ann", "sales", "anthropic", ANT, category="api", decision="passthrough",
            rule_id="pt", inspected=False, inspect_note="not decrypted by policy")
    )  # fmt: skip
    doc = report_json(write_db(tmp_path / "sg.duckdb", rows), week="2026-W47")
    assert [(b["host"], b["rule"]) for b in doc["blind_spots"]] == [(ANT, "pt"), (DS, "-")]
