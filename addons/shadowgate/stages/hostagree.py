"""Identify, cross-check: the CONNECT target, SNI, Host/:authority and absolute-form URL must agree.

Identify names a request by its SNI (else the CONNECT target), while the connection goes to the
CONNECT target and a server or CDN routes by Host or :authority. A decrypted tunnel to an
allowed AI host could so carry a request whose Host names a blocked one (domain fronting, or
HTTP/2 connection reuse). When the names disagree, the request is judged by the strictest of
them (default), or refused with 421 Misdirected Request (shadowgate_host_mismatch=refuse).
Either way the mismatch is a policy_events row ("host_mismatch"), so the report can count it.

This addon runs right after Identify: it re-points Identify's FlowRecord at the strictest name
before Identify's request hook decides, so a model rule sees the right provider too, and refuses
in requestheaders, before any body is sent, when the strictest name is blocked outright.
"""

from __future__ import annotations

import logging

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http
from mitmproxy.proxy.mode_specs import ReverseMode

from shadowgate.config.catalog import site_of
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import Decision
from shadowgate.config.policy import strictness
from shadowgate.enforce.hosts import MISMATCH_MODES
from shadowgate.enforce.hosts import malformed_names
from shadowgate.enforce.hosts import request_names
from shadowgate.flow import client_ip_of
from shadowgate.stages.act import api_error
from shadowgate.stages.act import refusal_text
from shadowgate.stages.identify import flow_record
from shadowgate.stages.settings import ShadowgateSettings

log = logging.getLogger(__name__)

# The host the policy judged a request by, for later stages (Realtime) that name it themselves.
DECISION_HOST_KEY = "shadowgate_decision_host"
MISMATCH_RULE = "shadowgate:host-mismatch"
MALFORMED_RULE = "shadowgate:host-malformed"


class HostAgreement:
    name = "shadowgate_hostagree"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.refuse = False

    def load(self, loader) -> None:
        loader.add_option(
            name="shadowgate_host_mismatch",
            typespec=str,
            default="strictest",
            help="""
            When a request's CONNECT target, SNI, Host/:authority and absolute URL name different
            hosts: 'strictest' judges it by the strictest of them (the most restrictive policy
            decision; a catalogued host before an unknown one), 'refuse' answers 421.
            """,
        )

    def configure(self, updated: set[str]) -> None:
        if "shadowgate_host_mismatch" in updated:
            mode = ctx.options.shadowgate_host_mismatch
            if mode not in MISMATCH_MODES:
                raise exceptions.OptionsError(
                    f"shadowgate_host_mismatch must be one of {', '.join(MISMATCH_MODES)}, not {mode!r}"
                )
            self.refuse = mode == "refuse"

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.response or flow.error or not flow.live or isinstance(flow.client_conn.proxy_mode, ReverseMode):
            return  # a reverse proxy's clients name the proxy; its backend is configured, not chosen
        settings = self.settings
        rec = flow_record(flow)
        if (malformed := malformed_names(flow.request)) is not None:
            self._refuse_malformed(flow, rec, malformed)
            return
        names = request_names(flow)
        hosts = names.hosts()
        if len(hosts) <= 1:
            if hosts:
                flow.metadata[DECISION_HOST_KEY] = hosts[0]
                # One name besides an IP literal (plain HTTP in CONNECT <IP>:80, http://<IP>/,
                # TLS without SNI): the request is the named host's (Identify names it so).
                self._repoint(rec, hosts[0])
            return
        user = (flow.metadata.get("proxyauth") or (None,))[0]
        judged = [(h, settings.connection_facts(h, flow.client_conn, user)) for h in hosts]
        # Strictest decision first; among equals a catalogued host, then the name servers route by.
        ranked = sorted(
            (
                (strictness(settings.policy.decide(facts)), facts.provider is not None, -i, host, facts)
                for i, (host, facts) in enumerate(judged)
            ),
            reverse=True,
        )
        _, _, _, host, facts = ranked[0]
        decision = settings.policy.decide(facts)
        flow.metadata[DECISION_HOST_KEY] = host
        log.warning("shadowgate: request names disagree (%s); judged as %s", names.describe(), host)
        settings.record_event(
            "host_mismatch",
            user or facts.client_ip or "",
            flow,
            host,
            facts.provider,
            MISMATCH_RULE if self.refuse else decision.rule_id,
            names.describe(),
        )
        parser = rec.route.parser if rec is not None and rec.route is not None else None
        if self.refuse:
            refused = Decision(BLOCK, MISMATCH_RULE, f"the request names different hosts ({names.describe()})")
            text = f"shadowgate: refused: the connection and the request name different hosts ({names.describe()})."
            self._refuse(flow, rec, refused, api_error(parser, 421, text))
            return
        self._repoint(rec, host)
        if decision.enforced and decision.action == BLOCK:
            self._refuse(flow, rec, decision, api_error(parser, 403, refusal_text(decision, "blocked")))

    def _refuse_malformed(self, flow: http.HTTPFlow, rec, why: str) -> None:
        """A request whose host servers may read as another (400, as RFC 9112 §3.2 asks); a
        policy_events row like any mismatch. Refused in observe mode too: it is malformed HTTP."""
        user = (flow.metadata.get("proxyauth") or (None,))[0]
        host = rec.host if rec is not None else flow.request.host
        detail = f"{why}: {', '.join(flow.request.headers.get_all('host')) or flow.request.path}"[:500]
        log.warning("shadowgate: refused a request to %s: %s", host, detail)
        self.settings.record_event(
            "host_mismatch", user or client_ip_of(flow) or "", flow, host,
            rec.provider.id if rec is not None and rec.provider is not None else None, MALFORMED_RULE, detail,
        )  # fmt: skip
        parser = rec.route.parser if rec is not None and rec.route is not None else None
        refused = Decision(BLOCK, MALFORMED_RULE, f"the request names its host ambiguously ({why})")
        text = f"shadowgate: refused: the request names its host ambiguously ({why})."
        self._refuse(flow, rec, refused, api_error(parser, 400, text))

    def _repoint(self, rec, host: str) -> None:
        if rec is not None and rec.host != host:
            catalog = self.settings.catalog
            rec.host = host
            rec.site = site_of(host)
            rec.provider = catalog.match_host(host) if catalog else None

    @staticmethod
    def _refuse(flow: http.HTTPFlow, rec, decision: Decision, response: http.Response) -> None:
        if rec is not None:
            rec.decision = decision
        flow.response = response
