"""Class 4: concurrent calls cannot spend a daily budget many times over (red-team F12).

A token budget compared only recorded usage, and a call is recorded when it ends: twenty calls
sent at once all passed a 50-token budget (41,080 tokens recorded). Each call the budgets let
through now reserves an estimate of its tokens until its row is counted, so concurrent calls
see each other.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import json

import pytest

from shadowgate.config.policy import Budget
from shadowgate.config.policy import Facts
from shadowgate.config.policy import Match
from shadowgate.enforce.budgets import DEFAULT_OUTPUT_ESTIMATE
from shadowgate.enforce.budgets import BudgetTracker
from shadowgate.enforce.budgets import estimate_tokens
from shadowgate.wireformats.common import batch_output_cap
from tests.adversarial.wire import marker

POLICY = "budgets:\n  - {id: tok, per: user, match: {provider: anthropic}, tokens_per_day: 50}\n"
MESSAGES = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]}
DAILY = Budget(id="daily", line=1, per="user", match=Match(), tokens_per_day=1000, usd_per_day=1.0)
ALICE = Facts("api.anthropic.com", "anthropic", "llm-api", "anthropic-messages", "claude", "alice", None, "10.0.0.1")


def test_concurrent_calls_cannot_overspend_a_token_budget(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    user, mark = "budget-race", marker()

    def call(_: int) -> int:
        with proxy.client(user) as client:
            return client.post(
                "https://api.anthropic.com/v1/messages",
                json=MESSAGES,
                headers={"x-api-key": "k", "anthropic-version": "2023-06-01", "x-attack": mark},
            ).status_code

    with concurrent.futures.ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(call, range(20)))
    # Each call reserves its bytes / 4 + max_tokens (about 35 tokens): the first two fit under 50.
    estimate = estimate_tokens(len(json.dumps(MESSAGES)), MESSAGES)
    admitted = -(-50 // estimate)
    assert codes.count(200) <= admitted, sorted(codes)
    assert codes.count(200) >= 1 and codes.count(429) == 20 - codes.count(200), sorted(codes)
    assert sum(s.headers.get("x-attack") == mark for s in upstream.seen) == codes.count(200)
    rows = proxy.rows(f"user_name = '{user}'", expect=20)
    refused = [r for r in rows if r["decision"] == "rate_limit"]
    assert len(refused) == codes.count(429) and {r["rule_id"] for r in refused} == {"tok"}


def test_a_reservation_is_swapped_for_the_recorded_usage():
    tracker = BudgetTracker()
    now = dt.datetime.now(dt.UTC)
    tracker.hold("r1", [DAILY], ALICE, 600, now.timestamp())
    assert tracker.totals("daily", "alice", now.timestamp(), in_flight=True) == (600.0, 0.0)
    assert tracker.check([DAILY], ALICE, now.timestamp()).exceeded is None
    tracker.hold("r2", [DAILY], ALICE, 600, now.timestamp())
    assert tracker.check([DAILY], ALICE, now.timestamp()).exceeded is DAILY  # 1200 in flight
    # The row of r1 is counted: its reservation goes in the same step, not twice, not never.
    tracker.add([DAILY], ALICE, 100, 0.5, now.replace(tzinfo=None), request_id="r1")
    assert tracker.totals("daily", "alice", now.timestamp(), in_flight=True) == (700.0, 0.5)
    # Now the subject has a rate (0.5 USD per 100 tokens): a new hold reserves its cost too.
    tracker.hold("r3", [DAILY], ALICE, 100, now.timestamp())
    assert tracker.totals("daily", "alice", now.timestamp(), in_flight=True) == (800.0, 1.0)
    assert tracker.check([DAILY], ALICE, now.timestamp()).exceeded is DAILY  # 1.0 USD
    tracker.add([DAILY], ALICE, 0, None, now.replace(tzinfo=None), request_id="r2")
    tracker.add([DAILY], ALICE, 0, None, now.replace(tzinfo=None), request_id="r3")
    assert tracker.totals("daily", "alice", now.timestamp(), in_flight=True) == (100.0, 0.5)


def test_a_call_decided_twice_holds_once():
    tracker = BudgetTracker()
    now = dt.datetime.now(dt.UTC)
    tracker.hold("session", [DAILY], ALICE, 300, now.timestamp())
    tracker.hold("session", [DAILY], ALICE, 300, now.timestamp())  # a realtime model switch
    assert tracker.totals("daily", "alice", now.timestamp(), in_flight=True) == (300.0, 0.0)
    tracker.add([DAILY], ALICE, 40, None, now.replace(tzinfo=None), request_id="session")
    assert tracker.totals("daily", "alice", now.timestamp(), in_flight=True) == (40.0, 0.0)


def test_a_lost_reservation_lapses():
    tracker = BudgetTracker()
    start = dt.datetime.now(dt.UTC).timestamp()
    tracker.hold("lost", [DAILY], ALICE, 5000, start)
    assert tracker.check([DAILY], ALICE, start).exceeded is DAILY
    tracker.hold("next", [DAILY], ALICE, 1, start + 3600)  # an hour on: the lost one has lapsed
    assert tracker.totals("daily", "alice", start + 3600, in_flight=True)[0] == 1.0


def test_the_estimate_reads_the_output_cap():
    assert estimate_tokens(400, {"max_tokens": 10}) == 110
    assert estimate_tokens(400, {"generationConfig": {"maxOutputTokens": 50}}) == 150
    assert estimate_tokens(400, {"messages": []}) == 100 + DEFAULT_OUTPUT_ESTIMATE
    # Each answer asked for is generated and billed: n, and legacy completions' best_of (red-team F104).
    assert estimate_tokens(400, {"max_tokens": 10, "n": 3}) == 130
    assert estimate_tokens(400, {"max_tokens": 10, "n": 2, "best_of": 20}) == 300
    assert estimate_tokens(400, {"generationConfig": {"maxOutputTokens": "50", "candidateCount": "4"}}) == 300


@pytest.mark.parametrize(
    ("config", "bound"),
    [
        ({"maxOutputTokens": 100, "candidateCount": 8}, 800),
        ({"maxOutputTokens": 100, "candidateCount": "8"}, 800),  # proto3 JSON: an int32 may be a string
        ({"maxOutputTokens": 100, "candidateCount": 8.0}, 800),
        ({"maxOutputTokens": 100, "candidateCount": "8e0"}, 800),
        ({"maxOutputTokens": "1e2", "candidateCount": " 8 "}, 800),
        ({"maxOutputTokens": 100, "candidateCount": "eight"}, 800),  # unread: Gemini's most
        ({"maxOutputTokens": 100, "candidate_count": 3}, 300),
        ({"maxOutputTokens": 100}, 100),
    ],
)
def test_a_batch_bound_reads_counts_as_the_servers_do(config, bound):
    assert batch_output_cap([{"contents": [], "generationConfig": config}]) == bound


def test_legacy_completions_best_of_is_billed():
    request = {"model": "gpt-3.5-turbo-instruct", "prompt": "x", "max_tokens": 4000, "best_of": 20}
    assert batch_output_cap([request]) == 80000
    assert batch_output_cap([{**request, "n": 2, "best_of": 1}]) == 8000


def test_a_model_budget_counts_every_model_a_call_runs(proxy_with, upstream):
    # Spent on gpt-4o directly, the budget held only for a call whose body's `model` was gpt-4o
    # (red-team F68): a fallback, a tool's model or a stored prompt ran gpt-4o past it.
    proxy = proxy_with("budgets:\n  - {id: gpt4o-cap, per: user, match: {model: 'gpt-4o*'}, tokens_per_day: 10}\n")
    user = "model-budget-" + marker()[:6]
    with proxy.client(user) as client:
        first = client.post(
            "https://api.openai.com/v1/chat/completions",
            json={"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
            headers={"authorization": "Bearer sk-test"},
        )
        assert first.status_code == 200
        proxy.rows(f"user_name = '{user}'", expect=1)  # counted
        for url, body in (
            ("https://api.openai.com/v1/chat/completions",
             {"model": "gpt-4.1", "models": ["gpt-4.1", "openai/gpt-4o"], "messages": [{"role": "user", "content": "hi"}]}),
            ("https://api.openai.com/v1/responses",
             {"model": "gpt-4.1", "input": "draw", "tools": [{"type": "image_generation", "model": "gpt-4o"}]}),
            ("https://api.openai.com/v1/responses", {"prompt": {"id": "pmpt_1"}, "input": "hi"}),
        ):  # fmt: skip
            answer = client.post(url, json=body, headers={"authorization": "Bearer sk-test"})
            assert answer.status_code == 429, (body, answer.text[:200])
