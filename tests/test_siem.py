"""The SIEM feed: the schema and its three shapes, the transports against local receivers,
loss accounting, and a real proxy's blocks arriving in a file, UDP and TCP syslog."""

from __future__ import annotations

import datetime as dt
import json
import re

import httpx
import pytest

from shadowgate.events.feed import EventFeed
from shadowgate.events.formats import cef
from shadowgate.events.formats import render
from shadowgate.events.formats import rfc5424
from shadowgate.events.schema import event_of
from shadowgate.events.schema import wanted
from shadowgate.events.transports import parse_destination
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import POLICY_EVENTS
from shadowgate.storage.rows import AiRequest
from shadowgate.storage.rows import McpCallRow
from shadowgate.storage.rows import PolicyEvent
from tests.support.receivers import TcpSyslog
from tests.support.receivers import UdpSyslog
from tests.support.receivers import wait_for

TS = dt.datetime(2026, 12, 4, 18, 0, 0, 123000)
# RFC 5424 section 6: PRI VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP SD [SP MSG]
RFC5424 = re.compile(
    r"^<(?P<pri>\d{1,3})>1 (?P<ts>\S+) (?P<host>[!-~]{1,255}) (?P<app>[!-~]{1,48}) (?P<procid>[!-~]{1,128}) "
    r"(?P<msgid>[!-~]{1,32}) (?P<sd>-|\[.*?[^\\]\]) (?P<msg>.*)$",
    re.S,
)


def blocked_row(**changes) -> AiRequest:
    row = AiRequest(
        ts=TS,
        request_id="ab" * 16,
        client_ip="10.1.2.3",
        user_name="alice",
        user_group="sales",
        host="api.deepseek.com",
        site="deepseek.com",
        provider="deepseek",
        category="llm_api",
        method="POST",
        path="/v1/chat/completions",
        model="deepseek-chat",
        status_code=403,
        decision="block",
        rule_id="block-deepseek",
    )
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def test_an_event_has_the_documented_ecs_names():
    event = event_of(AI_REQUESTS.name, blocked_row(dlp_findings="EMAIL:2", dlp_action="redact"))
    assert event["@timestamp"] == "2026-12-04T18:00:00.123Z"
    assert event["event"]["action"] == "block" and event["event"]["outcome"] == "failure"
    assert event["event"]["dataset"] == "shadowgate.ai" and event["event"]["id"] == "ab" * 16
    assert event["user"] == {"name": "alice", "group": {"name": "sales"}}
    assert event["source"] == {"ip": "10.1.2.3"}
    assert event["destination"] == {"domain": "api.deepseek.com", "registered_domain": "deepseek.com"}
    assert event["rule"] == {"id": "block-deepseek"}
    assert event["http"] == {"request": {"method": "POST"}, "response": {"status_code": 403}}
    assert event["gen_ai"]["request"]["model"] == "deepseek-chat"
    assert event["shadowgate"]["dlp"] == {"action": "redact", "findings": "EMAIL:2"}
    assert event["message"] == "block: alice -> api.deepseek.com (deepseek) rule block-deepseek"
    assert "input_tokens" not in json.dumps(event)  # no value, no field


@pytest.mark.parametrize(
    ("changes", "action"),
    [
        ({"decision": "allow", "dlp_action": "block"}, "dlp_block"),
        ({"decision": "allow", "dlp_action": "would_redact"}, "would_dlp_redact"),
        ({"decision": "would_block"}, "would_block"),
        ({"decision": "rate_limit", "rule_id": "daily-tokens"}, "rate_limit"),
        ({"decision": "allow", "budget_status": "daily:tokens:85%"}, "budget_near"),
        (
            {"decision": "allow", "inspected": False, "inspect_note": "client pins certificates: passed through"},
            "pinned_passthrough",
        ),
        ({"decision": "allow", "inspected": False, "inspect_note": "not decrypted by policy"}, "passthrough"),
    ],
)
def test_each_decision_that_matters_has_its_action(changes, action):
    row = blocked_row(**changes)
    assert wanted(AI_REQUESTS.name, row, every_call=False)
    assert event_of(AI_REQUESTS.name, row)["event"]["action"] == action


def test_a_plain_allowed_call_is_sent_only_when_every_call_is_asked_for():
    row = blocked_row(decision="allow", rule_id="default", status_code=200)
    assert not wanted(AI_REQUESTS.name, row, every_call=False)
    assert wanted(AI_REQUESTS.name, row, every_call=True)


