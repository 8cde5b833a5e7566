"""A row's cost follows what the answer says was served: the service tier (OpenAI's flex at half
the standard rates, priority above them: red-team F108, round-6b G17) and Anthropic's one-hour
cache writes (2x the input rate where five-minute writes are 1.25x: round-6b G16)."""

from __future__ import annotations

import copy

import pytest

from shadowgate.demo.fakeupstream import load_cases

BUDGET = "budgets:\n  - {id: usd, per: user, usd_per_day: 100}\n"


def _send(proxy, upstream, case: dict, name: str, body: dict | None = None) -> dict:
    upstream.cases[name] = case
    request = case["request"]
    with proxy.client(name) as client:
        answer = client.post(
            f"https://{case['host']}{request['path']}",
            json=body if body is not None else request["body"],
            headers={**request["headers"], "x-fake-case": name},
        )
    assert answer.status_code == 200, answer.text[:200]
    [row] = proxy.rows(f"user_name = '{name}'", expect=1)
    return row


# o4-mini's flex rates are half its standard ones; gpt-4.1's priority rates $3.50/$14 against $2/$8 per M.
@pytest.mark.parametrize(("tier", "model", "ratio"), [("flex", "o4-mini", 0.5), ("priority", "gpt-4.1", 1.75)])
def test_the_answers_service_tier_prices_the_row(proxy_with, upstream, tier, model, ratio):
    proxy = proxy_with(BUDGET)
    base = load_cases()["openai-responses"]
    rows = {}
    for served in ("default", tier):
        case = copy.deepcopy(base)
        case["response"]["body_json"]["service_tier"] = served
        case["response"]["body_json"]["model"] = model
        body = {**base["request"]["body"], "model": model, "service_tier": served}
        rows[served] = _send(proxy, upstream, case, f"tier-{tier}-{served}", body)
    assert rows[tier]["service_tier"] == tier
    assert rows[tier]["cost_usd"] == pytest.approx(rows["default"]["cost_usd"] * ratio, rel=0.01), rows


def test_one_hour_cache_writes_are_priced_at_their_rate(proxy_with, upstream):
    proxy = proxy_with(BUDGET)
    costs = {}
    for ttl in ("5m", "1h"):
        case = copy.deepcopy(load_cases()["anthropic-messages-cache"])
        usage = case["response"]["body_json"]["usage"]
        usage["cache_creation_input_tokens"] = 100_000
        usage["cache_creation"] = {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0}
        usage["cache_creation"][f"ephemeral_{ttl}_input_tokens"] = 100_000
        row = _send(proxy, upstream, case, f"cache-{ttl}")
        costs[ttl] = row["cost_usd"]
    assert row["cache_write_1h_tokens"] == 100_000
    # claude-3-7-sonnet: one-hour writes $6/M, five-minute ones $3.75/M.
    assert costs["1h"] - costs["5m"] == pytest.approx(100_000 * (6 - 3.75) / 1e6, rel=1e-3), costs
