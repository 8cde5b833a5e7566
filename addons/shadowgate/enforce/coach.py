"""Coach: the "before you continue" page's consent, carried by the browser, valid on every instance.

The page's form posts to CONTINUE_PATH with a signed *link* token (user, app, rule, the page's
path; one hour). Continuing answers with a cookie on the site the user clicked on, holding a signed
*consent* token (user, app, rule, expiry after the rule's `coach.minutes`). Nothing about consent
is kept in a process: any instance holding the same key verifies the cookie, so a balancer may
send the next request to any of them. The key is derived from the fingerprint key file
(`shadowgate_fingerprint_key`, default `<confdir>/shadowgate-fingerprint.key`), which instances
behind one balancer already share; a derived key keeps a coach token from ever being a
fingerprint and the other way round.

A consent is refused unless its signature, expiry, user, app and rule all match the request now
being coached: a copied cookie does not coach another user through, and a changed rule asks again.
The cookie is ours: it is removed before the request goes on to the provider.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import html
import ipaddress
import json
import time
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from mitmproxy import http

from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import COACH
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.enforce.hosts import identity_host
from shadowgate.flow import FlowRecord
from shadowgate.flow import proxy_user_of
from shadowgate.stages.settings import ShadowgateSettings

CONTINUE_PATH = "/__shadowgate/coach/continue"
COOKIE_PREFIX = "shadowgate_coach_"
LINK_SECONDS = 3600
LINK = "link"
CONSENT = "consent"
_KEY_LABEL = b"shadowgate coach consent v1"


class ConsentTokens:
    """Sign and verify `kind` tokens: base64url(JSON [kind, *fields, expires]) "." HMAC-SHA256."""

    def __init__(self, secret: bytes) -> None:
        self._key = hmac.new(secret, _KEY_LABEL, hashlib.sha256).digest()

    def sign(self, kind: str, fields: list[str], expires: int) -> str:
        payload = json.dumps([kind, *fields, expires], separators=(",", ":")).encode()
        encoded = base64.urlsafe_b64encode(payload).decode().rstrip("=")
        return f"{encoded}.{self._mac(payload)}"

    def verify(self, token: str, kind: str, now: float | None = None) -> list[Any] | None:
        """The token's fields when it is ours, of this kind and not expired; None otherwise."""
        encoded, _, mac = token.partition(".")
        try:
            payload = base64.urlsafe_b64decode(encoded + "=" * (-len(encoded) % 4))
        except ValueError:
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            token_kind, *fields, expires = json.loads(payload)
        except ValueError:
            return None
        if token_kind != kind or not isinstance(expires, int) or expires <= (time.time() if now is None else now):
            return None
        return fields

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()[:32]


_KEPT_COOKIES = "shadowgate_coach_cookies"


def cookie_name(app: str) -> str:
    # One cookie per app, so consents for two apps on one site do not overwrite each other.
    return COOKIE_PREFIX + hashlib.sha256(app.encode()).hexdigest()[:12]


def person_of(facts: Facts) -> str:
    return facts.user or facts.client_ip or "-"


class Coach:
    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    @property
    def tokens(self) -> ConsentTokens:
        # From the key in force now: a reconfigured fingerprint key takes effect at once.
        return ConsentTokens(self.settings.secret)

    def check(
        self, flow: http.HTTPFlow, rec: FlowRecord | None, facts: Facts, decision: Decision, navigation: bool
    ) -> str:
        """ALLOW when the browser carries this user's consent for this app and rule; else, for an
        API call (which cannot click), the rule's `coach.api`; else COACH: show the page."""
        rule = decision.rule
        assert rule is not None
        if self.consented(flow, facts, decision.rule_id):
            if rec is not None:
                rec.decision = Decision("coach_allowed", decision.rule_id, "the user chose to continue", rule)
            return ALLOW
        if not navigation:
            return ALLOW if rule.coach_api == ALLOW else BLOCK
        return COACH

    def consented(self, flow: http.HTTPFlow, facts: Facts, rule_id: str, now: float | None = None) -> bool:
        app = facts.provider or facts.host
        # Our cookies are taken off the request the first time (the provider never sees them) and
        # kept on the flow: a second stage asking about the same request (WebApps, then Act) gets
        # the same answer.
        kept = flow.metadata.get(_KEPT_COOKIES)
        if kept is None:
            request = flow.request
            cookies = request.cookies
            kept = {name: cookies[name] for name in cookies if name.startswith(COOKIE_PREFIX)}
            for name in kept:
                del cookies[name]
            if kept and not request.headers.get("cookie", "").strip():
                request.headers.pop("cookie", None)
            flow.metadata[_KEPT_COOKIES] = kept
        token = kept.get(cookie_name(app), "")
        fields = self.tokens.verify(token, CONSENT, now) if token else None
        return fields == [person_of(facts), app, rule_id]

    def continue_form(self, flow: http.HTTPFlow, facts: Facts, decision: Decision) -> str:
        """The page's "continue" button: a form posting a link token bound to this user and page."""
        app = facts.provider or facts.host
        fields = [person_of(facts), app, decision.rule_id, flow.request.path]
        token = self.tokens.sign(LINK, fields, int(time.time()) + LINK_SECONDS)
        return (
            f'<form method="post" action="{CONTINUE_PATH}?t={html.escape(token)}">'
            f'<button type="submit" id="continue">I understand, continue</button></form>'
        )

    def handle_continue(self, flow: http.HTTPFlow) -> None:
        """The user clicked "continue": check the link token, then give the browser its consent."""
        token = parse_qs(urlsplit(flow.request.path).query).get("t", [""])[0]
        fields = self.tokens.verify(token, LINK)
        host = identity_host(flow)
        facts = self.settings.connection_facts(host, flow.client_conn, proxy_user_of(flow))
        if fields is None or len(fields) != 4 or fields[0] != person_of(facts):
            # Forged, expired, or another user's link: consent is given only by the one coached.
            flow.response = http.Response.make(
                400, b"shadowgate: this continue link is invalid or expired", {"content-type": "text/plain"}
            )
            return
        user, app, rule_id, path = fields
        rule = next((r for r in self.settings.policy.rules if r.id == rule_id), None)
        seconds = (rule.coach_minutes if rule else 60) * 60
        consent = self.tokens.sign(CONSENT, [user, app, rule_id], int(time.time()) + seconds)
        self.settings.record_event("coach_continue", user, flow, host, app, rule_id)
        location = path if isinstance(path, str) and path.startswith("/") and not path.startswith("//") else "/"
        response = http.Response.make(302, b"", {"location": location, "cache-control": "no-store"})
        response.headers["set-cookie"] = consent_cookie(cookie_name(app), consent, seconds, host, flow.request.scheme)
        flow.response = response


def consent_cookie(name: str, value: str, seconds: int, host: str, scheme: str) -> str:
    parts = [f"{name}={value}", "Path=/", f"Max-Age={seconds}", "HttpOnly", "SameSite=Lax"]
    if scheme == "https":
        parts.append("Secure")
    try:
        ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        parts.append(f"Domain={host}")  # the site and its subdomains (an app's API host, often)
    return "; ".join(parts)
