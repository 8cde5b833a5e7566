"""Enforcement end to end: real SDKs through a real mitmdump, fake providers and a fake gateway."""

from __future__ import annotations

import json
import time

import httpx
import pytest

CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
GATEWAY_KEY = "sk-corp-gateway-key-do-not-leak-42"

POLICY = """\
rules:
  - id: gateway-itself
    match: {host: llm.corp.test}
    action: allow
  - id: block-deepseek
    match: {provider: deepseek}
    action: block
    message: DeepSeek is not approved for company data
    alternative: https://chat.corp.test
  - id: block-anthropic-for-interns
    match: {provider: anthropic, group: interns}
    action: block
    message: Claude is not available to interns
    alternative: the company gateway at https://llm.corp.test
  - id: block-gemini
    match: {provider: gemini-api}
    action: block
    alternative: https://llm.corp.test
  - id: coach-chatgpt
    match: {provider: chatgpt}
    action: coach
    message: ChatGPT is not approved for customer data.
    alternative: https://chat.corp.test
    coach: {api: block, minutes: 30}
  - id: openai-to-gateway
    match: {provider: openai, model: "gpt-4o*", user: "redirected*"}
    action: redirect
    gateway:
      openai_base_url: https://llm.corp.test/v1
      anthropic_base_url: https://llm.corp.test/anthropic
      key_env: SG_TEST_GATEWAY_KEY
      model_map: {gpt-4o-mini: corp-gpt-4o-mini}
  - id: anthropic-to-gateway
    match: {provider: anthropic, user: "redirected*"}
    action: redirect
    gateway:
      openai_base_url: https://llm.corp.test/v1
      key_env: SG_TEST_GATEWAY_KEY
  - id: claude-web-to-internal-chat
    match: {provider: claude}
    action: redirect
    browser_url: https://chat.corp.test/
  - id: m365-tenant-restriction
    match: {host: login.microsoftonline.com}
    action: allow
    headers:
      Restrict-Access-To-Tenants: contoso.com
      Restrict-Access-Context: 11111111-2222-3333-4444-555555555555
  - id: github-copilot-enterprise
    match: {provider: github-copilot}
    action: allow
    headers:
      sec-GitHub-allowed-enterprise: "12345"
budgets:
  - id: tiny-daily-tokens
    per: user
    match: {user: "budget*"}
    tokens_per_day: 100
  - id: two-per-minute
    per: group
    match: {group: ratelimited}
    requests_per_minute: 2
"""

USERS = """\
networks: []
users:
  intern1: {group: interns}
  rl1: {group: ratelimited}
"""


@pytest.fixture
def enforcing(proxy_with, tmp_path):
    users = tmp_path / "users.yaml"
    users.write_text(USERS)
    # The gateway key is read from the proxy's environment when a request is redirected.
    return proxy_with(POLICY, environ={"SG_TEST_GATEWAY_KEY": GATEWAY_KEY}, shadowgate_users=str(users))


def test_openai_sdk_gets_a_permission_error_naming_rule_and_alternative(enforcing, upstream):
    import openai

    before = len(upstream.seen)
    with enforcing.sdk_http("dee") as http:
        client = openai.OpenAI(
            api_key="sk-test", base_url="https://api.deepseek.com/v1", http_client=http, max_retries=0
        )
        with pytest.raises(openai.PermissionDeniedError) as e:
            client.chat.completions.create(model="deepseek-chat", messages=[{"role": "user", "content": "hi"}])
    assert e.value.status_code == 403
    assert "block-deepseek" in str(e.value) and "https://chat.corp.test" in str(e.value)
    assert len(upstream.seen) == before  # nothing reached the provider
    [row] = enforcing.rows("user_name = 'dee'", expect=1)
    assert (row["decision"], row["rule_id"], row["status_code"]) == ("block", "block-deepseek", 403)


