"""Record, answer inspection (OWASP LLM02, LLM06): secrets, personal data and exfiltration links
in what the model sends back, streamed or not.

The policy's `responses:` section (config/policy_responses.py) sets an action for DLP findings and
for data-carrying links (screening/answers.py): log (ai_requests.response_findings), redact in the
answer, or block: a buffered answer is replaced by the provider's error, a stream ends with an
error event in the provider's shape (the SDKs raise it) and nothing after it goes out.

Two addons, because mitmproxy allows one `flow.response.stream` callable and Meter owns it:
`Answer` sits before Meter, so a buffered answer is inspected before Meter turns the flow into
its row; `AnswerStream` sits after Meter and chains into Meter's StreamTap through its
`transform` (the hook reversible DLP uses): the inspection sees the upstream's bytes first, then
reversible DLP puts the user's own values back. Meter still parses the upstream's bytes for usage.
A stream is inspected event by event (the wire format's text deltas, joined per choice or content
block) with a bounded hold-back (`hold_chars`), so a value split across chunks or events is caught.

Fails closed: an inspection error cuts the answer unless `on_error: allow`. The transform never
raises (mitmproxy would drop the connection and skip the row).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Callable
from collections.abc import Hashable
from typing import Any

from mitmproxy import http

from shadowgate.config.policy_responses import BLOCK
from shadowgate.config.policy_responses import LOG
from shadowgate.config.policy_responses import OFF
from shadowgate.config.policy_responses import RANK
from shadowgate.config.policy_responses import REDACT
from shadowgate.config.policy_responses import ResponsesPolicy
from shadowgate.dlp import Finding
from shadowgate.dlp import redact
from shadowgate.flow import FlowRecord
from shadowgate.flow import flow_record
from shadowgate.flow import timed_hook
from shadowgate.screening.answers import EXFIL_TYPES
from shadowgate.screening.answers import REDACTED_URL
from shadowgate.screening.answers import TextGuard
from shadowgate.screening.answers import exfil_links
from shadowgate.screening.answers import outside_links
from shadowgate.screening.answers import trusted_links
from shadowgate.stages.act import api_error
from shadowgate.stages.logs import flow_fields
from shadowgate.stages.meter import StreamTap
from shadowgate.stages.redact import shared_scanner
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import error_body
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats.base import TextDelta
from shadowgate.wireformats.common import dumps_json
from shadowgate.wireformats.common import replace_strings
from shadowgate.wireformats.decoding import StreamDecoder
from shadowgate.wireformats.eventstream import EventStreamCodec
from shadowgate.wireformats.eventstream import exception_message
from shadowgate.wireformats.framing import EventCodec
from shadowgate.wireformats.framing import codec_for
from shadowgate.wireformats.framing import loads

log = logging.getLogger(__name__)

# Keys of a response body that are structure, not answer text: never inspected.
_STRUCTURE_KEYS = frozenset(
    {"id", "object", "model", "type", "role", "finish_reason", "stop_reason", "system_fingerprint", "created",
     "call_id", "tool_call_id", "tool_use_id", "status", "index", "modelVersion", "responseId", "signature"}
)  # fmt: skip


# Answers that hold no text anyone reads: vectors (base64 embeddings read as words were
# "postcodes", and 2,048 of them took minutes: round-6b G29).
NO_TEXT_ANSWERS = frozenset({"embeddings"})
# Values in an answer that are payloads or opaque tokens, not text: a vector, an image, Gemini's
# thought signature and OpenAI's encrypted reasoning (both sent back unchanged next turn).
_PAYLOAD_KEYS = frozenset(
    {"embedding", "b64_json", "partial_image_b64", "thoughtSignature", "thought_signature", "encrypted_content"}
)


# Bedrock's stream exception for an error while streaming (both ConverseStream and
# InvokeModelWithResponseStream model it); boto3 raises it as EventStreamError with this code.
STREAM_EXCEPTION = "modelStreamErrorException"


class AnswerBlocked(Exception):
    pass


class Inspection:
    """One answer's inspection: findings by the policy, counted; rewriting by the actions."""

    def __init__(self, policy: ResponsesPolicy, rec: FlowRecord, observe: bool) -> None:
        self.policy = policy
        self.rec = rec
        self.observe = observe
        self.counts: Counter[str] = Counter()
        self.action = OFF
        # The user's own values (reversible DLP) coming back are not a leak.
        placeholders = getattr(rec.placeholders, "mapping", None) or {}
        self._own = frozenset(placeholders.values())
        self._scanner = shared_scanner() if policy.dlp != OFF or policy.exfil_links != OFF else None
        provider_host = rec.host.lower()
        provider = rec.provider
        self._assets = lambda host: provider is not None and provider.serves_assets_on(host)
        self._trusted = lambda host: host == provider_host or policy.host_allowed(host) or self._assets(host)

    def action_for(self, type_: str) -> str:
        return self.policy.exfil_links if type_ in EXFIL_TYPES else self.policy.dlp

    def inspect(self, text: str) -> list[Finding]:
        found: list[Finding] = []
        scanner = self._scanner
        if scanner is None:
            return found
        links: list[Finding] = []
        if self.policy.exfil_links != OFF:
            links = exfil_links(text, self._trusted, lambda s: bool(scanner.scan(s)))
        if self.policy.dlp != OFF:
            own = [f for f in scanner.scan(text) if text[f.start : f.end] not in self._own]
            # A link to the provider's own assets carries its signature (an image's SAS `sig`):
            # the provider's credential for its own file, not a leak (round-6b G28).
            found += outside_links(own, [*links, *trusted_links(text, self._assets)])
        return found + links

    def record(self, findings: list[Finding]) -> None:
        """Count findings and raise AnswerBlocked if one of them blocks the answer."""
        for f in findings:
            action = self.action_for(f.type)
            self.counts[f.type] += 1
            if RANK[action] > RANK[self.action]:
                self.action = action
        self._to_rec()
        if self.action == BLOCK and not self.observe:
            raise AnswerBlocked(", ".join(sorted(self.counts)))

    def rewrite(self, text: str, findings: list[Finding]) -> str:
        self.record(findings)
        if self.observe:
            return text
        to_redact = [f for f in findings if self.action_for(f.type) == REDACT]
        return redact(text, to_redact, _placeholder) if to_redact else text

    def _to_rec(self) -> None:
        self.rec.response_findings = ",".join(f"{t}:{n}" for t, n in sorted(self.counts.items())) or None
        if self.action != OFF:
            prefixed = self.observe and self.action != LOG
            self.rec.response_action = f"would_{self.action}" if prefixed else self.action


