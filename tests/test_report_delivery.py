"""`shadowgate report --mail-to/--webhook`: the report delivered to a local SMTP server (STARTTLS,
login) and webhook receiver, the mail-safe body, the attachments, and the deploy/ schedule examples."""

from __future__ import annotations

import io
import json
import re
import shlex
import shutil
import ssl
import subprocess
import zipfile
from pathlib import Path

import pytest

from shadowgate.report import render
from shadowgate.report import weekly
from tests import test_report
from tests.support.receivers import SmtpSink
from tests.support.receivers import Webhook
from tests.test_report import SHADOWGATE
from tests.test_report import args_for

ROOT = Path(__file__).resolve().parent.parent
report_database = test_report.data  # the report tests' database and policy, as a fixture of this module too
DEPLOY = ROOT / "deploy"
WEEK = "2026-W47"


@pytest.fixture(scope="module")
def tls_sink(test_ca, tmp_path_factory):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    test_ca.issue_cert("127.0.0.1").configure_cert(context)
    ca = tmp_path_factory.mktemp("ca") / "ca.pem"
    test_ca.cert_pem.write_to_path(str(ca))
    return context, ca


def run(*argv: str, env: dict | None = None) -> subprocess.CompletedProcess:
    import os

    return subprocess.run(
        [SHADOWGATE, "report", *argv], capture_output=True, text=True, timeout=120, env={**os.environ, **(env or {})}
    )


def test_the_weekly_mail_over_starttls_with_a_login(report_database, tls_sink, tmp_path):
    db, policy = report_database
    context, ca = tls_sink
    password = tmp_path / "smtp-password"
    password.write_text("hunter2\n")
    with SmtpSink(tls=context, users={"reports": "hunter2"}) as smtp:
        done = run("--db", str(db), "--policy", str(policy), "--week", WEEK,
                   "--mail-to", "it@example.com", "--mail-to", "ciso@example.com", "--mail-from", "sg@example.com",
                   "--smtp", smtp.address, "--smtp-starttls", "--smtp-ca", str(ca),
                   "--smtp-user", "reports", "--smtp-password-file", str(password),
                   "--link", "https://console.example/")  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == "" and "mailed to it@example.com, ciso@example.com" in done.stderr
        [mail] = smtp.messages
        assert smtp.used_tls == [True] and smtp.logins == ["reports"]
        assert smtp.envelopes == [("sg@example.com", ["it@example.com", "ciso@example.com"])]
    assert mail["Subject"] == f"Shadow-AI report {WEEK} (vs 2026-11-09 .. 2026-11-15)"
    text = mail.get_body(("plain",)).get_content()
    body = mail.get_body(("html",)).get_content()
    attachments = {part.get_filename(): part for part in mail.iter_attachments()}
    # Mail-safe: no SVG, script, style sheet or remote content; links only to what --link gave.
    for banned in ("<svg", "<script", "<style", "<img", "src=", "url("):
        assert banned not in body.lower(), banned
    assert re.findall(r'href="([^"]+)"', body) == ["https://console.example/"]
    # The numbers are the report's own (the same SQL as --format json).
    doc = json.loads(render.to_json(weekly.make_report(args_for(db, policy, week=WEEK))))
    requests = doc["headline"]["requests"]["value"]
    assert f"<b>{requests:,}</b>" in body and "Requests by app" in body
    top_app = doc["apps"][0]
    assert f">{top_app['app']}</td>" in body and f">{top_app['requests']:,}</td>" in body
    assert text.startswith("# Shadow-AI report") and f"| Requests | {requests:,}" in text
    # Attached: the full HTML report and every section as CSV.
    html_part = attachments[f"shadowgate-report-{WEEK}.html"]
    assert html_part.get_content_type() == "text/html" and "<svg" in html_part.get_content()
    archive = zipfile.ZipFile(io.BytesIO(attachments[f"shadowgate-report-{WEEK}-csv.zip"].get_content()))
    assert "apps.csv" in archive.namelist() and "headline.csv" in archive.namelist()
    assert archive.read("apps.csv").decode().splitlines()[1].startswith(f"{top_app['app']},")


def test_the_headline_goes_to_slack_teams_and_json_webhooks(report_database):
    db, policy = report_database
    doc = json.loads(render.to_json(weekly.make_report(args_for(db, policy, week=WEEK))))
    requests = f"{doc['headline']['requests']['value']:,}"
    bodies = {}
    for shape in ("slack", "teams", "json"):
        with Webhook() as hook:
            done = run("--db", str(db), "--policy", str(policy), "--week", WEEK, "--webhook", hook.url,
                       "--webhook-shape", shape, "--link", "https://console.example/week")  # fmt: skip
            assert done.returncode == 0, done.stderr
            [bodies[shape]] = hook.bodies
    assert bodies["slack"]["text"].startswith(f"Shadow-AI report {WEEK}")
    assert f"*Requests:* {requests}" in bodies["slack"]["blocks"][0]["text"]["text"]
    assert "<https://console.example/week|Open>" in bodies["slack"]["blocks"][0]["text"]["text"]
    card = bodies["teams"]["attachments"][0]["content"]
    assert card["type"] == "AdaptiveCard" and card["actions"][0]["url"] == "https://console.example/week"
    assert any(f["title"] == "Requests" and f["value"].startswith(requests) for f in card["body"][2]["facts"])
    assert bodies["json"]["fields"]["Requests"].startswith(requests) and bodies["json"]["link"].endswith("/week")


