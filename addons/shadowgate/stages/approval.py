"""McpApproval: the approver's page for a held MCP call, answered by the proxy itself.

The link an approver gets (mcp/approval.py) is `http://<link_host>/mcp/approval/<token>`; the
approver's browser goes through the proxy, as every browser on the network does, and the proxy
answers, as Health answers http://shadowgate.health/. So there is no second listener to secure and
no address to publish; behind a balancer the click may land on any instance, and the decision
reaches the instance holding the call through the shared approvals folder.

GET shows the call and two buttons and decides nothing (chat tools and mail scanners open links
to preview them); the buttons POST. The approver is the proxy user of the click (else the client
address), compared in canonical_identity form. A decision is refused when the link's signature, expiry or digest do not match the
published call, when the approver is not among `approvers`, or when they are the requester and
`self_approval` is off; the first decision wins and a second click is told what it was.
The page shows the arguments whole (the approvers' message only their first PREVIEW_CHARS); a
call whose arguments are longer than the page shows (PAGE_CHARS) can only be denied.
"""

from __future__ import annotations

import asyncio
import html
import time
from collections.abc import Awaitable
from pathlib import Path

from mitmproxy import ctx
from mitmproxy import http

from shadowgate.config.policy_approval import ApprovalPolicy
from shadowgate.config.policy_approval import canonical_identity
from shadowgate.mcp.approval import APPROVED
from shadowgate.mcp.approval import DENIED
from shadowgate.mcp.approval import LINK_PATH
from shadowgate.mcp.approval import PAGE_CHARS
from shadowgate.mcp.approval import TOKEN_KIND
from shadowgate.mcp.approval import Approvals
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.stages.settings import expand_path

_HEADERS = {
    "content-type": "text/html; charset=utf-8",
    "cache-control": "no-store",
    "referrer-policy": "no-referrer",  # the token must not leave in a Referer
    "x-frame-options": "DENY",  # no clickjacking of the buttons
    "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
}


def approvals_folder(db: str) -> Path:
    """Next to the database and its segments, which every instance behind a balancer shares."""
    path = Path(expand_path(db))
    return path.with_name(path.stem + ".approvals")


class McpApproval:
    name = "shadowgate_mcp_approval"

    def __init__(self, settings: ShadowgateSettings, approvals: Approvals) -> None:
        self.settings = settings
        self.approvals = approvals

    def configure(self, updated: set[str]) -> None:
        # After Settings in the chain: the fingerprint key in force is loaded.
        if {"shadowgate_db", "shadowgate_fingerprint_key"} & updated or self.approvals.store is None:
            self.approvals.configure(approvals_folder(ctx.options.shadowgate_db), self.settings.secret)

    def client_disconnected(self, client) -> None:
        if self.approvals.held:
            self.approvals.client_gone(client)

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        mcp = self.settings.policy.mcp
        policy = mcp.approval if mcp is not None else None
        if policy is None or flow.request.host != policy.link_host or flow.response is not None:
            return None
        return self._answer(flow, policy)

    async def _answer(self, flow: http.HTTPFlow, policy: ApprovalPolicy) -> None:
        request = flow.request
        path, _, query = request.path.partition("?")
        if not path.startswith(LINK_PATH):
            flow.response = _page(404, "Not found", "This is the proxy's approval page; the link is incomplete.")
            return
        token = path[len(LINK_PATH) :]
        fields = self.approvals.tokens.verify(token, TOKEN_KIND)
        store = self.approvals.store
        if fields is None or len(fields) != 2 or store is None:
            flow.response = _page(403, "Link not valid", "This approval link is not valid, or it has expired.")
            return
        call_id, digest = fields
        summary = await asyncio.to_thread(store.summary, call_id)
        if summary is None or summary.get("digest") != digest:
            flow.response = _page(404, "No such call", "The proxy knows no call waiting under this link.")
            return
        if request.method == "GET":
            decided = await asyncio.to_thread(store.decision, call_id)
            flow.response = _call_page(summary, token, decided.decision if decided else None)
            return
        if request.method != "POST":
            flow.response = _page(405, "Not allowed", "Use the page's buttons.")
            return
        if _cross_site(request, policy.link_host):
            # A form on another site, auto-submitted in an approver's browser, would decide with
            # the credentials that browser sends on its own (proxy login, client IP).
            flow.response = _page(403, "Not from this page", "Decide with the buttons on the approval page itself.")
            return
        choice = {"decision=approve": APPROVED, "decision=deny": DENIED}.get(query)
        if choice is None:
            flow.response = _page(400, "No decision", "Use the page's buttons.")
            return
        client_ip = str(flow.client_conn.peername[0]).removeprefix("::ffff:") if flow.client_conn.peername else ""
        proxy_user = (flow.metadata.get("proxyauth") or (None,))[0]
        person = self.settings.directory.person(proxy_user, client_ip)
        # The same form the requester was published in: `ALICE` or fullwidth `ａｌｉｃｅ` is alice.
        approver = canonical_identity(person.user or client_ip or "-")
        if approver is None:
            flow.response = _page(403, "Not an approver", "This proxy user name cannot decide MCP calls.")
            return
        if not policy.may_decide(person.user, person.group):
            flow.response = _page(403, "Not an approver", f"{approver} may not decide MCP calls.")
            return
        if not policy.self_approval and approver == summary.get("requester"):
            flow.response = _page(403, "Not your own call", "The person whose agent made a call cannot approve it.")
            return
        if choice == APPROVED and summary.get("complete") is False:
            flow.response = _page(409, "Cannot be approved", _TOO_LONG)
            return
        decided = await asyncio.to_thread(store.decide, call_id, choice, approver)
        if not decided.first:
            flow.response = _page(
                409, "Already decided", f"This call was already decided: {decided.decision.replace('_', ' ')}."
            )
            return
        self.approvals.decided_here(call_id, decided)
        verb = "approved: it goes on to the server" if choice == APPROVED else "denied: the agent is told"
        flow.response = _page(200, "Decided", f"The call to {summary.get('tool')} is {verb}.")