def _placeholder(f: Finding) -> str:
    return REDACTED_URL if f.type in EXFIL_TYPES else f"[{f.type}]"


def refusal(what: str) -> str:
    return f"shadowgate: the answer was withheld: it carried {what}, which company policy does not allow."


class StreamInspector:
    """The stream transform: upstream bytes in, inspected bytes out (see the module docstring)."""

    def __init__(self, inspection: Inspection, parser: str, content_type: str, encoding: str | None) -> None:
        self.inspection = inspection
        self.parser = parser
        self.wire = PARSERS.get(parser)
        self.aws = "eventstream" in content_type
        self.codec: EventCodec | EventStreamCodec | None = None
        if self.wire is not None:
            self.codec = EventStreamCodec() if self.aws else codec_for(content_type)
        self.sse = "event-stream" in content_type
        self.decoder = StreamDecoder(encoding) if encoding not in (None, "", "identity") else None
        self.guards: dict[Hashable, tuple[TextGuard, Any]] = {}
        self.raw_guard: TextGuard | None = None
        self.cut = False
        self._text = _utf8()

    def _guard(self) -> TextGuard:
        policy = self.inspection.policy
        return TextGuard(self.inspection.inspect, self.inspection.rewrite, hold=policy.hold_chars)

    def __call__(self, chunk: bytes) -> bytes:
        if self.cut:
            return b""
        try:
            if self.decoder is not None:
                data = self.decoder.decode(chunk)
                if self.decoder.failed:
                    raise ValueError("the answer could not be decoded")
            else:
                data = chunk
            if self.codec is None:
                return self._raw(data, final=not chunk)
            if not chunk:
                return self._flush() + b"".join(self._event(e) for e in self.codec.finish())
            return b"".join(self._event(e) for e in self.codec.feed(data))
        except AnswerBlocked as e:
            return self._cut(refusal(str(e)))
        except Exception:
            log.exception(
                "shadowgate: answer inspection failed", extra=flow_fields("answer_inspect_failed", self.inspection.rec)
            )
            self.inspection.rec.response_action = "error"
            if self.inspection.policy.on_error == BLOCK:
                return self._cut("shadowgate: the answer was withheld: its inspection failed, and it fails closed.")
            self.cut = True  # hand the rest over untouched would need the held text: end here instead
            return self._flush_quietly()

    def _raw(self, data: bytes, final: bool) -> bytes:
        if self.raw_guard is None:
            self.raw_guard = self._guard()
        text = self._text.decode(data, final=final)
        out, _ = self.raw_guard.feed(text, final=final)
        return out.encode("utf-8")

    def _event(self, e: Any) -> bytes:
        if self.aws and e.unreadable:
            # Garbage, a CRC that fails, a message too long to hold: what cannot be read is not sent.
            raise ValueError("an event-stream message that cannot be read")
        if not e.ended or e.data is None:
            return e.raw
        data = loads(e.data)
        deltas = [*self.wire.text_deltas(data), *argument_deltas(data)] if isinstance(data, dict) and self.wire else []
        if not deltas:  # an event without answer text: release what is held before it
            return self._flush() + e.raw
        changed = False
        for delta in deltas:
            guard = self.guards.get(delta.slot)
            if guard is None:
                guard = (self._guard(), None)
            text = delta.container[delta.key]
            out, _ = guard[0].feed(text)
            self.guards[delta.slot] = (guard[0], (e, data, delta))
            if out != text:
                delta.container[delta.key] = out
                changed = True
        return e.encode(json.dumps(data, ensure_ascii=False).encode()) if changed else e.raw

    def _flush(self) -> bytes:
        out = []
        for guard, last in self.guards.values():
            if guard.held and last is not None:
                text, _ = guard.finish()
                e, data, delta = last
                delta.container[delta.key] = text
                out.append(e.encode(json.dumps(data, ensure_ascii=False).encode()))
        return b"".join(out)

    def _flush_quietly(self) -> bytes:
        try:
            return self._flush()
        except Exception:
            return b""

    def _cut(self, message: str) -> bytes:
        """End the answer with an error in the provider's shape; nothing after it goes out."""
        self.cut = True
        log.info("shadowgate: streamed answer cut", extra=flow_fields("answer_block", self.inspection.rec))
        body, _ = error_body(self.parser, 403, message)
        payload = json.dumps(body).encode()
        if self.codec is None:
            return b"\n" + payload + b"\n"
        if self.aws:  # the AWS SDKs raise an exception message by its type
            return exception_message(STREAM_EXCEPTION, payload)
        if self.sse:
            return b"event: error\ndata: " + payload + b"\n\n"
        return payload + b"\n"


