"""Approval of risky MCP tool calls (issue 19, LLM08) through a real mitmdump.

The official MCP SDK client calls a local SDK server through the proxy; the proxy holds the calls
the policy names, tells a local webhook receiver, and an approver "clicks" the link with httpx
through the proxy. Attacks: forged, expired, replayed links, a link for another call, changed
arguments after an approval, a flood of held calls, a client that hangs up, the HTTP+SSE
transport, self-approval, a click on another instance, provider-hosted calls.
"""

from __future__ import annotations

import base64
import concurrent.futures
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from mitmproxy.test import taddons

from shadowgate.config.policy import load_policy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.mcp.approval import APPROVED
from shadowgate.mcp.approval import DENIED
from shadowgate.mcp.approval import TIMEOUT
from shadowgate.mcp.approval import ApprovalStore
from shadowgate.mcp.approval import approval_tokens
from shadowgate.mcp.approval import notify
from shadowgate.stages.mcp import Mcp
from shadowgate.stages.settings import ShadowgateSettings
from tests.conftest import Proxy
from tests.conftest import start_proxy
from tests.support.receivers import SmtpSink
from tests.support.receivers import UdpSyslog
from tests.support.receivers import Webhook
from tests.support.receivers import wait_for
from tests.test_mcp import CORP
from tests.test_mcp import calls
from tests.test_mcp import mcp_server
from tests.test_mcp import run
from tests.test_siem import RFC5424
from tests.unit.test_mcp import post

RAN: list[tuple[str, Any]] = []  # what the MCP server actually ran


def _server() -> MCPServer:
    server = MCPServer("corp-tools", version="1.0")

    @server.tool()
    def merge_pr(pr: int) -> str:
        RAN.append(("merge_pr", pr))
        return f"merged {pr}"

    @server.tool()
    def deploy(env: str) -> str:
        RAN.append(("deploy", env))
        return f"deployed to {env}"

    @server.tool()
    def echo(text: str) -> str:
        RAN.append(("echo", text))
        return text

    return server


def policy_text(webhook: str, timeout: str = "6s", alerts: str = "") -> str:
    return f"""
alerts:
  destinations:
    approvers: {{webhook: "{webhook}"}}
{alerts}
mcp:
  approval:
    notify: [approvers]
    timeout: {timeout}
    max_held: 4
    max_held_per_user: 2
    approvers: {{group: sre}}
  servers:
    - id: corp
      host: {CORP}
      approve_tools: ["merge_*"]
      approve_arguments: ['(?i)\\bprod\\b']
"""


# What security hears of approvals (issue 19 left it out): chat, syslog, and the SIEM feed.
ALERT_RULES = """\
    secops: {{webhook: "{url}", shape: slack}}
    siem: {{syslog: "udp://127.0.0.1:{port}"}}
  rules:
    - {{id: held, event: mcp_approval_requested, to: secops, every: 0, max_per_hour: 1000}}
    - {{id: denied, event: mcp_approval_denied, to: [secops, siem], every: 0, max_per_hour: 1000}}
    - {{id: undecided, event: mcp_approval_timeout, to: [secops, siem], every: 0, max_per_hour: 1000}}"""
USERS = "users:\n  sam: {group: sre}\n  pat: {group: sre}\n  alice: {group: sre}\n"


@pytest.fixture(scope="module")
def hook() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def alert_hook() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def alert_syslog() -> Iterator[UdpSyslog]:
    with UdpSyslog() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def siem_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("approve-siem") / "events.jsonl"


@pytest.fixture(scope="module")
def mcp_port(tmp_path_factory, test_ca) -> Iterator[int]:
    with mcp_server(tmp_path_factory.mktemp("approve-mcp"), test_ca, json_response=False, make=_server) as port:
        yield port


