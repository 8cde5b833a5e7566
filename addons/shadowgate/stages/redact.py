"""Act, DLP: find secrets and personal data in prompts; redact, block or log them.

A request body is scanned wherever the model, a tool or the provider reads text in it
(wireformats.bodyscan and .scope: tool schemas, names, keys, URLs, text files, decoded base64),
on every route and on every endpoint of a host that speaks an AI API, in whatever form it comes
(JSON in any Unicode encoding, multipart, JSON lines, text, stacked content codings). Redaction
replaces the values where they are, so the body stays the request the provider expects. The
scan fails closed: an error, a blown time budget, a body too large to buffer or one that cannot
be decoded refuses the request (unless the policy says dlp.on_error: allow), because mitmproxy
would forward a flow whose hook raised. scan_json, the prompt-text scan, serves MCP and Realtime.
"""

from __future__ import annotations

import asyncio
import fnmatch
import functools
import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Awaitable
from collections.abc import Hashable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote
from urllib.parse import unquote_plus

from mitmproxy import ctx
from mitmproxy import http

from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import DlpPolicy
from shadowgate.dlp import TYPES
from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.dlp import redact
from shadowgate.dlp.tokenids import cl100k_vocabulary
from shadowgate.enforce.hosts import identity_host
from shadowgate.stages.act import api_error
from shadowgate.stages.identify import URL_FINDING_KEY
from shadowgate.stages.identify import flow_record
from shadowgate.stages.identify import on_the_clock
from shadowgate.stages.logs import flow_fields
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.stages.uploads import SEAM_TEXT_KEY
from shadowgate.storage.schema import FlowRecord
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats import prompt_strings
from shadowgate.wireformats.base import JsonPath
from shadowgate.wireformats.base import TextDelta
from shadowgate.wireformats.base import WireParser
from shadowgate.wireformats.bodyscan import BodyScan
from shadowgate.wireformats.bodyscan import ScanTimeout
from shadowgate.wireformats.common import replace_strings
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.decoding import content_codings
from shadowgate.wireformats.decoding import decode_body
from shadowgate.wireformats.framing import EventCodec
from shadowgate.wireformats.framing import StreamEvent
from shadowgate.wireformats.framing import codec_for
from shadowgate.wireformats.framing import loads
from shadowgate.wireformats.multipart import is_multipart
from shadowgate.wireformats.multipart import parse_multipart

log = logging.getLogger(__name__)

SCAN_IN_THREAD_CHARS = 64 * 1024


class ScanFailed(Exception):
    pass


@functools.cache
def shared_scanner() -> Scanner:
    """The one Scanner every addon uses, built on first use (it compiles every detector)."""
    return Scanner()


def url_text(path: str) -> str:
    """A request target's path and query as a server decodes them: the path with its %XX escapes
    undone, then each query parameter on a line of its own, '+' read as a space. (The scanner
    itself reads what is escaped twice: it decodes runs of %XX.) Each path segment is a line
    too: the detectors leave a value alone after a '/' (a file path, base64), but a segment is a
    value of its own; a `scheme://` stays whole, so a URL with a password in it still reads as one."""
    path, _, query = path.partition("?")
    lines = [unquote(path, errors="replace")]
    lines += [unquote_plus(pair, errors="replace") for pair in query.split("&") if pair]
    return "://".join(part.replace("/", "\n") for part in "\n".join(lines).split("://"))


# The credential a caller authenticates with, in the place the provider documents for it: Google's
# `?key=` (Gemini REST and Live, Vertex express mode) is what the x-goog-api-key header carries,
# and headers are not content (round-6b G5). Only a value of a Google API key's shape, and only
# on Google's API hosts (another provider's URL is no place for it: red-team F118).
_OWN_CREDENTIAL = re.compile(r"\$?key=AIza[0-9A-Za-z_-]{35}")


def scanned_path(flow: http.HTTPFlow) -> str:
    """The request target DLP scans: as sent, less the caller's own Google API key on a Google API host."""
    path = flow.request.path
    if "key=AIza" not in path:
        return path
    host = identity_host(flow)
    if host != "googleapis.com" and not host.endswith(".googleapis.com"):
        return path
    bare, _, query = path.partition("?")
    kept = [pair for pair in query.split("&") if not _OWN_CREDENTIAL.fullmatch(unquote_plus(pair, errors="replace"))]
    return bare + ("?" + "&".join(kept) if kept else "")


