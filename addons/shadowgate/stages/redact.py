"""Act, DLP: find secrets and personal data in prompts; redact, block or log them.

Only free text is scanned — message contents, system prompts, tool results, Responses input,
Gemini parts — never JSON structure, model names, ids or base64 media, so the body stays the
request the provider expects. The scan fails closed: an error, a blown time budget or a body too
large to buffer refuses the request (unless the policy says dlp.on_error: allow), because
mitmproxy would forward a flow whose hook raised.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import time
from collections import Counter
from collections.abc import Awaitable
from typing import Any

from mitmproxy import http

from shadowgate.stages.act import api_error
from shadowgate.dlp import TYPES
from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.dlp import redact
from shadowgate.stages.identify import flow_record
from shadowgate.stages.identify import on_the_clock
from shadowgate.stages.logs import flow_fields
from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import DlpPolicy
from shadowgate.storage.schema import FlowRecord
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats import parse_json_body

log = logging.getLogger(__name__)

# Keys whose string values are free text people or tools wrote.
TEXT_KEYS = frozenset(
    {"content", "text", "prompt", "input", "system", "instructions", "query", "message", "preamble",
     "arguments", "output", "messages", "contents", "parts", "systemInstruction", "system_instruction"}
)
# Subtrees that are media or opaque tokens, never text.
SKIP_KEYS = frozenset(
    {"image_url", "inlineData", "inline_data", "fileData", "file_data", "source", "data", "b64_json",
     "encrypted_content", "signature", "audio", "input_audio", "image", "images", "file", "blob"}
)
SCAN_IN_THREAD_CHARS = 64 * 1024


class ScanFailed(Exception):
    pass


@functools.cache
def shared_scanner() -> Scanner:
    """The one Scanner every addon uses, built on first use (it compiles every detector)."""
    return Scanner()


def scan_json(
    body: Any, scanner: Scanner, placeholders: Placeholders, dlp: DlpPolicy, *, every_string: bool = False
) -> tuple[Any, Counter, set[str]]:
    """Redact the free text of a JSON body. Returns (body, counts by type, actions taken).

    The scan may use dlp.budget_ms of CPU time on the thread it runs on, then fails (ScanFailed).
    CPU, not wall-clock: on a saturated machine the clock runs while the scan waits for a core,
    and a wall-clock budget refused ordinary prompts there.

    every_string: every string value is text, whatever its key (MCP tool arguments: a tool's
    `data` or `name` argument is whatever the model wrote there).
    """
    counts: Counter = Counter()
    actions: set[str] = set()
    deadline = time.thread_time() + dlp.budget_ms / 1000

    def clean(text: str) -> str:
        if time.thread_time() > deadline:
            raise ScanFailed("the scan ran out of time")
        findings = scanner.scan(text)
        if not findings:
            return text
        to_redact = []
        for f in findings:
            action = dlp.action_for(f.type, TYPES.get(f.type, "pii"))
            if action == "off":
                continue
            counts[f.type] += 1
            actions.add(action)
            if action == "redact":
                to_redact.append(f)
        return redact(text, to_redact, placeholders.for_text(text)) if to_redact else text

    skip, not_text = (frozenset(), frozenset()) if every_string else (SKIP_KEYS, _NOT_TEXT)

    def walk(node: Any, is_text: bool) -> Any:
        if isinstance(node, str):
            return clean(node) if is_text else node
        if isinstance(node, list):
            return [walk(item, is_text) for item in node]
        if isinstance(node, dict):
            return {
                key: value if key in skip else walk(value, key in TEXT_KEYS or (is_text and key not in not_text))
                for key, value in node.items()
            }
        return node

    return walk(body, every_string), counts, actions


def dlp_verdict(counts: Counter, actions: set[str], dlp: DlpPolicy, observe: bool) -> tuple[str, str, list[str]]:
    """What a scan's findings come to: (dlp_findings column, dlp_action column, the types that block).

    The types list is empty unless the request must be refused (a blocking type, not observe mode).
    """
    findings = ",".join(f"{t}:{n}" for t, n in sorted(counts.items()))
    if "block" in actions:
        if observe:
            return findings, "would_block", []
        return findings, "block", sorted(t for t in counts if dlp.action_for(t, TYPES.get(t, "pii")) == "block")
    if "redact" in actions:
        return findings, "would_redact" if observe else "redact", []
    return findings, "log", []


# Inside text-bearing structures (a content block), these keys still are not text.
_NOT_TEXT = frozenset({"type", "role", "id", "name", "tool_call_id", "tool_use_id", "model", "cache_control", "mime_type", "mimeType"})


def _chat_deltas(data: dict):
    for choice in data.get("choices") or ():
        delta = choice.get("delta") if isinstance(choice, dict) else None
        if isinstance(delta, dict) and isinstance(delta.get("content"), str):
            yield delta, "content", choice.get("index", 0)


def _anthropic_deltas(data: dict):
    delta = data.get("delta")
    if data.get("type") == "content_block_delta" and isinstance(delta, dict) and isinstance(delta.get("text"), str):
        yield delta, "text", data.get("index", 0)


def _responses_deltas(data: dict):
    if data.get("type") == "response.output_text.delta" and isinstance(data.get("delta"), str):
        yield data, "delta", (data.get("output_index", 0), data.get("content_index", 0))


# Where each wire format's streamed text lives, so a placeholder a model emits token by token
# (across several events) can be put back together before it reaches the user.
TEXT_DELTAS = {"openai-chat": _chat_deltas, "anthropic-messages": _anthropic_deltas, "openai-responses": _responses_deltas}
_TAIL = re.compile(r"\[[A-Z0-9_]*$")


class SseRestorer:
    """Puts the user's values back into an SSE answer, event by event.

    Text deltas are joined per choice/block: a trailing "[EMA" that could begin one of this
    request's placeholders is held back and prepended to the next delta of the same stream.
    """

    def __init__(self, find_deltas: Any, originals: dict[str, str]) -> None:
        self._find = find_deltas
        self._originals = originals
        self._prefixes = {p[:i] for p in originals for i in range(1, len(p))}
        self._pattern = re.compile("|".join(re.escape(k) for k in sorted(originals, key=len, reverse=True)))
        self._buffer = b""
        self._carry: dict[Any, str] = {}

    def __call__(self, chunk: bytes) -> bytes:
        if not chunk:  # end of stream: whatever is left goes out as it is
            rest, self._buffer = self._buffer, b""
            if self._carry:
                rest = self._carry_event() + rest
            return rest
        self._buffer += chunk
        out = []
        while (end := self._buffer.find(b"\n\n")) != -1:
            event, self._buffer = self._buffer[: end + 2], self._buffer[end + 2 :]
            out.append(self._event(event))
        return b"".join(out)

    def _event(self, raw: bytes) -> bytes:
        lines = raw.split(b"\n")
        data_at = [i for i, line in enumerate(lines) if line.startswith(b"data:")]
        if len(data_at) != 1:
            return raw
        try:
            data = json.loads(lines[data_at[0]][5:])
        except ValueError:
            return raw
        if not isinstance(data, dict):
            return raw
        changed = False
        for container, key, slot in self._find(data):
            text = self._carry.pop(slot, "") + container[key]
            text = self._pattern.sub(lambda m: self._originals[m.group()], text)
            tail = _TAIL.search(text)
            if tail and text[tail.start() :] in self._prefixes:
                self._carry[slot] = text[tail.start() :]
                self._template = (data, container, key)
                text = text[: tail.start()]
            container[key] = text
            changed = True
        if not changed:
            return raw
        lines[data_at[0]] = b"data: " + json.dumps(data, ensure_ascii=False).encode()
        return b"\n".join(lines)

    def _carry_event(self) -> bytes:
        data, container, key = self._template
        container[key] = "".join(self._carry.values())
        self._carry = {}
        return b"data: " + json.dumps(data, ensure_ascii=False).encode() + b"\n\n"


class StreamRestorer:
    """Puts the user's values back into a streamed answer, placeholders split across chunks too.

    The answer is JSON (SSE data lines, NDJSON), so values go in JSON-escaped.
    """

    def __init__(self, restore_text: Any) -> None:
        self._restore = restore_text
        self._carry = ""
        self._decoder = _utf8()

    def __call__(self, chunk: bytes) -> bytes:
        text = self._carry + self._decoder.decode(chunk, final=not chunk)
        self._carry = ""
        if chunk:
            tail = _TAIL.search(text)
            if tail and len(text) - tail.start() < 64:
                self._carry, text = text[tail.start():], text[: tail.start()]
        return self._restore(text).encode("utf-8")


def _utf8():
    import codecs

    return codecs.getincrementaldecoder("utf-8")("replace")


def stream_restorer(parser: str, content_type: str, rec: FlowRecord) -> Any:
    """The response transform for a streamed answer to a request whose values were redacted."""
    if "event-stream" in content_type and parser in TEXT_DELTAS and rec.placeholders is not None:
        return SseRestorer(TEXT_DELTAS[parser], dict(rec.placeholders.mapping))
    return StreamRestorer(rec.restore)


def json_escaped(placeholders: Placeholders):
    """restore() for JSON text: the original value, escaped as it must be inside a JSON string."""
    escaped = {k: json.dumps(v)[1:-1] for k, v in placeholders.mapping.items()}
    pattern = re.compile("|".join(re.escape(k) for k in sorted(escaped, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda m: escaped[m.group()], text) if "[" in text else text


class Redact:
    name = "shadowgate_redact"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    @property
    def scanner(self) -> Scanner:
        return shared_scanner()

    @on_the_clock
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # Returns a coroutine only for a body big enough to scan on a thread: the common prompt
        # is scanned here, without a coroutine for mitmproxy to schedule and await.
        dlp = self.settings.policy.dlp
        rec = flow_record(flow)
        if rec is None:
            return None
        # Identify's parse is only for this stage: a long stream must not keep the prompt alive.
        parsed, rec.parsed_body = rec.parsed_body, None
        if dlp is None or rec.route is None or flow.response or flow.error:
            return None
        request = flow.request
        try:
            if request.stream:
                raise ScanFailed("the body is too large to scan")
            content = request.get_content(strict=False) or b""
            if not content:
                return None
            if len(content) > SCAN_IN_THREAD_CHARS:
                return self._scan_off_loop(flow, rec, dlp, parsed, content)
            self._apply(flow, rec, dlp, *self._scan(parsed, request.raw_content, content, dlp))
        except Exception as e:
            self._failed(flow, rec, dlp, e)
        return None

    async def _scan_off_loop(
        self, flow: http.HTTPFlow, rec: FlowRecord, dlp: DlpPolicy, parsed: tuple[bytes, Any] | None, content: bytes
    ) -> None:
        try:
            raw = flow.request.raw_content
            scanned = await asyncio.to_thread(self._scan, parsed, raw, content, dlp)
            started = time.perf_counter_ns()  # back on the event loop: the rewrite counts as ours
            self._apply(flow, rec, dlp, *scanned)
            rec.overhead_ns += time.perf_counter_ns() - started
        except Exception as e:
            self._failed(flow, rec, dlp, e)

    def _failed(self, flow: http.HTTPFlow, rec: FlowRecord, dlp: DlpPolicy, e: Exception) -> None:
        reason = str(e) if isinstance(e, ScanFailed) else "the scanner failed"
        if not isinstance(e, ScanFailed):
            log.exception("shadowgate: DLP scan failed", extra=flow_fields("dlp_scan_failed", rec))
        rec.dlp_action = "error"
        if dlp.on_error != ALLOW:
            flow.response = api_error(rec.route.parser, 403, f"shadowgate: the request was not sent: {reason}, and DLP fails closed.")

    def _scan(
        self, parsed: tuple[bytes, Any] | None, raw: bytes | None, content: bytes, dlp: DlpPolicy
    ) -> tuple[Any, Any, Counter, set[str], Placeholders]:
        """(parsed body or None, cleaned body or text, counts, actions, placeholders); on any thread.

        `parsed` is Identify's parse, used unless an earlier stage has rewritten the body."""
        body = parsed[1] if parsed is not None and parsed[0] is raw else parse_json_body(content)
        placeholders = Placeholders()
        if body is not None:
            return body, *scan_json(body, self.scanner, placeholders, dlp), placeholders
        # Not JSON: the whole body is the text (a plain-text prompt to an AI route).
        wrapped, counts, actions = scan_json({"text": content.decode("utf-8", "replace")}, self.scanner, placeholders, dlp)
        return None, wrapped["text"], counts, actions, placeholders

    def _apply(
        self, flow: http.HTTPFlow, rec: FlowRecord, dlp: DlpPolicy,
        body: Any, cleaned: Any, counts: Counter, actions: set[str], placeholders: Placeholders,
    ) -> None:  # fmt: skip
        if not counts:
            return
        request = flow.request
        rec.dlp_findings, rec.dlp_action, blocking = dlp_verdict(counts, actions, dlp, self.settings.policy.observe)
        if blocking:
            found = ", ".join(blocking)
            flow.response = api_error(rec.route.parser, 403, f"shadowgate: the prompt contains {found}; company policy does not allow sending it to {rec.host}.")
            return
        if rec.dlp_action == "redact":
            if body is not None:
                request.text = json.dumps(cleaned, ensure_ascii=False)
            else:
                request.text = cleaned
            if dlp.reversible and placeholders.mapping:
                rec.restore = json_escaped(placeholders)
                rec.placeholders = placeholders
                request.headers["accept-encoding"] = "identity"  # restore needs plain text

    @on_the_clock
    def response(self, flow: http.HTTPFlow) -> None:
        rec = flow_record(flow)
        if rec is None or rec.restore is None or flow.response is None or flow.response.stream:
            return
        text = flow.response.get_text(strict=False)
        if text:
            flow.response.text = rec.restore(text)
