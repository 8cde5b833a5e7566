"""Budgets through real proxies (issue 18): a budget 429 must not put an SDK to sleep until the
budget resets, it says when that is, and per-minute limits behave as docs/deploy.md promises
when two instances share the load."""

from __future__ import annotations

import datetime as dt
import time
import zoneinfo

import httpx
import pytest

from shadowgate.enforce.budgets import RESET_HEADER

POLICY = """\
budgets:
  - id: one-token-a-day
    per: user
    match: {user: "spend*"}
    tokens_per_day: 1
  - id: two-a-minute
    per: user
    match: {user: "rpm*"}
    requests_per_minute: 2
"""
MESSAGES = "https://api.anthropic.com/v1/messages"
BODY = {"model": "claude-sonnet-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
KOLKATA = "Asia/Kolkata"  # +05:30 all year: its midnight is never a UTC midnight


@pytest.fixture
def policy(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(POLICY)
    return path


def spend_the_budget(proxy, user: str) -> httpx.Response:
    """One call spends the day's token; the next is refused once its row is sealed and counted."""
    with proxy.client(user) as client:
        assert client.post(MESSAGES, json=BODY).status_code == 200
        proxy.rows(f"user_name = '{user}'", expect=1)
        deadline = time.monotonic() + 40
        while (refused := client.post(MESSAGES, json=BODY)).status_code != 429:
            assert time.monotonic() < deadline, "the budget never refused"
            time.sleep(0.3)
    return refused


def test_a_daily_budget_429_is_short_and_says_when_it_resets(proxy_with):
    proxy = proxy_with(POLICY, shadowgate_budget_timezone=KOLKATA)
    refused = spend_the_budget(proxy, "spend_raw")
    now = dt.datetime.now(zoneinfo.ZoneInfo(KOLKATA))
    midnight = dt.datetime.combine(now.date() + dt.timedelta(days=1), dt.time(), zoneinfo.ZoneInfo(KOLKATA))
    assert 0 < int(refused.headers["retry-after"]) <= 60  # the default cap, not hours
    assert refused.headers[RESET_HEADER] == midnight.isoformat()  # e.g. 2025-12-05T00:00:00+05:30
    error = refused.json()["error"]
    assert error["type"] == "rate_limit_error"  # Anthropic's own shape, so its SDK raises RateLimitError
    assert "one-token-a-day" in error["message"] and f"resets at {midnight.isoformat()}" in error["message"]


def test_the_anthropic_sdk_retries_within_the_bound_and_gives_up(proxy_with):
    import anthropic

    proxy = proxy_with(POLICY, shadowgate_budget_retry_after=2)
    spend_the_budget(proxy, "spend_sdk")
    with proxy.sdk_http("spend_sdk") as http:
        client = anthropic.Anthropic(api_key="sk-ant-api03-test", http_client=http, max_retries=1)
        started = time.monotonic()
        with pytest.raises(anthropic.RateLimitError) as e:
            client.messages.create(**BODY)
        elapsed = time.monotonic() - started
    # The SDK honours Retry-After (any length, in the version pinned here): one wait of ~2 s, then it
    # raises with our message, instead of sleeping until the budget day ends.
    assert 1.5 <= elapsed < 15, elapsed
    assert e.value.response.headers["retry-after"] == "2" and RESET_HEADER in e.value.response.headers
    assert "one-token-a-day" in str(e.value)


def test_per_minute_limits_hold_per_instance_so_n_instances_allow_at_most_n_times(proxy_with, fresh_proxy, policy):
    a = proxy_with(POLICY)  # the session proxy, and a second instance on the same data directory
    b = fresh_proxy("--set", f"shadowgate_policy={policy}", db=a.db)
    codes = {}
    for name, proxy in (("a", a), ("b", b)):
        with proxy.client("rpm_rita") as client:
            codes[name] = [client.post(MESSAGES, json=BODY).status_code for _ in range(3)]
    # Each instance enforces the whole limit on its own: 2 + 2 calls in the minute, never more.
    assert codes == {"a": [200, 200, 429], "b": [200, 200, 429]}
    rows = a.rows("user_name = 'rpm_rita'", expect=6)
    assert sorted(r["decision"] for r in rows) == ["allow"] * 4 + ["rate_limit"] * 2
