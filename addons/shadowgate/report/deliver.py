"""`shadowgate report --mail-to ... --smtp ...` and `--webhook URL`: the report, delivered.

The mail's HTML body is built for mail clients, not browsers: inline styles only (many clients drop
<style>), tables for everything, and the charts drawn as table cells of a given width (most clients
drop inline SVG, and an image would need attaching or a remote fetch). A plain-text alternative (the
Markdown report) goes with it; the full HTML report and a zip of every section as CSV are attached.
A webhook gets the headline and a link (the console, or where the report is published).
"""

from __future__ import annotations

import argparse
import html
import io
import sys
import zipfile
from typing import Any

from shadowgate.events.deliver import DeliveryError
from shadowgate.events.deliver import SmtpServer
from shadowgate.events.deliver import post_json
from shadowgate.events.deliver import secret_from
from shadowgate.events.deliver import send_mail
from shadowgate.events.deliver import webhook_payload
from shadowgate.report.render import HEADLINE_LABELS
from shadowgate.report.render import MANAGER
from shadowgate.report.render import change_text
from shadowgate.report.render import csv_files
from shadowgate.report.render import fmt
from shadowgate.report.render import text_sections
from shadowgate.report.render import title_line
from shadowgate.report.render import to_html
from shadowgate.report.render import to_markdown
from shadowgate.report.runner import Report
from shadowgate.report.runner import Section
from shadowgate.report.summary import summary

LEFT_OUT_OF_MAIL = {"notes"}  # the catalog's paragraphs would make every row a page long; attached in full
MAIL_ROWS = 10  # per table in the mail's body; the attachments have every row
BAR_PX = 260
FONT = "font-family:Segoe UI,Helvetica,Arial,sans-serif;font-size:13px;color:#222"
CELL = "border:1px solid #ddd;padding:3px 6px;text-align:left;vertical-align:top"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("delivery (docs/alerts.md)")
    group.add_argument("--mail-to", action="append", default=[], metavar="ADDRESS", help="send the report to (repeat)")
    group.add_argument("--mail-from", default="shadowgate@localhost", metavar="ADDRESS")
    group.add_argument("--smtp", metavar="HOST:PORT", help="the mail server (needed with --mail-to)")
    group.add_argument("--smtp-starttls", action="store_true", help="upgrade the SMTP connection with STARTTLS")
    group.add_argument(
        "--smtp-ca", metavar="FILE", help="CA bundle that verifies the SMTP server (default: the system's)"
    )
    group.add_argument("--smtp-user", help="log in to the mail server as this user")
    secret = group.add_mutually_exclusive_group()
    secret.add_argument("--smtp-password-file", metavar="FILE", help="the SMTP password: the file's first line")
    secret.add_argument("--smtp-password-env", metavar="VAR", help="the SMTP password: this environment variable")
    group.add_argument("--webhook", action="append", default=[], metavar="URL", help="post the headline here (repeat)")
    group.add_argument("--webhook-shape", choices=("json", "slack", "teams"), default="json")
    group.add_argument("--link", metavar="URL", help="where readers find the full report or the console")


def wanted(args: argparse.Namespace) -> bool:
    return bool(args.mail_to or args.webhook)


def deliver(report: Report, args: argparse.Namespace) -> int:
    """Send by mail and to each webhook; 0 when every delivery was accepted, 1 otherwise."""
    failed = 0
    if args.mail_to:
        try:
            if not args.smtp:
                raise DeliveryError("--mail-to needs --smtp HOST:PORT")
            password = secret_from(args.smtp_password_env, args.smtp_password_file)
            server = SmtpServer.parse(
                args.smtp, starttls=args.smtp_starttls, user=args.smtp_user, password=password, cafile=args.smtp_ca
            )
            send_report_mail(report, server, args.mail_from, args.mail_to, args.link)
            print(f"shadowgate: report {report.period.label} mailed to {', '.join(args.mail_to)}", file=sys.stderr)
        except DeliveryError as e:
            print(f"shadowgate: {e}", file=sys.stderr)
            failed += 1
    for url in args.webhook:
        try:
            post_json(url, headline_payload(report, args.webhook_shape, args.link))
            print(f"shadowgate: report {report.period.label} posted to the webhook", file=sys.stderr)
        except DeliveryError as e:
            print(f"shadowgate: {e}", file=sys.stderr)
            failed += 1
    return 1 if failed else 0


def headline_payload(report: Report, shape: str, link: str | None) -> dict:
    fields = {HEADLINE_LABELS[k]: f"{fmt(k, m['value'])} ({change_text(k, m)})" for k, m in report.headline.items()}
    lines = summary(report)
    return webhook_payload(shape, title_line(report), lines[0] if lines else "", fields, link)


