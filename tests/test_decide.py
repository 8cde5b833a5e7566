"""Decide, in process: the policy's decision (and the budgets) after Identify, with mitmproxy's
own addon harness (taddons/tflow) instead of a proxy."""

from __future__ import annotations

import asyncio
import json
import os
import time
from dataclasses import replace

from mitmproxy.proxy.layers.http import HttpRequestHeadersHook
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import taddons
from mitmproxy.test import tflow
from mitmproxy.test import tutils

from shadowgate.config.policy import DEFAULT_DECISION
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import Facts
from shadowgate.config.policy import McpPolicy
from shadowgate.config.policy import Policy
from shadowgate.config.policy import load_policy
from shadowgate.flow import Outcome
from shadowgate.flow import flow_record
from shadowgate.stages import decide as decide_module
from shadowgate.stages.decide import BODY_TOO_LARGE_RULE
from shadowgate.stages.decide import Decide
from shadowgate.stages.decide import body_needed_by
from shadowgate.stages.identify import PARSE_INLINE_BYTES
from shadowgate.stages.identify import Identify
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.storage.rows import ai_request
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import Usage

POLICY = """\
rules:
  - id: no-gpt4o-for-interns
    match: {provider: openai, model: "gpt-4o*", group: interns}
    action: block
budgets:
  - id: small
    per: user
    tokens_per_day: 100
    warn_at: 0.5
"""
USERS = """\
networks:
  - {cidr: 10.1.0.0/16, group: interns}
"""


def chat_flow(client_ip: str = "10.1.2.3", model: str = "gpt-4o-mini", prompt: str = "hi"):
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": prompt}]}).encode()
    request = tutils.treq(
        host="api.openai.com", port=443, scheme=b"https", method=b"POST", path=b"/v1/chat/completions",
        headers=((b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())),
        content=body,
    )  # fmt: skip
    request.timestamp_start = time.time()  # budgets count today's calls
    flow = tflow.tflow(req=request)
    flow.client_conn.sni = "api.openai.com"
    flow.client_conn.peername = (client_ip, 50000)
    return flow


def stages(tmp_path, policy: str = POLICY):
    (tmp_path / "policy.yaml").write_text(policy)
    (tmp_path / "users.yaml").write_text(USERS)
    settings = ShadowgateSettings()
    return settings, Identify(settings), Decide(settings)


def configure(tctx, settings, tmp_path) -> None:
    tctx.configure(
        settings,
        shadowgate_fingerprint_key=str(tmp_path / "fp.key"),
        shadowgate_policy=str(tmp_path / "policy.yaml"),
        shadowgate_users=str(tmp_path / "users.yaml"),
    )


async def run_request_hooks(tctx, flow) -> None:
    """Both request hooks through the addon manager, i.e. in list order, as mitmproxy does."""
    await tctx.master.addons.handle_lifecycle(HttpRequestHeadersHook(flow))
    await tctx.master.addons.handle_lifecycle(HttpRequestHook(flow))


def test_decide_runs_after_identify_and_the_policy_blocks_by_group_and_model(tmp_path):
    settings, identify, decide = stages(tmp_path)

    async def main():
        with taddons.context(settings, identify, decide) as tctx:
            configure(tctx, settings, tmp_path)
            blocked, other_group, other_model = chat_flow(), chat_flow("10.2.0.1"), chat_flow(model="o3")
            for flow in (blocked, other_group, other_model):
                await run_request_hooks(tctx, flow)
            return [flow_record(f).decision for f in (blocked, other_group, other_model)]

    blocked, other_group, other_model = asyncio.run(main())
    assert (blocked.action, blocked.rule_id) == ("block", "no-gpt4o-for-interns")
    assert (other_group.action, other_model.action) == ("allow", "allow")


def test_a_huge_body_parsed_off_the_loop_is_decided_once_parsed(tmp_path):
    settings, identify, decide = stages(tmp_path)

    async def main():
        with taddons.context(settings, identify, decide) as tctx:
            configure(tctx, settings, tmp_path)
            flow = chat_flow(prompt="x" * (PARSE_INLINE_BYTES + 1))
            await run_request_hooks(tctx, flow)  # Identify's hook returns a coroutine here
            return flow_record(flow)

    rec = asyncio.run(main())
    assert rec.facts.model == "gpt-4o-mini" and rec.facts.prompt_chars > PARSE_INLINE_BYTES
    assert (rec.decision.action, rec.decision.rule_id) == ("block", "no-gpt4o-for-interns")


