"""Chat-app endpoints are matched, and their path groups read, in every reading of the path a
server may give it (config/requestpath.py), and the account is the strictest the readings give
(red-team F54)."""

from __future__ import annotations

from pathlib import Path

import pytest

from shadowgate.config.policy_accounts import AccountsPolicy
from shadowgate.webapps.catalog import load_web_apps
from shadowgate.webapps.classify import classify

APPS = load_web_apps()
CORP, PERSONAL = "0b9e0000-0000-4000-8000-000000000001", "11111111-2222-4333-8444-555555555555"
ACCOUNTS = AccountsPolicy({"chatgpt": frozenset({CORP}), "claude": frozenset({CORP})})
CONVERSATION = "99999999-9999-4999-8999-999999999999"
CHATGPT_PROMPT = b'{"action":"next","messages":[{"author":{"role":"user"},"content":{"parts":["hi"]}}]}'
JSON = {"content-type": "application/json"}


# Spellings of ChatGPT's prompt path a CDN or server reads as `/backend-api/f/conversation`.
RESPELLED_CHATGPT_PROMPTS = {
    "escape": "/backend-api/f/%63onversation",
    "escape-twice": "/backend-api/f/%2563onversation",
    "dotdot": "/backend-api/x/../f/conversation",
    "dot": "/backend-api/f/./conversation",
    "double-slash": "/backend-api//f/conversation",
    "trailing-slash": "/backend-api/f/conversation/",
    "param": "/backend-api/f;x=1/conversation",
    "case": "/backend-api/F/Conversation",
    "escaped-slash": "/backend-api/f%2Fconversation",
}


@pytest.mark.parametrize("path", RESPELLED_CHATGPT_PROMPTS.values(), ids=RESPELLED_CHATGPT_PROMPTS.keys())
def test_a_respelled_chatgpt_prompt_path_is_the_prompt_endpoint(path: str) -> None:
    facts = classify(APPS, "chatgpt", "chatgpt.com", "POST", path, JSON, CHATGPT_PROMPT, ACCOUNTS)
    assert facts is not None
    assert (facts.endpoint.id, facts.account_kind, facts.texts) == ("chatgpt.prompt", "personal", ["hi"])


def test_a_signed_out_path_in_another_case_is_anonymous() -> None:
    headers = {**JSON, "chatgpt-account-id": CORP}
    facts = classify(
        APPS, "chatgpt", "chatgpt.com", "POST", "/backend-ANON/conversation", headers, CHATGPT_PROMPT, ACCOUNTS
    )
    assert facts is not None and facts.account_kind == "anonymous"


@pytest.mark.parametrize(
    "org",
    [
        f"{CORP}/../{PERSONAL}",
        f"{CORP}/%2e%2e/{PERSONAL}",
        f"/{PERSONAL}",
        f"{PERSONAL};{CORP}",
        f"{CORP}%2F..%2F{PERSONAL}",
    ],
    ids=["dotdot", "escaped-dotdot", "double-slash", "param", "escaped-slashes"],
)
def test_the_claude_org_is_the_one_the_server_reads(org: str) -> None:
    path = f"/api/organizations/{org}/chat_conversations/{CONVERSATION}/completion"
    facts = classify(APPS, "claude", "claude.ai", "POST", path, JSON, b'{"prompt":"hi"}', ACCOUNTS)
    assert facts is not None
    assert (facts.endpoint.id, facts.account_kind, facts.account_id) == ("claude.prompt", "other-workspace", PERSONAL)
    assert facts.conversation == CONVERSATION


def test_codex_on_a_respelled_path_is_the_codex_endpoint() -> None:
    for path in (
        "/backend-api/codex/%72esponses",
        "/backend-api/codex/./responses",
        "/backend-api/x/../codex/responses",
    ):
        [(endpoint, _)] = APPS.candidates("chatgpt", "chatgpt.com", "POST", path)
        assert endpoint.id == "chatgpt.codex"


@pytest.fixture
def synthetic_apps(tmp_path: Path):
    catalog = tmp_path / "providers.yaml"
    catalog.write_text(
        "version: 1\ncategories: {chat-web: x}\nwire_formats: {}\n"
        "web_apps:\n  claude:\n    endpoints:\n"
        "      - {id: files, method: POST, path: '/files/(?P<name>.+)', activity: other, source: s, verified: 2026-01-01}\n"
        "      - {id: chat, method: POST, path: '/o/(?P<org>[^/]+)/chat', activity: prompt, text: [prompt],"
        " account: {path_group: org}, source: s, verified: 2026-01-01}\n"
        "providers:\n  - {id: claude, name: C, vendor: A, category: chat-web, hosts: [claude.ai]}\n"
    )
    return load_web_apps(catalog)


def test_readings_that_name_different_accounts_take_the_stricter(synthetic_apps) -> None:
    """As sent, the org segment is `<corp>;x` (a server that keeps the parameter reads an org it
    does not know); without `;params` it is the corporate org. The request is judged as the former."""
    body = b'{"prompt":"hi"}'
    plain = classify(synthetic_apps, "claude", "claude.ai", "POST", f"/o/{CORP}/chat", JSON, body, ACCOUNTS)
    assert plain is not None and plain.account_kind == "corporate"
    split = classify(synthetic_apps, "claude", "claude.ai", "POST", f"/o/{CORP};x/chat", JSON, body, ACCOUNTS)
    assert split is not None and (split.account_kind, split.account_id) == ("other-workspace", f"{CORP};x")


def test_the_endpoint_of_the_servers_reading_comes_before_the_one_of_the_path_as_sent(synthetic_apps) -> None:
    """`/files/../o/<org>/chat` as sent is the earlier `files` endpoint; the server reads the prompt."""
    path = f"/files/../o/{CORP}/chat"
    ids = [endpoint.id for endpoint, _ in synthetic_apps.candidates("claude", "claude.ai", "POST", path)]
    assert ids == ["claude.chat", "claude.files"]
    facts = classify(synthetic_apps, "claude", "claude.ai", "POST", path, JSON, b'{"prompt":"hi"}', ACCOUNTS)
    assert facts is not None and (facts.activity, facts.texts) == ("prompt", ["hi"])


def test_a_path_that_reads_as_no_endpoint_is_none() -> None:
    assert (
        classify(
            APPS, "chatgpt", "chatgpt.com", "POST", "/backend-api/f/conversation/../../memories", JSON, b"{}", ACCOUNTS
        )
        is None
    )
