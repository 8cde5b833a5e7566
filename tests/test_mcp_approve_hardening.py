"""Approval of MCP calls after a security review (issue 19), through a real mitmdump.

- An approver is compared with the requester and with the configured approvers in one canonical
  form: `ALICE`, ` alice `, fullwidth `ａｌｉｃｅ` are alice (as an LDAP directory logs them in), so
  none of them approves alice's own call; `*` and names with control characters decide nothing,
  and a call from such a name is not held.
- The approvals folder is 0700 and its files 0600 (it holds arguments and decides calls).
- A call still held when the proxy stops leaves its row: abandoned, rule ...:stopped.
- Approvers are told on threads of their own: a webhook that hangs does not delay DLP scans.
"""

from __future__ import annotations

import asyncio
import base64
import concurrent.futures
import contextlib
import json
import os
import socket
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import httpx
import pytest

from shadowgate.config.attribution import Person
from shadowgate.config.policy import load_policy
from shadowgate.config.policy_approval import canonical_identity
from shadowgate.config.yamlfile import ConfigError
from shadowgate.mcp.approval import ABANDONED
from shadowgate.mcp.approval import DENIED
from shadowgate.mcp.approval import Approvals
from shadowgate.mcp.approval import ApprovalStore
from shadowgate.mcp.approval import Deliveries
from shadowgate.mcp.approval import HoldRequest
from tests.conftest import Proxy
from tests.conftest import start_proxy
from tests.ldap_server import FakeLdap
from tests.support.receivers import Webhook
from tests.support.receivers import wait_for
from tests.test_mcp import CORP
from tests.test_mcp import calls
from tests.test_mcp import mcp_server
from tests.test_mcp_approve import RAN
from tests.test_mcp_approve import _arguments
from tests.test_mcp_approve import _server
from tests.test_mcp_approve import agent
from tests.test_mcp_approve import link_for

FULLWIDTH_ALICE = "ａｌｉｃｅ"


def _policy(webhook: str, approvers: str = "", extra: str = "", held: int = 4) -> str:
    return f"""
{extra}
alerts:
  destinations:
    approvers: {{webhook: "{webhook}"}}
mcp:
  approval:
    notify: [approvers]
    timeout: 1m
    max_held: {held}
    max_held_per_user: {held}
    {approvers}
  servers:
    - id: corp
      host: {CORP}
      approve_tools: ["merge_*"]
"""


def _proxy(folder: Path, upstream, test_ca, port: int, policy: str) -> Proxy:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "policy.yaml").write_text(policy)
    return start_proxy(
        folder / "proxy", upstream, test_ca, "--set", f"shadowgate_policy={folder / 'policy.yaml'}", upstream_port=port
    )


def _as(proxy: Proxy, user: str, **kwargs) -> httpx.Client:
    """A client whose proxy login is exactly `user` (any characters: sent as Basic credentials)."""
    login = base64.b64encode(f"{user}:pw".encode()).decode()
    target = httpx.Proxy(f"http://127.0.0.1:{proxy.port}", headers={"proxy-authorization": f"Basic {login}"})
    return httpx.Client(proxy=target, verify=proxy.ssl_context(), **{"timeout": 15, **kwargs})


_pool = concurrent.futures.ThreadPoolExecutor(48)


def _call(proxy: Proxy, user: str, pr: int, timeout: float = 90, note: str | None = None) -> concurrent.futures.Future:
    """A raw tools/call of merge_pr in the background: the JSON-RPC answer, or the exception."""
    arguments: dict = {"pr": pr} if note is None else {"pr": pr, "note": note}
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "merge_pr", "arguments": arguments}}
    headers = {"accept": "application/json, text/event-stream", "mcp-protocol-version": "2025-06-18"}

    def post() -> dict:
        with _as(proxy, user, timeout=timeout) as client:
            answer = client.post(f"https://{CORP}/mcp", json=body, headers=headers)
        text = answer.text
        if text.startswith("event:") or "\ndata:" in text or text.startswith("data:"):
            text = next(line[5:] for line in text.splitlines() if line.startswith("data:"))
        return json.loads(text)

    return _pool.submit(post)


