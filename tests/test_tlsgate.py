"""The TLS gate: decrypt AI hosts only; record AI connections that are not decrypted."""

from __future__ import annotations

import httpx
import pytest


def test_non_ai_host_is_never_decrypted(proxy):
    with httpx.Client(proxy=proxy.url("plainweb"), verify=proxy.test_ssl_context(), timeout=10) as client:
        assert client.get("https://example.com/_fake/bytes?size=5").status_code == 200
    with httpx.Client(proxy=proxy.url("plainweb"), verify=proxy.proxy_only_ssl_context(), timeout=10) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("https://example.com/_fake/bytes?size=5")
    assert proxy.rows("user_name = 'plainweb'", timeout=1.5) == []


def anthropic_call_under(proxy, policy_text: str, policy, user: str) -> dict:
    """One Anthropic call by `user` with this policy in force: its row."""
    policy.write_text(policy_text)
    with proxy.options(shadowgate_policy=str(policy)):
        with httpx.Client(proxy=proxy.url(user), verify=proxy.test_ssl_context(), timeout=10) as client:
            response = client.post(
                "https://api.anthropic.com/v1/messages",
                json={"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}]},
            )
    assert response.status_code == 200
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


def test_policy_passthrough_ai_host_is_recorded_as_not_inspected(proxy, tmp_path):
    row = anthropic_call_under(proxy, "passthrough:\n  - api.anthropic.com\n", tmp_path / "policy.yaml", "carol")
    assert row["provider"] == "anthropic"
    assert row["inspected"] is False
    assert row["inspect_note"] == "not decrypted by policy"
    assert row["method"] == "CONNECT"
    assert row["input_tokens"] is None and row["model"] is None


def test_a_passthrough_rule_is_recorded_as_the_decision_with_its_id(proxy, tmp_path):
    """new-user F23: the row said decision allow, rule default; the blind spot has a rule to name."""
    rule = "rules:\n  - {id: pt, match: {provider: anthropic}, action: passthrough}\n"
    row = anthropic_call_under(proxy, rule, tmp_path / "policy.yaml", "dave")
    assert (row["decision"], row["rule_id"], row["inspected"]) == ("passthrough", "pt", False)
    assert row["inspect_note"] == "not decrypted by policy"


def test_pinned_client_fails_once_then_passes_through(fresh_proxy):
    # A proxy of its own: the shared one would pass api.openai.com through for an hour after this.
    proxy = fresh_proxy()
    # A client that trusts only its own (the upstream's) CA behaves like a pinned app.
    with httpx.Client(proxy=proxy.url("pinned"), verify=proxy.test_ssl_context(), timeout=10) as client:
        with pytest.raises(httpx.ConnectError):
            client.get("https://api.openai.com/_fake/bytes?size=3")
        assert client.get("https://api.openai.com/_fake/bytes?size=3").status_code == 200
    rows = proxy.rows("user_name = 'pinned'", expect=2)
    assert [r["inspect_note"] for r in rows] == [
        "client rejected the proxy certificate",
        "client pins certificates: passed through",
    ]
    assert all(r["inspected"] is False and r["provider"] == "openai" for r in rows)