def _start(folder: Path, upstream, test_ca, port: int, webhook: str, db: Path | None = None, key: Path | None = None,
           alerts: str = "", siem: Path | None = None):  # fmt: skip
    folder.mkdir(parents=True, exist_ok=True)
    policy, users = folder / "policy.yaml", folder / "users.yaml"
    policy.write_text(policy_text(webhook, alerts=alerts))
    users.write_text(USERS)
    extra = ["--set", f"shadowgate_policy={policy}", "--set", f"shadowgate_users={users}"]
    if siem is not None:
        extra += ["--set", f"shadowgate_siem=json:{siem}"]
    if key is not None:
        extra += ["--set", f"shadowgate_fingerprint_key={key}"]
    return start_proxy(folder / "proxy", upstream, test_ca, *extra, upstream_port=port, db=db)


@pytest.fixture(scope="module")
def approve_proxy(
    tmp_path_factory, upstream, test_ca, mcp_port, hook, alert_hook, alert_syslog, siem_file
) -> Iterator[Proxy]:
    alerts = ALERT_RULES.format(url=alert_hook.url, port=alert_syslog.port)
    folder = tmp_path_factory.mktemp("approve")
    proxy = _start(folder, upstream, test_ca, mcp_port, hook.url, alerts=alerts, siem=siem_file)
    yield proxy
    proxy.stop()


_pool = concurrent.futures.ThreadPoolExecutor(8)


def agent(proxy: Proxy, tool: str, args: dict, user: str = "alice", sse: bool = False) -> concurrent.futures.Future:
    """The agent's call, in the background: its result text, or ("refused", message)."""

    async def body(client: Client) -> Any:
        try:
            return (await client.call_tool(tool, args)).content[0].text
        except MCPError as e:
            return ("refused", str(e))

    return _pool.submit(run, proxy, CORP, body, user, sse)


def _arguments(body: dict) -> str:
    return str((body.get("fields") or {}).get("arguments"))


def link_for(hook: Webhook, marker: str, seen: int = 0) -> str:
    """The link of the (seen+1)-th approval request whose text names the marker."""

    def found() -> str | None:
        links = [b["link"] for b in list(hook.bodies) if marker in _arguments(b)]
        return links[seen] if len(links) > seen else None

    return wait_for(found, 15, f"an approval request for {marker}")


def clicker(proxy: Proxy, user: str = "sam") -> httpx.Client:
    return httpx.Client(proxy=proxy.url(user), timeout=15)


def alerts_about(alert_hook: Webhook, call: str, words: str) -> list[dict]:
    """The security alerts (not the approvers' requests) naming a call ("kim's call") and some words."""
    return [b for b in list(alert_hook.bodies) if call in b["text"] and words in b["text"]]


def test_approved_call_goes_on_with_the_arguments_shown(approve_proxy, hook):
    pending = agent(approve_proxy, "merge_pr", {"pr": 101}, user="ana")
    link = link_for(hook, '"pr":101')
    assert link.startswith("http://shadowgate.approval/mcp/approval/")
    [body] = [b for b in hook.bodies if b.get("link") == link]
    assert body["fields"]["user"] == "ana" and "merge_pr" in body["title"]
    time.sleep(0.5)
    assert ("merge_pr", 101) not in RAN and not pending.done()  # held: the server has not run it
    with clicker(approve_proxy) as browser:
        page = browser.get(link)  # a preview (GET) decides nothing
        assert page.status_code == 200 and "merge_pr" in page.text and "Approve" in page.text
        assert page.headers["x-frame-options"] == "DENY" and page.headers["referrer-policy"] == "no-referrer"
        time.sleep(0.7)
        assert not pending.done()
        decided = browser.post(link + "?decision=approve")
    assert decided.status_code == 200, decided.text
    assert pending.result(15) == "merged 101"
    assert RAN.count(("merge_pr", 101)) == 1
    [row] = calls(approve_proxy, "tool_name = 'merge_pr' AND user_name = 'ana'", 1)
    assert (row["decision"], row["approver"], row["rule_id"]) == (APPROVED, "sam", "mcp:corp:approval")
    assert row["is_error"] is False and row["latency_ms"] > 500