@pytest.fixture(scope="module")
def hook() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def mcp_port(tmp_path_factory, test_ca) -> Iterator[int]:
    with mcp_server(tmp_path_factory.mktemp("harden-mcp"), test_ca, json_response=True, make=_server) as port:
        yield port


@pytest.fixture(scope="module")
def open_proxy(tmp_path_factory, upstream, test_ca, mcp_port, hook) -> Iterator[Proxy]:
    """No `approvers`: anyone with the link decides (so only the self-approval check stops alice)."""
    proxy = _proxy(tmp_path_factory.mktemp("harden"), upstream, test_ca, mcp_port, _policy(hook.url))
    yield proxy
    proxy.stop()


def test_the_requester_in_another_spelling_cannot_approve_her_own_call(open_proxy, hook):
    pending = agent(open_proxy, "merge_pr", {"pr": 1201}, user="alice")  # the MCP SDK client
    link = link_for(hook, '"pr":1201')
    variants = ["ALICE", "Alice", " alice ", FULLWIDTH_ALICE, "ＡＬＩＣＥ", "alice\u200b", "*", "al*", "ali(ce)"]
    for variant in variants:
        with _as(open_proxy, variant) as browser:
            answer = browser.post(link + "?decision=approve")
        assert answer.status_code == 403, (variant, answer.status_code, answer.text)
        assert "Not your own call" in answer.text or "cannot decide" in answer.text, variant
    time.sleep(0.7)
    assert not pending.done() and ("merge_pr", 1201) not in RAN  # still held: nobody decided
    with _as(open_proxy, "Sam") as browser:  # another person decides
        assert browser.post(link + "?decision=approve").status_code == 200
    assert pending.result(15) == "merged 1201"
    [row] = calls(open_proxy, "tool_name = 'merge_pr' AND user_name = 'alice'", 1)
    assert (row["decision"], row["approver"]) == ("approved", "sam")


def test_a_wildcard_or_filter_special_requester_is_not_held(open_proxy, hook):
    for user, pr in (("*", 1301), ("bo(b)", 1302)):
        answer = _call(open_proxy, user, pr).result(15)
        assert "cannot be tied to an approval" in answer["error"]["message"], answer
    assert not any('"pr":130' in _arguments(b) for b in list(hook.bodies))  # nobody was asked
    rows = calls(open_proxy, "rule_id = 'mcp:corp:approval:identity'", 2)
    assert {r["decision"] for r in rows} == {"block"}
    assert ("merge_pr", 1301) not in RAN and ("merge_pr", 1302) not in RAN


def test_the_approvals_folder_is_private(open_proxy, hook):
    pending = _call(open_proxy, "kim", 1401)
    link = link_for(hook, '"pr":1401')
    folder = open_proxy.db.with_name(open_proxy.db.stem + ".approvals")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    with _as(open_proxy, "sam") as browser:
        assert browser.post(link + "?decision=deny").status_code == 200
    assert "error" in pending.result(15)
    files = list(folder.iterdir())
    assert any(f.name.endswith(".call.json") for f in files) and any(f.name.endswith(".decision.json") for f in files)
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o600}


