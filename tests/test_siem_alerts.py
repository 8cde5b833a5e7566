"""Alerts in the SIEM feed, approval alerts, and a feed that cannot write.

Fired alerts go into the feed as events of their own kind (the same event, same id, as a syslog
destination gets); the MCP approval events raise alerts; a full disk, an unwritable file or a
value that cannot be encoded never stops the proxy or the feed, and every loss is counted, logged
and reported by /ready and the metrics. Real disks (a tmpfs in a namespace, /dev/full), a real
proxy and local receivers."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path

import httpx

from shadowgate.events.alerts import HELD_CALLS
from shadowgate.events.deliver import webhook_payload
from shadowgate.events.feed import EventFeed
from shadowgate.events.formats import render
from shadowgate.events.schema import alert_event
from shadowgate.events.transports import FileSink
from shadowgate.events.transports import parse_destination
from shadowgate.mcp.approval import HeldCall
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import AlertRow
from shadowgate.storage.rows import McpCallRow
from tests.diskfull import run_on_small_disk
from tests.support.receivers import SmtpSink
from tests.support.receivers import UdpSyslog
from tests.support.receivers import Webhook
from tests.support.receivers import wait_for
from tests.test_alerts import alert_rows
from tests.test_alerts import call
from tests.test_alerts import engine_for
from tests.test_alerts import feed
from tests.test_alerts import policy_with
from tests.test_alerts import writer  # noqa: F401 - a fixture
from tests.test_metrics import scrape
from tests.test_metrics import value
from tests.test_redact import AWS_KEY
from tests.test_siem import RFC5424

NOW = dt.datetime(2026, 12, 5, 9, 30)
SECRET_PROMPT = f"deploy with {AWS_KEY} please"


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []


def engine_with_feed(tmp_path: Path, writer, destinations: dict[str, str], *rules: str):  # noqa: F811
    """An alert engine with these destinations and rules, whose alerts go to a JSON feed file."""
    text = "alerts:\n  destinations:\n" + "".join(f"    {name}: {spec}\n" for name, spec in destinations.items())
    text += "  rules:\n" + "".join(f"    - {rule}\n" for rule in rules)
    engine = engine_for(policy_with(tmp_path, text), writer)
    out = tmp_path / "siem.jsonl"
    siem = EventFeed([parse_destination(f"json:{out}")], interval=0.05)
    siem.start()
    engine.siem_feed = lambda: siem
    return engine, siem, out


# --- the event -------------------------------------------------------------------------------


def test_an_alert_event_has_its_own_kind_action_and_fields():
    row = AlertRow(NOW, "dlp", "dlp_block", "dave|api.deepseek.com", "DLP block: dave: a prompt held AWS_KEY:1",
                   "dave", "api.deepseek.com", "deepseek", "secops,siem", True, None, 2)  # fmt: skip
    event = alert_event(row, "f" * 32, request_id="ab" * 16)
    assert event["event"] | {"category": None} == {
        "kind": "alert", "category": None, "type": ["info"], "action": "alert_dlp_block", "outcome": "unknown",
        "severity": 6, "dataset": "shadowgate.alert", "module": "shadowgate", "id": "f" * 32,
    }  # fmt: skip
    assert event["rule"] == {"id": "dlp"} and event["user"] == {"name": "dave"}
    assert event["destination"] == {"domain": "api.deepseek.com"}
    assert event["shadowgate"]["provider"] == "deepseek"
    assert event["shadowgate"]["alert"] == {
        "event": "dlp_block", "key": "dave|api.deepseek.com", "destinations": ["secops", "siem"],
        "delivered": True, "suppressed": 2, "request_id": "ab" * 16,
    }  # fmt: skip
    assert event["message"] == "DLP block: dave: a prompt held AWS_KEY:1"
    # The same three shapes as every event.
    syslog = RFC5424.match(render("syslog", event, network=True))
    assert syslog is not None and syslog["msgid"] == "alert_dlp_block" and 'rule="dlp"' in syslog["sd"]
    cef = render("cef", event, network=False)
    assert cef.startswith("CEF:0|shadowgate|shadowgate|") and "|alert_dlp_block|AI alert dlp block|6|" in cef
    assert f"externalId={'f' * 32}" in cef


def test_fired_alerts_land_in_the_feed_with_the_id_the_syslog_destination_got(tmp_path, writer):  # noqa: F811
    with Webhook() as hook, UdpSyslog() as syslog:
        engine, siem, out = engine_with_feed(
            tmp_path,
            writer,
            {"hook": f'{{webhook: "{hook.url}"}}', "log": f'{{syslog: "udp://127.0.0.1:{syslog.port}"}}'},
            "{id: dlp, event: dlp_block, to: [hook, log], every: 1h}",
        )
        blocked = call("dave", dlp_action="block", dlp_findings="AWS_ACCESS_KEY:1", request_id="cd" * 16)
        feed(engine, (AI_REQUESTS.name, blocked), (AI_REQUESTS.name, blocked))  # the second is held back
        assert siem.flush()
        wait_for(lambda: syslog.messages, what="the syslog alert")
        siem.close()
        [message] = syslog.messages
    [event] = _lines(out)
    sent = json.loads(RFC5424.match(message)["msg"])
    assert event["event"]["id"] == sent["event"]["id"] and len(event["event"]["id"]) == 32
    assert event["event"]["action"] == "alert_dlp_block" and event["shadowgate"]["alert"]["delivered"] is True
    assert "delivered" not in sent["shadowgate"]["alert"]  # not known while it is being delivered
    assert event["shadowgate"]["alert"]["request_id"] == "cd" * 16 and event["user"]["name"] == "dave"
    assert [r["rule_id"] for r in alert_rows(writer)] == ["dlp"]  # recorded once, as sent


def test_an_alert_nobody_could_receive_still_reaches_the_feed_marked_undelivered(tmp_path, writer):  # noqa: F811
    with Webhook(status=500) as broken:
        engine, siem, out = engine_with_feed(
            tmp_path, writer, {"h": f'{{webhook: "{broken.url}"}}'}, "{id: new, event: new_app, to: h}"
        )
        feed(engine, (AI_REQUESTS.name, call("zoe", provider="mistral")))
        assert siem.flush()
        siem.close()
    [event] = _lines(out)
    assert event["shadowgate"]["alert"]["delivered"] is False and event["event"]["action"] == "alert_new_app"
    # the reason stays in the alerts table and the log (a bare "500" could be part of a random id)
    assert "webhook answered" not in json.dumps(event)


# --- approval alerts -------------------------------------------------------------------------

APPROVAL_RULES = (
    "{id: held, event: mcp_approval_requested, to: hook, every: 0}",
    "{id: denied, event: mcp_approval_denied, to: hook, every: 0}",
    "{id: undecided, event: mcp_approval_timeout, to: hook, every: 0}",
)


def _ended(decision: str, approver: str | None = None, user: str = "kim") -> McpCallRow:
    return McpCallRow(ts=NOW, request_id="ee" * 16, user_name=user, host="mcp.corp.example", method="tools/call",
                      tool_name="deploy", decision=decision, rule_id="mcp:corp:approval", approver=approver)  # fmt: skip


def test_each_end_of_a_held_call_raises_its_alert(tmp_path, writer):  # noqa: F811
    with Webhook() as hook:
        destinations = {"hook": f'{{webhook: "{hook.url}", shape: slack}}'}
        engine, siem, out = engine_with_feed(tmp_path, writer, destinations, *APPROVAL_RULES)
        held = HeldCall("ee" * 16, "kim", "mcp.corp.example", "corp", "deploy", "an argument matches prod")
        feed(
            engine,
            (HELD_CALLS, held),
            (MCP_CALLS.name, _ended("denied", "pat")),
            (MCP_CALLS.name, _ended("denied")),  # no approver could be told
            (MCP_CALLS.name, _ended("approval_timeout")),
            (MCP_CALLS.name, _ended("abandoned")),
            (MCP_CALLS.name, _ended("approved", "pat")),  # went on: nothing to say
            (MCP_CALLS.name, _ended("allow")),
        )
        texts = [b["text"] for b in hook.bodies]
        assert siem.flush()
        siem.close()
    assert texts == [
        "MCP call held for approval: deploy: kim's agent called deploy on mcp.corp.example "
        "(an argument matches prod); it waits for an approver",
        "MCP call denied: deploy: pat denied kim's call to deploy on mcp.corp.example; rule mcp:corp:approval",
        "MCP call refused without a decision: deploy: no approver could be told of kim's call to deploy on "
        "mcp.corp.example (or holding it failed), so it was refused; rule mcp:corp:approval",
        "MCP call not decided in time: deploy: no approver decided on kim's call to deploy on mcp.corp.example "
        "in time; refused; rule mcp:corp:approval",
        "MCP call abandoned while held: deploy: the client left while kim's call to deploy on mcp.corp.example "
        "waited for approval; it was not sent; rule mcp:corp:approval",
    ]
    events = _lines(out)
    assert [e["event"]["action"] for e in events] == [
        "alert_mcp_approval_requested", *["alert_mcp_approval_denied"] * 2, *["alert_mcp_approval_timeout"] * 2
    ]  # fmt: skip
    assert {e["shadowgate"]["alert"]["request_id"] for e in events} == {"ee" * 16}


def test_client_chosen_names_cannot_format_a_slack_alert():
    tool = "merge_<!channel> <https://phish.example/approve|Approve now> &amp;"
    body = webhook_payload(
        "slack", f"MCP call held for approval: {tool}", f"kim's agent called {tool}", {"user": "<@U1>"}
    )
    shown = body["text"] + body["blocks"][0]["text"]["text"]
    assert "<!channel>" not in shown and "<https://phish" not in shown and "<@U1>" not in shown
    assert "&lt;https://phish.example/approve|Approve now&gt; &amp;amp;" in shown
    linked = webhook_payload("slack", "t", "x", {}, link="https://shadowgate.approval/a")
    assert linked["blocks"][0]["text"]["text"].endswith("<https://shadowgate.approval/a|Open>")  # ours still links


# --- a feed that cannot write ----------------------------------------------------------------


def test_a_value_that_cannot_be_encoded_does_not_stall_the_feed(tmp_path):
    # A lone surrogate: an MCP tool name sent as "\ud800" in JSON, a header's undecodable byte.
    out = tmp_path / "siem.jsonl"
    with UdpSyslog() as udp:
        siem = EventFeed([parse_destination(f"json:{out}"), parse_destination(f"cef:udp://127.0.0.1:{udp.port}")],
                         interval=0.05)  # fmt: skip
        siem.start()
        siem.put(
            MCP_CALLS.name, McpCallRow(ts=NOW, user_name="eve", host="mcp.x", tool_name="a\ud800b", decision="block")
        )
        siem.put(MCP_CALLS.name, McpCallRow(ts=NOW, user_name="ann", host="mcp.x", tool_name="ok", decision="block"))
        assert siem.flush(5), siem.last_error
        wait_for(lambda: len(udp.messages) == 2, what="both CEF messages")
        siem.close()
    events = _lines(out)
    assert [e["shadowgate"]["mcp"]["tool"] for e in events] == ["a\ufffdb", "ok"]
    assert siem.last_error is None and siem.lost == 0


def test_an_alert_about_an_undecodable_name_is_still_mailed_logged_and_fed(tmp_path, writer):  # noqa: F811
    with SmtpSink() as smtp, UdpSyslog() as syslog:
        destinations = {"mail": f'{{email: [soc@example.com], smtp: "{smtp.address}"}}',
                        "log": f'{{syslog: "udp://127.0.0.1:{syslog.port}"}}'}  # fmt: skip
        engine, siem, out = engine_with_feed(
            tmp_path, writer, destinations, "{id: mcp, event: mcp_refusal, to: [mail, log]}"
        )
        refused = McpCallRow(ts=NOW, user_name="eve", host="mcp.x", tool_name="drop_\ud800", decision="block")
        feed(engine, (MCP_CALLS.name, refused))
        assert siem.flush()
        siem.close()
        [mail] = smtp.messages
        [message] = wait_for(lambda: syslog.messages, what="the syslog alert")  # UDP: the receiver's thread
    assert mail["Subject"] == "[shadowgate] MCP call refused: drop_\ufffd" and "drop_\ufffd" in message
    [event] = _lines(out)
    assert event["message"].startswith("MCP call refused: drop_\ufffd") and engine.failed == 0
    [row] = alert_rows(writer)
    assert row["delivered"] is True


def test_a_write_that_fails_half_way_leaves_no_half_line_and_nothing_twice(tmp_path):
    seen = run_on_small_disk("diskfull_feed.py", tmp_path)  # a real file system that fills up
    mount = tmp_path / "small"
    full, after = seen["full"], seen["after"]
    assert "No space left on device" in full["last_error"]
    assert full["problems"] == [f"siem json:{mount}/events.jsonl: [Errno 28] No space left on device"]
    assert full["size"] == 0 and full["waiting"] == 101  # the part written was cut back; all kept
    assert after["flushed"] and after["last_error"] is None and after["lost"] == 0 and after["sent"] == 101
    assert after["users"] == [f"u{n}" for n in range(100)] + ["u1"]  # each once, in order, whole
    assert after["kinds"] == ["event"] * 100 + ["alert"]


def test_a_file_that_cannot_be_cut_back_starts_the_next_line_fresh(tmp_path):
    sink = FileSink(str(tmp_path / "events.jsonl"))
    sink.send(["one"])
    sink._torn = True  # as after a failed write whose partial line could not be removed
    with open(tmp_path / "events.jsonl", "a") as f:
        f.write('{"half')
    sink.send(["two"])
    assert (tmp_path / "events.jsonl").read_text() == 'one\n{"half\ntwo\n'


POLICY = """\
dlp: {{secrets: block}}
alerts:
  destinations: {{hook: {{webhook: "{url}"}}}}
  rules: [{{id: dlp, event: dlp_block, to: hook, every: 0}}]