def test_denied_call_is_refused_and_never_runs(approve_proxy, hook):
    pending = agent(approve_proxy, "deploy", {"env": "prod"})  # held for its argument
    link = link_for(hook, '"env":"prod"')
    with clicker(approve_proxy, "pat") as browser:
        assert browser.post(link + "?decision=deny").status_code == 200
        replay = browser.post(link + "?decision=approve")  # the same link again: single use
    assert replay.status_code == 409 and "denied" in replay.text
    outcome = pending.result(15)
    assert outcome[0] == "refused" and "pat denied the call to deploy" in outcome[1]
    assert ("deploy", "prod") not in RAN
    [row] = calls(approve_proxy, "tool_name = 'deploy'", 1)
    assert (row["decision"], row["approver"], row["is_error"]) == (DENIED, "pat", True)


@pytest.mark.parametrize(
    "env",
    ['{"stage": "pr\\u006fd"}', "https://deploy.corp.example/api?env=pr%6fd", "pr&#111;d"],
    ids=["json-escape", "percent", "html-reference"],
)
def test_a_trigger_the_tool_decodes_still_holds_the_call(approve_proxy, hook, env):
    # The tool reads `prod` once it parses the JSON, decodes the URL or the reference: the
    # trigger is matched in those readings too (red-team F61).
    pending = agent(approve_proxy, "deploy", {"env": env}, user="lee")
    link = link_for(hook, env.replace('"', '\\"').split("pr")[-1])
    with clicker(approve_proxy, "pat") as browser:
        assert browser.post(link + "?decision=deny").status_code == 200
    assert pending.result(15)[0] == "refused"
    assert ("deploy", env) not in RAN


def test_no_decision_means_refused_at_the_timeout_and_the_link_dies(approve_proxy, hook, alert_hook):
    started = time.monotonic()
    outcome = agent(approve_proxy, "merge_pr", {"pr": 202}).result(30)
    waited = time.monotonic() - started
    assert outcome[0] == "refused" and "within 6 s" in outcome[1], outcome
    assert 5.5 < waited < 15
    assert ("merge_pr", 202) not in RAN
    link = link_for(hook, '"pr":202')
    with clicker(approve_proxy) as browser:
        late = browser.post(link + "?decision=approve")
    assert late.status_code in (403, 409)  # expired, or decided by the timeout
    [row] = calls(approve_proxy, "tool_name = 'merge_pr' AND decision = 'approval_timeout'", 1)
    assert row["approver"] is None and row["is_error"] is True
    assert ("merge_pr", 202) not in RAN
    wait_for(lambda: alerts_about(alert_hook, "no approver decided on alice's call to merge_pr", "in time"),
             15, "the timeout alert")  # fmt: skip


def test_forged_and_foreign_links_decide_nothing(approve_proxy, hook, tmp_path):
    pending = agent(approve_proxy, "merge_pr", {"pr": 303})
    link = link_for(hook, '"pr":303')
    token = link.rsplit("/", 1)[1]
    payload, _, mac = token.partition(".")
    call_id, digest, expires = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))[1:]
    forged_payload = base64.urlsafe_b64encode(json.dumps(["mcp_approval", call_id, digest, expires + 3600]).encode())
    other_key = approval_tokens(b"not the proxy's key").sign("mcp_approval", [call_id, digest], expires)
    consent_kind = approval_tokens(b"x").sign("consent", [call_id, digest], expires)
    base = link.rsplit("/", 1)[0]
    with clicker(approve_proxy) as browser:
        for bad in (
            f"{forged_payload.decode().rstrip('=')}.{mac}",  # a longer expiry under the old signature
            other_key,  # signed with another key
            consent_kind,
            token[:-1] + ("0" if token[-1] != "0" else "1"),  # one character of the signature changed
            "../../etc/passwd",
            "",
        ):
            answer = browser.post(f"{base}/{bad}?decision=approve")
            assert answer.status_code in (403, 404), (bad, answer.status_code)
        assert browser.post(f"{link}?decision=maybe").status_code == 400
        assert browser.put(link).status_code == 405
        # A page elsewhere that auto-submits a form in an approver's browser (CSRF).
        for headers in ({"origin": "https://evil.example"}, {"origin": "null"}, {"sec-fetch-site": "cross-site"}):
            assert browser.post(link + "?decision=approve", headers=headers).status_code == 403, headers
    time.sleep(0.7)
    assert not pending.done() and ("merge_pr", 303) not in RAN
    with clicker(approve_proxy) as browser:
        assert browser.post(link + "?decision=deny").status_code == 200
    assert pending.result(15)[0] == "refused"


