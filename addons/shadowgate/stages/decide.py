"""Decide: what the policy says about an AI call Identify understood, budgets included.

The policy's rules come first; an allowed (or coached, or redirected) call is then checked
against the budgets, which count every recorded call's tokens and cost. The policy file is
watched: a changed file is reloaded, a broken one keeps the previous policy in force.

Flows that are not AI calls (a CONNECT, a request that is no AI call on a host the policy names)
have `connection()` and `unidentified()` here; Act still makes those two decisions itself for now.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from pathlib import Path

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http
from mitmproxy.utils.asyncio_utils import create_task

from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import COACH
from shadowgate.config.policy import OBSERVE_PREFIX
from shadowgate.config.policy import RATE_LIMIT
from shadowgate.config.policy import REDIRECT
from shadowgate.config.policy import Budget
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.config.policy import Policy
from shadowgate.config.policy import load_policy
from shadowgate.config.policy_check import check_policy
from shadowgate.config.yamlfile import ConfigError
from shadowgate.enforce.budgets import BudgetTracker
from shadowgate.enforce.budgets import estimate_tokens
from shadowgate.enforce.budgets import subject_of
from shadowgate.enforce.budgets import time_zone
from shadowgate.enforce.hosts import identity_host
from shadowgate.flow import FlowRecord
from shadowgate.flow import flow_record
from shadowgate.flow import proxy_user_of
from shadowgate.flow import timed_hook
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.stages.settings import expand_path
from shadowgate.stages.settings import file_mtime
from shadowgate.storage.rows import AiRequest
from shadowgate.storage.unit_prices import UNIT_PRICES
from shadowgate.wireformats import CHARSET_NOTE
from shadowgate.wireformats import NO_TOKEN_OPERATIONS
from shadowgate.wireformats import RETRIEVE_RESPONSE
from shadowgate.wireformats import UNPARSED_JSON_NOTE
from shadowgate.wireformats.decoding import transfer_codings

log = logging.getLogger(__name__)

BODY_TOO_LARGE_RULE = "shadowgate:body-too-large"
BODY_UNPARSED_RULE = "shadowgate:body-unparsed"  # looks like JSON, does not parse (red-team F1)
TRANSFER_CODING_RULE = "shadowgate:transfer-coding"
BODY_CHARSET_RULE = "shadowgate:body-charset"  # a declared charset read otherwise (red-team F14)

POLICY_POLL_SECONDS = 1.0
DECISION_FAILED = Decision(BLOCK, "shadowgate-error", "the policy could not be evaluated; the request was not sent")


class Decide:
    name = "shadowgate_decide"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.budgets = BudgetTracker()
        self._watcher: asyncio.Task | None = None

    def configure(self, updated: set[str]) -> None:
        if "shadowgate_budget_timezone" in updated:
            try:
                self.budgets.set_zone(time_zone(ctx.options.shadowgate_budget_timezone))
            except ValueError as e:
                raise exceptions.OptionsError(f"shadowgate_budget_timezone: {e}") from None
        if "shadowgate_budget_retry_after" in updated:
            if ctx.options.shadowgate_budget_retry_after < 1:
                raise exceptions.OptionsError("shadowgate_budget_retry_after must be >= 1 (seconds)")
            self.budgets.retry_after_cap = ctx.options.shadowgate_budget_retry_after

    @timed_hook
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # After Identify and HostAgreement: a body too big to read is decided before it is sent.
        rec = flow_record(flow)
        if rec is not None and rec.decided_on_headers and not (flow.response or flow.error):
            self._decide(flow, rec)

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> None:
        # After Identify's request hook (and its parse off the loop, which mitmproxy awaits first).
        rec = flow_record(flow)
        if rec is None or rec.decided_on_headers or flow.response or flow.error:
            return
        self._decide(flow, rec)

    def _decide(self, flow: http.HTTPFlow, rec: FlowRecord) -> None:
        if codings := transfer_codings(flow.request.headers):
            # Sent on still coded (mitmproxy undoes only chunked), so DLP, model rules and
            # metering would judge bytes an upstream that undoes the coding reads otherwise.
            reason = (
                f"the request body has the transfer coding {', '.join(codings)} (only chunked is "
                "accepted on AI calls), so the proxy cannot read it as the provider would"
            )
            action = OBSERVE_PREFIX + BLOCK if self.settings.policy.observe else BLOCK
            rec.decision = Decision(action, TRANSFER_CODING_RULE, reason)
            return
        try:
            rec.decision = self.decide_unread(rec) if rec.body_unread else self.decide(rec)
        except Exception:
            # mitmproxy would log the error and go on with the default decision (allow): a
            # failure to decide must not become an open door, so an enforced policy refuses.
            log.exception("shadowgate: the policy decision failed for %s", rec.host)
            if not self.settings.policy.observe:
                rec.decision = DECISION_FAILED

    def decide(self, rec: FlowRecord) -> Decision:
        """The policy's rules, then the budgets (only for a call the rules let through)."""
        facts = rec.policy_facts()
        policy = self.settings.policy
        decision = policy.decide(facts)
        if decision.action.removeprefix(OBSERVE_PREFIX) not in (ALLOW, COACH, REDIRECT) or not policy.budgets:
            return decision
        if rec.route is not None and rec.route.operation == RETRIEVE_RESPONSE:
            # Fetching a response spends nothing: its usage was spent when it ran (the create was
            # charged) and is counted from this answer; refusing it would only waste that spend.
            return decision
        batch_cap = rec.facts.output_cap if rec.facts else None
        body = rec.parsed_body[1] if rec.parsed_body is not None else None
        estimate = estimate_tokens(rec.request_bytes or 0, body, batch_cap)
        # A batch (or a background response) may spend far more than one call once it runs: it
        # must fit what is left of today's budget whole, where a call is let through while its
        # subject is under (F41, F48).
        spend_usd = self._list_price(rec, estimate, batch_cap) if batch_cap is not None else None
        # Calls that run no model (uploads, token counts, thread bookkeeping) spend nothing and
        # are no requests per minute either (round-6b G15); a batch runs models, later.
        runs_model = batch_cap is not None or rec.route is None or rec.route.operation not in NO_TOKEN_OPERATIONS
        # A batch is an operation that runs nothing now (an upload of batch lines, a batch
        # create) yet carries a bound; a background response with a bound is one call.
        batch = batch_cap is not None and rec.route is not None and rec.route.operation in NO_TOKEN_OPERATIONS
        verdict = self.budgets.check(
            policy.budgets, facts, per_minute=runs_model, spend=estimate if batch_cap is not None else 0,
            spender="batch" if batch else "call", spend_usd=spend_usd,
        )  # fmt: skip
        if verdict.near:
            rec.budget_status = ",".join(verdict.near)
            log.info("shadowgate: %s is near budget: %s", facts.user, rec.budget_status)
        if verdict.exceeded is None and batch and spend_usd is None:
            # Its models have no price the proxy knows (a fine-tune): at the subject's average rate
            # a first batch costs nothing (red-team F92); a USD budget cannot bound it. Not so a
            # background response on an unpriced model (an Azure deployment's name): it is one
            # call, charged its token bound, as the same call in the foreground is (round-6b G9).
            # The refusal is permanent (403): a 429 would have the SDKs retry it.
            for budget in policy.budgets:
                if (
                    budget.usd_per_day is not None
                    and subject_of(budget, facts) is not None
                    and budget.match.check(facts) is None
                ):
                    reason = (
                        f"the batch runs a model without a known price, so budget {budget.id} cannot bound its cost"
                    )
                    return Decision(OBSERVE_PREFIX + BLOCK if policy.observe else BLOCK, budget.id, reason)
        unbounded = rec.facts.unbounded if rec.facts is not None else None
        if rec.facts is not None and rec.facts.uncapped:
            # No bound to fit: a request without max_tokens may spend the model's whole output
            # limit (red-team F64), which a budget cannot let through unread.
            unbounded = f"{rec.facts.uncapped} request(s) of the batch name no output cap"
        if verdict.exceeded is None and unbounded and (limited := _token_budget(policy, facts)) is not None:
            reason = f"{unbounded}, so what the batch may spend has no bound under budget {limited.id}"
            if rec.facts is not None and rec.facts.uncapped:
                reason += "; give each request max_tokens"
            return Decision(OBSERVE_PREFIX + RATE_LIMIT if policy.observe else RATE_LIMIT, limited.id, reason)
        if verdict.exceeded is None:
            if runs_model:  # an upload or a token count spends nothing: its size is no estimate (F82)
                self.budgets.note_request(policy.budgets, facts)
                self.budgets.hold(rec.request_id, policy.budgets, facts, estimate, usd=unit_cost_of(rec))
            return decision
        action = OBSERVE_PREFIX + RATE_LIMIT if policy.observe else RATE_LIMIT
        return Decision(action, verdict.exceeded.id, verdict.reason, None, verdict.retry_after, verdict.reset_at)

    def _list_price(self, rec: FlowRecord, tokens: int, output: int) -> float | None:
        """A batch's upper bound in USD at the list price of the dearest model it names, where
        a USD budget needs it: at the subject's average rate, a first batch of the day cost
        nothing (red-team F74). None when no model it names has a price."""
        if not any(b.usd_per_day is not None for b in self.settings.policy.budgets) or rec.provider is None:
            return None
        models = [
            m for m in (rec.facts.model if rec.facts else None, *(rec.facts.other_models if rec.facts else ())) if m
        ]
        pricing, provider = self.settings.pricing, rec.provider.pricing_provider
        quotes = [q.cost_usd for m in models if (q := pricing.quote(provider, m, max(0, tokens - output), output))]
        return max(quotes) if quotes else None

    def decide_unread(self, rec: FlowRecord) -> Decision:
        """The decision for a call whose body is not read (larger than shadowgate_max_parse_bytes).

        What the body would tell (the model, prompts for DLP, hosted MCP servers, a model to map
        for the gateway) is unknown. A decision that cannot depend on it stands; one that could
        is a refusal (413, Act): an unread body must not be a way around a control."""
        policy = self.settings.policy
        route = rec.route
        batch = route is not None and (route.parser in BATCH_PARSERS or route.operation == "create_batch")
        needs = body_needed_by(policy, rec.policy_facts(), route is not None, batch)
        decision = self.decide(rec) if needs is None else None
        if decision is not None and decision.action.removeprefix(OBSERVE_PREFIX) == REDIRECT:
            rule = decision.rule
            gateway = rule.gateway if rule is not None else None
            if gateway is not None and (gateway.model_map or (rec.route and rec.route.model_from_path)):
                needs = f"policy rule '{decision.rule_id}' maps the model it names for the gateway"
        if needs is None and decision is not None:
            return decision
        verdict = OBSERVE_PREFIX + BLOCK if policy.observe else BLOCK
        if rec.inspect_note is not None and rec.inspect_note.startswith(UNPARSED_JSON_NOTE):
            why = rec.inspect_note.removeprefix(UNPARSED_JSON_NOTE).lstrip(": ")
            reason = f"the request body looks like JSON but the proxy cannot parse it ({why}) and {needs}"
            return Decision(verdict, BODY_UNPARSED_RULE, reason)
        if rec.inspect_note is not None and rec.inspect_note.startswith(CHARSET_NOTE):
            why = rec.inspect_note.removeprefix(CHARSET_NOTE).lstrip(": ")
            reason = f"the request body cannot be checked as the provider may read it ({why}) and {needs}"
            return Decision(verdict, BODY_CHARSET_RULE, reason)
        limit = self.settings.max_parse_bytes
        size = f"{rec.request_bytes} bytes" if rec.request_bytes else "its size"
        reason = (
            f"the request body ({size}) is larger than shadowgate_max_parse_bytes ({limit} bytes) "
            f"and {needs}, so the proxy cannot send it unread"
        )
        return Decision(verdict, BODY_TOO_LARGE_RULE, reason)

    # --- flows that are not AI calls: Act asks, and refuses or adds headers --------------------

    def connection(self, flow: http.HTTPFlow) -> tuple[Facts, Decision] | None:
        """A CONNECT: the policy's decision for a tunnel it will not decrypt; None for one it
        decrypts (refused, if at all, per request) or one no connection rule names."""
        host = flow.request.host
        facts = self.settings.connection_facts(host, flow.client_conn, proxy_user_of(flow))
        policy = self.settings.policy
        if self.settings.decrypts(facts):
            return None
        decision = policy.decide_connection(facts)
        return (facts, decision) if decision is not None else None

    def unidentified(self, flow: http.HTTPFlow) -> tuple[Facts, Decision] | None:
        """A decrypted request that is not an AI call, on a host the policy may name
        (tenant-restriction headers, blocks); None when the policy has no rules to name it."""
        policy = self.settings.policy
        if not policy.rules:
            return None
        host = identity_host(flow)
        facts = self.settings.connection_facts(host, flow.client_conn, proxy_user_of(flow))
        return facts, policy.decide(facts)

    # --- the budgets' counts, kept by Record's writer thread ----------------------------------

    def count_usage(self, row: AiRequest) -> None:
        """A priced row about to be sealed: add its tokens and cost to today's budget totals."""
        budgets = self.settings.policy.budgets
        if not budgets:
            return
        facts = Facts(
            row.host or "", row.provider, row.category, row.wire_format, row.model,
            row.user_name, row.user_group, row.client_ip,
        )  # fmt: skip
        tokens = (row.input_tokens or 0) + (row.output_tokens or 0)
        self.budgets.add(budgets, facts, tokens, row.cost_usd, row.ts, row.request_id)

    def rebuild_budgets(self, segments: Path) -> None:
        """Today's totals from every instance's sealed rows (writer thread, after its own write)."""
        self.budgets.rebuild(self.settings.policy.budgets, segments)

    # --- policy reload ------------------------------------------------------------------------

    def running(self) -> None:
        if self._watcher is None:
            self._watcher = create_task(self._watch_policy(), name="shadowgate policy watcher", keep_ref=True)

    def done(self) -> None:
        if self._watcher is not None:
            self._watcher.cancel()
            self._watcher = None

    async def _watch_policy(self) -> None:
        """Reload the policy when its file changes; a broken file keeps the old policy."""
        settings = self.settings
        while True:
            await asyncio.sleep(POLICY_POLL_SECONDS)
            path = ctx.options.shadowgate_policy
            if not path:
                continue
            path = expand_path(path)
            mtime = await asyncio.to_thread(file_mtime, path)
            if mtime == settings.policy_mtime:
                continue
            settings.policy_mtime = mtime
            try:
                policy = await asyncio.to_thread(load_policy, path)
                if settings.catalog is not None:
                    for warning in check_policy(policy, settings.catalog):
                        log.warning("shadowgate: %s", warning)
            except ConfigError as e:
                log.error("shadowgate: policy not reloaded, the previous one stays in force: %s", e)
                continue
            except Exception as e:  # a policy can never crash the proxy
                log.error("shadowgate: policy not reloaded (%s); the previous one stays in force", e)
                continue
            settings.policy = policy
            log.info(
                "shadowgate: policy reloaded from %s (%d rules, %d budgets)",
                path,
                len(policy.rules),
                len(policy.budgets),
            )


