"""DLP on MCP tool calls: the arguments on their way to the server, the results on their way back,
and what opt-in content storage keeps of them.

The checks that read a whole tool result (injection screening and DLP) are a ResultCheck: the
caller runs it inline for a small result and on a worker thread (asyncio's default executor, as
the request-side DLP) for one over SCAN_IN_THREAD_CHARS, so a large result never holds up the
event loop that every other user's traffic runs on."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import McpPolicy
from shadowgate.config.policy import Policy
from shadowgate.dlp import TYPES
from shadowgate.dlp import Placeholders
from shadowgate.mcp.jsonrpc import dumps
from shadowgate.mcp.jsonrpc import id_key
from shadowgate.mcp.jsonrpc import is_request
from shadowgate.mcp.jsonrpc import ping
from shadowgate.mcp.jsonrpc import rpc_error
from shadowgate.mcp.screening import screen
from shadowgate.mcp.session import McpCall
from shadowgate.mcp.session import McpExchange
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.stages.redact import ScanFailed
from shadowgate.stages.redact import dlp_verdict
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from shadowgate.wireformats.common import every_string
from shadowgate.wireformats.scope import embedded_texts
from shadowgate.wireformats.scope import joined_numbers
from shadowgate.wireformats.scope import nested_json_texts
from shadowgate.wireformats.scope import number_readings

log = logging.getLogger(__name__)

# Bigger results fail the scan (on_error): the DLP CPU budget would run out on them anyway.
MAX_RESULT_SCAN_CHARS = 1024 * 1024


def scan_hidden(value: Any, dlp: DlpPolicy) -> tuple[Counter, set[str], list[str]]:
    """DLP on the text a value carries where a scan of its strings does not read it: payloads
    that declare themselves text (an MCP `blob` with a text mimeType: decoded), JSON documents
    inside strings whose escapes hide letters (`"{\\"k\\": \\"\\u0041KIA...\\"}"`, which the tool
    parses), and numbers (scope.number_reading). Such text cannot be redacted in place. Returns (counts, actions, the types found
    there that the policy redacts: the caller refuses instead)."""
    scanner = shared_scanner().including(dlp.opt_in)
    # The policy's budget, as for the strings' own scan: the scanner's default (0.25 s and 1 us a
    # character) is too tight for a large result of numbers on a loaded machine.
    deadline = time.thread_time() + dlp.budget_ms / 1000
    counts: Counter = Counter()
    actions: set[str] = set()
    texts = [(text, "") for text in embedded_texts(value)]
    texts += [(text, outer) for outer in every_string(value, keys=True) for text in nested_json_texts(outer)]
    readings = number_readings(value)  # a card number typed `integer` (red-team F19)
    numbers, counts_as_number = joined_numbers(readings)
    for text, visible in [*texts, *([(numbers, "")] if readings else [])]:
        for f in scanner.scan(text, deadline):
            if visible and text[f.start : f.end] in visible:
                continue  # readable as it stands: the scan of the string found it
            if text is numbers and not counts_as_number(f):
                continue  # in a number's key names (the scan of the keys reads them), or no value as a number
            action = dlp.action_for(f.type, TYPES.get(f.type, "pii"))
            if action != "off":
                counts[f.type] += 1
                actions.add(action)
    return counts, actions, sorted(t for t in counts if dlp.action_for(t, TYPES.get(t, "pii")) == "redact")


def stored(value: Any, dlp_actions: set[str], max_chars: int) -> str | None:
    """What opt-in storage keeps of arguments or a result: already redacted by the caller.

    Content with findings that DLP only logs (or, in observe mode, would redact) still holds
    the values, and values never reach the database: such content is not stored.
    """
    if value is None:
        return None
    if dlp_actions & {"log", "would_redact", "would_block", "error"}:
        return "[not stored: DLP findings left in the clear]"
    return dumps(value).decode()[:max_chars]


def dlp_rule(call: McpCall) -> str:
    return f"mcp:{call.server.id}:dlp" if call.server is not None else "mcp:dlp"


def store_arguments(exchange: McpExchange, forwarded: list[Any], mcp: McpPolicy) -> None:
    """Opt-in storage: the arguments as they are sent on (after DLP); refused calls keep none."""
    for item in forwarded:
        if not is_request(item) or item.get("method") != "tools/call" or "id" not in item:
            continue
        call = exchange.calls.get(id_key(item["id"]))
        params = item.get("params")
        if call is not None and call.refusal is None and isinstance(params, dict):
            call.arguments = stored(params.get("arguments"), call.dlp_actions, mcp.store_max_chars)


def scan_arguments(calls: list[McpCall], forwarded: list[Any], dlp: DlpPolicy, observe: bool) -> None:
    """DLP on tools/call arguments: redacted in the forwarded message, or the call refused."""
    by_key = {id_key(c.rpc_id): c for c in calls}
    for index, item in enumerate(forwarded):
        call = by_key.get(id_key(item.get("id"))) if is_request(item) and "id" in item else None
        if call is None or item.get("method") != "tools/call":
            continue
        params = item.get("params")
        arguments = params.get("arguments") if isinstance(params, dict) else None
        if arguments is None:
            continue
        unredactable: list[str] = []
        try:
            cleaned, counts, actions = scan_json(arguments, shared_scanner(), Placeholders(), dlp, every_string=True)
            more, more_actions, unredactable = scan_hidden(arguments, dlp)
            counts, actions = counts + more, actions | more_actions
        except Exception as e:
            cleaned, counts, actions = arguments, Counter(), set()
            if not isinstance(e, ScanFailed):
                log.exception("shadowgate: DLP scan of MCP tool arguments failed")
            call.dlp_actions.add("error")
            if dlp.on_error != ALLOW and call.refuse(dlp_rule(call)):
                call.refusal = (
                    f"shadowgate: the tool arguments could not be scanned, and DLP fails closed (rule {call.rule_id})"
                )
                forwarded[index] = ping(call.rpc_id)
                continue
        if counts:
            _, action, blocking = dlp_verdict(counts, actions, dlp, observe)
            if unredactable and not observe:
                action, blocking = BLOCK, sorted({*blocking, *unredactable})
            call.add_dlp(counts, action)
            if blocking and call.refuse(dlp_rule(call)):
                call.refusal = (
                    f"shadowgate: the tool arguments contain {', '.join(blocking)}; company policy does not "
                    f"allow sending them to {call.host} (rule {call.rule_id})"
                )
                forwarded[index] = ping(call.rpc_id)
                continue
            if action == "redact":
                forwarded[index] = {**item, "params": {**params, "arguments": cleaned}}


@dataclass(slots=True)
class ResultCheck:
    """The checks of one tool result that read all of it: injection screening (and the server
    entry's `injection: block`), then DLP. run() may go on any thread: it touches only its call,
    which nothing else reads until done() has run on the event loop."""

    call: McpCall
    msg: dict
    result: dict
    size: int
    policy: Policy
    then: Callable[[], None] | None = None  # on the event loop, once the call's outcome is known

    @property
    def large(self) -> bool:
        """Worth a worker thread, as a request body over SCAN_IN_THREAD_CHARS is."""
        return self.size > SCAN_IN_THREAD_CHARS

    def run(self) -> dict | None:
        """The message's replacement (redacted, or an error refusing it), or None to send it as it came."""
        call, server = self.call, self.call.server
        call.injection_flags = screen(self.result)
        if server is not None and call.injection_flags and server.injection == BLOCK:
            if call.refuse(f"mcp:{server.id}:injection"):
                flags = ", ".join(call.injection_flags)
                return rpc_error(
                    call.rpc_id,
                    f"shadowgate: the tool result looks like a prompt injection ({flags}; rule {call.rule_id})",
                )
        return scan_result(call, self.msg, self.result, self.size, self.policy)

    def done(self) -> None:
        if self.then is not None:
            self.then()


def scan_result(call: McpCall, msg: dict, result: dict, size: int, policy: Policy) -> dict | None:
    """DLP on a tool result (on any thread, see ResultCheck): the message redacted, an error
    refusing it, or None to send it as it came. Stores the result, after DLP, when the policy opts in."""
    dlp, mcp = policy.dlp, policy.mcp
    # None when opt-in content storage is off.
    store_max_chars = mcp.store_max_chars if mcp is not None and mcp.store_content else None
    if dlp is None:
        if store_max_chars is not None:
            call.result = stored(result, call.dlp_actions, store_max_chars)
        return None
    cleaned, new = result, None
    unredactable: list[str] = []  # types to redact found where they cannot be (a declared text blob)
    try:
        if size > MAX_RESULT_SCAN_CHARS:
            raise ScanFailed("the result is too large to scan")
        cleaned, counts, actions = scan_json(result, shared_scanner(), Placeholders(), dlp, is_text=True)
        more, more_actions, unredactable = scan_hidden(result, dlp)
        counts, actions = counts + more, actions | more_actions
    except Exception as e:
        if not isinstance(e, ScanFailed):
            log.exception("shadowgate: DLP scan of an MCP tool result failed")
        call.dlp_actions.add("error")
        if dlp.on_error != ALLOW and call.refuse(dlp_rule(call)):
            return rpc_error(
                call.rpc_id,
                f"shadowgate: the tool result could not be scanned, and DLP fails closed (rule {call.rule_id})",
            )
        counts = Counter()
    if counts:
        _, action, blocking = dlp_verdict(counts, actions, dlp, policy.observe)
        if unredactable and not policy.observe:
            action, blocking = BLOCK, sorted({*blocking, *unredactable})
        call.add_dlp(counts, action)
        if blocking and call.refuse(dlp_rule(call)):
            return rpc_error(
                call.rpc_id, f"shadowgate: the tool result contains {', '.join(blocking)} (rule {call.rule_id})"
            )
        if action == "redact":
            new = {**msg, "result": cleaned}
    if store_max_chars is not None:
        call.result = stored(cleaned, call.dlp_actions, store_max_chars)
    return new