def test_approval_alerts_reach_chat_syslog_and_the_siem_feed_without_the_arguments(
    approve_proxy, hook, alert_hook, alert_syslog, siem_file
):
    marker = "change-ticket-51c7e0"  # in the arguments only: the approver sees it, security's alerts do not
    pending = agent(approve_proxy, "deploy", {"env": "prod", "note": marker}, user="kim")
    link = link_for(hook, marker)
    [held] = wait_for(lambda: alerts_about(alert_hook, "kim's agent", "held for approval"), 15, "the held alert")
    assert held["text"].startswith(f"MCP call held for approval: deploy: kim's agent called deploy on {CORP} (")
    assert not pending.done()  # told while the call waits, not after
    with clicker(approve_proxy, "pat") as browser:
        assert browser.post(link + "?decision=deny").status_code == 200
    assert pending.result(15)[0] == "refused"
    [denied] = wait_for(lambda: alerts_about(alert_hook, "kim's call", "denied"), 15, "the denial alert")
    assert denied["text"] == (
        f"MCP call denied: deploy: pat denied kim's call to deploy on {CORP}; rule mcp:corp:approval"
    )
    [syslog] = wait_for(lambda: [m for m in alert_syslog.messages if "kim's call" in m], 15, "the syslog alert")
    sent = json.loads(RFC5424.match(syslog)["msg"])

    def kims() -> dict | None:
        events = [e for e in feed_events(siem_file) if e.get("user", {}).get("name") == "kim"]
        return {e["event"]["action"]: e for e in events} if len(events) >= 3 else None

    by_action = wait_for(kims, 15, "kim's events in the SIEM feed")
    assert set(by_action) == {"alert_mcp_approval_requested", "mcp_denied", "alert_mcp_approval_denied"}
    call_id = by_action["mcp_denied"]["event"]["id"]
    for action in ("alert_mcp_approval_requested", "alert_mcp_approval_denied"):
        assert by_action[action]["event"]["kind"] == "alert"
        assert by_action[action]["shadowgate"]["alert"]["request_id"] == call_id
    assert by_action["alert_mcp_approval_denied"]["event"]["id"] == sent["event"]["id"]  # one alert, two ways
    everything = json.dumps(list(alert_hook.bodies)) + "".join(alert_syslog.messages) + siem_file.read_text()
    assert marker not in everything
    assert any(marker in _arguments(b) for b in hook.bodies)  # the approver's request did carry it


