"""The report's chat-app sections (reports/7*_chat_apps*.sql) over web_activity rows."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from shadowgate.report import render
from shadowgate.storage.rows import WebActivityRow
from shadowgate.storage.schema import AI_REQUESTS
from shadowgate.storage.schema import AI_REQUESTS_DAILY
from shadowgate.storage.schema import WEB_ACTIVITY
from shadowgate.storage.schema import WEB_ACTIVITY_DAILY
from shadowgate.storage.store import SegmentWriter
from tests.test_report import ROWS
from tests.test_report_sql import make_report


def web(ts: str, user: str, app: str, endpoint: str, activity: str, account: str = "unknown", **more) -> WebActivityRow:
    return WebActivityRow(
        ts=dt.datetime.fromisoformat(ts), user_name=user, app=app, host=f"{app}.example", endpoint=endpoint,
        activity=activity, account_kind=account, decision=more.pop("decision", "allow"), rule_id="default",
        parse_status=more.pop("parse_status", "ok"), transport="http", **more,
    )  # fmt: skip


WEB_ROWS = [
    web("2026-11-16 09:00:00", "ann", "chatgpt", "chatgpt.prompt", "prompt", "corporate", text_chars=40),
    web(
        "2026-11-16 09:05:00",
        "ann",
        "chatgpt",
        "chatgpt.prompt",
        "prompt",
        "personal",
        dlp_findings="AWS_ACCESS_KEY:1",
        dlp_action="block",
        status_code=403,
    ),  # fmt: skip
    web(
        "2026-11-16 09:06:00",
        "bob",
        "chatgpt",
        "chatgpt.upload-announce",
        "upload",
        "personal",
        file_type="xlsx",
        file_bytes=4096,
        file_count=1,
        decision="block",
    ),  # fmt: skip
    web("2026-11-17 10:00:00", "bob", "chatgpt", "chatgpt.prompt", "prompt", "anonymous", parse_status="no-text"),
    web("2026-11-17 11:00:00", "cy", "gemini-app", "gemini-app.prompt", "prompt", parse_status="unparsed"),
    web("2026-11-17 12:00:00", "dee", "claude", "visit", "visit", decision="block"),
    web("2026-11-10 12:00:00", "old", "claude", "claude.prompt", "prompt"),  # the week before: not counted
]


def write_web_db(path: Path) -> Path:
    writer = SegmentWriter(
        path, [AI_REQUESTS, WEB_ACTIVITY], rollups=[AI_REQUESTS_DAILY, WEB_ACTIVITY_DAILY], flush_interval=0.05
    )
    writer.start()
    for row in ROWS:
        writer.submit("ai_requests", row)
    for row in WEB_ROWS:
        writer.submit("web_activity", row)
    assert writer.flush()
    writer.close()
    return path


@pytest.fixture(scope="module")
def db(tmp_path_factory) -> Path:
    return write_web_db(tmp_path_factory.mktemp("webapps-report") / "sg.duckdb")


def test_chat_apps_sections(db: Path) -> None:
    report = make_report(db, ({}, {}))
    sections = {".".join(s.path): s.records() for s in report.sections}
    by_app = {r["app"]: r for r in sections["chat_apps.by_app"]}
    assert set(by_app) == {"chatgpt", "gemini-app", "claude"}
    chatgpt = by_app["chatgpt"]
    assert (chatgpt["prompts"], chatgpt["uploads"], chatgpt["active_users"]) == (3, 1, 2)
    assert (chatgpt["corporate_prompts"], chatgpt["non_corporate_prompts"], chatgpt["signed_out_prompts"]) == (1, 1, 1)
    assert (chatgpt["dlp_hits"], chatgpt["refused"]) == (1, 2)
    assert (by_app["claude"]["refused_visits"], by_app["claude"]["prompts"], by_app["claude"]["active_users"]) == (
        1,
        0,
        0,
    )
    [dlp] = sections["chat_apps.dlp"]
    assert (dlp["app"], dlp["activity"], dlp["blocked"], dlp["findings"]) == (
        "chatgpt",
        "prompt",
        1,
        "AWS_ACCESS_KEY:1",
    )
    drift = {
        (r["endpoint"]): (r["no_text"], r["unparsed"], r["drift_share"]) for r in sections["chat_apps.parse_status"]
    }
    assert drift["gemini-app.prompt"] == (0, 1, 1.0) and drift["chatgpt.prompt"] == (1, 0, 0.333)
    text = render.to_markdown(report)
    assert "Chat apps: prompts, uploads and accounts" in text and "not comparable" in text


def test_chat_apps_sections_read_the_daily_totals_once_retention_dropped_the_detail(db: Path, tmp_path: Path) -> None:
    """Issue 15: the counts of a week whose web_activity detail retention deleted come from web_activity_daily."""
    import duckdb

    from shadowgate.report.data import open_data
    from shadowgate.storage.housekeeping import drop_expired_days
    from shadowgate.storage.housekeeping import summarise_closed_days

    def chat_sections(path: Path) -> dict[str, list[dict]]:
        report = make_report(path, ({}, {}))
        return {".".join(s.path): s.records() for s in report.sections if s.path[0] == "chat_apps"}

    before = chat_sections(db)
    copy = write_web_db(tmp_path / "sg.duckdb")  # the views in the file name their own segments folder
    segments = tmp_path / "sg.segments"
    # The proxy's housekeeping: each finished day's totals, then the detail of the old days deleted.
    assert summarise_closed_days(segments, WEB_ACTIVITY_DAILY, dt.date(2026, 12, 1)) == 3
    assert drop_expired_days(segments, "web_activity", dt.date(2026, 12, 1), WEB_ACTIVITY_DAILY) == 3
    con, _ = open_data(copy)
    try:
        assert con.execute("SELECT count(*) FROM web_activity").fetchone() == (0,)  # the detail is gone
        assert con.execute("SELECT sum(requests) FROM web_activity_daily").fetchone() == (len(WEB_ROWS),)
    finally:
        con.close()
    after = chat_sections(copy)
    assert after == before and after["chat_apps.by_app"]  # the same numbers, from the daily totals
    # An analyst pasting the report's files into the duckdb CLI on the database file gets them too.
    con = duckdb.connect(str(copy), read_only=True)
    try:
        assert con.execute("SELECT sum(requests) FROM web_activity_daily").fetchone() == (len(WEB_ROWS),)
    finally:
        con.close()


def test_a_late_row_for_a_summarised_day_is_counted(tmp_path: Path) -> None:
    """A day whose totals are stored is read from them; a row written after (another instance
    sealing late) makes its detail newer, and the day is read from the detail until the next round."""
    from shadowgate.storage.housekeeping import summarise_closed_days

    def prompts(path: Path) -> int:
        report = make_report(path, ({}, {}))
        return sum(r["prompts"] for r in report.section("chat_apps", "by_app").records())

    db = write_web_db(tmp_path / "sg.duckdb")
    segments = tmp_path / "sg.segments"
    assert prompts(db) == 4
    assert summarise_closed_days(segments, WEB_ACTIVITY_DAILY, dt.date(2026, 12, 1)) == 3
    assert prompts(db) == 4  # now from the stored totals: the same
    late = SegmentWriter(db, [AI_REQUESTS, WEB_ACTIVITY], rollups=[AI_REQUESTS_DAILY, WEB_ACTIVITY_DAILY])
    late.start()
    late.submit("web_activity", web("2026-11-16 23:59:00", "eve", "claude", "claude.prompt", "prompt"))
    assert late.flush()
    late.close()
    assert prompts(db) == 5  # the day's detail is newer than its totals: read from the detail
    assert summarise_closed_days(segments, WEB_ACTIVITY_DAILY, dt.date(2026, 12, 1)) == 1  # the next round
    assert prompts(db) == 5
