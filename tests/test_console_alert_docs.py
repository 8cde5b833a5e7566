"""docs/alerts.md's example "a new unapproved app, to a chat channel and the SIEM", run as written.

The YAML is taken from the document itself (only the destinations' addresses are swapped for local
receivers), so a doc that drifts from what the proxy does fails here. Then the alert it raised is
on the console's alerts page SQL with its severity.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import duckdb

from shadowgate.console.data import page_queries
from shadowgate.report import runner
from shadowgate.report.period import Period
from shadowgate.storage.rows import AI_REQUESTS
from tests.support.receivers import UdpSyslog
from tests.support.receivers import Webhook
from tests.support.receivers import wait_for
from tests.test_alerts import NOW
from tests.test_alerts import alert_rows
from tests.test_alerts import call
from tests.test_alerts import engine_for
from tests.test_alerts import feed
from tests.test_alerts import policy_with
from tests.test_alerts import writer  # noqa: F401  (the fixture)

DOC = Path(__file__).resolve().parent.parent / "docs" / "alerts.md"


def documented_example() -> str:
    section = DOC.read_text().split("### Example: a new unapproved app", 1)[1]
    return re.search(r"```yaml\n(.*?)```", section, re.S)[1]


def test_the_documented_new_unapproved_app_alert(tmp_path, writer):  # noqa: F811
    with Webhook() as hook, UdpSyslog() as syslog:
        yaml = documented_example()
        assert "event: unapproved_users, users: 1" in yaml
        yaml = yaml.replace("https://hooks.slack.com/services/T000/B000/XXXX", hook.url)
        yaml = yaml.replace("udp://siem.example.com:514", f"udp://127.0.0.1:{syslog.port}")
        policy = policy_with(tmp_path, yaml, rules="rules:\n  - {id: ok, match: {provider: openai}, action: allow}\n")
        engine = engine_for(policy, writer)
        feed(
            engine,
            (AI_REQUESTS.name, call("alice", provider="openai")),  # sanctioned: never an alert
            (AI_REQUESTS.name, call("alice", provider="deepseek")),  # the first person on an unsanctioned app
            (AI_REQUESTS.name, call("bob", provider="deepseek")),  # not new any more
        )
        [message] = hook.bodies  # one alert: alice on deepseek
        assert "deepseek" in message["text"] and "blocks" in json.dumps(message)  # the Slack shape
        wait_for(lambda: syslog.messages)
        event = json.loads(syslog.messages[0].split("] ", 1)[1])  # RFC 5424: the JSON after the structured data
        assert event["event"]["kind"] == "alert" and event["event"]["action"] == "alert_unapproved_users"
    [row] = alert_rows(writer)
    assert (row["rule_id"], row["event"], row["delivered"]) == ("new-unapproved-app", "unapproved_users", True)
    # The console's alerts page reads the same table: medium severity, one alert of that type.
    con = duckdb.connect()
    try:
        con.execute(
            f"CREATE VIEW alerts AS SELECT *, ts::DATE AS day FROM read_parquet('{writer.segments}/alerts/*/*.parquet')"
        )
        day = NOW.date()
        report = runner.build_report(
            con, "segments", "test", Period(day, day.fromordinal(day.toordinal() + 1), "today"),
            provider_status={}, category_status={}, queries=page_queries()["alerts"],
        )  # fmt: skip
    finally:
        con.close()
    [by_event] = report.section("alerts", "by_event").records()
    assert (by_event["severity"], by_event["event"], by_event["alerts"]) == ("medium", "unapproved_users", 1)