def feed_events(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def test_a_link_decides_its_own_call_only_and_new_arguments_need_a_new_approval(approve_proxy, hook):
    first = agent(approve_proxy, "merge_pr", {"pr": 404}, user="bob")
    second = agent(approve_proxy, "merge_pr", {"pr": 405}, user="bob")
    link_first = link_for(hook, '"pr":404')
    link_for(hook, '"pr":405')
    with clicker(approve_proxy) as browser:
        assert browser.post(link_first + "?decision=approve").status_code == 200
    assert first.result(15) == "merged 404"
    time.sleep(0.7)
    assert not second.done() and ("merge_pr", 405) not in RAN  # still waiting for its own decision
    # The agent changes the arguments after the approval: a new call, held again, the old link spent.
    third = agent(approve_proxy, "merge_pr", {"pr": 999}, user="bob")
    link_third = link_for(hook, '"pr":999')
    assert link_third != link_first
    with clicker(approve_proxy) as browser:
        assert browser.post(link_first + "?decision=approve").status_code == 409
        time.sleep(0.7)
        assert not third.done()
        browser.post(link_third + "?decision=deny")
    assert third.result(15)[0] == "refused" and ("merge_pr", 999) not in RAN
    assert second.result(30)[0] == "refused"  # timed out
    assert RAN.count(("merge_pr", 404)) == 1 and ("merge_pr", 405) not in RAN


def test_a_flood_of_held_calls_is_refused_beyond_the_limit(approve_proxy, hook):
    held = [agent(approve_proxy, "merge_pr", {"pr": 500 + i}, user="carl") for i in range(2)]
    link_for(hook, '"pr":500')
    link_for(hook, '"pr":501')
    started = time.monotonic()
    extra = agent(approve_proxy, "merge_pr", {"pr": 502}, user="carl").result(15)
    assert extra[0] == "refused" and "already waiting" in extra[1]
    assert time.monotonic() - started < 5  # refused at once, not held
    # Another person is not starved by carl's flood (2 of max_held 4 in use).
    other = agent(approve_proxy, "merge_pr", {"pr": 510}, user="dora")
    link = link_for(hook, '"pr":510')
    with clicker(approve_proxy) as browser:
        browser.post(link + "?decision=approve")
        for i in range(2):
            browser.post(link_for(hook, f'"pr":{500 + i}') + "?decision=deny")
    assert other.result(15) == "merged 510"
    assert all(h.result(15)[0] == "refused" for h in held)
    [busy] = calls(approve_proxy, "tool_name = 'merge_pr' AND user_name = 'carl' AND decision = 'block'", 1)
    assert busy["rule_id"] == "mcp:corp:approval:busy"
    assert not any('"pr":502' in _arguments(b) for b in hook.bodies)  # nobody was asked


def test_a_client_that_hangs_up_while_held_is_recorded_and_the_call_never_runs(approve_proxy, hook, alert_hook):
    body = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "merge_pr", "arguments": {"pr": 606}}}
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}
    with approve_proxy.client("erin", timeout=2) as raw, pytest.raises(httpx.TimeoutException):
        raw.post(f"https://{CORP}/mcp", json=body, headers=headers)
    link = link_for(hook, '"pr":606')
    [row] = calls(approve_proxy, "tool_name = 'merge_pr' AND user_name = 'erin'", 1, timeout=15)
    assert (row["decision"], row["is_error"]) == ("abandoned", True)
    with clicker(approve_proxy) as browser:
        late = browser.post(link + "?decision=approve")
    assert late.status_code == 409 and "abandoned" in late.text
    time.sleep(0.5)
    assert ("merge_pr", 606) not in RAN
    [gone] = wait_for(lambda: alerts_about(alert_hook, "erin's call to merge_pr", "abandoned"), 15, "the alert")
    assert gone["text"].startswith("MCP call abandoned while held: merge_pr: the client left while erin's call")


def test_the_http_sse_transport_is_held_too(approve_proxy, hook):
    pending = agent(approve_proxy, "merge_pr", {"pr": 707}, user="fred", sse=True)
    link = link_for(hook, '"pr":707')
    time.sleep(0.5)
    assert ("merge_pr", 707) not in RAN
    with clicker(approve_proxy) as browser:
        browser.post(link + "?decision=approve")
    assert pending.result(15) == "merged 707"
    [row] = calls(approve_proxy, "tool_name = 'merge_pr' AND user_name = 'fred'", 1)
    assert (row["decision"], row["approver"], row["transport"]) == (APPROVED, "sam", "sse")


def test_only_approvers_and_never_the_requester_decide(approve_proxy, hook):
    pending = agent(approve_proxy, "merge_pr", {"pr": 808}, user="alice")  # alice is in sre too
    link = link_for(hook, '"pr":808')
    with clicker(approve_proxy, "alice") as own, clicker(approve_proxy, "mallory") as outsider:
        assert own.post(link + "?decision=approve").status_code == 403
        assert outsider.post(link + "?decision=approve").status_code == 403
    time.sleep(0.7)
    assert not pending.done()
    with clicker(approve_proxy) as browser:
        assert browser.post(link + "?decision=deny").status_code == 200
    assert pending.result(15)[0] == "refused" and ("merge_pr", 808) not in RAN