# The formats whose request may hold a batch of calls that spend later (its bound is in the body).
# (Not OpenAI's /v1/files: most large uploads there are documents, not batches, and an unread
# body does not say its purpose: red-team F82.)
BATCH_PARSERS = frozenset({"anthropic-batches"})


def body_needed_by(policy: Policy, facts: Facts, routed: bool, batch: bool = False) -> str | None:
    """Why the policy needs a request's body to decide it (None: the headers suffice).

    The facts lack the model unless the path names it. DLP must read the prompt (unless its
    on_error says a failed scan lets the request through); the MCP policy must read the hosted
    MCP servers a routed call names; a rule or budget that matches on the model could match it,
    unless a rule before it already matches without it.
    """
    if policy.dlp is not None and policy.dlp.on_error != ALLOW and policy.dlp.changes_traffic:
        return "DLP must scan it"  # (a log-only DLP refuses nothing: round-6b G19)
    if policy.mcp is not None and routed:
        return "the MCP policy must check the MCP servers it names"
    if batch:  # a batch's bound is in its body: unread, a budget would let it spend freely (F79)
        for budget in policy.budgets:
            limited = budget.tokens_per_day is not None or budget.usd_per_day is not None
            if limited and budget.match.check(facts) is None:
                return f"budget '{budget.id}' must read what the batch in it may spend"
    if facts.model is None:
        for rule in policy.rules:
            if rule.match.check(facts) is None:
                break  # this rule decides, whatever the model
            if rule.match.models is not None and replace(rule.match, models=None).check(facts) is None:
                return f"policy rule '{rule.id}' matches on the model"
        for budget in policy.budgets:
            if budget.match.models is not None and replace(budget.match, models=None).check(facts) is None:
                return f"budget '{budget.id}' counts by model"
    return None


def unit_cost_of(rec: FlowRecord) -> float | None:
    """The list price of a call billed per unit (characters of speech, images), known from its
    request before it runs; None for a call priced by tokens or not at all (red-team F59)."""
    facts = rec.facts
    if facts is None or facts.billed_unit is None or rec.provider is None:
        return None
    return UNIT_PRICES.cost(rec.provider.pricing_provider, facts.model, facts.billed_unit, facts.billed_units)


def _token_budget(policy: Policy, facts: Facts) -> Budget | None:
    """The first token or USD budget that counts this call, if any."""
    for budget in policy.budgets:
        limited = budget.tokens_per_day is not None or budget.usd_per_day is not None
        if limited and subject_of(budget, facts) is not None and budget.match.check(facts) is None:
            return budget
    return None
