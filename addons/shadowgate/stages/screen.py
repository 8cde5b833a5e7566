"""Act, prompt screening (OWASP LLM01): injection and jailbreak patterns in what a request sends.

Every prompt string the wire format extracts (wireformats.prompt_strings, the text DLP scans) is
screened with shadowgate.screening: the user's turns as prompts, tool results carried back in
the request as documents, the system prompt for hidden text only (screening/prompts.py). The
policy's `injection:` section says what happens: flag (record the detectors in
ai_requests.injection_flags and forward) or block (refuse in the provider's error shape).

It runs after Redact, on the body as it will be sent. Like DLP it fails closed: an error, a
blown CPU budget or a body too large to buffer refuses the request unless `on_error: allow`,
because mitmproxy forwards a flow whose hook raised. A body over SCREEN_IN_THREAD_CHARS is
screened on a worker thread, so a long conversation never stalls other flows.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

from mitmproxy import http

from shadowgate.config.policy_injection import ALLOW
from shadowgate.config.policy_injection import BLOCK
from shadowgate.config.policy_injection import FLAG
from shadowgate.config.policy_injection import OFF
from shadowgate.config.policy_injection import PROMPT
from shadowgate.config.policy_injection import InjectionPolicy
from shadowgate.flow import FlowRecord
from shadowgate.flow import flow_record
from shadowgate.flow import timed_hook
from shadowgate.screening.prompts import TOOL_RESULT
from shadowgate.screening.prompts import BudgetExceeded
from shadowgate.screening.prompts import screen_texts
from shadowgate.screening.prompts import text_kind
from shadowgate.stages.act import api_error
from shadowgate.stages.logs import flow_fields
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats import prompt_strings

log = logging.getLogger(__name__)

SCREEN_IN_THREAD_CHARS = 32 * 1024  # screening runs ~1 MB/s: above ~30 ms of work, use a thread


class ScreenFailed(Exception):
    pass


def request_texts(content: bytes) -> list[tuple[str, str]]:
    """(kind, text) for every prompt string of a request body, in order; kind is PROMPT,
    TOOL_RESULT or SYSTEM. A body that is not JSON is one prompt."""
    body = parse_json_body(content)
    if body is None:
        return [(PROMPT, content.decode("utf-8", "replace"))]
    return [(text_kind(body, path), text) for path, text in prompt_strings(body)]


def verdict(found: dict[str, set[str]], policy: InjectionPolicy, observe: bool) -> tuple[str | None, str | None]:
    """(injection_flags column, injection_action column) for what the screen found.

    A tool result's flags are prefixed `tool_result:`; a system prompt's (hidden text only) are
    counted as the prompt's. A detector whose action is off for its kind is not recorded."""
    names: list[str] = []
    actions: set[str] = set()
    for kind, flags in found.items():
        policy_kind = TOOL_RESULT if kind == TOOL_RESULT else PROMPT
        for flag in sorted(flags):
            action = policy.action_for(flag, policy_kind)
            if action == OFF:
                continue
            actions.add(action)
            names.append(f"tool_result:{flag}" if kind == TOOL_RESULT else flag)
    if not names:
        return None, None
    column = ",".join(sorted(set(names)))
    if BLOCK in actions:
        return column, "would_block" if observe else BLOCK
    return column, FLAG


class Screen:
    name = "shadowgate_screen"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        policy = self.settings.policy.injection
        rec = flow_record(flow)
        if policy is None or rec is None or rec.route is None or flow.response or flow.error:
            return None
        try:
            if flow.request.stream:
                raise ScreenFailed("the body is too large to screen")
            content = flow.request.get_content(strict=False) or b""
            if not content:
                return None
            if len(content) > SCREEN_IN_THREAD_CHARS:
                return self._screen_off_loop(flow, rec, policy, content)
            self._apply(flow, rec, policy, self._screen(content, policy))
        except Exception as e:
            self._failed(flow, rec, policy, e)
        return None

    async def _screen_off_loop(
        self, flow: http.HTTPFlow, rec: FlowRecord, policy: InjectionPolicy, content: bytes
    ) -> None:
        try:
            found = await asyncio.to_thread(self._screen, content, policy)
            started = time.perf_counter_ns()
            self._apply(flow, rec, policy, found)
            rec.overhead_ns += time.perf_counter_ns() - started
        except Exception as e:
            self._failed(flow, rec, policy, e)

    @staticmethod
    def _screen(content: bytes, policy: InjectionPolicy) -> dict[str, set[str]]:
        """What fired, by kind of text; on any thread, within the policy's CPU budget."""
        texts = [
            (kind, text)
            for kind, text in request_texts(content)
            if policy.screens(TOOL_RESULT if kind == TOOL_RESULT else PROMPT)
        ]
        try:
            return screen_texts(texts, policy.budget_ms / 1000)
        except BudgetExceeded as e:
            raise ScreenFailed(str(e)) from None

    def _apply(self, flow: http.HTTPFlow, rec: FlowRecord, policy: InjectionPolicy, found: dict[str, Any]) -> None:
        rec.injection_flags, rec.injection_action = verdict(found, policy, self.settings.policy.observe)
        if rec.injection_action == BLOCK:
            flow.response = api_error(
                rec.route.parser if rec.route else None,
                403,
                f"shadowgate: the request looks like a prompt injection ({rec.injection_flags}); "
                f"company policy does not allow sending it to {rec.host}.",
            )
            log.info("shadowgate: prompt injection refused", extra=flow_fields("injection_block", rec))

    def _failed(self, flow: http.HTTPFlow, rec: FlowRecord, policy: InjectionPolicy, e: Exception) -> None:
        reason = str(e) if isinstance(e, ScreenFailed) else "the screen failed"
        if not isinstance(e, ScreenFailed):
            log.exception("shadowgate: injection screen failed", extra=flow_fields("injection_screen_failed", rec))
        rec.injection_action = "error"
        if policy.on_error != ALLOW:
            flow.response = api_error(
                rec.route.parser if rec.route else None,
                403,
                f"shadowgate: the request was not sent: {reason}, and injection screening fails closed.",
            )