def test_calls_not_named_are_not_held(approve_proxy):
    async def body(client: Client) -> str:
        return (await client.call_tool("echo", {"text": "staging"})).content[0].text

    assert run(approve_proxy, CORP, body, user="gus") == "staging"
    [row] = calls(approve_proxy, "user_name = 'gus' AND method = 'tools/call'", 1)
    assert (row["decision"], row["approver"]) == ("allow", None)


def test_provider_hosted_calls_under_an_approve_rule_are_refused(approve_proxy):
    tool = {"type": "mcp", "server_label": "corp", "server_url": f"https://{CORP}/mcp", "allowed_tools": ["echo"]}
    with approve_proxy.client("hank") as client:
        answer = client.post(
            "https://api.openai.com/v1/responses",
            json={"model": "gpt-4.1", "input": "hi", "tools": [tool]},
            headers={"authorization": "Bearer sk-test"},
        )
    assert answer.status_code == 403
    message = answer.json()["error"]["message"]
    assert "cannot be held" in message and "mcp:corp:approval" in message


def test_a_click_on_another_instance_decides_the_call(tmp_path, upstream, test_ca, mcp_port, hook):
    key = tmp_path / "shared.key"
    db = tmp_path / "shared" / "shadowgate.duckdb"
    db.parent.mkdir()
    first = _start(tmp_path / "a", upstream, test_ca, mcp_port, hook.url, db=db, key=key)
    second = _start(tmp_path / "b", upstream, test_ca, mcp_port, hook.url, db=db, key=key)
    try:
        pending = agent(first, "merge_pr", {"pr": 909}, user="ivan")
        link = link_for(hook, '"pr":909')
        with clicker(second) as browser:  # the balancer sent the approver to the other instance
            assert "merge_pr" in browser.get(link).text
            assert browser.post(link + "?decision=approve").status_code == 200
            assert browser.post(link + "?decision=deny").status_code == 409
        assert pending.result(15) == "merged 909"
        [row] = calls(first, "tool_name = 'merge_pr' AND user_name = 'ivan'", 1)
        assert (row["decision"], row["approver"]) == (APPROVED, "sam")
    finally:
        first.stop()
        second.stop()


# --- units ------------------------------------------------------------------------------------


def test_the_first_decision_wins_in_the_shared_folder(tmp_path):
    one, two = ApprovalStore(tmp_path), ApprovalStore(tmp_path)
    assert one.decide("abc123", APPROVED, "sam").first
    late = two.decide("abc123", TIMEOUT, None)
    assert (late.first, late.decision, late.approver) == (False, APPROVED, "sam")
    assert two.decision("abc123").decision == APPROVED
    with pytest.raises(ValueError):
        one.decide("../x", APPROVED, None)


@pytest.mark.parametrize(
    ("text", "error"),
    [
        ("mcp:\n  servers:\n    - {id: a, host: x.test, approve_tools: [merge_*]}\n", "add mcp.approval"),
        ("mcp:\n  approval: {notify: [nowhere]}\n", "not in alerts.destinations"),
        ("mcp:\n  approval: {notify: []}\n", "notify names"),
        ("mcp:\n  approval: {notify: [a], timeout: 0}\n", "from 1s to 1d"),
        ("mcp:\n  approval: {notify: [a], max_held: 0}\n", "whole number"),
        ("mcp:\n  approval: {notify: [a], approvers: {role: x}}\n", "takes user, group"),
        ("mcp:\n  servers:\n    - {id: a, host: x.test, approve_arguments: ['(']}\n", "approve_arguments"),
    ],
)
def test_approval_policy_errors(tmp_path, text, error):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=error.replace("(", r"\(")):
        load_policy(path)