def url_findings(path: str, dlp: DlpPolicy) -> list[str]:
    """The finding types in a URL's decoded path and query that the policy acts on (log included)."""
    scanner = shared_scanner().including(dlp.opt_in)
    scan = _url_scan if len(path) <= _CACHED_URL_CHARS else _url_scan.__wrapped__
    found = scan(scanner, path, dlp.budget_ms)
    return [t for t in found if dlp.action_for(t, TYPES.get(t, "pii")) != "off"]


# Every request to an AI host has its URL scanned, and most repeat theirs (/v1/chat/completions):
# a scan costs tens of µs however short the text, a cached one under a µs. Long URLs (a Jina
# Reader target with its query) are scanned each time, so the cache stays small (<= ~8 MB).
_CACHED_URL_CHARS = 2048


@functools.lru_cache(maxsize=4096)
def _url_scan(scanner: Scanner, path: str, budget_ms: float) -> tuple[str, ...]:
    return tuple(f.type for f in scanner.scan(url_text(path), time.thread_time() + budget_ms / 1000))


def scan_json(
    body: Any,
    scanner: Scanner,
    placeholders: Placeholders,
    dlp: DlpPolicy,
    *,
    every_string: bool = False,
    is_text: bool = False,
) -> tuple[Any, Counter, set[str]]:
    """Redact the free text of a JSON body. Returns (body, counts by type, actions taken).

    Free text is what the wire formats call prompt text (wireformats.prompt_strings), so the body
    stays the request the provider expects. The scan may use dlp.budget_ms of CPU time on the
    thread it runs on, then fails (ScanFailed). CPU, not wall-clock: on a saturated machine the
    clock runs while the scan waits for a core, and a wall-clock budget refused ordinary prompts.

    every_string: every string value is text, whatever its key (MCP tool arguments: a tool's
    `data` or `name` argument is whatever the model wrote there). is_text: the whole value is text
    but for media and structure keys (an MCP tool result).
    """
    counts: Counter = Counter()
    actions: set[str] = set()
    scanner = scanner.including(dlp.opt_in)
    deadline = time.thread_time() + dlp.budget_ms / 1000
    cleaned: dict[JsonPath, str] = {}
    for path, text in _every_string(body, ()) if every_string else prompt_strings(body, is_text):
        if time.thread_time() > deadline:
            raise ScanFailed("the scan ran out of time")
        # The request's budget, not the scanner's default (0.25 s and 1 us a character): one
        # long string (a large MCP tool result) may need more, and the budget is dlp.budget_ms.
        findings = scanner.scan(text, deadline)
        if not findings:
            continue
        to_redact = []
        for f in findings:
            action = dlp.action_for(f.type, TYPES.get(f.type, "pii"))
            if action == "off":
                continue
            counts[f.type] += 1
            actions.add(action)
            if action == "redact":
                to_redact.append(f)
        if to_redact:
            cleaned[path] = redact(text, to_redact, placeholders.for_text(text))
    return replace_strings(body, cleaned), counts, actions


def _every_string(node: Any, path: JsonPath) -> Iterator[tuple[JsonPath, str]]:
    if isinstance(node, str):
        yield path, node
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from _every_string(item, (*path, i))
    elif isinstance(node, dict):
        for key, value in node.items():
            yield from _every_string(value, (*path, key))


def body_scan(dlp: DlpPolicy, include_metadata: bool = False, size: int = 0) -> tuple[BodyScan, Placeholders]:
    """A scan of one request by the policy's actions, its CPU budget starting now (on the thread
    that will run it): dlp.budget_ms, or dlp.budget_us_per_byte per byte of a body of `size`
    if more; and the placeholders its redactions take."""
    placeholders = Placeholders()
    scan = BodyScan(
        scan=shared_scanner().including(dlp.opt_in).scan,
        action=lambda type_: dlp.action_for(type_, TYPES.get(type_, "pii")),
        placeholder=placeholders.placeholder,
        deadline=time.thread_time() + max(dlp.budget_ms / 1000, size * dlp.budget_us_per_byte / 1e6),
        include_metadata=include_metadata,
    )
    return scan, placeholders


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


_TAIL = re.compile(r"\[[A-Z0-9_]*$")