"""


def _ready(proxy) -> httpx.Response:
    with httpx.Client(proxy=proxy.url("health"), timeout=30) as client:
        return client.get("http://shadowgate.health/")


def test_a_full_or_unwritable_feed_never_stops_the_proxy_and_every_loss_is_told(proxy_with, tmp_path):
    good = tmp_path / "siem.jsonl"
    secret = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": SECRET_PROMPT}]}
    plain = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
    url = "https://api.openai.com/v1/chat/completions"
    with Webhook() as hook:
        proxy = proxy_with(POLICY.format(url=hook.url), shadowgate_siem=[f"json:{good}"])
        with proxy.client("feed-user") as client:
            assert client.post(url, json=secret).status_code == 403
        lines = wait_for(lambda: len(_lines(good)) >= 2 and _lines(good), what="the DLP event and its alert")
        assert sorted(e["event"]["action"] for e in lines) == ["alert_dlp_block", "dlp_block"]
        alert = next(e for e in lines if e["event"]["kind"] == "alert")
        dlp = next(e for e in lines if e["event"]["kind"] == "event")
        assert alert["shadowgate"]["alert"]["request_id"] == dlp["event"]["id"]
        assert AWS_KEY not in good.read_text()  # counts of types only, never the value

        # The disk is full: every write fails. The proxy answers, the alerts still go out.
        before = scrape(proxy)
        with proxy.options(shadowgate_siem=["json:/dev/full"], shadowgate_siem_queue=2):
            with proxy.client("feed-user") as client:
                for _ in range(4):
                    assert client.post(url, json=secret).status_code == 403
                assert client.post(url, json=plain).status_code == 200
            wait_for(lambda: len(hook.bodies) >= 5, what="the alerts, delivered anyway")

            def lost() -> dict | None:
                samples = scrape(proxy)
                failing = value(samples, "shadowgate_siem_destinations_failing") == 1
                return samples if failing and value(samples, "shadowgate_siem_alerts_dropped_total") >= 2 else None

            samples = wait_for(lost, 15, "the failure seen and the dropped alerts counted")
            assert value(samples, "shadowgate_siem_events_dropped_total") >= 4
            assert value(samples, "shadowgate_ready") == 1
            assert value(samples, "shadowgate_alerts_total") - value(before, "shadowgate_alerts_total") >= 4
            ready = _ready(proxy)
            assert ready.status_code == 200 and ready.json()["status"] == "ready"
            assert ready.json()["warnings"] == ["siem json:/dev/full: [Errno 28] No space left on device"]
            # A deployment that may not pass traffic it cannot log says so: not ready.
            with proxy.options(shadowgate_siem_required=True):
                required = _ready(proxy)
            assert required.status_code == 503 and required.json()["problems"] == ready.json()["warnings"]
            log = proxy.log()
            assert "SIEM destination json:/dev/full failed ([Errno 28] No space left on device)" in log
            assert "events dropped so far" in log
        # Replaced, the broken feed says what it lost in all, alerts apart.
        wait_for(lambda: re.search(r"the SIEM feed lost \d+ events \([1-9]\d* of them alerts\)", proxy.log()),
                 what="the loss told when the feed closed")  # fmt: skip

        # A feed file that cannot even be created: said at once, before any event is lost.
        blocker = tmp_path / "not-a-folder"
        blocker.write_text("")
        with proxy.options(shadowgate_siem=[f"json:{blocker}/events.jsonl"]):
            ready = _ready(proxy)
            assert ready.status_code == 200
            assert ready.json()["warnings"] == [f"siem json:{blocker}/events.jsonl: Not a directory"]
            wait_for(lambda: "cannot be written (Not a directory)" in proxy.log(), what="the start-up warning")
        assert _ready(proxy).json()["warnings"] == []


def test_a_client_sending_undecodable_bytes_cannot_stall_the_feed_of_a_real_proxy(proxy_with, tmp_path):
    out = tmp_path / "siem.jsonl"
    proxy = proxy_with("rules:\n  - {id: no-deepseek, match: {provider: deepseek}, action: block}\n",
                       shadowgate_siem=[f"json:{out}"])  # fmt: skip
    body = {"model": "deepseek-chat", "messages": [{"role": "user", "content": "hi"}]}
    with proxy.client("odd-bytes") as client:
        odd = client.post("https://api.deepseek.com/v1/chat/completions", json=body,
                          headers={"user-agent": b"agent/\xff\xfe"})  # fmt: skip
        plain = client.post("https://api.deepseek.com/v1/chat/completions", json=body)
    assert odd.status_code == plain.status_code == 403
    events = wait_for(lambda: len(_lines(out)) >= 2 and _lines(out), what="both blocks in the feed")
    assert [e["user_agent"]["original"] for e in events] == ["agent/\ufffd\ufffd", plain.request.headers["user-agent"]]


def test_a_line_break_in_a_mail_subject_does_not_lose_the_alert():
    # MCP tool and user names are the client's to choose; EmailMessage refuses a header with a
    # line break, which dropped the alert (and, in approvals, the remaining destinations).
    from shadowgate.events.deliver import SmtpServer
    from shadowgate.events.deliver import send_mail
    from tests.support.receivers import SmtpSink

    with SmtpSink() as smtp:
        send_mail(SmtpServer.parse(smtp.address), "sg@example.com", ["secops@example.com"],
                  "[shadowgate] MCP call held: merge_pr\r\nBcc: attacker@example.com", "held")  # fmt: skip
        [mail] = smtp.messages
    assert mail["Subject"] == "[shadowgate] MCP call held: merge_pr Bcc: attacker@example.com"
    assert mail["Bcc"] is None