def send_report_mail(report: Report, server: SmtpServer, sender: str, to: list[str], link: str | None) -> None:
    label = report.period.label.replace(" .. ", "_")  # a file name without spaces: 2026-11-01_2026-11-30
    attachments = [
        (f"shadowgate-report-{label}.html", "text/html", to_html(report).encode()),
        (f"shadowgate-report-{label}-csv.zip", "application/zip", csv_zip(report)),
    ]
    send_mail(server, sender, to, title_line(report), to_markdown(report), mail_html(report, link), attachments)


def csv_zip(report: Report) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in csv_files(report).items():
            archive.writestr(name, text)
    return buf.getvalue()


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def bars(title: str, items: list[tuple[str, float | None]], label, colour: str = "#4e79a7") -> str:
    """A bar chart as a table: one row per item, the bar a cell of proportional width."""
    known = [(name, v) for name, v in items[:MAIL_ROWS] if v is not None]
    top = max((v for _, v in known), default=0) or 1
    rows = "".join(
        f'<tr><td style="{CELL};border:0;white-space:nowrap">{_e(name)}</td>'
        f'<td style="border:0;padding:2px 6px"><table role="presentation" cellpadding="0" cellspacing="0"><tr>'
        f'<td width="{max(2, round(BAR_PX * v / top))}" height="12" style="background:{colour};font-size:1px;'
        f'line-height:12px">&nbsp;</td><td style="padding-left:6px;{FONT}">{_e(label(v))}</td></tr></table></td></tr>'
        for name, v in known
    )
    if not rows:
        return ""
    return (
        f'<h3 style="{FONT};font-size:15px">{_e(title)}</h3><table role="presentation" cellpadding="0">{rows}</table>'
    )


def _table(s: Section) -> str:
    shown = [i for i, c in enumerate(s.columns) if c not in LEFT_OUT_OF_MAIL]
    head = "".join(f'<th style="{CELL};background:#f3f5f8">{_e(s.columns[i])}</th>' for i in shown)
    body = "".join(
        "<tr>" + "".join(f'<td style="{CELL}">{_e(fmt(s.columns[i], row[i]))}</td>' for i in shown) + "</tr>"
        for row in s.rows[:MAIL_ROWS]
    )
    more = (
        f'<p style="{FONT};color:#777">First {MAIL_ROWS} of {len(s.rows):,} rows; all in the attachments.</p>'
        if len(s.rows) > MAIL_ROWS
        else ""
    )
    return (
        f'<h3 style="{FONT};font-size:15px">{_e(s.title)}</h3>'
        f'<table cellpadding="0" cellspacing="0" style="border-collapse:collapse;{FONT};font-size:12px">'
        f"<tr>{head}</tr>{body}</table>{more}"
    )


def mail_html(report: Report, link: str | None = None) -> str:
    headline = "".join(
        f'<tr><td style="{CELL}">{_e(HEADLINE_LABELS[k])}</td><td style="{CELL};text-align:right"><b>'
        f'{_e(fmt(k, m["value"]))}</b></td><td style="{CELL};color:#777">{_e(change_text(k, m))}</td></tr>'
        for k, m in report.headline.items()
    )
    cost = [(r["provider"], r["cost_usd"]) for r in report.section("cost", "by_provider").records()]
    users = [(r["user"], r["requests"]) for r in report.section("unapproved", "users").records()]
    apps = [(r["app"], r["requests"]) for r in report.section("apps").records()]
    parts = [
        f'<!DOCTYPE html><html><head><meta charset="utf-8"><title>{_e(title_line(report))}</title></head>',
        f'<body style="margin:0;padding:16px;{FONT}">',
        f'<h2 style="{FONT};font-size:19px">{_e(title_line(report))}</h2>',
        '<ul style="padding-left:20px">' + "".join(f"<li>{_e(line)}</li>" for line in summary(report)) + "</ul>",
        f'<table cellpadding="0" cellspacing="0" style="border-collapse:collapse;{FONT}">{headline}</table>',
        bars("Requests by app", apps, lambda v: f"{v:,}"),
        bars("Cost by provider", cost, lambda v: fmt("cost_usd", v), "#59a14f"),
        bars("Top users of apps not sanctioned (requests)", users, lambda v: f"{v:,}", "#e15759"),
    ]
    parts.extend(_table(s) for s in text_sections(report) if s.audience == MANAGER)
    if link:
        parts.append(f'<p style="{FONT}"><a href="{_e(link)}">Open the full report</a></p>')
    parts.append(f'<p style="{FONT};color:#777">Every table in full: the attached HTML report and CSV files.</p>')
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
