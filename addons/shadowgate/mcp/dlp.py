"""DLP on MCP: the tool arguments and every other message a client sends (requests,
notifications, its answers to server requests) on their way to the server, the results on their
way back, and what opt-in content storage keeps of them.

The checks that read a whole tool result (injection screening and DLP) are a ResultCheck: the
caller runs it inline for a small result and on a worker thread (asyncio's default executor, as
the request-side DLP) for one over SCAN_IN_THREAD_CHARS, so a large result never holds up the
event loop that every other user's traffic runs on."""

from __future__ import annotations

import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import replace
from typing import Any
from urllib.parse import unquote

from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import DlpPolicy
from shadowgate.config.policy import McpPolicy
from shadowgate.config.policy import Policy
from shadowgate.dlp import TYPES
from shadowgate.dlp import Placeholders
from shadowgate.dlp import ScanTimeout
from shadowgate.mcp.jsonrpc import dumps
from shadowgate.mcp.jsonrpc import id_key
from shadowgate.mcp.jsonrpc import is_request
from shadowgate.mcp.jsonrpc import ping
from shadowgate.mcp.jsonrpc import rpc_error
from shadowgate.mcp.screening import screen
from shadowgate.mcp.session import RESPONSE
from shadowgate.mcp.session import McpCall
from shadowgate.mcp.session import McpExchange
from shadowgate.stages.redact import SCAN_IN_THREAD_CHARS
from shadowgate.stages.redact import ScanFailed
from shadowgate.stages.redact import body_scan
from shadowgate.stages.redact import dlp_verdict
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from shadowgate.wireformats.common import every_string
from shadowgate.wireformats.scope import OPAQUE_KEYS
from shadowgate.wireformats.scope import embedded_texts
from shadowgate.wireformats.scope import joined_numbers
from shadowgate.wireformats.scope import nested_json_texts
from shadowgate.wireformats.scope import number_readings
from shadowgate.wireformats.scope import request_pieces

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
            split, split_actions = split_values(arguments, dlp)
            counts, actions = counts + more + split, actions | more_actions | split_actions
            unredactable += [t for t in split if dlp.action_for(t, TYPES.get(t, "pii")) == "redact"]
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


def scan_client_messages(
    calls: list[McpCall], one_way: list[tuple[McpCall, Any]], forwarded: list[Any], dlp: DlpPolicy, observe: bool
) -> None:
    """DLP on all a client sends on: tools/call arguments (scan_arguments), then the rest of every
    message (scan_messages). calls: the requests not refused already."""
    scan_arguments(calls, forwarded, dlp, observe)
    scan_messages(calls, one_way, forwarded, dlp, observe)


def scanned_size(exchange: McpExchange) -> int:
    """What the scan of a POST's or WebSocket message's JSON-RPC reads, as the sizes of its
    requests' arguments (or params) and of what its notifications and answers carry: with the
    size of the body (smaller when compressed), whether the scan goes to a worker thread."""
    calls = sum(c.arguments_bytes or 0 for c in exchange.calls.values())
    return calls + sum(record.arguments_bytes or 0 for record, _ in exchange.one_way)


# The members of a message that say what it is: a value found there cannot be redacted (a new
# method or id is another message, a new tool name a tool the allow-list never judged).
_NAMING_MEMBERS = ("jsonrpc", "method", "id")


def scan_messages(
    calls: list[McpCall], one_way: list[tuple[McpCall, Any]], forwarded: list[Any], dlp: DlpPolicy, observe: bool
) -> None:
    """DLP on all the rest a client sends an MCP server, after scan_arguments (red-team F42): each
    request and notification whole (params of prompts/get, completion/complete, resources/read,
    a tools/call's _meta and other members, and the keys of its arguments, whose values are
    scan_arguments'), and the client's answers to server requests (elicitation content, sampling
    text, roots, an error's message). Every string, key and number is read as the API path reads
    a request body (wireformats.bodyscan): a value split across strings, JSON inside a string and
    a number a value hides in are found too.

    A call to refuse goes on as a ping, as in scan_arguments; a notification or answer to refuse
    is not forwarded at all (nothing answers it; its record's refusal says why)."""
    by_key = {id_key(c.rpc_id): c for c in calls}
    by_message = {id(message): record for record, message in one_way}
    dropped: set[int] = set()
    for index, item in enumerate(forwarded):
        request = is_request(item) and "id" in item
        call = by_key.get(id_key(item["id"])) if request else by_message.get(id(item))
        if call is None or call.refusal is not None:
            continue  # not ours, or refused already (and forwarded as a ping)
        new, refusal = scan_message(call, item, dlp, observe)
        if refusal is not None:
            call.refusal = refusal
            if request:
                forwarded[index] = ping(call.rpc_id)
            else:
                dropped.add(index)
        elif new is not None:
            forwarded[index] = new
    if dropped:
        forwarded[:] = [item for index, item in enumerate(forwarded) if index not in dropped]