def test_a_failed_delivery_exits_non_zero_and_says_why(report_database, monkeypatch):
    db, policy = report_database
    with SmtpSink() as probe:
        closed = probe.address  # a port nobody listens on any more
    common = ["--db", str(db), "--policy", str(policy), "--week", WEEK, "--mail-to", "it@example.com"]
    done = run(*common, "--smtp", closed)
    assert done.returncode == 1 and "mail to 127.0.0.1" in done.stderr
    done = run(*common)
    assert done.returncode == 1 and "--mail-to needs --smtp" in done.stderr
    with SmtpSink(users={"u": "p"}) as smtp:
        done = run(*common, "--smtp", smtp.address, "--smtp-user", "u", "--smtp-password-env", "SG_NOT_SET_ANYWHERE")
        assert done.returncode == 1 and "SG_NOT_SET_ANYWHERE is not set" in done.stderr
        done = run(
            *common, "--smtp", smtp.address, "--smtp-user", "u", "--smtp-password-env", "SG_PW", env={"SG_PW": "bad"}
        )
        assert done.returncode == 1 and "535" in done.stderr and smtp.messages == []
    with Webhook(status=404) as hook:
        done = run("--db", str(db), "--week", WEEK, "--webhook", hook.url)
        assert done.returncode == 1 and "webhook answered 404" in done.stderr


def test_the_cron_example_sends_the_mail(report_database, tls_sink, tmp_path):
    """The command in deploy/shadowgate-report.cron, with its paths and server moved here."""
    db, policy = report_database
    context, ca = tls_sink
    [line] = [
        line for line in (DEPLOY / "shadowgate-report.cron").read_text().splitlines() if re.match(r"^[0-9*]", line)
    ]
    fields = line.split(None, 6)
    assert fields[:5] == ["0", "7", "*", "*", "1"] and fields[5] == "shadowgate"  # Mondays 07:00, as shadowgate
    password = tmp_path / "pw"
    password.write_text("pw\n")
    with SmtpSink(tls=context, users={"shadowgate": "pw"}) as smtp:
        command = (
            fields[6]
            .replace("/opt/shadowgate/.venv/bin/shadowgate", SHADOWGATE)
            .replace("/var/lib/shadowgate/shadowgate.duckdb", str(db))
            .replace("/etc/shadowgate/policy.yaml", str(policy))
            .replace("/etc/shadowgate/smtp-password", str(password))
            .replace("mail.example.com:587", smtp.address)
        )
        done = subprocess.run([*shlex.split(command), "--smtp-ca", str(ca), "--week", WEEK], capture_output=True, text=True, timeout=120)  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert len(smtp.messages) == 1 and smtp.used_tls == [True]


def test_the_systemd_timer_and_service_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed")
    service = (DEPLOY / "shadowgate-report.service").read_text()
    service = service.replace("/opt/shadowgate/.venv/bin/shadowgate", SHADOWGATE).replace(
        "WorkingDirectory=/opt/shadowgate", f"WorkingDirectory={ROOT}"
    )
    assert "--smtp-password-env SG_SMTP_PASSWORD" in service  # the example keeps the password off the command line
    (tmp_path / "shadowgate-report.service").write_text(service)
    shutil.copy(DEPLOY / "shadowgate-report.timer", tmp_path)
    for unit in ("shadowgate-report.service", "shadowgate-report.timer"):
        done = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True)
        assert done.returncode == 0 and done.stdout + done.stderr == "", done.stdout + done.stderr
    when = subprocess.run([analyze, "calendar", "Mon *-*-* 07:00:00"], capture_output=True, text=True)
    assert when.returncode == 0 and "Mon" in when.stdout


def test_a_range_of_days_is_mailed_with_attachment_names_without_spaces(report_database):
    """--since/--until label the period "2026-11-16 .. 2026-11-22"; a file name with spaces and
    dots is awkward in mail clients and shells, so the attachments are named 2026-11-16_2026-11-22."""
    db, policy = report_database
    with SmtpSink() as smtp:
        done = run("--db", str(db), "--policy", str(policy), "--since", "2026-11-16", "--until", "2026-11-22",
                   "--mail-to", "it@example.com", "--mail-from", "sg@example.com", "--smtp", smtp.address)  # fmt: skip
        assert done.returncode == 0, done.stderr
        [mail] = smtp.messages
    names = sorted(part.get_filename() for part in mail.iter_attachments())
    assert names == ["shadowgate-report-2026-11-16_2026-11-22-csv.zip", "shadowgate-report-2026-11-16_2026-11-22.html"]