def test_anthropic_sdk_gets_its_own_permission_error(enforcing):
    import anthropic

    with enforcing.sdk_http("intern1") as http:
        client = anthropic.Anthropic(api_key="sk-ant-api03-x", http_client=http, max_retries=0)
        with pytest.raises(anthropic.PermissionDeniedError) as e:
            client.messages.create(model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert e.value.body["error"]["type"] == "permission_error"
    assert "Claude is not available to interns" in str(e.value)
    [row] = enforcing.rows("user_name = 'intern1'", expect=1)
    assert row["user_group"] == "interns" and row["decision"] == "block"


def test_gemini_sdk_gets_permission_denied(enforcing):
    from google import genai
    from google.genai import errors
    from google.genai import types

    options = types.HttpOptions(client_args={"proxy": enforcing.url("gem"), "verify": enforcing.ssl_context()})
    client = genai.Client(api_key="AIza-test", http_options=options)
    with pytest.raises(errors.ClientError) as e:
        client.models.generate_content(model="gemini-2.5-flash", contents="hi")
    assert e.value.code == 403 and e.value.status == "PERMISSION_DENIED"
    assert "block-gemini" in e.value.message


def test_browser_navigation_gets_an_html_block_page(enforcing):
    with enforcing.client("browser1") as client:
        r = client.get("https://api.deepseek.com/", headers={"sec-fetch-mode": "navigate", "accept": "text/html"})
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "This AI service is blocked" in r.text and "https://chat.corp.test" in r.text and "block-deepseek" in r.text


def test_coach_page_continue_then_pass(enforcing, upstream):
    nav = {"sec-fetch-mode": "navigate", "accept": "text/html"}
    with enforcing.client("coached_user") as client:
        page = client.get("https://chatgpt.com/", headers=nav)
        assert page.status_code == 200 and "Before you continue" in page.text and "https://chat.corp.test" in page.text
        action = page.text.split('action="', 1)[1].split('"', 1)[0].replace("&amp;", "&")
        api = client.post("https://chatgpt.com/backend-api/conversation", json={"x": 1})
        assert api.status_code == 403  # coach.api: block — an API call cannot click
        before = len(upstream.seen)
        cont = client.post(f"https://chatgpt.com{action}")
        assert cont.status_code == 302 and cont.headers["location"] == "/"
        after = client.get("https://chatgpt.com/_fake/bytes?size=4", headers=nav)
        assert after.status_code == 200 and len(upstream.seen) == before + 1, after.text[:300]
        forged = client.post("https://chatgpt.com/__shadowgate/coach/continue?t=abc.def")
        assert forged.status_code == 400
    [event] = _events(enforcing, "coached_user")
    assert event["event"] == "coach_continue" and event["rule_id"] == "coach-chatgpt" and event["provider"] == "chatgpt"


def _events(proxy, user):
    return proxy.rows(f"user_name = '{user}'", expect=1, table="policy_events")


def test_redirect_to_gateway_swaps_key_maps_model_and_streams(enforcing, upstream):
    import openai

    with enforcing.sdk_http("redirected_amy") as http:
        client = openai.OpenAI(api_key="sk-proj-amys-personal-key", http_client=http, max_retries=0)
        plain = client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        seen_plain = upstream.seen[-1]
        chunks = list(
            client.chat.completions.create(
                model="gpt-4o-mini",
                messages=[{"role": "user", "content": "hi"}],
                stream=True,
                stream_options={"include_usage": True},
            )
        )
        seen_stream = upstream.seen[-1]
    assert plain.choices and chunks[-1].usage is not None
    for seen in (seen_plain, seen_stream):
        assert seen.host == "llm.corp.test" and seen.path == "/v1/chat/completions"
        assert seen.headers["authorization"] == f"Bearer {GATEWAY_KEY}"
        assert b"amys-personal-key" not in json.dumps(seen.headers).encode() + seen.body
        assert json.loads(seen.body)["model"] == "corp-gpt-4o-mini"
    rows = enforcing.rows("user_name = 'redirected_amy'", expect=2)
    assert [(r["provider"], r["decision"], r["redirect_target"]) for r in rows] == [
        ("openai", "redirect", "llm.corp.test")
    ] * 2
    assert rows[1]["streaming"] is True and rows[1]["output_tokens"] == chunks[-1].usage.completion_tokens
    # The gateway key is in no row and no log line.
    assert GATEWAY_KEY not in json.dumps(rows, default=str) and GATEWAY_KEY not in enforcing.log()
    assert GATEWAY_KEY.encode() not in b"".join(p.read_bytes() for p in enforcing.db.parent.rglob("*.parquet"))


def test_anthropic_redirect_without_messages_route_is_refused_clearly(enforcing):
    import anthropic

    with enforcing.sdk_http("redirected_ben") as http:
        client = anthropic.Anthropic(api_key="sk-ant-api03-x", http_client=http, max_retries=0)
        with pytest.raises(anthropic.PermissionDeniedError) as e:
            client.messages.create(model="claude-sonnet-5", max_tokens=10, messages=[{"role": "user", "content": "hi"}])
    assert "no Anthropic Messages route" in str(e.value)


def test_browser_to_unapproved_chat_app_gets_302_to_internal_chat(enforcing):
    with enforcing.client("webuser") as client:
        r = client.get("https://claude.ai/new", headers={"sec-fetch-mode": "navigate"})
    assert r.status_code == 302 and r.headers["location"] == "https://chat.corp.test/"


def test_tenant_restriction_headers_are_injected(enforcing, upstream):
    with enforcing.client("tenant") as client:
        assert client.get("https://login.microsoftonline.com/_fake/bytes?size=1").status_code == 200
        seen = upstream.seen[-1]
        assert seen.headers["restrict-access-to-tenants"] == "contoso.com"
        assert seen.headers["restrict-access-context"] == "11111111-2222-3333-4444-555555555555"
        assert client.post("https://api.githubcopilot.com/_fake/echo", json=CHAT).status_code == 200
        assert upstream.seen[-1].headers["sec-github-allowed-enterprise"] == "12345"


def test_token_budget_returns_429_with_retry_after(enforcing):
    import openai

    with enforcing.sdk_http("budget_bob") as http:
        client = openai.OpenAI(api_key="sk-test", http_client=http, max_retries=0)
        client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
        enforcing.rows("user_name = 'budget_bob'", expect=1)
        deadline = time.monotonic() + 40  # usage reaches the budget once the row is sealed
        while True:
            try:
                client.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
            except openai.RateLimitError as e:
                error = e
                break
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert "tiny-daily-tokens" in str(error)
    assert 0 < int(error.response.headers["retry-after"]) <= 86400
    rows = enforcing.rows("user_name = 'budget_bob' AND decision = 'rate_limit'", expect=1)
    assert rows[0]["rule_id"] == "tiny-daily-tokens" and rows[0]["status_code"] == 429


def test_requests_per_minute_per_group(enforcing):
    with enforcing.client("rl1") as client:
        codes = [client.post("https://api.openai.com/v1/chat/completions", json=CHAT).status_code for _ in range(3)]
    assert codes == [200, 200, 429]


def test_connect_to_blocked_host_that_is_not_decrypted_is_refused(proxy_with):
    proxy = proxy_with(
        "passthrough: [api.deepseek.com]\nrules:\n  - id: no-deepseek\n    match: {provider: deepseek}\n    action: block\n"
    )
    with httpx.Client(proxy=proxy.url("c1"), verify=proxy.test_ssl_context()) as client:
        with pytest.raises(httpx.ProxyError, match="403"):
            client.get("https://api.deepseek.com/")
    [row] = proxy.rows("user_name = 'c1'", expect=1)
    assert (row["decision"], row["inspected"], row["method"]) == ("block", False, "CONNECT")


def test_observe_mode_changes_no_byte_and_logs_would_block(proxy_with, upstream):
    proxy = proxy_with(
        "mode: observe\nrules:\n  - id: no-openai\n    match: {provider: openai}\n    action: block\n"
        "    headers: {X-Injected: yes}\n"
    )
    body = json.dumps(CHAT).encode()
    with proxy.client("watcher") as client:
        r = client.post(
            "https://api.openai.com/v1/chat/completions",
            content=body,
            headers={"content-type": "application/json", "x-mark": "1"},
        )
    assert r.status_code == 200
    seen = upstream.seen[-1]
    assert seen.body == body and "x-injected" not in seen.headers and seen.headers["x-mark"] == "1"
    [row] = proxy.rows("user_name = 'watcher'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("would_block", "no-openai")


def test_invalid_reload_keeps_the_old_policy_and_a_valid_one_applies(proxy_with, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("rules:\n  - id: no-openai\n    match: {provider: openai}\n    action: block\n")
    proxy = proxy_with(shadowgate_policy=str(policy))

    def status(user: str) -> int:
        with proxy.client(user) as client:
            return client.post("https://api.openai.com/v1/chat/completions", json=CHAT).status_code

    assert status("r1") == 403
    policy.write_text("rules:\n  - id: no-openai\n    match: {provider: openai}\n    action: explode\n")
    deadline = time.monotonic() + 10
    while "policy not reloaded" not in proxy.log():
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert "p.yaml:4: rule 'no-openai': action must be one of" in proxy.log()
    assert status("r2") == 403 and proxy.alive()
    policy.write_text("rules: []\n")
    while "policy reloaded" not in proxy.log():
        assert time.monotonic() < deadline + 10
        time.sleep(0.2)
    assert status("r3") == 200


def test_budgets_survive_a_restart_and_count_every_instance(fresh_proxy, tmp_path):
    policy = tmp_path / "p.yaml"
    policy.write_text("budgets:\n  - id: small\n    per: user\n    tokens_per_day: 30\n    warn_at: 0.5\n")
    shared = tmp_path / "shared.duckdb"
    first = fresh_proxy("--set", f"shadowgate_policy={policy}", db=shared)
    with first.client("carl") as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=CHAT).status_code == 200
    [row] = first.rows("user_name = 'carl'", expect=1)
    assert row["input_tokens"] + row["output_tokens"] >= 30  # the fixture's usage uses up the budget
    # Another instance on the same data directory, started after the first one stopped, sees
    # carl's usage in the sealed segments (instances running side by side read the same files).
    first.stop()
    second = fresh_proxy("--set", f"shadowgate_policy={policy}", db=shared)
    # The writer's first cycle rebuilds the budget totals from the segments; a flush waits for
    # that cycle to end.
    second.flush()
    with second.client("carl") as client:
        r = client.post("https://api.openai.com/v1/chat/completions", json=CHAT)
    assert r.status_code == 429 and "small" in r.json()["error"]["message"]
    with second.client("dora") as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=CHAT).status_code == 200


ALL_OPENAI_TO_GATEWAY = """\
rules:
  - id: openai-to-gateway
    match: {provider: openai}
    action: redirect
    gateway: {openai_base_url: "https://llm.corp.test/v1", key_env: SG_TEST_GATEWAY_KEY}
"""


@pytest.mark.parametrize(
    ("method", "path", "gateway_path"),
    [
        ("GET", "/v1/models", "/v1/models"),
        ("GET", "/v1/models/gpt-4.1", "/v1/models/gpt-4.1"),
        (
            "GET",
            "/v1/responses/resp_abc123?stream=true&starting_after=3",
            "/v1/responses/resp_abc123?stream=true&starting_after=3",
        ),
        ("POST", "/v1/moderations", "/v1/moderations"),
    ],
)
def test_the_calls_that_go_with_a_redirected_one_follow_it(proxy_with, upstream, method, path, gateway_path):
    """Round-6b G27: listing models (every chat UI does at start), fetching a background response
    and moderations were refused 403 under a redirect of OpenAI to the gateway."""
    proxy = proxy_with(ALL_OPENAI_TO_GATEWAY, environ={"SG_TEST_GATEWAY_KEY": GATEWAY_KEY})
    before = len(upstream.seen)
    with proxy.client("companion") as client:
        body = {"input": "hi"} if method == "POST" else None
        client.request(method, f"https://api.openai.com{path}", json=body, headers={"authorization": "Bearer sk-mine"})
    [seen] = upstream.seen[before:]
    assert (seen.host, seen.path) == ("llm.corp.test", gateway_path)
    assert seen.headers["authorization"] == f"Bearer {GATEWAY_KEY}"


@pytest.mark.parametrize("path", ["/v1/key/generate", "/v1/../key/generate", "/v1/files", "/v1/models/../../admin"])
def test_other_paths_never_reach_the_gateway_with_its_key(proxy_with, upstream, path):
    proxy = proxy_with(ALL_OPENAI_TO_GATEWAY, environ={"SG_TEST_GATEWAY_KEY": GATEWAY_KEY})
    before = len(upstream.seen)
    with proxy.client("companion-x") as client:
        answer = client.get(f"https://api.openai.com{path}", headers={"authorization": "Bearer sk-mine"})
    assert answer.status_code == 403 and len(upstream.seen) == before
