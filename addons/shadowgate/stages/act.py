"""Act: carry out the decision — block, coach, redirect, rate-limit, inject headers.

API clients get refusals in their provider's own error shape, so the official SDKs raise their
usual permission or rate-limit errors with our message. Browsers get a page that says what was
stopped, why, and where to go instead. Nothing here runs for a decision taken in observe mode.
"""

from __future__ import annotations

import html
import json
import logging
import re
from urllib.parse import urlsplit

from mitmproxy import http

from shadowgate.config.catalog import Provider
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import COACH
from shadowgate.config.policy import RATE_LIMIT
from shadowgate.config.policy import REDIRECT
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.config.policy import Rule
from shadowgate.enforce.budgets import RESET_HEADER
from shadowgate.enforce.coach import CONTINUE_PATH
from shadowgate.enforce.coach import Coach
from shadowgate.stages.decide import BODY_CHARSET_RULE
from shadowgate.stages.decide import BODY_TOO_LARGE_RULE
from shadowgate.stages.decide import BODY_UNPARSED_RULE
from shadowgate.stages.decide import Decide
from shadowgate.stages.identify import flow_record
from shadowgate.stages.identify import on_the_clock
from shadowgate.stages.logs import flow_fields
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.storage.schema import FlowRecord
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import error_body
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats.base import GatewayRoute
from shadowgate.wireformats.common import dumps_json
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.decoding import decode_body

log = logging.getLogger(__name__)

CREDENTIAL_HEADERS = (
    "authorization",
    "x-api-key",
    "api-key",
    "x-goog-api-key",
    "openai-organization",
    "openai-project",
)
# Why a redirect fails when the gateway lacks the base URL a wire format's GatewayRoute names.
GATEWAY_ROUTE_MISSING = {
    "anthropic": "the gateway has no Anthropic Messages route; use its OpenAI-compatible endpoint",
    "openai": "the gateway has no OpenAI-compatible route",
}


def api_error(parser: str | None, status: int, message: str, retry_after: int | None = None) -> http.Response:
    """A refusal in the error shape of the request's wire format, so its SDK raises its usual error."""
    body, headers = error_body(parser, status, message)
    headers = {"content-type": "application/json", "cache-control": "no-store", **headers}
    if retry_after is not None:
        headers["retry-after"] = str(retry_after)
    return http.Response.make(status, json.dumps(body).encode(), headers)


def is_browser_navigation(request: http.Request) -> bool:
    mode = request.headers.get("sec-fetch-mode")
    if mode is not None:
        return mode == "navigate"
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


def refusal_text(decision: Decision, what: str) -> str:
    rule = decision.rule
    parts = [f"shadowgate: {what} by policy rule '{decision.rule_id}'"]
    if decision.reason:
        parts.append(decision.reason.rstrip("."))
    if rule is not None and rule.alternative:
        parts.append(f"Use {rule.alternative} instead")
    return ". ".join(parts) + "."