def test_mcp_refusals_and_policy_events():
    call = McpCallRow(ts=TS, user_name="bob", host="mcp.example", tool_name="delete_repo", decision="block",
                      rule_id="no-deletes", method="tools/call")  # fmt: skip
    assert wanted(MCP_CALLS.name, call, False)
    assert event_of(MCP_CALLS.name, call)["event"]["action"] == "mcp_block"
    assert event_of(MCP_CALLS.name, call)["shadowgate"]["mcp"]["tool"] == "delete_repo"
    allowed = McpCallRow(ts=TS, decision="allow", method="tools/call")
    assert not wanted(MCP_CALLS.name, allowed, False)
    cont = PolicyEvent(ts=TS, event="coach_continue", user_name="carol", host="chatgpt.com", rule_id="coach-chatgpt")
    assert wanted(POLICY_EVENTS.name, cont, False)
    assert event_of(POLICY_EVENTS.name, cont)["event"]["action"] == "coach_continue"


def test_a_line_break_in_a_client_chosen_name_cannot_forge_a_syslog_record():
    # With proxyauth=any the user name is the client's: a newline in it would start a second,
    # forged record in a syslog file or stream that splits records on lines.
    forged = "mallory\n<134>1 2026-12-04T18:00:00Z host shadowgate 1 allow - forged\r\u2028x"
    line = rfc5424(event_of(AI_REQUESTS.name, blocked_row(user_name=forged)), "body")
    assert not any(c in line for c in "\r\n\u2028")
    assert RFC5424.match(line) and 'user="mallory <134>1 ' in line


def test_rfc5424_message_parses_and_escapes_structured_data():
    event = event_of(AI_REQUESTS.name, blocked_row(user_name='ev"il]\\'))
    line = rfc5424(event, "body")
    m = RFC5424.match(line)
    assert m, line
    assert int(m["pri"]) == 16 * 8 + 4  # local0, warning (CEF severity 7)
    assert m["ts"] == "2026-12-04T18:00:00.123Z" and m["app"] == "shadowgate" and m["msgid"] == "block"
    assert m["sd"].startswith("[shadowgate@32473 ") and 'user="ev\\"il\\]\\\\"' in m["sd"]
    assert m["msg"] == "body"
    # syslog format: the MSG is the JSON event
    assert json.loads(RFC5424.match(render("syslog", event, network=True))["msg"])["user"]["name"] == 'ev"il]\\'


def test_cef_header_and_extension_escaping():
    event = event_of(AI_REQUESTS.name, blocked_row(path="/v1/a=b|c", user_name="x\ny"))
    line = cef(event)
    header = re.split(r"(?<!\\)\|", line, maxsplit=7)
    assert header[:7] == ["CEF:0", "shadowgate", "shadowgate", header[3], "block", "AI block", "7"]
    ext = header[7]
    assert "request=/v1/a\\=b|c" in ext and "suser=x\\ny" in ext
    assert "cs1=block-deepseek cs1Label=rule" in ext and "src=10.1.2.3" in ext and "act=block" in ext
    # Over the network CEF rides in a syslog message
    assert RFC5424.match(render("cef", event, network=True))["msg"].startswith("CEF:0|")


@pytest.mark.parametrize(
    "bad", ["xml:/tmp/x", "json", "syslog:http://x:1", "syslog:udp://host", "cef:"]
)  # fmt: skip
def test_bad_destinations_are_refused(bad):
    with pytest.raises(ValueError):
        parse_destination(bad)


def test_feed_to_file_udp_and_tcp(tmp_path):
    out = tmp_path / "events.jsonl"
    with UdpSyslog() as udp, TcpSyslog() as tcp, TcpSyslog(lines=True) as ndjson:
        dests = [
            parse_destination(f"json:{out}"),
            parse_destination(f"syslog:udp://127.0.0.1:{udp.port}"),
            parse_destination(f"cef:tcp://127.0.0.1:{tcp.port}"),
            parse_destination(f"json:tcp://127.0.0.1:{ndjson.port}"),
        ]
        feed = EventFeed(dests, interval=0.05)
        feed.start()
        for i in range(5):
            feed.put(AI_REQUESTS.name, blocked_row(user_name=f"u{i}"))
        assert feed.flush()
        wait_for(lambda: len(udp.messages) == 5 and len(tcp.messages) == 5 and len(ndjson.messages) == 5)
        feed.close()
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert [e["user"]["name"] for e in lines] == [f"u{i}" for i in range(5)]
    assert [json.loads(RFC5424.match(m)["msg"])["user"]["name"] for m in udp.messages] == [f"u{i}" for i in range(5)]
    assert all(RFC5424.match(m)["msg"].startswith("CEF:0|shadowgate|") for m in tcp.messages)
    assert [json.loads(m)["event"]["action"] for m in ndjson.messages] == ["block"] * 5
    assert feed.sent == 20 and feed.lost == 0


