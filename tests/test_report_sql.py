"""reports/*.sql: every file has its header and runs, the runner builds the report from them, and
a file pasted into DuckDB (the database file's own views, the variables set by hand) gives the
report's rows."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import textwrap
from pathlib import Path

import duckdb
import pytest

from shadowgate.config.policy import load_policy
from shadowgate.report import render
from shadowgate.report import runner
from shadowgate.report.data import open_data
from shadowgate.report.data import open_segments_sql
from shadowgate.report.period import week_period
from shadowgate.resources import REPORTS_DIR
from shadowgate.storage.rows import HostSighting
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import HOST_SIGHTINGS
from shadowgate.storage.schema import MCP_CALLS
from shadowgate.storage.schema import MCP_CALLS_DAILY
from shadowgate.storage.schema import POLICY_EVENTS
from shadowgate.storage.schema import WEB_ACTIVITY
from shadowgate.storage.schema import WEB_ACTIVITY_DAILY
from shadowgate.storage.store import SegmentWriter
from tests.test_report import EVENTS
from tests.test_report import MCP_ROWS
from tests.test_report import POLICY
from tests.test_report import ROWS

WEEK = week_period("2026-W47")
# What the analyst types for tests/test_report.py's POLICY (checked against runner.statuses below).
PASTED_VARIABLES = """
SET VARIABLE period_start = DATE '2026-11-16';
SET VARIABLE period_end = DATE '2026-11-23';
SET VARIABLE top = 10;
SET VARIABLE provider_status = MAP {'openai': 'sanctioned', 'deepseek': 'unapproved'};
SET VARIABLE category_status = MAP {'chat-web': 'unapproved'};
"""


# The sections in file order, with their titles (at --top 10). Issue 18 added the definitions and
# renamed the unapproved tables (they list unapproved and unknown use).
def _sighting(day: int, host: str, user: str, reason: str) -> HostSighting:
    site = ".".join(host.split(".")[-2:])
    return HostSighting(dt.datetime(2026, 11, day, 9), host, site, reason, user, "eng", False)


# Connections to uncatalogued AI-looking hosts: two people on newllm.ai, one on a Space, and one
# sighting before the week (not counted).
SIGHTINGS = [
    _sighting(17, "chat.newllm.ai", "alice", "tld:.ai"),
    _sighting(18, "api.newllm.ai", "bob", "tld:.ai"),
    _sighting(18, "api.newllm.ai", "bob", "tld:.ai"),
    _sighting(19, "demo.hf.space", "alice", "hosting:hf.space"),
    _sighting(19, "demo.hf.space", "alice", "hosting:hf.space"),
    _sighting(19, "demo.hf.space", "alice", "hosting:hf.space"),
    _sighting(10, "old.gpt-tools.example", "carol", "word:gpt"),
]

SECTIONS = [
    ("definitions", "What sanctioned, unapproved and unknown mean"),
    ("apps", "AI apps"),
    ("new.apps", "New apps"),
    ("new.unknown_endpoints", "Unknown AI endpoints"),
    ("new.models", "Models seen for the first time"),
    ("new.host_candidates", "Possible AI services not in the catalog: top 10"),
    ("unapproved.users", "Not sanctioned (unapproved or unknown): top 10 users"),
    ("unapproved.groups", "Not sanctioned (unapproved or unknown): top 10 groups"),
    ("cost.by_provider", "Cost and tokens by provider"),
    ("cost.by_model", "Top 10 models by cost"),
    ("cost.by_group", "Cost and tokens by group"),
    ("cost.by_user", "Top 10 users by tokens"),
    ("cost.top_spenders", "Top 10 spenders"),
    ("cost.daily", "Daily trend"),
    ("cost.daily_by_app", "Daily requests by app"),
    ("dlp.by_type", "DLP findings by type"),
    ("dlp.by_app", "DLP by app"),
    ("blind_spots", "Blind spots: AI traffic not inspected"),
    ("keys", "Key inventory"),
    ("budget.near_limit", "Budgets near or over their limit"),
    ("budget.rate_limited", "Rate-limited and budget-refused requests"),
    ("policy_events", "Policy events"),
    ("mcp.servers", "MCP servers"),
    ("mcp.tools", "MCP: top 10 tools"),
    ("mcp.users", "MCP: top 10 users"),
    ("mcp.denials", "MCP: refused and filtered calls by rule"),
    ("mcp.injection", "MCP: prompt-injection flags in tool results"),
    ("mcp.dlp", "MCP: DLP findings in tool arguments and results"),
    ("chat_apps.by_app", "Chat apps: prompts, uploads and accounts"),
    ("chat_apps.dlp", "Chat apps: DLP hits by app and activity"),
    ("chat_apps.parse_status", "Chat apps: format drift (parse status by endpoint)"),
]


@pytest.fixture(scope="module")
def proxy_db(tmp_path_factory) -> Path:
    """A database as the proxy writes it (with the daily rollup views), holding tests/test_report.py's rows."""
    db = tmp_path_factory.mktemp("report-sql") / "sg.duckdb"
    writer = SegmentWriter(
        db,
        [AI_REQUESTS, POLICY_EVENTS, MCP_CALLS, HOST_SIGHTINGS, WEB_ACTIVITY],
        rollups=[AI_REQUESTS_DAILY, MCP_CALLS_DAILY, WEB_ACTIVITY_DAILY],
        flush_interval=0.05,
    )
    writer.start()
    tables = (("ai_requests", ROWS), ("policy_events", EVENTS), ("mcp_calls", MCP_ROWS), ("host_sightings", SIGHTINGS))
    for table, rows in tables:
        for r in rows:
            writer.submit(table, r)
    assert writer.flush()
    writer.close()
    return db