def test_the_page_shows_all_of_the_arguments_and_what_it_cannot_show_is_never_approved(open_proxy, hook):
    # The approvers' message carries 1000 characters; padding once pushed the part that matters
    # out of what the approver saw, and the page showed no more.
    long = _call(open_proxy, "lena", 1701, note="n" * 3000 + " then delete everything TAIL-1701")
    link = link_for(hook, '"pr":1701')
    [told] = [b for b in list(hook.bodies) if b.get("link") == link]
    assert "TAIL-1701" not in _arguments(told) and _arguments(told).endswith("(more on the approval page)")
    with _as(open_proxy, "sam") as browser:
        page = browser.get(link)
        assert "TAIL-1701" in page.text and "Approve" in page.text
        assert browser.post(link + "?decision=deny").status_code == 200
    assert "error" in long.result(15)
    too_long = _call(open_proxy, "lena", 1702, note="n" * (64 * 1024) + " TAIL-1702")
    link = link_for(hook, '"pr":1702')
    with _as(open_proxy, "sam") as browser:
        page = browser.get(link)
        assert "can only be denied" in page.text and "decision=approve" not in page.text
        refused = browser.post(link + "?decision=approve")
        assert refused.status_code == 409 and "can only be denied" in refused.text
        time.sleep(0.7)
        assert not too_long.done()  # still held: the approve decided nothing
        assert browser.post(link + "?decision=deny").status_code == 200
    assert "sam denied" in too_long.result(15)["error"]["message"]
    assert ("merge_pr", 1701) not in RAN and ("merge_pr", 1702) not in RAN


def test_configured_approvers_are_matched_in_the_same_form(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(
        _policy("http://127.0.0.1:9/hook", approvers="approvers: {user: [Sam, 'ＯＮＣＡＬＬ-*'], group: SRE}")
    )
    policy = load_policy(path)
    assert policy.mcp is not None and policy.mcp.approval is not None
    approval = policy.mcp.approval
    assert approval.approver_users == ("sam", "oncall-*") and approval.approver_groups == ("sre",)
    assert approval.may_decide("SAM", None) and approval.may_decide(" sam", None)
    assert approval.may_decide("OnCall-eu", None) and approval.may_decide("x", "Sre")
    assert not approval.may_decide("*", None) and not approval.may_decide("sam\ue000", None)
    assert approval.may_decide("sam\u200b", None)  # the directory binds it as sam (RFC 4518)
    assert not approval.may_decide("mallory", "*")
    path.write_text(_policy("http://127.0.0.1:9/hook", approvers="approvers: {user: ['sam\\u0000']}"))
    with pytest.raises(ConfigError, match="is not a name"):
        load_policy(path)


def test_approve_tools_hold_every_spelling_a_lax_server_would_run(tmp_path):
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("http://127.0.0.1:9/hook").replace('["merge_*"]', '["Merge_*", "deploy"]'))
    policy = load_policy(path)
    assert policy.mcp is not None
    rule = policy.mcp.servers[0].approve
    assert rule is not None
    for name in ("merge_pr", "MERGE_PR", "ｍｅｒｇｅ_pr", "merge\u200b_pr", "Deploy", "DEPLOY\u2060"):
        assert rule.reason(name, {}) is not None, name
    assert rule.reason("echo", {}) is None and rule.reason("deploy_docs", {}) is None


@pytest.mark.parametrize(
    ("raw", "canonical"),
    [
        ("alice", "alice"),
        ("ALICE", "alice"),
        ("  Alice \t", "alice"),
        (FULLWIDTH_ALICE, "alice"),
        ("Alice  Smith", "alice smith"),
        ("straße", "strasse"),
        ("10.1.2.3", "10.1.2.3"),
        ("", None),
        ("   ", None),
        ("*", None),
        ("a*", None),
        ("ali?e", None),
        ("(cn=*)", None),
        ("corp\\alice", None),
        # A directory maps control and format characters to nothing (RFC 4518 2.2, red-team F39).
        ("alice\x00", "alice"),
        ("al\u00adice\u200b", "alice"),  # soft hyphen, zero-width
        ("alice\u202e", "alice"),  # bidi override
        ("alice\ue000", None),  # private use: a directory prohibits it
        (None, None),
    ],
)
def test_canonical_identity(raw, canonical):
    assert canonical_identity(raw) == canonical