def test_a_dead_tcp_destination_keeps_events_and_delivers_them_when_it_returns(tmp_path):
    with TcpSyslog() as probe:
        port = probe.port  # a free port, closed again
    feed = EventFeed([parse_destination(f"syslog:tcp://127.0.0.1:{port}")], interval=0.05)
    feed.start()
    feed.put(AI_REQUESTS.name, blocked_row(user_name="early"))
    wait_for(lambda: feed.last_error is not None, what="the failure")
    with TcpSyslog(port=port) as tcp:
        feed.put(AI_REQUESTS.name, blocked_row(user_name="late"))
        feed.outlets[0].retry_at = 0  # skip the back-off pause
        wait_for(lambda: len(tcp.messages) == 2, what="the retried events")
        names = [json.loads(RFC5424.match(m)["msg"])["user"]["name"] for m in tcp.messages]
        feed.close()
    assert names == ["early", "late"] and feed.last_error is None and feed.lost == 0


def test_syslog_over_tls_verifies_the_receiver(test_ca, tmp_path):
    import ssl

    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("localhost").configure_cert(server)
    ca = tmp_path / "ca.pem"
    test_ca.cert_pem.write_to_path(str(ca))
    with TcpSyslog(tls=server) as tls:
        feed = EventFeed([parse_destination(f"syslog:tls://localhost:{tls.port}")], interval=0.05, tls_ca=str(ca))
        feed.start()
        feed.put(AI_REQUESTS.name, blocked_row(user_name="over-tls"))
        wait_for(lambda: tls.messages, what="the message over TLS")
        feed.close()
        assert json.loads(RFC5424.match(tls.messages[0])["msg"])["user"]["name"] == "over-tls"
        # Without the CA the receiver is not trusted: nothing is sent, and the failure is kept.
        untrusting = EventFeed([parse_destination(f"syslog:tls://localhost:{tls.port}")], interval=0.05)
        untrusting.start()
        untrusting.put(AI_REQUESTS.name, blocked_row(user_name="never"))
        wait_for(lambda: untrusting.last_error, what="the certificate failure")
        assert "CERTIFICATE_VERIFY_FAILED" in untrusting.last_error and len(tls.messages) == 1
        untrusting.close(timeout=1)


def test_a_full_queue_drops_and_counts_instead_of_growing(tmp_path):
    feed = EventFeed([parse_destination(f"json:{tmp_path / 'e.jsonl'}")], max_queue=3, interval=60)
    for _ in range(5):
        feed.put(AI_REQUESTS.name, blocked_row())
    assert (feed.queued, feed.dropped, feed.lost) == (3, 2, 2)


POLICY = """\
rules:
  - id: block-deepseek
    match: {provider: deepseek}
    action: block
    message: DeepSeek is not approved
"""
BODY = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}


def test_a_real_proxy_sends_its_blocks_to_a_file_and_syslog(proxy, tmp_path):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    out = tmp_path / "siem.jsonl"
    with UdpSyslog() as udp, TcpSyslog() as tcp:
        siem = [f"json:{out}", f"syslog:udp://127.0.0.1:{udp.port}", f"cef:tcp://127.0.0.1:{tcp.port}"]
        with proxy.options(shadowgate_policy=str(policy), shadowgate_siem=siem):
            with proxy.client("siem-user") as client:
                blocked = client.post("https://api.deepseek.com/v1/chat/completions", json=BODY)
                allowed = client.post(
                    "https://api.openai.com/v1/chat/completions", json={**BODY, "model": "gpt-4o-mini"}
                )
            assert blocked.status_code == 403 and allowed.status_code == 200
            wait_for(lambda: out.exists() and udp.messages and tcp.messages, what="the events")
        # only the block: the allowed call is not a decision that matters
    [event] = [json.loads(line) for line in out.read_text().splitlines()]
    assert event["event"]["action"] == "block" and event["user"]["name"] == "siem-user"
    assert event["rule"]["id"] == "block-deepseek" and event["destination"]["domain"] == "api.deepseek.com"
    [syslog] = udp.messages
    assert json.loads(RFC5424.match(syslog)["msg"])["event"]["id"] == event["event"]["id"]
    [cef_msg] = tcp.messages
    assert "suser=siem-user" in cef_msg and f"externalId={event['event']['id']}" in cef_msg


def test_a_bad_destination_is_refused_by_the_running_proxy(proxy):
    from tests.conftest import OptionRejected

    with pytest.raises(OptionRejected, match="shadowgate_siem"):
        proxy.set_options({"shadowgate_siem": ["xml:/tmp/x"]})
    with httpx.Client(proxy=proxy.url("health")) as client:
        assert client.get("http://shadowgate.health/").status_code == 200


@pytest.mark.parametrize("text", ["json:/tmp/a.jsonl,cef:-", "cef:udp://siem.example:514,json:stdout"])
def test_two_destinations_in_one_value_are_refused_with_how_to_give_two(text):
    """new-user F15: a comma list became one file literally named 'a.jsonl,cef:-', and no CEF feed."""
    with pytest.raises(ValueError, match="one destination per value: repeat --set shadowgate_siem="):
        parse_destination(text)