@pytest.fixture(scope="module")
def policy_statuses(tmp_path_factory) -> tuple[dict[str, str], dict[str, str]]:
    path = tmp_path_factory.mktemp("policy") / "policy.yaml"
    path.write_text(textwrap.dedent(POLICY))
    return runner.statuses(load_policy(str(path)))


def make_report(
    db: Path, statuses, queries: list[runner.Query] | None = None, top: int = 10, providers=()
) -> runner.Report:
    con, source = open_data(db)
    try:
        return runner.build_report(
            con,
            source,
            str(db),
            WEEK,
            provider_status=statuses[0],
            category_status=statuses[1],
            top=top,
            queries=queries,
            providers=providers,
        )
    finally:
        con.close()


# --- the files ----------------------------------------------------------------------------------------------


def test_every_file_has_its_header():
    files = sorted(REPORTS_DIR.glob("*.sql"))
    assert len(files) >= 30
    for file in files:
        query = runner.parse_query(file)
        assert query.name == file.stem.lstrip("0123456789_"), file
        assert query.description and not query.description.startswith(("name:", "title:", "path:")), file
        assert (query.path is None) == (query.title == ""), f"{file}: a section has a title and a path"
    queries = runner.load_queries()
    assert [q.file.name for q in queries] == sorted(f.name for f in files if f.name != "open_segments.sql")
    paths = [q.path for q in queries if q.path]
    assert len(paths) == len(set(paths))


def test_no_python_formatting_left_in_the_sql():
    for query in runner.load_queries():
        body = "\n".join(line for line in query.sql.splitlines() if not line.startswith("--"))
        assert "{" not in body and "}" not in body, query.file  # no str.format / f-string placeholders


def test_a_file_without_a_header_is_refused(tmp_path):
    bare = tmp_path / "10_bare.sql"
    bare.write_text("SELECT 1;\n")
    with pytest.raises(ValueError, match="name"):
        runner.parse_query(bare)


def test_every_file_runs_and_the_sections_keep_their_order_and_titles(proxy_db, policy_statuses):
    report = make_report(proxy_db, policy_statuses)
    assert [(".".join(s.path), s.title) for s in report.sections] == SECTIONS
    assert set(report.timings_ms) == {q.name for q in runner.load_queries()} | {"total"}
    assert list(report.headline) == [
        "active_users",
        "requests",
        "tokens",
        "cost_usd",
        "apps",
        "sanctioned_share",
        "unapproved_share",
        "unknown_share",
    ]


def test_the_runner_gives_the_values_the_report_tests_assert(proxy_db, policy_statuses):
    """The same numbers as tests/test_report.py asserts on the old code's output."""
    doc = json.loads(render.to_json(make_report(proxy_db, policy_statuses)))
    assert doc["headline"]["requests"] == {"value": 8, "previous": 3, "change": 5, "change_pct": 166.7}
    assert doc["headline"]["unapproved_share"]["value"] == 0.25  # was 0.75: unknown apps counted (issue 18)
    assert [a["app"] for a in doc["apps"]] == ["anthropic", "openai", "chatgpt", "deepseek", "unknown:lab.example"]
    assert [(u["user"], u["main_apps"]) for u in doc["unapproved"]["users"]][:2] == [
        ("bob", ["chatgpt", "deepseek"]),
        ("carol", ["anthropic", "unknown:lab.example"]),
    ]
    assert [(p["provider"], p["cost_usd"]) for p in doc["cost"]["by_provider"]][:2] == [
        ("anthropic", 0.501),
        ("openai", 0.03),
    ]
    assert doc["dlp"]["by_type"][0] == {"type": "EMAIL", "requests": 2, "findings": 3, "users": 1}
    assert doc["policy_events"] == [{"event": "coach_continue", "provider": "chatgpt", "events": 1, "users": 1}]
    assert [(s["host"], s["calls"]) for s in doc["mcp"]["servers"]] == [("mcp.github.test", 6), ("mcp.jira.test", 2)]
    top2 = json.loads(render.to_json(make_report(proxy_db, policy_statuses, top=2)))
    assert [u["user"] for u in top2["cost"]["top_spenders"]] == ["carol", "alice"]
    assert [t["tool"] for t in top2["mcp"]["tools"]] == ["merge_pr", "search_code"]
    # Ranked by people first: two people on newllm.ai beat one person's three connections to a Space.
    assert [(h["site"], h["hosts"], h["users"], h["connections"]) for h in doc["new"]["host_candidates"]] == [
        ("newllm.ai", "api.newllm.ai chat.newllm.ai", 2, 3),
        ("hf.space", "demo.hf.space", 1, 3),
    ]


