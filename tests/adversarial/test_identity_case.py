"""Class 5: a user cannot shed their group, rules or budget by typing their name another way.

An LDAP directory matches user names case-insensitively (after Unicode compatibility folding),
so `ALICE` authenticates as alice. The attribution map's groups were looked up as typed: ALICE
had none of alice's groups, so a group rule did not apply, and a per-user budget counted ALICE
apart from alice. The proxy user is now taken in the one form approvals already compare people
in (config/policy_approval.py canonical_identity).
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

USERS = "users:\n  case-alice: {group: contractors}\n  case-bob: {group: staff}\n"
POLICY = (
    "rules:\n  - {id: no-contractors, match: {group: contractors, provider: openai}, action: block}\n"
    "  - {id: no-mallory, match: {user: Case-Mallory, provider: openai}, action: block}\n"
    "budgets:\n  - {id: one-a-minute, per: user, match: {provider: openai}, requests_per_minute: 1}\n"
)
CHAT = json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}).encode()


@pytest.fixture
def gate(proxy_with, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text(USERS)
    return proxy_with(POLICY, shadowgate_users=str(users))


def _chat(proxy, user: str):
    return post_marked(proxy, user, CHAT)


# An LDAP directory also maps soft hyphens, zero-width spaces, grapheme joiners and the other
# format characters to nothing before it compares (RFC 4518 section 2.2): each logs in as alice
# (red-team F39).
IGNORED_BY_THE_DIRECTORY = [
    "case-al\u00adice",
    "case-al\u200bice",
    "case-alice\u200b",
    "Case-Al\u034fice",
    "case-\ufe0falice",
]


@pytest.mark.parametrize("typed", ["CASE-ALICE", "Case-Alice", *IGNORED_BY_THE_DIRECTORY])
def test_a_group_rule_holds_for_any_spelling_of_the_user(gate, upstream, typed):
    answer, mark = _chat(gate, typed)
    assert answer.status_code == 403, answer.text[:200]
    assert "no-contractors" in answer.text
    assert not reached(upstream, mark)
    rows = gate.rows("user_name = 'case-alice'", expect=1)
    assert (rows[-1]["user_group"], rows[-1]["decision"]) == ("contractors", "block")


def test_a_user_rule_written_in_another_case_still_applies(gate, upstream):
    answer, mark = _chat(gate, "case-mallory")
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)


def test_one_per_user_budget_for_every_spelling(gate, upstream):
    first, mark = _chat(gate, "case-bob")
    assert first.status_code == 200 and reached(upstream, mark)
    second, mark = _chat(gate, "CASE-BOB")
    assert second.status_code == 429, second.text[:200]
    assert not reached(upstream, mark)
    rows = gate.rows("user_name = 'case-bob'", expect=2)
    assert {r["user_group"] for r in rows} == {"staff"}