def test_approval_triggers(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(policy_text("http://127.0.0.1:9/hook"))
    policy = load_policy(path)
    assert policy.mcp is not None and policy.mcp.approval is not None
    rule = policy.mcp.servers[0].approve
    assert rule is not None
    assert rule.reason("merge_pr", {}) == "tool merge_pr"
    assert rule.reason("deploy", {"target": {"envs": ["staging", "PROD"]}}) is not None  # nested, any case
    assert rule.reason("deploy", {"prod": 1}) is not None  # keys too
    assert rule.reason("deploy", {"env": "production"}) is None
    assert rule.reason("deploy", {"cfg": '{"env": "pr\\u006fd"}'}) is not None  # as the tool parses it (F61)
    assert rule.reason(None, {}) is not None  # no tool name: held
    assert rule.reason("deploy", [[["x"] * 20_000]]) == "arguments too large to check"


def test_a_batch_waits_for_each_held_call_and_each_is_decided_on_its_own(approve_proxy, hook):
    def element(rpc_id: int, tool: str, args: dict) -> dict:
        return {"jsonrpc": "2.0", "id": rpc_id, "method": "tools/call", "params": {"name": tool, "arguments": args}}

    batch = [element(1, "merge_pr", {"pr": 1101}), element(2, "merge_pr", {"pr": 1102}), element(3, "echo", {"t": "x"})]
    headers = {"mcp-protocol-version": "2025-03-26"}

    def post() -> httpx.Response:
        with approve_proxy.client("jane") as client:
            return client.post(f"https://{CORP}/batch", json=batch, headers=headers)

    pending = _pool.submit(post)
    first, second = link_for(hook, '"pr":1101'), link_for(hook, '"pr":1102')
    with clicker(approve_proxy) as browser:
        browser.post(first + "?decision=approve")
        time.sleep(0.7)
        assert not pending.done()  # the batch waits for its other held call
        browser.post(second + "?decision=deny")
    answers = {a["id"]: a for a in pending.result(15).json()}
    assert "1101" in answers[1]["result"]["content"][0]["text"]
    assert "sam denied" in answers[2]["error"]["message"]
    assert "result" in answers[3]
    rows = calls(approve_proxy, "user_name = 'jane'", 3)
    assert sorted(r["decision"] for r in rows) == ["allow", "approved", "denied"]


def test_observe_mode_records_would_approve_and_holds_nothing(tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text("mode: observe\n" + policy_text("http://127.0.0.1:9/hook").replace(CORP, "mcp.corp.example"))
    settings = ShadowgateSettings()
    stage = Mcp(settings)
    with taddons.context(settings, stage) as tctx:
        tctx.configure(settings, confdir=str(tmp_path / "conf"), shadowgate_policy=str(policy))
        body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "merge_pr", "arguments": {}}}
        flow = post(json.dumps(body).encode())
        assert stage.request(flow) is None  # nothing awaited: nothing held
        [call] = flow.metadata["shadowgate_mcp"].calls.values()
        assert (call.decision, call.rule_id, call.approval) == ("would_approve", "mcp:corp:approval", None)
        assert flow.response is None and not stage.approvals.held


def test_approvers_are_told_by_e_mail_too_and_a_dead_destination_is_reported(tmp_path):
    with SmtpSink() as smtp:
        path = tmp_path / "policy.yaml"
        path.write_text(
            "alerts:\n  destinations:\n"
            f"    mail: {{email: [oncall@corp.example], smtp: '127.0.0.1:{smtp.port}'}}\n"
            "    dead: {webhook: 'http://127.0.0.1:9/hook'}\n"
            "mcp:\n  approval: {notify: [mail, dead]}\n"
        )
        policy = load_policy(path)
        assert policy.mcp is not None and policy.mcp.approval is not None
        summary = {"tool": "merge_pr", "requester": "ana", "host": CORP, "reason": "tool merge_pr",
                   "expires": int(time.time()) + 60, "arguments": '{"pr":1}', "server": "corp"}  # fmt: skip
        errors = notify(policy.mcp.approval, policy.alerts, summary, "http://shadowgate.approval/mcp/approval/t.k")
        [message] = smtp.messages
    assert errors and errors[0].startswith("dead:")  # one destination down: the others still told
    assert "merge_pr" in message["Subject"] and "http://shadowgate.approval/mcp/approval/t.k" in message.get_content()
