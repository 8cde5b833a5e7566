"""Options: a broken file stops the proxy at start-up with file, line and reason."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    "option, content, message",
    [
        ("shadowgate_policy", "passthrough:\n  - 'https://x.com/'\n", "policy.yaml:2: 'passthrough'"),
        ("shadowgate_policy", "rulez: []\n", "policy.yaml:1: policy: unknown keys ['rulez']"),
        ("shadowgate_providers", "categories: {api: x}\nwire_formats: {}\nproviders: []\n", "'wire_formats' must be a non-empty mapping"),
        ("shadowgate_users", "networks:\n  - {cidr: 10.0.0.0/33, user: a}\n", "policy.yaml:2: bad cidr"),
    ],
)
def test_broken_file_fails_start_up_with_file_line_and_reason(fresh_proxy, tmp_path, option, content, message):
    path = tmp_path / "policy.yaml"
    path.write_text(content)
    with pytest.raises(RuntimeError) as e:
        fresh_proxy("--set", f"{option}={path}")
    assert message in str(e.value)


def test_bad_intercept_mode_is_rejected(fresh_proxy):
    with pytest.raises(RuntimeError, match="shadowgate_intercept must be one of catalog, all"):
        fresh_proxy("--set", "shadowgate_intercept=everything")


def test_attribution_map_names_people_and_groups(fresh_proxy, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text(
        "networks:\n  - {cidr: 127.0.0.0/8, group: laptops}\n  - {cidr: 127.0.0.1/32, user: dana, group: data-science}\n"
        "users:\n  erin: {group: platform}\n"
    )
    proxy = fresh_proxy("--set", f"shadowgate_users={users}", proxyauth="")
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    import httpx

    with httpx.Client(proxy=f"http://127.0.0.1:{proxy.port}", verify=proxy.ssl_context(), timeout=10) as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=body).status_code == 200
    [row] = proxy.rows("true", expect=1)
    assert (row["user_name"], row["user_group"], row["client_ip"]) == ("dana", "data-science", "127.0.0.1")


def test_negative_retention_is_rejected(fresh_proxy):
    with pytest.raises(RuntimeError, match="shadowgate_retention_days must be >= 0"):
        fresh_proxy("--set", "shadowgate_retention_days=-1")


def test_retention_keeps_daily_totals_and_drops_old_detail(fresh_proxy, tmp_path):
    import datetime as dt
    import time

    import duckdb

    from tests.test_report import row
    from tests.test_report import write_db

    today = dt.datetime.now(dt.UTC).date()
    old = [row(f"{today - dt.timedelta(days=d)} 12:00:00", "alice", "eng", "openai", "api.openai.com",
               input_tokens=10 * d, output_tokens=d, cost_usd=0.5) for d in (1, 5, 6, 6)]  # fmt: skip
    db = write_db(tmp_path / "kept.duckdb", old)
    proxy = fresh_proxy("--set", "shadowgate_retention_days=3", db=db)
    detail = tmp_path / "kept.segments" / "ai_requests"
    deadline = time.monotonic() + 20
    while (detail / f"day={today - dt.timedelta(days=5)}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    assert sorted(p.name for p in detail.glob("day=*")) == ["day=1970-01-01", f"day={today - dt.timedelta(days=1)}"]
    proxy.stop()
    con = duckdb.connect(str(db), read_only=True)
    try:
        daily = con.execute(
            "SELECT day, requests, input_tokens, output_tokens, cost_usd FROM ai_requests_daily "
            "WHERE day > '1970-01-01' ORDER BY day"
        ).fetchall()
        assert con.execute("SELECT count(*) FROM mcp_calls_daily").fetchone() == (0,)
    finally:
        con.close()
    assert daily == [
        (today - dt.timedelta(days=6), 2, 120, 12, 1.0),
        (today - dt.timedelta(days=5), 1, 50, 5, 0.5),
        (today - dt.timedelta(days=1), 1, 10, 1, 0.5),
    ]