def test_the_store_makes_a_loose_folder_private_and_refuses_one_it_cannot(tmp_path, monkeypatch):
    folder = tmp_path / "x.approvals"
    folder.mkdir(mode=0o777)
    os.chmod(folder, 0o777)
    old = os.umask(0)
    try:
        store = ApprovalStore(folder)
        store.publish("abc123", {"id": "abc123", "arguments": "secret"})
        store.decide("abc123", ABANDONED, None)
    finally:
        os.umask(old)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert {stat.S_IMODE(f.stat().st_mode) for f in folder.iterdir()} == {0o600}
    os.chmod(folder, 0o775)

    def refused(path, mode):
        raise PermissionError("not the owner")

    monkeypatch.setattr(os, "chmod", refused)
    with pytest.raises(OSError, match="open to others"):
        store.publish("abc124", {})
    assert not (folder / "abc124.call.json").exists()


# --- a proxy that stops while a call is held -----------------------------------------------------


def test_a_call_held_when_the_proxy_stops_leaves_its_row(tmp_path, upstream, test_ca, mcp_port, hook):
    proxy = _proxy(tmp_path, upstream, test_ca, mcp_port, _policy(hook.url))
    try:
        pending = _call(proxy, "nina", 1501, timeout=30)
        link_for(hook, '"pr":1501')
        time.sleep(0.3)
    finally:
        assert proxy.stop() == 0
    with pytest.raises(Exception):
        pending.result(30)  # the connection went with the proxy
    [row] = calls(proxy, "tool_name = 'merge_pr' AND user_name = 'nina'", 1)
    assert (row["decision"], row["rule_id"], row["is_error"]) == (ABANDONED, "mcp:corp:approval:stopped", True)
    assert row["approver"] is None
    [decision] = (proxy.db.with_name(proxy.db.stem + ".approvals")).glob("*.decision.json")
    assert '"abandoned"' in decision.read_text()
    assert ("merge_pr", 1501) not in RAN


# --- a webhook that hangs ------------------------------------------------------------------------


class HangingWebhook:
    """Accepts connections and never answers: each delivery waits for its timeout."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0), backlog=256)
        self.port = self.sock.getsockname()[1]
        self.accepted: list[socket.socket] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # closed: the test is over
            while True:
                self.accepted.append(self.sock.accept()[0])

    def close(self) -> None:
        self.sock.close()
        for conn in self.accepted:
            conn.close()


HELD = 40  # more than the default thread pool ever has (min(32, CPUs + 4))
AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"


def test_a_hanging_webhook_does_not_delay_dlp_scans(tmp_path, upstream, test_ca, mcp_port):
    dead = HangingWebhook()
    policy = _policy(f"http://127.0.0.1:{dead.port}/hook", extra="dlp: {secrets: block}", held=HELD + 8)
    proxy = _proxy(tmp_path, upstream, test_ca, mcp_port, policy)
    try:
        held = [_call(proxy, f"user{i}", 1600 + i, timeout=60) for i in range(HELD)]
        wait_for(lambda: len(dead.accepted) >= 4 or None, 30, "approval notifications to the dead webhook")
        time.sleep(1.0)  # every held call has queued its notification by now
        # A prompt large enough to be scanned off the event loop (on the default thread pool).
        prompt = "lorem ipsum dolor sit amet " * 4000 + f" aws key {AWS_KEY}"
        with proxy.client("dlp-user") as client:
            started = time.monotonic()
            answer = client.post(
                "https://api.openai.com/v1/chat/completions",
                json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]},
                headers={"authorization": "Bearer sk-test"},
            )
            took = time.monotonic() - started
        assert answer.status_code == 403 and "AWS" in answer.text.upper(), answer.text[:300]
        assert took < 5, f"the DLP-scanned request took {took:.1f} s behind the hanging webhook"
        assert len(dead.accepted) <= 4  # the notifications' own threads, no more
        assert not any(f.done() for f in held)
    finally:
        proxy.stop()
        dead.close()


def test_a_full_notification_queue_refuses_the_call_and_never_holds_it(tmp_path):
    release = threading.Event()
    approvals = Approvals()
    approvals.configure(tmp_path / "x.approvals", b"k" * 32)
    approvals.deliveries = Deliveries(workers=1, size=1)
    path = tmp_path / "policy.yaml"
    path.write_text(_policy("http://127.0.0.1:9/hook"))
    policy = load_policy(path)
    assert policy.mcp is not None and policy.mcp.approval is not None

    async def scenario() -> str:
        first = approvals.deliveries.run(release.wait)  # the one worker, busy
        second = approvals.deliveries.run(release.wait)  # the one place in the queue
        await asyncio.sleep(0.1)
        call = SimpleNamespace(request_id="abc125", person=Person("ann", None), client_ip="10.0.0.1",
                               host=CORP, server=None, tool_name="merge_pr")  # fmt: skip
        started = time.monotonic()
        decided = await approvals.hold(HoldRequest(call, {}, "tool merge_pr", "{}"), None, policy.mcp.approval, None)  # type: ignore[arg-type]
        assert time.monotonic() - started < 2  # refused at once, not left to time out
        release.set()
        await first
        await second
        return decided.decision

    assert asyncio.run(scenario()) == DENIED
    assert '"denied"' in (tmp_path / "x.approvals" / "abc125.decision.json").read_text()


# --- behind an LDAP directory --------------------------------------------------------------------


class CaseIgnoring(dict):
    """A directory's user names as LDAP matches them (caseIgnoreMatch after RFC 4518 preparation)."""

    def __contains__(self, name: object) -> bool:
        return super().__contains__(canonical_identity(name))

    def __getitem__(self, name: object) -> str:
        return super().__getitem__(canonical_identity(name))