def scan_message(call: McpCall, item: Any, dlp: DlpPolicy, observe: bool) -> tuple[Any, str | None]:
    """One client message (see scan_messages): (its redacted copy or None to send it as it came,
    why it is refused or None). On any thread: it touches only its call."""
    what = "answer" if call.method == RESPONSE else f"{call.method} message"
    params = item.get("params") if isinstance(item, dict) else None
    arguments = None
    scanned = item
    if call.method == "tools/call" and isinstance(params, dict) and "arguments" in params:
        arguments = params["arguments"]  # its values are scan_arguments'; its keys are read here
        scanned = {**item, "params": {**params, "arguments": _names_only(arguments)}}
    scan, _ = body_scan(dlp, include_metadata=True)  # a server reads every member: none is bookkeeping
    try:
        cleaned = scan.json(scanned)
        more, more_actions, in_uris = unread_findings(scanned, dlp, scan.deadline)
    except Exception as e:
        if not isinstance(e, ScanTimeout):
            log.exception("shadowgate: DLP scan of an MCP %s failed", what)
        call.dlp_actions.add("error")
        if dlp.on_error != ALLOW and call.refuse(dlp_rule(call)):
            return None, f"shadowgate: the MCP {what} could not be scanned, and DLP fails closed (rule {call.rule_id})"
        return None, None
    counts, actions = scan.counts + more, scan.actions | more_actions
    if not counts:
        return None, None
    _, action, blocking = dlp_verdict(counts, actions, dlp, observe)
    if cleaned is not scanned and _renames(scanned, cleaned, arguments is not None):
        scan.unredactable = True
    if not observe and (in_uris or (scan.unredactable and action == "redact")):
        action, blocking = BLOCK, sorted({*blocking, *in_uris} or {"a value that cannot be redacted where it is"})
    call.add_dlp(counts, action)
    if blocking and call.refuse(dlp_rule(call)):
        return None, (
            f"shadowgate: the MCP {what} contains {', '.join(blocking)}; company policy does not allow sending "
            f"it to {call.host} (rule {call.rule_id})"
        )
    if action != "redact" or cleaned is scanned:
        return None, None
    if arguments is not None:
        cleaned = {**cleaned, "params": {**cleaned["params"], "arguments": arguments}}
    return cleaned, None


# A string that starts with a URI scheme and a path (notes://, file:///, https://; not prose "Note: a/b").
_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:/")
_URI_SEPARATORS = re.compile(r"[/?#&]")


def unread_findings(value: Any, dlp: DlpPolicy, deadline: float) -> tuple[Counter, set[str], list[str]]:
    """DLP on what the API path's body scan does not read in a client's MCP message, though the
    server does: the URIs in it (resources/read `uri`, roots' `uri`) one segment of the path or
    query at a time, %XX undone (the detectors leave a value after a '/' alone in plain text, a
    file path or base64, so `notes://AKIA...` reads clean as it stands; each segment is a value of
    its own, as the API path reads a request's URL: stages/redact.py url_text), and the values
    under the keys a provider mints and reads back as they are (scope.OPAQUE_KEYS: `signature`),
    which an MCP server takes as any other. A value found only so is not counted twice, and cannot
    be redacted in place (a new URI names another resource): returns (counts, actions, the types
    found that the policy redacts, which the caller refuses instead)."""
    scanner = shared_scanner().including(dlp.opt_in)
    counts: Counter = Counter()
    actions: set[str] = set()

    def count(type_: str) -> None:
        action = dlp.action_for(type_, TYPES.get(type_, "pii"))
        if action != "off":
            counts[type_] += 1
            actions.add(action)

    for text in [text for opaque in _opaque_values(value) for text in every_string(opaque, keys=True)]:
        for f in scanner.scan(text, deadline):
            count(f.type)
    for text in every_string(value, keys=True):
        if "/" not in text or not _URI.match(text):
            continue
        as_is = {text[f.start : f.end] for f in scanner.scan(text, deadline)}
        segments = _URI_SEPARATORS.sub("\n", unquote(text, errors="replace"))
        for f in scanner.scan(segments, deadline):
            if segments[f.start : f.end] not in as_is:  # else found as the string stands
                count(f.type)
    return counts, actions, sorted(t for t in counts if dlp.action_for(t, TYPES.get(t, "pii")) == "redact")


def split_values(arguments: Any, dlp: DlpPolicy) -> tuple[Counter, set[str]]:
    """Values cut across the strings of a tool's arguments (`{"parts": ["AKIA2OGYBA",
    "H6STMMNXNN"]}`), which a tool may well join (red-team F52): the API path's join over every
    string, each read as text. Only what spans strings counts here: scan_json read each one."""
    scan, _ = body_scan(dlp, include_metadata=True)
    pieces = [replace(p, prompt=True) for p in request_pieces(arguments, True) if p.digits_at is None]
    scan.pieces(pieces, own=lambda piece: False)
    return scan.counts, scan.actions


def _uris(value: Any) -> list[str]:
    return [text for text in every_string(value) if "/" in text and _URI.match(text)]


def _opaque_values(value: Any) -> list[Any]:
    """The values under OPAQUE_KEYS anywhere in a JSON value (the body scan skips them)."""
    found: list[Any] = []
    stack = [value]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            for key, item in node.items():
                (found if key in OPAQUE_KEYS else stack).append(item)
        elif isinstance(node, list):
            stack.extend(node)
    return found


def _names_only(value: Any) -> Any:
    """A JSON value with its object keys and structure but no values: a tools/call's arguments
    for the scan of their keys (scan_arguments reads the values)."""
    if isinstance(value, dict):
        return {key: _names_only(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_names_only(item) for item in value]
    return None


def _renames(scanned: Any, cleaned: Any, tool_call: bool) -> bool:
    """Whether a redaction touches what says what the message is (_NAMING_MEMBERS, the members'
    own names, a tools/call's tool name) or a tools/call's argument keys (which scan_arguments'
    copy of the arguments would not carry)."""
    if not isinstance(scanned, dict):
        return False
    if not isinstance(cleaned, dict) or cleaned.keys() != scanned.keys():
        return True
    if any(cleaned[key] is not scanned[key] for key in _NAMING_MEMBERS if key in scanned):
        return True
    if _uris(scanned) != _uris(cleaned):
        return True  # a new URI names another resource (or root): not the same request
    if not tool_call:
        return False
    before, after = scanned["params"], cleaned["params"]
    return (
        not isinstance(after, dict)
        or after.keys() != before.keys()
        or after.get("name") is not before.get("name")
        or after["arguments"] is not before["arguments"]
    )


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