def test_identify_alone_no_longer_decides(tmp_path):
    settings, identify, _ = stages(tmp_path)

    async def main():
        with taddons.context(settings, identify) as tctx:
            configure(tctx, settings, tmp_path)
            flow = chat_flow()
            await run_request_hooks(tctx, flow)
            return flow_record(flow)

    rec = asyncio.run(main())
    assert rec is not None and rec.facts.model == "gpt-4o-mini"
    assert rec.decision is DEFAULT_DECISION


def test_a_flow_already_answered_or_not_an_ai_call_is_not_decided(tmp_path):
    settings, identify, decide = stages(tmp_path)
    with taddons.context(settings, identify, decide) as tctx:
        configure(tctx, settings, tmp_path)
        answered = chat_flow()
        identify.requestheaders(answered)
        answered.response = tutils.tresp()
        decide.request(answered)
        assert flow_record(answered).decision is DEFAULT_DECISION
        plain = tflow.tflow()
        decide.request(plain)  # no FlowRecord: nothing to decide, nothing raised
        assert flow_record(plain) is None


def test_the_budget_turns_an_allowed_call_into_a_rate_limit_and_warns_before(tmp_path):
    settings, identify, decide = stages(tmp_path)
    with taddons.context(settings, identify, decide) as tctx:
        configure(tctx, settings, tmp_path)
        first = chat_flow("10.2.0.1")
        identify.requestheaders(first)
        identify.request(first)
        decide.request(first)
        assert flow_record(first).decision.action == "allow" and flow_record(first).budget_status is None
        # Record's writer thread counts each sealed row for the budgets.
        row = ai_request(
            flow_record(first), Outcome(200, ResponseFacts(usage=Usage(input_tokens=40, output_tokens=20)))
        )
        decide.count_usage(row)
        near = chat_flow("10.2.0.1")
        identify.requestheaders(near)
        identify.request(near)
        decide.request(near)
        assert flow_record(near).decision.action == "allow"
        assert flow_record(near).budget_status.startswith("small:tokens:")
        decide.count_usage(row)  # 120 of 100 tokens
        over = chat_flow("10.2.0.1")
        identify.requestheaders(over)
        identify.request(over)
        decide.request(over)
        decision = flow_record(over).decision
        assert (decision.action, decision.rule_id) == ("rate_limit", "small")
        assert decision.retry_after and decision.retry_after > 0


def test_a_changed_policy_file_is_reloaded_and_a_broken_one_keeps_the_old(tmp_path, monkeypatch, caplog):
    monkeypatch.setattr(decide_module, "POLICY_POLL_SECONDS", 0.02)
    settings, identify, decide = stages(tmp_path)
    path = tmp_path / "policy.yaml"

    async def wait_for(condition) -> bool:
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            if condition():
                return True
            await asyncio.sleep(0.02)
        return False

    def touch(text: str, step: int) -> None:
        path.write_text(text)
        later = time.time() + step  # a distinct mtime even on coarse file systems
        os.utime(path, (later, later))

    async def main():
        with taddons.context(settings, identify, decide) as tctx:
            configure(tctx, settings, tmp_path)
            decide.running()
            try:
                first = settings.policy
                touch("rules:\n  - id: all-blocked\n    match: {provider: openai}\n    action: block\n", 10)
                assert await wait_for(lambda: settings.policy is not first)
                assert [r.id for r in settings.policy.rules] == ["all-blocked"]
                good = settings.policy
                touch("rules:\n  - id: broken\n    action: nonsense\n", 20)
                assert await wait_for(lambda: settings.policy_mtime == os.stat(path).st_mtime_ns / 1e9)
                await asyncio.sleep(0.1)
                assert settings.policy is good  # the broken file did not replace it
            finally:
                decide.done()

    asyncio.run(main())
    assert "policy not reloaded, the previous one stays in force" in caplog.text


def test_a_decision_that_fails_refuses_the_call_unless_the_policy_only_observes(tmp_path, monkeypatch, caplog):
    settings, identify, decide = stages(tmp_path)

    def broken(*args, **kwargs):
        raise RuntimeError("budget store unreadable")

    with taddons.context(settings, identify, decide) as tctx:
        configure(tctx, settings, tmp_path)
        monkeypatch.setattr(decide.budgets, "check", broken)
        enforced = chat_flow("10.2.0.1")
        identify.requestheaders(enforced)
        identify.request(enforced)
        decide.request(enforced)
        decision = flow_record(enforced).decision
        assert (decision.action, decision.rule_id, decision.enforced) == ("block", "shadowgate-error", True)
        assert "the policy decision failed" in caplog.text
        (tmp_path / "observe.yaml").write_text("mode: observe\n" + POLICY)
        tctx.configure(settings, shadowgate_policy=str(tmp_path / "observe.yaml"))
        assert settings.policy.observe
        observed = chat_flow("10.2.0.1")
        identify.requestheaders(observed)
        identify.request(observed)
        decide.request(observed)
        assert flow_record(observed).decision is DEFAULT_DECISION  # observe mode changes no byte