_TOO_LONG = (
    f"The arguments are longer than the {PAGE_CHARS // 1024} KiB this page shows, so nobody can see all of "
    "what would be approved: the call can only be denied (or left to time out)."
)


def _cross_site(request: http.Request, link_host: str) -> bool:
    """A POST a browser sent from another page: its Sec-Fetch-Site or Origin says so. (Tools that
    send neither, such as curl, are not browsers a page can drive.)"""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site.strip().lower() not in ("same-origin", "none"):
        return True
    origin = request.headers.get("origin")
    return origin is not None and origin.strip().lower() not in (f"http://{link_host}", f"https://{link_host}")


def _page(status: int, title: str, text: str, body: str = "") -> http.Response:
    page = (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title></head>"
        f"<body style='font-family:sans-serif;max-width:40em;margin:2em auto'><h1>{html.escape(title)}</h1>"
        f"<p>{html.escape(text)}</p>{body}</body></html>"
    )
    return http.Response.make(status, page.encode(), _HEADERS)


def _call_page(summary: dict, token: str, decided: str | None) -> http.Response:
    rows = [
        ("Tool", summary.get("tool")),
        ("Server", f"{summary.get('server')} ({summary.get('host')})"),
        ("Requested by", summary.get("requester")),
        ("Why it is held", summary.get("reason")),
        ("Arguments", summary.get("shown", summary.get("arguments"))),
        ("Decide by", time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(summary.get("expires") or 0))),
    ]
    table = "".join(
        f"<tr><th style='text-align:left;vertical-align:top'>{html.escape(k)}</th>"
        f"<td><pre style='white-space:pre-wrap;margin:0'>{html.escape(str(v or ''))}</pre></td></tr>"
        for k, v in rows
    )
    action = html.escape(LINK_PATH + token, quote=True)
    if decided is not None:
        buttons = f"<p><b>Already decided: {html.escape(decided.replace('_', ' '))}.</b></p>"
    elif summary.get("complete") is False:
        buttons = (
            f"<p><b>{html.escape(_TOO_LONG)}</b></p>"
            f"<form method='post' action='{action}?decision=deny'><button type='submit'>Deny</button></form>"
        )
    else:
        buttons = (
            f"<form method='post' action='{action}?decision=approve' style='display:inline'>"
            "<button type='submit'>Approve</button></form> "
            f"<form method='post' action='{action}?decision=deny' style='display:inline'>"
            "<button type='submit'>Deny</button></form>"
        )
    return _page(200, "MCP call waiting for approval", "An agent's tool call is held until you decide.",
                 f"<table>{table}</table>{buttons}")  # fmt: skip