# Where streamed tool-call arguments are: OpenAI chat `tool_calls[].function.arguments`, Anthropic
# `input_json_delta.partial_json`, Responses `response.function_call_arguments.delta`.
_ARGUMENT_KEYS = frozenset({"arguments", "partial_json"})


def argument_deltas(event: dict[str, Any]) -> list[TextDelta]:
    """The pieces of tool-call arguments in one stream event, each with the stream it continues."""
    top = (event.get("index"), event.get("output_index"))
    if str(event.get("type", "")).endswith("arguments.delta") and isinstance(event.get("delta"), str):
        return [TextDelta(event, "delta", ("args", *top))]
    found: list[TextDelta] = []

    def walk(node: Any, path: tuple, depth: int) -> None:
        if depth > 6:
            return
        if isinstance(node, dict):
            for key, value in node.items():
                if key in _ARGUMENT_KEYS and isinstance(value, str):
                    found.append(TextDelta(node, key, ("args", *top, *path, key)))
                elif isinstance(value, dict | list):
                    walk(value, (*path, key), depth + 1)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                position = item.get("index", i) if isinstance(item, dict) else i
                walk(item, (*path, position), depth + 1)

    walk(event, (), 0)
    return found


def _utf8():
    import codecs

    return codecs.getincrementaldecoder("utf-8")("replace")


