"""Delivering a message: a webhook (generic JSON, Slack, Microsoft Teams), e-mail, or syslog.

Alerts (events/alerts.py) and the scheduled report (report/deliver.py) both send through here,
always off the event loop: every function blocks until the message is accepted or refused, and
raises DeliveryError saying why it was refused.

Slack takes `{"text": ..., "blocks": [...]}` on an incoming webhook; Teams takes a message with
an Adaptive Card attachment (the shape the Workflows "post to a channel when a webhook request is
received" template and the older connectors accept); the generic shape is the fields as JSON.
"""

from __future__ import annotations

import json
import os
import smtplib
import ssl
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Any

from shadowgate.events.formats import json_line
from shadowgate.events.formats import rfc5424
from shadowgate.events.transports import StreamSink
from shadowgate.events.transports import UdpSink
from shadowgate.events.transports import parse_destination

TIMEOUT = 10.0


class DeliveryError(Exception):
    pass


def webhook_payload(shape: str, title: str, text: str, fields: dict[str, Any], link: str | None = None) -> dict:
    """The JSON body for a webhook of this shape (json, slack, teams)."""
    shown = {k: v for k, v in fields.items() if v not in (None, "")}
    if shape == "slack":
        # Names in the text come from clients (a user, a tool "merge_<https://x|Approve>"): Slack's
        # control characters are escaped, so they show as typed and never become a link or @channel.
        title, text = slack_text(title), slack_text(text)
        facts = "\n".join(f"*{k}:* {slack_text(str(v))}" for k, v in shown.items())
        body = f"*{title}*\n{text}" + (f"\n{facts}" if facts else "") + (f"\n<{link}|Open>" if link else "")
        return {"text": f"{title}: {text}", "blocks": [{"type": "section", "text": {"type": "mrkdwn", "text": body}}]}
    if shape == "teams":
        card: dict[str, Any] = {
            "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
            "type": "AdaptiveCard",
            "version": "1.4",
            "body": [
                {"type": "TextBlock", "text": title, "weight": "Bolder", "size": "Medium", "wrap": True},
                {"type": "TextBlock", "text": text, "wrap": True},
                {"type": "FactSet", "facts": [{"title": k, "value": str(v)} for k, v in shown.items()]},
            ],
        }
        if link:
            card["actions"] = [{"type": "Action.OpenUrl", "title": "Open", "url": link}]
        return {
            "type": "message",
            "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": card}],
        }
    return {"title": title, "text": text, "fields": shown, **({"link": link} if link else {})}


def slack_text(text: str) -> str:
    """Text shown as written in a Slack message: &, < and > escaped, as Slack's formatting guide says."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def post_json(url: str, payload: dict, timeout: float = TIMEOUT) -> None:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"content-type": "application/json", "user-agent": "shadowgate"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            response.read(4096)
    except urllib.error.HTTPError as e:
        raise DeliveryError(f"webhook answered {e.code}") from e
    except (urllib.error.URLError, OSError) as e:
        raise DeliveryError(f"webhook unreachable: {getattr(e, 'reason', e)}") from e


def secret_from(env: str | None, file: str | None) -> str | None:
    """A password from an environment variable or a file (its first line), never the command line."""
    if env:
        value = os.environ.get(env)
        if value is None:
            raise DeliveryError(f"the environment variable {env} is not set")
        return value
    if file:
        try:
            with open(os.path.expanduser(file), encoding="utf-8") as f:
                return f.readline().rstrip("\r\n")
        except OSError as e:
            raise DeliveryError(f"cannot read the password file {file}: {e.strerror}") from e
    return None


@dataclass(frozen=True, slots=True)
class SmtpServer:
    host: str
    port: int
    starttls: bool = False
    user: str | None = None
    password: str | None = None
    cafile: str | None = None

    @classmethod
    def parse(cls, address: str, **kwargs: Any) -> SmtpServer:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise DeliveryError(f"the SMTP server is HOST:PORT, not {address!r}")
        return cls(host, int(port), **kwargs)


def send_mail(
    server: SmtpServer,
    sender: str,
    to: Sequence[str],
    subject: str,
    text: str,
    html: str | None = None,
    attachments: Sequence[tuple[str, str, bytes]] = (),
) -> None:
    """attachments: (file name, MIME type as 'main/sub', content)."""
    message = EmailMessage()
    message["From"] = sender
    message["To"] = ", ".join(to)
    # A subject carries client-chosen names (users, MCP tools): a line break would make the
    # message refuse the header and the alert would be lost.
    message["Subject"] = " ".join(subject.split())
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    for name, mime, content in attachments:
        main, _, sub = mime.partition("/")
        message.add_attachment(content, maintype=main, subtype=sub, filename=name)
    try:
        with smtplib.SMTP(server.host, server.port, timeout=TIMEOUT) as smtp:
            if server.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=server.cafile))
            if server.user:
                smtp.login(server.user, server.password or "")
            smtp.send_message(message)
    except (smtplib.SMTPException, OSError) as e:
        raise DeliveryError(f"mail to {server.host}:{server.port} failed: {e}") from e


def send_syslog(target: str, event: dict[str, Any]) -> None:
    """One RFC 5424 message (the event as JSON) to udp://, tcp:// or tls://HOST:PORT."""
    dest = parse_destination(f"syslog:{target}")
    sink = (
        UdpSink(dest.target, dest.port)
        if dest.scheme == "udp"
        else StreamSink(
            dest.target,
            dest.port,
            octet_counted=True,
            tls=ssl.create_default_context() if dest.scheme == "tls" else None,
        )
    )
    try:
        sink.send([rfc5424(event, json_line(event))])
    except OSError as e:
        raise DeliveryError(f"syslog to {target} failed: {e}") from e
    finally:
        sink.close()
