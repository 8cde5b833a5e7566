"""`shadowgate serve`: the read-only web console (issue 20), a Starlette app.

Pages (all GET, all behind a login, each for the ISO week in ?week= or the days ?since=&until=,
default this week so far):

    /              the headline, daily requests by app, apps with sanctioned status, the alerts
    /users         people by tokens and by unapproved use; each links to /users/<name>
    /users/<name>  one person's apps, models and cost, day by day, decisions, DLP hits, MCP, budgets
    /new           apps, unknown endpoints and models first seen in the period
    /dlp           DLP findings and the policy's decisions day by day, chat apps
    /mcp           MCP servers, tools, users, denials, injection flags, DLP
    /alerts        the alerts raised, by type and severity (?event=, ?severity=)

The only POSTs are /login (with a CSRF token signed by the server, in a cookie and in the form)
and /logout (with the session's own token). Sessions are server-side; the cookie is HttpOnly and
SameSite=Strict. Every response forbids framing, scripts and outside resources (CSP), and caching.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import parse_qsl
from urllib.parse import quote

from jinja2 import Environment
from jinja2 import FileSystemLoader
from markupsafe import Markup
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse
from starlette.responses import RedirectResponse
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp
from starlette.types import Message
from starlette.types import Receive
from starlette.types import Scope
from starlette.types import Send

from shadowgate.config.policy_alerts import EVENTS as ALERT_EVENTS
from shadowgate.console.auth import Authenticator
from shadowgate.console.data import SEVERITIES
from shadowgate.console.data import ReportCache
from shadowgate.console.data import period_from_query
from shadowgate.console.data import recent_weeks
from shadowgate.report import render
from shadowgate.report import render_html
from shadowgate.report.runner import Report

HERE = Path(__file__).resolve().parent
SESSION_COOKIE, CSRF_COOKIE = "sg_session", "sg_login_csrf"
MAX_FORM_BYTES = 4096
HEADERS = {
    # No script at all; styles only from the console itself; forms post only to it; never framed.
    "content-security-policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}


class SecurityHeaders:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] += [(k.encode(), v.encode()) for k, v in HEADERS.items()]
            await send(message)

        await self.app(scope, receive, with_headers)


def make_app(cache: ReportCache, auth: Authenticator, today=lambda: dt.datetime.now(dt.UTC).date()) -> ASGIApp:
    env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True)
    env.filters["fmt"] = lambda value, column: render.fmt(column, value)
    env.globals.update(labels=render.HEADLINE_LABELS, change_text=render.change_text)
    css = (HERE / "templates" / "console.css").read_text(encoding="utf-8")

    def html(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        body = env.get_template(template).render(request=request, path=request.url.path, **context)
        return HTMLResponse(body, status_code=status)

    def page(name: str):
        async def endpoint(request: Request) -> Response:
            session = auth.session(request.cookies.get(SESSION_COOKIE))
            if session is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            weeks = recent_weeks(today())
            try:
                period, period_query = period_from_query(request.query_params, today())
                variables = page_variables(name, request)
            except ValueError as e:
                return html(request, "error.html", 400, message=str(e), session=session, weeks=weeks, pq="")
            try:
                report = await run_in_threadpool(cache.report, period, name, variables)
            except FileNotFoundError as e:  # no database yet: the proxy never ran, or a wrong --db
                return html(request, "error.html", 503, message=str(e), session=session, weeks=weeks, pq="")
            return html(
                request,
                f"{name}.html",
                report=report,
                session=session,
                person=variables.get("console_user"),
                filters=variables,
                alert_events=ALERT_EVENTS,
                severities=SEVERITIES,
                weeks=weeks,
                week=period.label,
                pq=period_query,
                period_params=parse_qsl(period_query),
                since=period.start,
                until=period.end - dt.timedelta(days=1),
                charts=charts(report, name),
            )

        return endpoint

    async def login_form(request: Request) -> Response:
        token = auth.new_login_csrf()
        response = html(
            request,
            "login.html",
            csrf=token,
            next=safe_next(request.query_params.get("next")),
            error=request.query_params.get("error"),
        )
        response.set_cookie(CSRF_COOKIE, token, httponly=True, samesite="strict", secure=_https(request), path="/login")
        return response

    async def login(request: Request) -> Response:
        client = request.client.host if request.client else "?"
        if auth.too_many_failures(client):
            return Response("too many failed logins; wait a few minutes\n", status_code=429)
        form = await small_form(request)
        if form is None:
            return Response("form too large\n", status_code=413)
        if not auth.check_login_csrf(request.cookies.get(CSRF_COOKIE), form.get("csrf")):
            return Response("missing or wrong CSRF token: reload the login page\n", status_code=403)
        token = await run_in_threadpool(auth.login, form.get("user", ""), form.get("password", ""))
        target = safe_next(form.get("next"))
        if token is None:
            auth.failed(client)
            return RedirectResponse(f"/login?error=1&next={quote(target, safe='')}", status_code=303)
        response = RedirectResponse(target, status_code=303)
        response.set_cookie(SESSION_COOKIE, token, httponly=True, samesite="strict", secure=_https(request), path="/")
        response.delete_cookie(CSRF_COOKIE, path="/login")
        return response

    async def logout(request: Request) -> Response:
        token = request.cookies.get(SESSION_COOKIE)
        session = auth.session(token)
        form = await small_form(request)
        if session is None or form is None or not _same(form.get("csrf"), session.csrf):
            return Response("missing or wrong CSRF token\n", status_code=403)
        auth.logout(token or "")
        response = RedirectResponse("/login", status_code=303)
        response.delete_cookie(SESSION_COOKIE, path="/")
        return response

    async def stylesheet(request: Request) -> Response:
        return Response(css, media_type="text/css")

    routes = [
        Route("/", page("overview")),
        Route("/users", page("users")),
        Route("/users/{name:path}", page("user")),
        Route("/new", page("new")),
        Route("/dlp", page("dlp")),
        Route("/mcp", page("mcp")),
        Route("/alerts", page("alerts")),
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/console.css", stylesheet),
    ]
    return SecurityHeaders(Starlette(routes=routes))


def _https(request: Request) -> bool:
    return request.url.scheme == "https"


def _same(a: str | None, b: str) -> bool:
    import hmac

    return a is not None and hmac.compare_digest(a.encode(), b.encode())


def safe_next(target: str | None) -> str:
    """Only a path on this console: never another site (//evil.example, https://..., /\\evil)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


async def small_form(request: Request) -> dict[str, str] | None:
    """An urlencoded form of at most MAX_FORM_BYTES, first value of each field; None when larger."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            return None
    fields = parse_qs(body.decode("utf-8", errors="replace"), keep_blank_values=True)
    return {k: v[0] for k, v in fields.items()}


def page_variables(name: str, request: Request) -> dict[str, str]:
    """The page's own DuckDB variables: the person of /users/<name>, the alerts page's filters."""
    if name == "user":
        return {"console_user": request.path_params["name"]}
    if name == "alerts":
        event = request.query_params.get("event", "")
        severity = request.query_params.get("severity", "")
        if event and event not in ALERT_EVENTS:
            raise ValueError(f"no alert type {event!r}; the types are {', '.join(ALERT_EVENTS)}")
        if severity and severity not in SEVERITIES:
            raise ValueError(f"no severity {severity!r}; the severities are {', '.join(SEVERITIES)}")
        return {"alert_event": event, "alert_severity": severity}
    return {}


def _days(report: Report) -> list[str]:
    days, day = [], report.period.start
    while day < report.period.end:
        days.append(day.isoformat())
        day += dt.timedelta(days=1)
    return days


def _stacked(report: Report, section: tuple[str, ...], columns: dict[str, str], aria: str) -> Markup:
    """A per-day section as stacked daily bars, one series (and colour) per column; "none" when all are 0."""
    rows = {r["day"]: r for r in report.section(*section).records()}
    days = _days(report)
    series = {c: [int(rows[d][c] or 0) if d in rows else 0 for d in days] for c in columns}
    if not any(any(v) for v in series.values()):
        return Markup('<p class="muted">none</p>')
    return Markup(render_html.svg_stacked(days, series, aria=aria, colours=tuple(columns.values())))


RED, ORANGE, BLUE, PURPLE, GREY = "#e15759", "#f28e2b", "#4e79a7", "#b07aa1", "#9c9c9c"
DECISIONS = {"blocked": RED, "coached": ORANGE, "redirected": BLUE, "rate_limited": PURPLE}
DECISIONS_CHART = "Requests not allowed per day, by decision"
DLP_CHART = "Requests with DLP findings per day, by DLP action"
DLP_ACTIONS = {"dlp_blocked": RED, "dlp_redacted": ORANGE, "dlp_logged": GREY}
SEVERITY_COLOURS = {"high": RED, "medium": ORANGE, "low": GREY}


def charts(report: Report, name: str) -> dict[str, Markup]:
    """Inline SVG from the report renderer's own chart code (it escapes every label)."""
    if name == "overview":
        return {title: Markup(svg) for title, svg in render_html.charts(report)}
    if name == "user":
        daily = report.section("user", "daily").records()
        return {
            "Tokens per day": Markup(
                render_html.svg_bars([(r["day"], r["tokens"]) for r in daily], lambda v: f"{v:,}", "Tokens per day")
            ),
            DECISIONS_CHART: _stacked(report, ("decisions", "daily"), DECISIONS, DECISIONS_CHART),
            DLP_CHART: _stacked(report, ("decisions", "daily"), DLP_ACTIONS, DLP_CHART),
        }
    if name == "dlp":
        return {
            DECISIONS_CHART: _stacked(report, ("decisions", "daily"), DECISIONS, DECISIONS_CHART),
            DLP_CHART: _stacked(report, ("decisions", "daily"), DLP_ACTIONS, DLP_CHART),
        }
    if name == "alerts":
        title = "Alerts per day, by severity"
        return {title: _stacked(report, ("alerts", "daily"), SEVERITY_COLOURS, title)}
    return {}
