"""Options on a real proxy: a broken file stops it at start-up with file, line and reason; at run
time a broken file is refused and the configuration in force stays. Every check of every option is
in tests/unit/test_settings.py; here, what only a running mitmdump shows."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import OptionRejected

BROKEN_POLICY = "passthrough:\n  - 'https://x.com/'\n"


def test_broken_file_fails_start_up_with_file_line_and_reason(fresh_proxy, tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(BROKEN_POLICY)
    with pytest.raises(RuntimeError) as e:
        fresh_proxy("--set", f"shadowgate_policy={path}")
    assert "policy.yaml:2: 'passthrough'" in str(e.value) and "exited with 1" in str(e.value)


def test_broken_file_at_run_time_is_refused_and_the_policy_in_force_stays(proxy, tmp_path):
    good, broken = tmp_path / "good.yaml", tmp_path / "policy.yaml"
    good.write_text("rules:\n  - {id: no-deepseek, match: {provider: deepseek}, action: block}\n")
    broken.write_text(BROKEN_POLICY)
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
    with proxy.options(shadowgate_policy=str(good)):
        with pytest.raises(OptionRejected, match="policy.yaml:2: 'passthrough'"):
            proxy.set_options({"shadowgate_policy": str(broken)})
        with proxy.client("settings_kept") as client:
            assert client.post("https://api.deepseek.com/v1/chat/completions", json=body).status_code == 403
    [row] = proxy.rows("user_name = 'settings_kept'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "no-deepseek")
    assert proxy.alive()


def test_attribution_map_names_people_and_groups(proxy, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text(
        "networks:\n  - {cidr: 127.0.0.0/8, group: laptops}\n  - {cidr: 127.0.0.1/32, user: dana, group: data-science}\n"
        "users:\n  erin: {group: platform}\n"
    )
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    with proxy.options(shadowgate_users=str(users), proxyauth=""):
        with httpx.Client(proxy=f"http://127.0.0.1:{proxy.port}", verify=proxy.ssl_context(), timeout=10) as client:
            assert client.post("https://api.openai.com/v1/chat/completions", json=body).status_code == 200
    [row] = proxy.rows("user_name = 'dana'", expect=1)
    assert (row["user_name"], row["user_group"], row["client_ip"]) == ("dana", "data-science", "127.0.0.1")


def test_retention_keeps_daily_totals_and_drops_old_detail(proxy, tmp_path):
    import datetime as dt
    import time

    import duckdb

    from tests.test_report import row
    from tests.test_report import write_db

    today = dt.datetime.now(dt.UTC).date()
    old = [row(f"{today - dt.timedelta(days=d)} 12:00:00", "alice", "eng", "openai", "api.openai.com",
               input_tokens=10 * d, output_tokens=d, cost_usd=0.5) for d in (1, 5, 6, 6)]  # fmt: skip
    db = write_db(tmp_path / "kept.duckdb", old)
    detail = tmp_path / "kept.segments" / "ai_requests"
    # The database and the retention switched at run time; switching back closes its writer.
    with proxy.options(shadowgate_db=str(db), shadowgate_retention_days=3):
        deadline = time.monotonic() + 20
        while (detail / f"day={today - dt.timedelta(days=5)}").exists() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert sorted(p.name for p in detail.glob("day=*")) == ["day=1970-01-01", f"day={today - dt.timedelta(days=1)}"]
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


def test_stream_large_bodies_is_refused_at_start_up_and_at_run_time(fresh_proxy, proxy):
    # mitmproxy would send a body past it upstream before DLP and the policy see it (red-team F20).
    with pytest.raises(RuntimeError) as e:
        fresh_proxy("--set", "stream_large_bodies=100k")
    assert "stream_large_bodies cannot be used with shadowgate" in str(e.value)
    with pytest.raises(OptionRejected, match="stream_large_bodies cannot be used"):
        proxy.set_options({"stream_large_bodies": "100k"})
    assert proxy.alive()