def test_connections_and_requests_that_are_not_ai_calls_are_decided_from_the_same_policy(tmp_path):
    policy = (
        "passthrough: [chatgpt.com]\n"
        "rules:\n"
        "  - id: no-chat-apps\n    match: {category: chat-web}\n    action: block\n"
        "  - id: tenant\n    match: {host: login.microsoftonline.com}\n    action: allow\n"
    )
    settings, identify, decide = stages(tmp_path, policy)
    with taddons.context(settings, identify, decide) as tctx:
        configure(tctx, settings, tmp_path)
        tunnel = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="chatgpt.com", port=443, path=b""))
        facts, decision = decide.connection(tunnel)
        assert (facts.provider, decision.action, decision.rule_id) == ("chatgpt", "block", "no-chat-apps")
        decrypted = tflow.tflow(req=tutils.treq(method=b"CONNECT", host="api.openai.com", port=443, path=b""))
        assert decide.connection(decrypted) is None  # decided per request once decrypted
        page = tflow.tflow(req=tutils.treq(host="login.microsoftonline.com", port=443, scheme=b"https"))
        page.client_conn.sni = "login.microsoftonline.com"
        facts, decision = decide.unidentified(page)
        assert (facts.host, decision.rule_id) == ("login.microsoftonline.com", "tenant")


def test_a_body_too_big_to_read_is_decided_on_its_headers_and_refused_when_a_rule_needs_it(tmp_path):
    settings, identify, decide = stages(tmp_path)

    async def main():
        with taddons.context(settings, identify, decide) as tctx:
            configure(tctx, settings, tmp_path)
            settings.max_parse_bytes = 16
            intern, other = chat_flow(), chat_flow("10.2.0.1")
            for flow in (intern, other):
                await tctx.master.addons.handle_lifecycle(HttpRequestHeadersHook(flow))
                on_headers = flow_record(flow).decision
                flow.request.stream = True  # as Act does; the request hook then sees no body
                flow.request.data.content = None
                await tctx.master.addons.handle_lifecycle(HttpRequestHook(flow))
                assert flow_record(flow).decision is on_headers  # decided once, before the body
            return flow_record(intern), flow_record(other)

    intern, other = asyncio.run(main())
    assert intern.body_unread and intern.decided_on_headers
    assert (intern.decision.action, intern.decision.rule_id) == ("block", BODY_TOO_LARGE_RULE)
    assert "no-gpt4o-for-interns" in intern.decision.reason and "shadowgate_max_parse_bytes" in intern.decision.reason
    # Not an intern: the model rule cannot match whatever the model, so the headers suffice.
    assert (other.decision.action, other.decision.rule_id) == ("allow", "default")


def test_what_makes_the_policy_need_a_body(tmp_path):
    def policy(text: str) -> Policy:
        (tmp_path / "p.yaml").write_text(text)
        return load_policy(tmp_path / "p.yaml")

    facts = Facts(host="api.openai.com", provider="openai", wire_format="openai-chat", user="ann")
    needed = body_needed_by
    assert needed(policy("rules: []\n"), facts, True) is None
    model_rule = "rules:\n  - {id: m, match: {model: 'gpt-4o*'}, action: block}\n"
    assert "rule 'm'" in needed(policy(model_rule), facts, True)
    # A rule before it that matches without the model decides: the model rule is never reached.
    first = (
        "rules:\n  - {id: ann, match: {user: ann}, action: allow}\n  - {id: m, match: {model: 'x*'}, action: block}\n"
    )
    assert needed(policy(first), facts, True) is None
    # A model in the path is known: the rule is judged on it.
    assert needed(policy(model_rule), replace(facts, model="o3"), True) is None
    budget = "budgets:\n  - {id: b, per: user, match: {model: 'gpt-4o*'}, tokens_per_day: 5}\n"
    assert "budget 'b'" in needed(policy(budget), facts, True)
    assert "DLP" in needed(Policy(dlp=DlpPolicy()), facts, True)
    assert needed(Policy(dlp=DlpPolicy(on_error="allow")), facts, True) is None
    assert "MCP" in needed(Policy(mcp=McpPolicy()), facts, True)
    assert needed(Policy(mcp=McpPolicy()), facts, False) is None