# --- pages ------------------------------------------------------------------------------------

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width">
<title>{title}</title>
<style>
body{{font:16px/1.5 system-ui,sans-serif;background:#f4f5f7;color:#1d2433;margin:0}}
main{{max-width:36rem;margin:12vh auto;background:#fff;border-radius:12px;padding:2rem 2.5rem;
box-shadow:0 2px 12px #0002}}
h1{{font-size:1.4rem;margin:0 0 1rem}} .rule{{color:#5b6478;font-size:.85rem}}
a.button,button{{display:inline-block;background:#2456d6;color:#fff;border:0;border-radius:8px;
padding:.6rem 1.1rem;font-size:1rem;text-decoration:none;cursor:pointer;margin-top:1rem}}
</style></head>
<body><main>
<h1>{title}</h1>
<p>{body}</p>
{extra}
<p class="rule">Policy rule: {rule_id} · host: {host}</p>
</main></body></html>
"""


def page(status: int, title: str, body: str, extra: str, decision: Decision, host: str) -> http.Response:
    text = _PAGE.format(
        title=html.escape(title),
        body=html.escape(body),
        extra=extra,
        rule_id=html.escape(decision.rule_id),
        host=html.escape(host),
    )
    return http.Response.make(
        status, text.encode(), {"content-type": "text/html; charset=utf-8", "cache-control": "no-store"}
    )


def _alternative_link(rule: Rule | None) -> str:
    if rule is None or not rule.alternative:
        return ""
    alt = html.escape(rule.alternative)
    if rule.alternative.startswith(("http://", "https://")):
        return f'<p>Use the approved tool instead: <a href="{alt}">{alt}</a></p>'
    return f"<p>Use the approved tool instead: {alt}</p>"


class Act:
    name = "shadowgate_act"

    def __init__(self, settings: ShadowgateSettings, decide: Decide) -> None:
        self.settings = settings
        self.decide = decide
        self.coach = Coach(settings)

    # --- CONNECT: hosts that will not be decrypted can only be refused here -----------------

    def http_connect(self, flow: http.HTTPFlow) -> None:
        if flow.response is not None:
            return
        decided = self.decide.connection(flow)  # None: decrypted, refused (if at all) per request
        if decided is not None and decided[1].action == BLOCK:
            facts, decision = decided
            flow.response = http.Response.make(
                403, refusal_text(decision, "blocked").encode(), {"content-type": "text/plain"}
            )
            self.settings.record_connection(facts, "CONNECT refused", decision)

    # --- requests ---------------------------------------------------------------------------

    @on_the_clock
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        """A body too big to read: carry out the decision before it is sent, then stream it."""
        rec = flow_record(flow)
        if rec is None or not rec.decided_on_headers or flow.response or flow.error or not flow.live:
            return
        self._enforce(flow)
        # Streaming only now: mitmproxy refuses a response on a request that streams, and
        # every stage before this one (HostAgreement, Decide) may have answered it.
        flow.request.stream = flow.response is None

    @on_the_clock
    def request(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live:
            return
        rec = flow_record(flow)
        if rec is not None and rec.decided_on_headers:
            return  # acted on at requestheaders; the body has gone to the upstream since
        self._enforce(flow)

    def _enforce(self, flow: http.HTTPFlow) -> None:
        try:
            self._act(flow)
        except Exception:
            # mitmproxy forwards a flow whose hook raised; a failure here must not become an
            # open door, so refuse the request instead.
            rec = flow_record(flow)
            log.exception(
                "shadowgate: enforcement failed; refusing the request", extra=flow_fields("enforcement_failed", rec)
            )
            flow.response = api_error(
                rec.route.parser if rec and rec.route else None,
                503,
                "shadowgate: policy enforcement failed; the request was not sent",
            )

    def _act(self, flow: http.HTTPFlow) -> None:
        request = flow.request
        if request.path.startswith(CONTINUE_PATH):
            self.coach.handle_continue(flow)
            return
        rec = flow_record(flow)
        if rec is not None:
            decision, facts = rec.decision, rec.policy_facts()
        elif (decided := self.decide.unidentified(flow)) is None:
            return  # not an AI call, and no rule could name it: nothing to decide per request
        else:
            # Not an AI call, but on a host the policy names (tenant-restriction headers, blocks).
            facts, decision = decided
        if not decision.enforced:
            return
        action = decision.action
        parser = rec.route.parser if rec and rec.route else None
        if decision.rule_id in (BODY_TOO_LARGE_RULE, BODY_UNPARSED_RULE, BODY_CHARSET_RULE):
            status = {BODY_TOO_LARGE_RULE: 413, BODY_CHARSET_RULE: 415}.get(decision.rule_id, 400)
            flow.response = api_error(parser, status, f"shadowgate: {decision.reason}; the request was not sent.")
            return
        if action == COACH:
            action = self._coach(flow, rec, facts, decision)
        if action == BLOCK:
            if is_browser_navigation(request):
                rule = decision.rule
                flow.response = page(
                    403,
                    "This AI service is blocked",
                    refusal_text(decision, "Blocked"),
                    _alternative_link(rule),
                    decision,
                    facts.host,
                )
            else:
                flow.response = api_error(parser, 403, refusal_text(decision, "blocked"))
            return
        if action == RATE_LIMIT:
            flow.response = api_error(parser, 429, f"shadowgate: {decision.reason}", decision.retry_after or 60)
            if decision.reset_at:
                flow.response.headers[RESET_HEADER] = decision.reset_at
            return
        if action == REDIRECT:
            if not self._redirect(flow, rec, decision, facts):
                return
        if decision.rule is not None and decision.rule.headers:
            for name, value in decision.rule.headers:
                request.headers[name] = value

    def _coach(self, flow: http.HTTPFlow, rec: FlowRecord | None, facts: Facts, decision: Decision) -> str:
        action = self.coach.check(flow, rec, facts, decision, is_browser_navigation(flow.request))
        if action == COACH:
            message = decision.reason or "This AI service is not approved for company data."
            extra = _alternative_link(decision.rule) + self.coach.continue_form(flow, facts, decision)
            flow.response = page(200, "Before you continue", message, extra, decision, facts.host)
        return action

    def _redirect(self, flow: http.HTTPFlow, rec: FlowRecord | None, decision: Decision, facts: Facts) -> bool:
        """Re-send the call to the sanctioned gateway. False when it was refused instead."""
        rule = decision.rule
        assert rule is not None
        request = flow.request
        if is_browser_navigation(request) and rule.browser_url:
            flow.response = http.Response.make(302, b"", {"location": rule.browser_url, "cache-control": "no-store"})
            return False
        gateway = rule.gateway
        route = rec.route if rec else None
        parser = route.parser if route else None

        def refuse(reason: str) -> bool:
            flow.response = api_error(
                parser,
                403,
                f"shadowgate: policy rule '{rule.id}' sends this call to the company gateway, but {reason}.",
            )
            return False

        if gateway is None:
            return refuse("this request is not an API call the gateway can take")
        wire = PARSERS.get(route.parser) if route is not None else None
        target_route = wire.gateway_route(route) if wire is not None and route is not None else None
        keep_query = False
        catalog = self.settings.catalog
        provider = catalog.providers.get(facts.provider or "") if catalog is not None else None
        if target_route is None and (plain := _plain_openai_route(provider, request.path)) is not None:
            # The calls that go with a re-routed one (listing models, fetching a background
            # response, moderations) go to the same gateway at the same path (round-6b G27).
            target_route, keep_query = plain, True
        if target_route is None:
            what = f"{route.wire_format} calls cannot be re-routed" if route else "it is not an API call it can take"
            return refuse(f"{what}; use the gateway's OpenAI-compatible endpoint")
        base = {"anthropic": gateway.anthropic_base_url, "openai": gateway.openai_base_url}.get(target_route.api)
        if base is None:
            return refuse(GATEWAY_ROUTE_MISSING.get(target_route.api, "the gateway has no route for this call"))
        key = gateway.key()
        if not key:
            log.error("shadowgate: rule %s: gateway key variable %s is not set", rule.id, gateway.key_env,
                      extra=flow_fields("gateway_key_missing", rec))  # fmt: skip
            return refuse("the gateway key is not configured on the proxy")
        unreadable = self._rewrite_body_model(flow, rec, gateway.model_map)
        if unreadable is not None:
            return refuse(f"its body cannot be read ({unreadable})")
        target = urlsplit(base + target_route.path)
        for name in CREDENTIAL_HEADERS:
            request.headers.pop(name, None)
        request.headers["authorization"] = f"Bearer {key}"
        if target_route.key_header:
            request.headers[target_route.key_header] = key
        request.scheme = target.scheme
        request.host = target.hostname or ""
        request.port = target.port or (443 if target.scheme == "https" else 80)
        query = urlsplit(request.path).query if keep_query else ""
        # The provider's query (api-version, key=) means nothing at the gateway; a plain path's
        # does (a resumed stream's `starting_after`, a listing's `limit`).
        request.path = target.path + (f"?{query}" if query else "")
        if rec is not None:
            rec.redirect_target = target.netloc
        return True

    @staticmethod
    def _rewrite_body_model(flow: http.HTTPFlow, rec: FlowRecord | None, model_map: dict[str, str]) -> str | None:
        """Map the body's model to the gateway's name; why the body cannot be read, else None.

        The body is decoded as every other stage decodes it (stacked and aliased codings such as
        `gzip, gzip` or `x-gzip`, which mitmproxy hands back raw): a body read raw would carry its
        model past the map. A rewritten body goes out uncompressed."""
        path_model = rec.route.model_from_path if rec and rec.route else None
        if not model_map and not path_model:
            return None
        request = flow.request
        try:
            content = decode_body(request.raw_content or b"", request.headers.get("content-encoding"))
        except UndecodableBody as e:
            return str(e)
        body = parse_json_body(content)
        if not isinstance(body, dict):
            return None
        model = body.get("model") or path_model  # Azure: the deployment in the path is the model
        mapped = model_map.get(model, model) if isinstance(model, str) else model
        if mapped != body.get("model"):
            body["model"] = mapped
            request.headers.pop("content-encoding", None)
            request.content = dumps_json(body, ensure_ascii=True).encode()  # a LongNumber as its digits
        return None


def _plain_openai_route(provider: Provider | None, path: str) -> GatewayRoute | None:
    """The same path under the gateway's OpenAI base (which ends where the provider's `/v1`
    does) for the OpenAI calls that go with re-routed ones: only these, as the request goes out
    with the gateway's own key, which must not reach the gateway's other (admin) endpoints."""
    if provider is None or not any(f.startswith("openai") for f in provider.wire_formats):
        return None
    bare = urlsplit(path).path
    return GatewayRoute("openai", bare[3:]) if _PLAIN_OPENAI_PATHS.fullmatch(bare) else None


# Listing models, moderations, and a Responses response's retrieval, input items and cancel.
_PLAIN_OPENAI_PATHS = re.compile(
    r"/v1/(?:models(?:/[\w.:-]+)?|moderations|responses/resp_\w+(?:/input_items|/cancel)?)"
)
