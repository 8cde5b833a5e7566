"""A large request is scanned, not refused for the time its scan takes (round-6b G18, G19).

The JSON scan had a fixed CPU budget (dlp.budget_ms, 250 ms) where an upload's grew with its size
(red-team F81): a coding agent's long session (hundreds of tool results) or a bulk embeddings
call ran out of time and was refused, even under a log-only policy or in observe mode, which
promise to change no traffic. Real mitmdump.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

MESSAGES = "https://api.anthropic.com/v1/messages"
AWS = "AKIA2OGYBAH6STMMNXNN"


def _agent_session(turns: int = 400, secret: str = "") -> bytes:
    """An Anthropic Messages request as a coding agent sends it late in a session: each turn a
    Read tool call and its line-numbered result (~1.8 KB), the last result holding `secret`."""
    messages: list[dict] = [{"role": "user", "content": "Refactor the request handlers."}]
    for turn in range(turns):
        code = "".join(
            f"{n:6}\tdef handler_{turn}_{n}(request):\n      return render(request, 'p{n}.html')\n" for n in range(20)
        )
        if turn == turns - 1:
            code += secret
        messages.append(
            {
                "role": "assistant",
                "content": [
                    {
                        "type": "tool_use",
                        "id": f"toolu_{turn:04}",
                        "name": "Read",
                        "input": {"file_path": f"/src/app/views_{turn}.py"},
                    }
                ],
            }
        )
        messages.append({"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": f"toolu_{turn:04}", "content": code}]})  # fmt: skip
    return json.dumps({"model": "claude-sonnet-4-5", "max_tokens": 1024, "messages": messages}).encode()


HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}


def test_a_long_agent_session_is_scanned_whole(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: block, pii: block}\n")
    user = "scan-budget-" + marker()[:6]
    body = _agent_session()
    assert len(body) > 700_000
    answer, mark = post_marked(proxy, user, body, MESSAGES, headers=HEADERS)
    assert answer.status_code == 200 and reached(upstream, mark), answer.text[:300]
    # Scanned to its end: a key in the last tool result is found.
    answer, mark = post_marked(proxy, user, _agent_session(secret=f"AWS_KEY = '{AWS}'\n"), MESSAGES, headers=HEADERS)
    assert answer.status_code == 403 and not reached(upstream, mark), answer.text[:300]


# A body the provider reads as JSON that the proxy cannot parse: its scan fails.
UNPARSABLE = b'{"model": "claude-sonnet-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],}'


@pytest.mark.parametrize(
    ("policy", "sent"),
    [
        ("mode: observe\ndlp: {secrets: block}\n", True),
        ("dlp: {secrets: log, pii: log}\n", True),
        ("dlp: {secrets: block}\n", False),
    ],
    ids=["observe", "log-only", "enforced"],
)
def test_a_scan_that_fails_refuses_only_where_a_finding_would_have(proxy_with, upstream, policy, sent):
    proxy = proxy_with(policy)
    user = "scan-fail-" + marker()[:6]
    answer, mark = post_marked(proxy, user, UNPARSABLE, MESSAGES, headers=HEADERS)
    assert reached(upstream, mark) is sent, answer.text[:300]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["decision"] == ("block" if not sent else "would_block" if "observe" in policy else "allow")