# --- pasted into DuckDB -------------------------------------------------------------------------------------


def pasted_rows(con: duckdb.DuckDBPyConnection) -> dict[tuple[str, ...], list[dict]]:
    """Each file's text executed as it is, in order, as an analyst pastes them: rows per section."""
    con.execute(PASTED_VARIABLES)
    sections = {}
    for query in runner.load_queries():
        cur = con.execute(query.file.read_text())
        if query.path:
            sections[query.path] = runner.Section(
                query.path, "", [d[0] for d in cur.description], cur.fetchall()
            ).records()
    return sections


def report_rows(report: runner.Report) -> dict[tuple[str, ...], list[dict]]:
    return {s.path: s.records() for s in report.sections}


def test_pasted_into_duckdb_on_the_database_file_gives_the_reports_rows(proxy_db, policy_statuses):
    assert policy_statuses == ({"openai": "sanctioned", "deepseek": "unapproved"}, {"chat-web": "unapproved"})
    report = make_report(proxy_db, policy_statuses)
    con = duckdb.connect(str(proxy_db), read_only=True)  # the database file's own views, as in `duckdb -readonly`
    try:
        pasted = pasted_rows(con)
    finally:
        con.close()
    headline = pasted.pop(runner.HEADLINE)
    assert pasted == report_rows(report)
    assert [r["requests"] for r in headline] == [8, 3]
    assert pasted[("apps",)][0]["app"] == "anthropic" and pasted[("mcp", "denials")][0]["rule_id"] == "mcp:github:tools"


def test_open_segments_gives_the_same_rows_without_the_database_file(proxy_db, policy_statuses, tmp_path):
    """The way for a duckdb CLI that cannot open the file: the views from the Parquet segments."""
    segments = tmp_path / "elsewhere's.segments"  # a quote in the path: the variable carries it, no SQL quoting
    shutil.copytree(proxy_db.with_name("sg.segments"), segments)
    report = make_report(proxy_db, policy_statuses)
    con = duckdb.connect()
    try:
        con.execute("SET VARIABLE segments = ?", [str(segments)])
        con.execute((REPORTS_DIR / "open_segments.sql").read_text())
        pasted = pasted_rows(con)
    finally:
        con.close()
    pasted.pop(runner.HEADLINE)
    assert pasted == report_rows(report)


def test_open_segments_file_is_current():
    assert (REPORTS_DIR / "open_segments.sql").read_text() == open_segments_sql(), (
        "regenerate: uv run python -m shadowgate.report.data > reports/open_segments.sql"
    )


# --- extending it -------------------------------------------------------------------------------------------


def test_adding_a_section_is_adding_a_file(proxy_db, policy_statuses, tmp_path):
    folder = tmp_path / "reports"
    shutil.copytree(REPORTS_DIR, folder)
    (folder / "55_models_by_group.sql").write_text(
        textwrap.dedent("""\
        -- name: models_by_group
        -- title: Models by group
        -- path: cost.by_group_model
        -- Requests per group and model.
        SELECT user_group AS "group", model, sum(requests) AS requests
        FROM cur WHERE model IS NOT NULL GROUP BY ALL ORDER BY requests DESC, "group", model;
        """)
    )
    report = make_report(proxy_db, policy_statuses, queries=runner.load_queries(folder))
    doc = json.loads(render.to_json(report))
    assert doc["cost"]["by_group_model"][0] == {"group": "eng", "model": "gpt-4o", "requests": 2}
    assert sum(r["requests"] for r in doc["cost"]["by_group_model"]) == 6  # the 6 rows with a model
    assert "## Models by group\n\n| group | model | requests |" in render.to_markdown(report)
    paths = [s.path for s in report.sections]
    assert paths.index(("cost", "by_group_model")) == paths.index(("policy_events",)) + 1  # file-name order


def test_the_apps_table_shows_each_services_risk(proxy_db, policy_statuses):
    """The catalog's documented risk level and worst-tier training setting, per app."""
    from shadowgate.config.catalog import load_catalog
    from shadowgate.resources import PROVIDERS_YAML

    catalog = load_catalog(PROVIDERS_YAML)
    report = make_report(proxy_db, policy_statuses, providers=catalog.providers.values())
    apps = {a["app"]: a["risk"] for a in json.loads(render.to_json(report))["apps"]}
    for app in ("anthropic", "openai", "deepseek"):
        p = catalog.providers[app]
        assert apps[app] == f"{p.risk}, trains: {p.facts.worst_training}"
    assert apps["unknown:lab.example"] is None