def test_behind_ldap_alice_in_capitals_is_alice_and_cannot_approve_her_call(
    tmp_path, upstream, test_ca, mcp_port, hook
):
    people = {name: f"uid={name},ou=people,dc=example,dc=com" for name in ("alice", "sam")}
    passwords = {"cn=svc,dc=example,dc=com": "svcpass", **{dn: "pw" for dn in people.values()}}
    with FakeLdap(passwords, CaseIgnoring(people), key="uid") as directory:
        spec = (
            f"ldap:127.0.0.1:{directory.port}:cn=svc,dc=example,dc=com:svcpass"
            ":ou=people,dc=example,dc=com?search_filter_key=uid"
        )
        (tmp_path / "policy.yaml").write_text(_policy(hook.url))
        proxy = start_proxy(tmp_path / "proxy", upstream, test_ca, "--set",
                            f"shadowgate_policy={tmp_path / 'policy.yaml'}", upstream_port=mcp_port, proxyauth=spec)  # fmt: skip
        try:
            pending = agent(proxy, "merge_pr", {"pr": 1801}, user="alice")
            link = link_for(hook, '"pr":1801')
            for variant in ("ALICE", FULLWIDTH_ALICE):
                with _as(proxy, variant) as browser:
                    answer = browser.post(link + "?decision=approve")
                assert answer.status_code == 403 and "Not your own call" in answer.text, (variant, answer.text)
            alice_dn = people["alice"]
            assert [ok for dn, ok in directory.binds if dn == alice_dn].count(True) >= 3  # the directory let them in
            time.sleep(0.7)
            assert not pending.done() and ("merge_pr", 1801) not in RAN
            with _as(proxy, "SAM") as browser:
                assert browser.post(link + "?decision=approve").status_code == 200
            assert pending.result(15) == "merged 1801"
            [row] = calls(proxy, "tool_name = 'merge_pr' AND user_name = 'alice'", 1, timeout=15)
            assert (row["decision"], row["approver"]) == ("approved", "sam")
        finally:
            proxy.stop()