def compose(first: Callable[[bytes], bytes], then: Callable[[bytes], bytes] | None) -> Callable[[bytes], bytes]:
    """first, then `then` (each a stream transform that gets b"" once at the end)."""
    if then is None:
        return first

    def both(chunk: bytes) -> bytes:
        out = first(chunk)
        if not chunk:
            return (then(out) if out else b"") + then(b"")
        return then(out) if out else b""

    return both


def _inspect_json(node: Any, path: tuple, inspection: Inspection, out: dict) -> None:
    if isinstance(node, str):
        findings = inspection.inspect(node)
        if findings:
            new = inspection.rewrite(node, findings)
            if new != node:
                out[path] = new
    elif isinstance(node, list):
        for i, item in enumerate(node):
            _inspect_json(item, (*path, i), inspection, out)
    elif isinstance(node, dict):
        for key, value in node.items():
            if key not in _STRUCTURE_KEYS and key not in _PAYLOAD_KEYS:
                _inspect_json(value, (*path, key), inspection, out)


class Answer:
    """Before Meter: asks for uncompressed answers, and inspects a buffered answer."""

    name = "shadowgate_answer"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> None:
        policy = self.settings.policy.responses
        rec = flow_record(flow)
        if policy is not None and rec is not None and rec.route is not None and not flow.response:
            # Inspected and rewritten as text: compressed answers would have to be decoded twice.
            flow.request.headers["accept-encoding"] = "identity"

    @timed_hook
    def response(self, flow: http.HTTPFlow) -> None:
        policy = self.settings.policy.responses
        rec = flow_record(flow)
        response = flow.response
        if policy is None or rec is None or rec.route is None or response is None or response.stream:
            return
        if not 200 <= response.status_code < 300 or rec.route.operation in NO_TEXT_ANSWERS:
            return
        inspection = Inspection(policy, rec, self.settings.policy.observe)
        try:
            content = response.get_content(strict=False) or b""
            body = parse_json_body(content)
            if body is None:
                text = content.decode("utf-8", "replace")
                findings = inspection.inspect(text)
                new_text = inspection.rewrite(text, findings) if findings else text
                if new_text != text:
                    response.text = new_text
                return
            changed: dict = {}
            _inspect_json(body, (), inspection, changed)
            if changed:
                response.text = dumps_json(replace_strings(body, changed))  # a LongNumber as its digits
        except AnswerBlocked as e:
            flow.response = api_error(rec.route.parser, 403, refusal(str(e)))
        except Exception:
            log.exception("shadowgate: answer inspection failed", extra=flow_fields("answer_inspect_failed", rec))
            rec.response_action = "error"
            if policy.on_error == BLOCK:
                flow.response = api_error(
                    rec.route.parser,
                    403,
                    "shadowgate: the answer was withheld: its inspection failed, and it fails closed.",
                )


class AnswerStream:
    """After Meter: chains the stream inspection into Meter's StreamTap."""

    name = "shadowgate_answer_stream"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    @timed_hook
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        policy = self.settings.policy.responses
        rec = flow_record(flow)
        response = flow.response
        if policy is None or rec is None or rec.route is None or response is None:
            return
        tap = response.stream
        if not isinstance(tap, StreamTap) or not 200 <= response.status_code < 300:
            return
        content_type = response.headers.get("content-type", "").lower()
        encoding = response.headers.get("content-encoding")
        inspector = StreamInspector(
            Inspection(policy, rec, self.settings.policy.observe), rec.route.parser, content_type, encoding
        )
        if inspector.decoder is not None:
            # The client gets the answer decoded: it is inspected and rewritten as text.
            del response.headers["content-encoding"]
            response.headers.pop("content-length", None)
        tap.transform = compose(inspector, tap.transform)
