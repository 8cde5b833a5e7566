"""Alerts: the policy section, each event, deduplication and rate limits, delivery to a local
webhook, SMTP server and syslog receiver, the alerts table, and a real proxy raising new_app."""

from __future__ import annotations

import datetime as dt
import json
import types

import duckdb
import pytest

from shadowgate.config.policy import load_policy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.events.alerts import AlertEngine
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import MCP_CALLS
from shadowgate.storage.rows import AiRequest
from shadowgate.storage.rows import McpCallRow
from shadowgate.storage.schema import ALL_TABLES
from shadowgate.storage.store import SegmentWriter
from tests.support.receivers import SmtpSink
from tests.support.receivers import UdpSyslog
from tests.support.receivers import Webhook
from tests.support.receivers import wait_for

NOW = dt.datetime.now(dt.UTC).replace(tzinfo=None)


def call(user: str = "alice", provider: str = "deepseek", **changes) -> AiRequest:
    row = AiRequest(ts=NOW, user_name=user, client_ip="10.0.0.1", host=f"api.{provider}.com",
                    site=f"{provider}.com", provider=provider, category="llm_api", decision="allow")  # fmt: skip
    for key, value in changes.items():
        setattr(row, key, value)
    return row


def policy_with(tmp_path, alerts: str, rules: str = "rules: []\n"):
    path = tmp_path / "policy.yaml"
    path.write_text(rules + alerts)
    return load_policy(path)


@pytest.fixture
def writer(tmp_path):
    w = SegmentWriter(tmp_path / "db.duckdb", ALL_TABLES, flush_interval=0.1)
    w.start()
    yield w
    w.close()


def engine_for(policy, writer) -> AlertEngine:
    settings = types.SimpleNamespace(policy=policy, writer=writer)
    engine = AlertEngine(settings, lambda: None)  # type: ignore[arg-type]
    engine._seed()
    return engine


def feed(engine: AlertEngine, *rows: tuple[str, object]) -> None:
    for table, row in rows:
        engine.put(table, row)
    engine._drain(engine.settings.policy.alerts)


def alert_rows(writer) -> list[dict]:
    writer.flush()
    con = duckdb.connect()
    try:
        cur = con.execute(
            f"SELECT * FROM read_parquet('{writer.segments}/alerts/*/*.parquet', union_by_name=true) ORDER BY ts"
        )
        return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
    finally:
        con.close()


def stored_alerts(db) -> list[dict]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        cur = con.execute("SELECT * FROM alerts ORDER BY ts")
        return [dict(zip([d[0] for d in cur.description], r)) for r in cur.fetchall()]
    finally:
        con.close()


def test_the_alerts_section_parses(tmp_path):
    policy = policy_with(
        tmp_path,
        """\
alerts:
  destinations:
    hook: {webhook: "http://127.0.0.1:9/x", shape: teams}
    mail: {email: a@example.com, smtp: "127.0.0.1:25", starttls: true, user: u, password_env: PW}
    log: {syslog: "udp://127.0.0.1:514"}
  rules:
    - {id: n, event: new_app, to: hook}
    - {id: c, event: unapproved_users, users: 3, to: [mail, log], every: 30m, max_per_hour: 2}
""",
    )
    alerts = policy.alerts
    assert alerts is not None and [d.kind for d in alerts.destinations.values()] == ["webhook", "email", "syslog"]
    crowd = alerts.rules_for("unapproved_users")[0]
    assert (crowd.users, crowd.every, crowd.max_per_hour, crowd.to) == (3, 1800.0, 2, ("mail", "log"))
    assert alerts.rules_for("new_app")[0].every == 3600.0


@pytest.mark.parametrize(
    ("section", "error"),
    [
        ("rules: [{id: x, event: new_thing, to: h}]", "'event' is one of"),
        ("rules: [{id: x, event: new_app, to: nowhere}]", "no destination called 'nowhere'"),
        ("rules: [{id: x, event: new_app, to: h, every: soon}]", "is a duration"),
        ("rules: [{id: x, event: new_app, to: h, users: 0}]", "users is a whole number"),
        ("rules: [{id: x, event: new_app, to: h}, {id: x, event: dlp_block, to: h}]", "duplicate alert rule id"),
        ("rules: [{id: x, event: new_app, to: h, colour: red}]", "unknown keys"),
    ],
)
def test_a_broken_alerts_section_names_line_and_reason(tmp_path, section, error):
    text = 'alerts:\n  destinations: {h: {webhook: "http://127.0.0.1:9/"}}\n  ' + section + "\n"
    with pytest.raises(ConfigError, match=error):
        policy_with(tmp_path, text)