class EventRestorer:
    """Puts the user's values back into an SSE or NDJSON answer, event by event.

    The wire format says where each event's answer text is (text_deltas). Deltas are joined per
    stream (choice, content block): a trailing "[EMA" that could begin one of this request's
    placeholders is held back and put in front of the next delta of the same stream, so a
    placeholder the model emits token by token comes back whole. A placeholder anywhere else in
    an event is restored within that event. Events pass on as soon as they are complete; an
    event too long to hold (the codec's bound) passes as it came.
    """

    def __init__(self, codec: EventCodec, wire: WireParser, placeholders: Placeholders) -> None:
        self._codec = codec
        self._wire = wire
        originals = dict(placeholders.mapping)
        self._originals = originals
        self._prefixes = {p[:i] for p in originals for i in range(1, len(p))}
        self._pattern = re.compile("|".join(re.escape(k) for k in sorted(originals, key=len, reverse=True)))
        self._restore_json = json_escaped(placeholders)
        self._carry: dict[Hashable, tuple[str, StreamEvent, Any, TextDelta]] = {}

    def __call__(self, chunk: bytes) -> bytes:
        if not chunk:  # end of stream: held text, then whatever is left as it came
            return self._flush() + b"".join(e.raw for e in self._codec.finish())
        return b"".join(self._event(e) for e in self._codec.feed(chunk))

    def _event(self, e: StreamEvent) -> bytes:
        if not e.ended or e.data is None:
            return e.raw
        data = loads(e.data)
        if not isinstance(data, dict):  # [DONE] and the like: held text must go out before it
            return self._flush() + e.raw
        changed = False
        for delta in self._wire.text_deltas(data):
            held = self._carry.pop(delta.slot, None)
            text = (held[0] if held else "") + delta.container[delta.key]
            text = self._pattern.sub(lambda m: self._originals[m.group()], text)
            tail = _TAIL.search(text)
            if tail and text[tail.start() :] in self._prefixes:
                self._carry[delta.slot] = (text[tail.start() :], e, data, delta)
                text = text[: tail.start()]
            changed = changed or text != delta.container[delta.key]
            delta.container[delta.key] = text
        payload = json.dumps(data, ensure_ascii=False).encode() if changed else e.data
        restored = self._restore_json(payload.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
        return e.encode(restored) if changed or restored != e.data else e.raw

    def _flush(self) -> bytes:
        """Text held back as a possible placeholder start that no later delta completed."""
        out = []
        for text, e, data, delta in self._carry.values():
            delta.container[delta.key] = text
            out.append(e.encode(json.dumps(data, ensure_ascii=False).encode()))
        self._carry = {}
        return b"".join(out)


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
                self._carry, text = text[tail.start() :], text[: tail.start()]
        return self._restore(text).encode("utf-8")


def _utf8():
    import codecs

    return codecs.getincrementaldecoder("utf-8")("replace")


def stream_restorer(parser: str, content_type: str, rec: FlowRecord) -> Any:
    """The response transform for a streamed answer to a request whose values were redacted:
    event by event for SSE and NDJSON, else on the text as it passes."""
    codec = codec_for(content_type)
    wire = PARSERS.get(parser)
    if codec is not None and wire is not None and rec.placeholders is not None:
        return EventRestorer(codec, wire, rec.placeholders)
    return StreamRestorer(rec.restore)


def json_escaped(placeholders: Placeholders):
    """restore() for JSON text: the original value, escaped as it must be inside a JSON string."""
    escaped = {k: json.dumps(v)[1:-1] for k, v in placeholders.mapping.items()}
    pattern = re.compile("|".join(re.escape(k) for k in sorted(escaped, key=len, reverse=True)))
    return lambda text: pattern.sub(lambda m: escaped[m.group()], text) if "[" in text else text


@dataclass(slots=True)
class Scanned:
    """A request's scan: the redacted body (None: unchanged), changed header values, the scan."""

    body: bytes | None
    headers: list[tuple[str, str]]
    scan: BodyScan
    placeholders: Placeholders


def _scanned(rec: FlowRecord) -> bool:
    """DLP reads every request to an AI route, and every request with a body to an AI host
    (Identify: a service the catalog lists for usage, or a host under `inspect`), whatever its
    path or wire formats: files, batches, count_tokens, the endpoint a provider adds next month,
    Bedrock Agents, a TTS API, a coding assistant, a model server's native API (red-team F31,
    F32). A chat web app's endpoint is WebAppsDlp's (rec.web)."""
    return rec.route is not None or (rec.ai_host and rec.web is None)


def _parser_of(rec: FlowRecord) -> str | None:
    """The error envelope's format: the route's, else the first parser the host speaks (an
    unknown endpoint on an Anthropic host answers in Anthropic's shape); None: OpenAI's."""
    if rec.route is not None:
        return rec.route.parser
    formats = rec.provider.wire_formats if rec.provider is not None else ()
    return next((f for f in formats if f in PARSERS), None)


class Redact:
    name = "shadowgate_redact"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.scan_metadata = False
        self.scan_headers: tuple[str, ...] = ()
        self.vocabulary_loading = False

    @property
    def scanner(self) -> Scanner:
        return shared_scanner()

    def configure(self, updated: set[str]) -> None:
        if "shadowgate_dlp_scan_metadata" in updated:
            self.scan_metadata = bool(ctx.options.shadowgate_dlp_scan_metadata)
        if "shadowgate_dlp_scan_headers" in updated:
            self.scan_headers = tuple(name.lower() for name in ctx.options.shadowgate_dlp_scan_headers)
        if self.settings.policy.dlp is not None and not self.vocabulary_loading:
            # Prompts sent as token ids are read with it (dlp/tokenids.py): off the event loop.
            self.vocabulary_loading = True
            threading.Thread(target=cl100k_vocabulary, name="shadowgate-vocabulary", daemon=True).start()

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
        if dlp is None or flow.response or flow.error:
            return None
        request = flow.request
        if not _scanned(rec):
            # A GET on an AI host recorded for its URL (Identify), such as a chat app's: its URL
            # is scanned; a body on a chat app's endpoint is WebAppsDlp's.
            if flow.metadata.get(URL_FINDING_KEY):
                self._scan_url_only(flow, rec, dlp)
            return None
        try:
            if request.stream:
                raise ScanFailed("the body is too large to scan")
            raw = request.raw_content or b""
            headers = self._headers_to_scan(request)
            # A compressed body's size says little about the text it expands to: decode it off the loop.
            coded = bool(content_codings(request.headers.get("content-encoding"))) and len(raw) > 256
            seams = flow.metadata.get(SEAM_TEXT_KEY, ())
            if len(raw) > SCAN_IN_THREAD_CHARS or coded or seams:
                return self._scan_off_loop(flow, rec, dlp, parsed, raw, headers, seams)
            if not raw and not headers and not url_findings(scanned_path(flow), dlp):
                return None  # nothing in the URL (cached for a repeated one), no body, no header
            self._apply(flow, rec, dlp, self._scan(parsed, raw, request.headers, headers, dlp, scanned_path(flow)))
        except Exception as e:
            self._failed(flow, rec, dlp, e)
        return None

    def _headers_to_scan(self, request: http.Request) -> list[tuple[str, str]]:
        if not self.scan_headers:
            return []
        return [
            (name, value)
            for name, value in request.headers.items(multi=True)
            if any(fnmatch.fnmatchcase(name.lower(), glob) for glob in self.scan_headers)
        ]

    async def _scan_off_loop(
        self, flow: http.HTTPFlow, rec: FlowRecord, dlp: DlpPolicy, parsed: tuple[bytes, Any] | None, raw: bytes,
        headers: list[tuple[str, str]], seams: Sequence[str] = (),
    ) -> None:  # fmt: skip
        try:
            scanned = await asyncio.to_thread(
                self._scan, parsed, raw, flow.request.headers, headers, dlp, scanned_path(flow), seams
            )
            started = time.perf_counter_ns()  # back on the event loop: the rewrite counts as ours
            self._apply(flow, rec, dlp, scanned)
            rec.overhead_ns += time.perf_counter_ns() - started
        except Exception as e:
            self._failed(flow, rec, dlp, e)

    def _failed(self, flow: http.HTTPFlow, rec: FlowRecord, dlp: DlpPolicy, e: Exception) -> None:
        reason = str(e) if isinstance(e, ScanFailed | ScanTimeout) else "the scanner failed"
        if isinstance(e, UndecodableBody):
            reason = f"its body cannot be read as the provider will read it ({e})"
        elif not isinstance(e, ScanFailed | ScanTimeout):
            log.exception("shadowgate: DLP scan failed", extra=flow_fields("dlp_scan_failed", rec))
        rec.dlp_action = "error"
        # Observe mode and a log-only policy refuse nothing a finished scan would have found, so
        # a scan that could not finish refuses nothing either (round-6b G19): recorded, sent.
        if dlp.on_error != ALLOW and dlp.changes_traffic and not self.settings.policy.observe:
            flow.response = api_error(
                _parser_of(rec), 403, f"shadowgate: the request was not sent: {reason}, and DLP fails closed."
            )

    def _scan_url_only(self, flow: http.HTTPFlow, rec: FlowRecord, dlp: DlpPolicy) -> None:
        try:
            scan, _ = self._body_scan(dlp)
            self._url(scan, scanned_path(flow))
            self._apply(flow, rec, dlp, Scanned(None, [], scan, Placeholders()))
        except Exception as e:
            self._failed(flow, rec, dlp, e)

    def _body_scan(self, dlp: DlpPolicy, size: int = 0) -> tuple[BodyScan, Placeholders]:
        return body_scan(dlp, include_metadata=self.scan_metadata, size=size)

    @staticmethod
    def _url(scan: BodyScan, path: str) -> None:
        """The decoded path and query: a finding counts as in any prompt. A value to redact there
        refuses the request: rewriting a URL changes what the server reads in ways a body edit
        does not (the path is the resource, escapes and separators are the server's to read)."""
        text = url_text(path)
        if scan.text(text) != text:
            scan.unredactable = True

    def _scan(
        self, parsed: tuple[bytes, Any] | None, raw: bytes, request_headers: Any, headers: list[tuple[str, str]],
        dlp: DlpPolicy, path: str = "", seams: Sequence[str] = (),
    ) -> Scanned:  # fmt: skip
        """The scan of a request's body, URL (decoded path and query) and the headers the
        operator listed; on any thread.

        `parsed` is Identify's parse, used unless an earlier stage has rewritten the body.
        `seams`: text the request joins that no request carried whole (an Upload's part
        boundaries, stages/uploads.py): a value to redact there is in the provider's
        stored parts already, so the request is refused instead."""
        # A body gets CPU by its size as well: an upload (a fine-tuning or batch file, red-team
        # F81), an agent's history of tool results or a bulk embeddings call (round-6b G18).
        scan, placeholders = self._body_scan(dlp, len(raw))
        if path and url_findings(path, dlp):  # the common URL, found clean before, costs a cache probe
            self._url(scan, path)
        body = b""
        if raw:
            content = decode_body(raw, request_headers.get("content-encoding"))
            json_body = parsed[1] if parsed is not None and parsed[0] is raw else None
            if json_body is None:
                json_body = parse_json_body(content)
            content_type = request_headers.get("content-type", "")
            body = scan.content(content, content_type, json_body) or b""
            if json_body is None and is_multipart(content_type):
                self._part_headers(scan, content, content_type)
        for seam in seams:
            if scan.text(seam) != seam:
                scan.unredactable = True
            for line in seam.splitlines():
                # The batch line across the seam read as JSON too: its token ids (red-team F126).
                value = loads(line) if line.lstrip().startswith("{") else None
                if isinstance(value, dict) and scan.json(value) is not value:
                    scan.unredactable = True
        new_headers = [(name, scan.text(value)) for name, value in headers]
        changed = [(name, value) for (name, value), (_, old) in zip(new_headers, headers) if value != old]
        return Scanned(body or None, changed, scan, placeholders)

    @staticmethod
    def _part_headers(scan: BodyScan, content: bytes, content_type: str) -> None:
        """The part headers of a multipart body: a field or file name (`filename*=` decoded) is
        text the server stores. A value to redact there cannot be replaced in the header: the
        request is refused instead."""
        for part in parse_multipart(content, content_type):
            text = part.header_text()
            if scan.text(text) != text:
                scan.unredactable = True

    def _apply(self, flow: http.HTTPFlow, rec: FlowRecord, dlp: DlpPolicy, scanned: Scanned) -> None:
        scan = scanned.scan
        if not scan.counts:
            return
        request = flow.request
        observe = self.settings.policy.observe
        rec.dlp_findings, rec.dlp_action, blocking = dlp_verdict(scan.counts, scan.actions, dlp, observe)
        if scan.unredactable and not observe and not blocking:
            rec.dlp_action = "block"
            blocking = ["a value that cannot be redacted in place"]
        if blocking:
            found = ", ".join(blocking)
            flow.response = api_error(
                _parser_of(rec),
                403,
                f"shadowgate: the prompt contains {found}; company policy does not allow sending it to {rec.host}.",
            )
            return
        if rec.dlp_action == "redact":
            if scanned.body is not None:
                # Re-encoded with the body's Content-Encoding when mitmproxy knows it; sent
                # plain (the header removed) when it does not ("gzip, gzip", "x-gzip").
                request.content = scanned.body
            for name, value in scanned.headers:
                request.headers[name] = value
            placeholders = scanned.placeholders
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