def test_bad_destinations_are_refused(tmp_path):
    for dest, error in [
        ('{webhook: "ftp://x"}', "http"),
        ("{email: a@b.c}", "smtp: HOST:PORT"),
        ('{syslog: "udp://x"}', "HOST:PORT"),
        ('{webhook: "http://x/", email: a@b.c}', "exactly one"),
        ('{webhook: "http://x/", shape: discord}', "shape"),
    ]:
        with pytest.raises(ConfigError, match=error):
            policy_with(tmp_path, f"alerts:\n  destinations: {{h: {dest}}}\n  rules: []\n")


def test_new_apps_endpoints_and_dlp_blocks_go_to_each_webhook_shape_once(tmp_path, writer):
    with Webhook() as slack, Webhook() as teams, Webhook() as plain:
        policy = policy_with(
            tmp_path,
            f"""\
alerts:
  destinations:
    slack: {{webhook: "{slack.url}", shape: slack}}
    teams: {{webhook: "{teams.url}", shape: teams}}
    plain: {{webhook: "{plain.url}"}}
  rules:
    - {{id: new, event: new_app, to: [slack, teams, plain]}}
    - {{id: endpoints, event: unknown_endpoint, to: plain}}
    - {{id: dlp, event: dlp_block, to: plain, every: 1h}}
""",
        )
        engine = engine_for(policy, writer)
        feed(
            engine,
            (AI_REQUESTS.name, call("alice")),
            (AI_REQUESTS.name, call("bob")),  # the same app: not new any more
            (AI_REQUESTS.name, call("carol", provider="unknown", host="llm.intra.example", site="intra.example")),
            (AI_REQUESTS.name, call("dave", dlp_action="block", dlp_findings="AWS_KEY:1")),
            (AI_REQUESTS.name, call("dave", dlp_action="block", dlp_findings="AWS_KEY:1")),  # deduplicated
        )
        [slack_body] = slack.bodies
        [teams_body] = teams.bodies
        assert slack_body["text"].startswith("New AI app: deepseek") and "*user:* alice" in json.dumps(slack_body)
        card = teams_body["attachments"][0]
        assert card["contentType"] == "application/vnd.microsoft.card.adaptive"
        assert card["content"]["body"][0]["text"] == "New AI app: deepseek"
        assert {"title": "user", "value": "alice"} in card["content"]["body"][2]["facts"]
        events = [b["fields"]["event"] for b in plain.bodies]
        assert events == ["new_app", "unknown_endpoint", "dlp_block"]
        assert plain.bodies[2]["fields"]["user"] == "dave" and "AWS_KEY:1" in plain.bodies[2]["text"]
        # a second window: the held-back one is counted in the next alert sent
        engine._last_sent[("dlp", "dave|api.deepseek.com")] -= 3601
        feed(engine, (AI_REQUESTS.name, call("dave", dlp_action="block", dlp_findings="AWS_KEY:1")))
        assert plain.bodies[3]["fields"]["suppressed"] == 1
    rows = alert_rows(writer)
    assert [(r["rule_id"], r["event"], r["delivered"]) for r in rows] == [
        ("new", "new_app", True),
        ("endpoints", "unknown_endpoint", True),
        ("dlp", "dlp_block", True),
        ("dlp", "dlp_block", True),
    ]
    assert rows[0]["destinations"] == "slack,teams,plain" and rows[3]["suppressed"] == 1


def test_what_the_database_already_holds_is_not_new(tmp_path, writer):
    writer.submit(AI_REQUESTS.name, call("old-user"))
    writer.flush()
    with Webhook() as hook:
        policy = policy_with(
            tmp_path,
            f'alerts:\n  destinations: {{h: {{webhook: "{hook.url}"}}}}\n  rules: [{{id: n, event: new_app, to: h}}]\n',
        )
        engine = engine_for(policy, writer)
        feed(engine, (AI_REQUESTS.name, call("alice")), (AI_REQUESTS.name, call("alice", provider="mistral")))
        assert [b["fields"]["app"] for b in hook.bodies] == ["mistral"]


def test_an_unapproved_app_crossing_n_users_and_the_hourly_cap(tmp_path, writer):
    with Webhook() as hook:
        policy = policy_with(
            tmp_path,
            f"""\
alerts:
  destinations: {{h: {{webhook: "{hook.url}"}}}}
  rules:
    - {{id: crowd, event: unapproved_users, users: 3, to: h}}
    - {{id: mcp, event: mcp_refusal, to: h, every: 0, max_per_hour: 2}}
""",
            rules="rules:\n  - {id: ok, match: {provider: openai}, action: allow}\n"
            "  - {id: no-deepseek, match: {provider: deepseek}, action: block}\n",
        )
        engine = engine_for(policy, writer)
        rows = [(AI_REQUESTS.name, call(u)) for u in ("a", "b", "a", "c", "d")]
        rows += [(AI_REQUESTS.name, call(u, provider="openai")) for u in ("a", "b", "c", "d")]  # sanctioned
        refused = [
            McpCallRow(ts=NOW, user_name="e", host="mcp.x", tool_name=f"t{i}", decision="block") for i in range(4)
        ]
        feed(engine, *rows, *[(MCP_CALLS.name, r) for r in refused])
        events = [(b["fields"]["event"], b["fields"].get("app")) for b in hook.bodies]
        assert events == [("unapproved_users", "deepseek"), ("mcp_refusal", None), ("mcp_refusal", None)]
        assert "3 people now use deepseek" in hook.bodies[0]["text"]


def test_mail_syslog_and_a_failing_webhook(tmp_path, writer, monkeypatch):
    monkeypatch.setenv("SG_TEST_SMTP_PW", "s3cret")
    with SmtpSink(users={"alerts": "s3cret"}) as smtp, UdpSyslog() as syslog, Webhook(status=500) as broken:
        policy = policy_with(
            tmp_path,
            f"""\
alerts:
  destinations:
    mail: {{email: [secops@example.com], smtp: "{smtp.address}", user: alerts, password_env: SG_TEST_SMTP_PW,
           from: proxy@example.com}}
    log: {{syslog: "udp://127.0.0.1:{syslog.port}"}}
    broken: {{webhook: "{broken.url}"}}
  rules:
    - {{id: pinned, event: pinned_passthrough, to: [mail, log]}}
    - {{id: budget, event: budget_crossed, to: [broken]}}
""",
        )
        engine = engine_for(policy, writer)
        feed(
            engine,
            (AI_REQUESTS.name, call("pat", inspected=False, inspect_note="client pins certificates: passed through")),
            (AI_REQUESTS.name, call("sam", decision="rate_limit", rule_id="daily-usd")),
        )
        [mail] = smtp.messages
        assert smtp.logins == ["alerts"] and smtp.envelopes == [("proxy@example.com", ["secops@example.com"])]
        assert mail["Subject"] == "[shadowgate] Pinned client passed through: api.deepseek.com"
        assert "user: pat" in mail.get_content()
        # UDP: the datagram is sent when delivery returns, and taken in by the receiver's thread.
        [line] = wait_for(lambda: syslog.messages, what="the syslog alert")
        assert " alert_pinned_passthrough " in line and json.loads(line.split("] ", 1)[1])["event"]["kind"] == "alert"
    rows = alert_rows(writer)
    assert [(r["rule_id"], r["delivered"]) for r in rows] == [("pinned", True), ("budget", False)]
    assert "webhook answered 500" in rows[1]["delivery_error"] and engine.failed == 1


def test_storage_failure_is_raised_once_per_window(tmp_path, writer):
    with Webhook() as hook:
        policy = policy_with(
            tmp_path,
            f'alerts:\n  destinations: {{h: {{webhook: "{hook.url}"}}}}\n'
            "  rules: [{id: broken, event: storage_failure, to: h, every: 1h}]\n",
        )
        engine = engine_for(policy, writer)
        otel_dropped = [0]
        engine.telemetry_dropped = lambda: otel_dropped[0]
        writer.last_error = "cannot write ai_requests segment: No space left on device"
        writer.rows_dropped = 7
        engine._check_health(policy.alerts)
        otel_dropped[0] = 3
        engine._check_health(policy.alerts)
        writer.last_error = None
        assert [b["title"] for b in hook.bodies] == ["Storage is failing", "Rows lost", "Telemetry events lost"]
        assert "No space left" in hook.bodies[0]["text"] and "7 rows" in hook.bodies[1]["text"]


def test_a_real_proxy_alerts_on_a_new_app(fresh_proxy, tmp_path):
    with Webhook() as hook:
        policy = tmp_path / "policy.yaml"
        policy.write_text(
            f'alerts:\n  destinations: {{hook: {{webhook: "{hook.url}", shape: slack}}}}\n'
            "  rules: [{id: new-apps, event: new_app, to: hook}]\n"
        )
        proxy = fresh_proxy("--set", f"shadowgate_policy={policy}")
        body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
        with proxy.client("newbie") as client:
            for _ in range(3):
                assert client.post("https://api.openai.com/v1/chat/completions", json=body).status_code == 200
        wait_for(lambda: hook.bodies, what="the alert")
        [row] = wait_for(lambda: stored_alerts(proxy.db), what="the alerts row")
        assert len(hook.bodies) == 1 and hook.bodies[0]["text"].startswith("New AI app: openai")
        assert (row["rule_id"], row["event"], row["alert_key"], row["user_name"]) == (
            "new-apps",
            "new_app",
            "openai",
            "newbie",
        )
