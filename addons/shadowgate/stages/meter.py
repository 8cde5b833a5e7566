"""Meter: usage, latency and bytes of each AI response, handed to Record for its row.

Streamed responses pass through chunk by chunk: the tap hands every chunk straight back to
mitmproxy and only feeds a copy, decompressed, to the wire format's incremental parser. A tap
must never raise (mitmproxy would drop the connection and skip every later hook), so any
parser failure just turns parsing off for that stream and the usage is estimated instead.
"""

from __future__ import annotations

import binascii
import json
import logging
import math
import time
from collections.abc import Callable
from collections.abc import Mapping
from typing import Any

from mitmproxy import http

from shadowgate.flow import HOLD_ANSWER_KEY
from shadowgate.flow import OUTCOME_KEY
from shadowgate.flow import FlowRecord
from shadowgate.flow import Outcome
from shadowgate.flow import RecentIds
from shadowgate.flow import flow_record
from shadowgate.flow import timed_hook
from shadowgate.stages.record import Record
from shadowgate.stages.redact import stream_restorer
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats import NO_TOKEN_OPERATIONS
from shadowgate.wireformats import PARSERS
from shadowgate.wireformats import RETRIEVE_RESPONSE
from shadowgate.wireformats import parse_json_body
from shadowgate.wireformats.base import ResponseFacts
from shadowgate.wireformats.base import StreamParser
from shadowgate.wireformats.base import Usage
from shadowgate.wireformats.common import header_map
from shadowgate.wireformats.common import usage_or_empty
from shadowgate.wireformats.decoding import StreamDecoder
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.decoding import grpc_messages
from shadowgate.wireformats.decoding import grpc_usage
from shadowgate.wireformats.decoding import is_grpc
from shadowgate.wireformats.framing import STREAM_CONTENT_TYPES

log = logging.getLogger(__name__)

CHARS_PER_TOKEN = 4  # the usual rule of thumb; only used when a provider reports no usage
# Response ids whose usage was counted, remembered so a response fetched again (GET
# /v1/responses/{id}, a resumed stream) is not counted twice. ~100 bytes each: a few MB.
COUNTED_RESPONSES_MAX = 50_000
GRPC_FRAME_MAX = 4 * 1024 * 1024
# The end of an answer too large to parse that is kept to read its usage from (red-team F106):
# OpenAI, Anthropic and Gemini put the usage last, after the text that makes an answer large.
USAGE_TAIL_BYTES = 64 * 1024
# A usage message longer than this in an oversized gRPC frame is none (they are tens of bytes).
GRPC_USAGE_MAX = 64 * 1024


class StreamTap:
    """The response.stream callable: pass bytes through, parse a decoded copy on the side."""

    __slots__ = ("parser", "decoder", "response_bytes", "first_chunk_at", "failed", "transform")

    def __init__(
        self,
        parser: StreamParser | None,
        content_encoding: str | None,
        transform: Callable[[bytes], bytes] | None = None,
    ) -> None:
        self.parser = parser
        # What the client gets instead of the upstream's bytes (reversible DLP puts values back).
        self.transform = transform
        self.decoder = StreamDecoder(content_encoding) if parser is not None else None
        self.response_bytes = 0
        self.first_chunk_at: float | None = None
        self.failed = False

    def __call__(self, chunk: bytes) -> bytes | list[bytes]:
        if not chunk:
            return self._out(chunk)
        self.response_bytes += len(chunk)
        if self.first_chunk_at is None:
            self.first_chunk_at = time.time()
        if self.parser is not None and self.decoder is not None:
            try:
                data = self.decoder.decode(chunk)
                if data:
                    self.parser.feed(data)
            except Exception:
                log.debug("shadowgate: stream parser failed; usage will be estimated", exc_info=True)
                self.parser = None
                self.failed = True
        return self._out(chunk)

    def _out(self, chunk: bytes) -> bytes | list[bytes]:
        if self.transform is None:
            return chunk
        try:
            out = self.transform(chunk)
            # An empty chunk would end a chunked HTTP/1 body early; [] holds the data back.
            return out if out or not chunk else []
        except Exception:
            log.debug("shadowgate: response transform failed; passing bytes through", exc_info=True)
            self.transform = None
            return chunk

    def finish(self) -> ResponseFacts | None:
        if self.parser is None:
            return None
        try:
            return self.parser.finish()
        except Exception:
            return None


class Meter:
    name = "shadowgate_meter"

    def __init__(self, settings: ShadowgateSettings, record: Record) -> None:
        self.settings = settings
        self.record = record
        self.counted_responses = RecentIds(COUNTED_RESPONSES_MAX)

    @timed_hook
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        rec = flow_record(flow)
        if rec is None or flow.response or flow.error or not rec.host.endswith(".googleapis.com"):
            return
        grpc = rec.route is None and rec.ai_host and is_grpc(flow.request.headers.get("content-type", ""))
        runs = rec.route is not None and rec.route.operation not in NO_TOKEN_OPERATIONS
        if not (grpc or runs):
            return
        # A partial response (the system parameter `fields`, `$fields`, or X-Goog-FieldMask)
        # leaves the usage metadata out of the answer (red-team F103): the call is sent on for
        # its whole answer, a superset of the one asked for.
        request = flow.request
        if any(key in _FIELD_MASKS for key in request.query):
            request.query = [(k, v) for k, v in request.query.items(multi=True) if k not in _FIELD_MASKS]
        request.headers.pop("x-goog-fieldmask", None)

    @timed_hook
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if response is None or response.stream:
            return
        rec = flow_record(flow)
        if rec is None or rec.route is None:
            if rec is not None and rec.ai_host and is_grpc(response.headers.get("content-type", "")):
                # A Gemini or Vertex gRPC answer: passed through chunk by chunk, its usage read on the side.
                # gRPC-Web's text form sends its frames in base64 (red-team F103).
                text = "grpc-web-text" in response.headers.get("content-type", "").lower()
                response.stream = StreamTap(
                    GrpcUsageStream(flow.request.path, text), response.headers.get("content-encoding")
                )
                return
            # Nothing to meter: never buffer it (model downloads from catalogued hosts run to GBs),
            # unless a stage reads it whole (an MCP JSON answer up to shadowgate_max_parse_bytes).
            if not flow.metadata.get(HOLD_ANSWER_KEY):
                response.stream = True
            return
        headers = header_map(response.headers)
        content_type = headers.get("content-type", "").lower()
        streaming = (
            content_type.startswith(STREAM_CONTENT_TYPES)
            or rec.route.streaming_from_path
            or (rec.facts is not None and rec.facts.streaming)
        )
        length = headers.get("content-length", "")
        too_big = length.isdigit() and int(length) > self.settings.max_parse_bytes
        if streaming or too_big:
            parser: StreamParser | None = None
            if _is_protobuf(content_type):
                parser = ProtoUsage(rec.host)
            elif too_big and not content_type.startswith(STREAM_CONTENT_TYPES):
                # Too large to buffer and parse: its usage is read from its end (red-team F106).
                cap = rec.facts.answer_cap if rec.facts is not None else None
                parser = TailUsage(rec.route.parser, response.headers, cap)
            else:
                try:
                    parser = PARSERS[rec.route.parser].stream_parser(response.headers)
                except Exception:
                    parser = None
            transform = None
            encoding = headers.get("content-encoding")
            if rec.restore is not None and encoding in (None, "", "identity") and "eventstream" not in content_type:
                transform = stream_restorer(rec.route.parser, content_type, rec)
            response.stream = StreamTap(parser, encoding, transform)

    def response(self, flow: http.HTTPFlow) -> None:
        rec = flow_record(flow)
        if rec is None or flow.response is None:
            return
        started = time.perf_counter_ns()
        response = flow.response
        out = Outcome(status_code=response.status_code)
        end = response.timestamp_end or time.time()
        out.latency_ms = round((end - rec.started) * 1000, 3)
        tap = response.stream if isinstance(response.stream, StreamTap) else None
        if tap is not None:
            out.response_bytes = tap.response_bytes
            if tap.first_chunk_at is not None:
                out.ttft_ms = round((tap.first_chunk_at - rec.started) * 1000, 3)
            out.response = tap.finish()
        else:
            raw = response.raw_content
            out.response_bytes = len(raw) if raw is not None else None
            if rec.route is not None and raw:
                out.response = self._parse_buffered(rec.route.parser, rec.host, response)
        self._count_once(rec, out)
        self._estimate_if_missing(rec, out)
        self._submit(flow, rec, out, started)

    def error(self, flow: http.HTTPFlow) -> None:
        rec = flow_record(flow)
        if rec is None:
            return
        started = time.perf_counter_ns()
        out = Outcome(
            status_code=flow.response.status_code if flow.response else None,
            latency_ms=round((time.time() - rec.started) * 1000, 3),
            error_type=_error_type(flow.error.msg if flow.error else "error"),
        )
        tap = flow.response.stream if flow.response and isinstance(flow.response.stream, StreamTap) else None
        if tap is not None:
            out.response_bytes = tap.response_bytes
            out.response = tap.finish()
            if tap.first_chunk_at is not None:
                out.ttft_ms = round((tap.first_chunk_at - rec.started) * 1000, 3)
        self._count_once(rec, out)
        if tap is not None and tap.response_bytes:
            # An answer cut after it began (the client hung up, the connection broke) was spent
            # up to the cut, but its usage comes last: a client that stops reading once the text
            # is there must not leave a row that counts nothing.
            self._estimate_if_missing(rec, out, cut=True)
        self._submit(flow, rec, out, started)

    def _parse_buffered(self, parser: str, host: str, response: http.Response) -> ResponseFacts | None:
        try:
            if _is_protobuf(response.headers.get("content-type", "")):
                # `alt=proto` (a system parameter on Google's REST front ends) answers with the
                # response message in binary protobuf: its usage is read as a gRPC answer's (F103).
                proto = ProtoUsage(host)
                proto.feed(decoded_body(response))
                return proto.finish()
            return PARSERS[parser].parse_response(response.headers, parse_json_body(decoded_body(response)))
        except Exception:
            log.debug("shadowgate: response parser failed", exc_info=True)
            return None

    def _count_once(self, rec: FlowRecord, out: Outcome) -> None:
        """A response's usage counts once, whichever answer carries it: a background response's
        comes on its retrieval (red-team F48), and a stored response can be fetched again and
        again. A retrieval counts usage only of a finished response not counted before; every
        counted response id is remembered. The memory is this process's, bounded: after a
        restart, on another instance or once an id is evicted, a fetch counts again (an
        over-count: never spend let through)."""
        resp = out.response
        if rec.route is None or resp is None or not resp.response_id or resp.usage.is_empty():
            return
        if rec.route.operation == RETRIEVE_RESPONSE and rec.facts is not None and rec.facts.model is None:
            rec.facts.model = resp.model  # a GET names no model: the row's is the one that ran
        if rec.route.operation != RETRIEVE_RESPONSE:
            self.counted_responses.add(resp.response_id)
        elif not resp.finish_reasons or not self.counted_responses.add(resp.response_id):
            resp.usage = Usage()  # unfinished (running totals, if any) or already counted
        elif budgets := self.settings.policy.budgets:
            # A retrieval reserved nothing (Decide): its usage counts from now, not from when
            # the writer seals its row, so a call right after it sees the spend.
            tokens = (resp.usage.input_tokens or 0) + (resp.usage.output_tokens or 0)
            self.record.decide.budgets.hold(rec.request_id, budgets, rec.policy_facts(), tokens)

    def _estimate_if_missing(self, rec: FlowRecord, out: Outcome, cut: bool = False) -> None:
        """A successful call without usage (a stream without include_usage, a bare-bones
        OpenAI-compatible server) still consumed tokens: estimate them and say so. A batch that
        was accepted will spend when it runs, where the proxy never sees its usage: its row
        carries its upper bound (its prompts, its requests' output caps), so budgets count it
        today (red-team F41). `cut`: an answer that ended early; the counts its stream had
        given before the cut (an Anthropic stream's input tokens) stay, the missing ones are
        estimated."""
        if rec.route is None or out.status_code is None or not 200 <= out.status_code < 300:
            return
        batch_cap = rec.facts.output_cap if rec.facts else None
        if rec.route.operation in NO_TOKEN_OPERATIONS and batch_cap is None:
            return
        resp = out.response or ResponseFacts()
        if cut and not resp.usage.is_empty():
            # A count from the stream's start (Anthropic's message_start says 1 output token)
            # is no total: the text seen so far is at least what was spent.
            seen = math.ceil(resp.output_chars / CHARS_PER_TOKEN)
            if resp.usage.input_tokens is None or (resp.usage.output_tokens or 0) < seen:
                prompt_chars = rec.facts.prompt_chars if rec.facts else rec.request_bytes
                if resp.usage.input_tokens is None:
                    resp.usage.input_tokens = math.ceil(prompt_chars / CHARS_PER_TOKEN)
                resp.usage.output_tokens = max(resp.usage.output_tokens or 0, seen)
                out.response, out.usage_estimated = resp, True
            return
        if not resp.usage.is_empty():
            return
        prompt_chars = rec.facts.prompt_chars if rec.facts else rec.request_bytes
        if batch_cap is not None:
            output_tokens = batch_cap
        elif rec.route.operation == "embeddings":
            output_tokens = 0
        else:
            output_tokens = math.ceil(resp.output_chars / CHARS_PER_TOKEN)
        resp.usage = Usage(
            input_tokens=math.ceil(prompt_chars / CHARS_PER_TOKEN),
            output_tokens=output_tokens,
        )
        out.response = resp
        out.usage_estimated = True

    def _submit(self, flow: http.HTTPFlow, rec: FlowRecord, out: Outcome, started: int) -> None:
        # Later addons (telemetry) read the outcome from the flow, as they read the record.
        flow.metadata[OUTCOME_KEY] = out
        rec.overhead_ns += time.perf_counter_ns() - started
        self.record.ai_request(rec, out)


class TailUsage:
    """The usage of a JSON answer too large to parse (red-team F106: 16 MB of logprobs), read
    from its last USAGE_TAIL_BYTES: the last `"usage"` / `"usageMetadata"` object there, given
    to the route's parser as the answer's. The key's quotes are bare in the JSON text only where
    it is a key: inside a string (generated text) they are escaped, so the text cannot pose as
    usage. Without one, the output is estimated at the request's cap (times its answers), else
    at the answer's size: never as nothing."""

    _KEYS = ('"usage"', '"usageMetadata"', '"usage_metadata"')

    def __init__(self, parser: str, headers: Mapping[str, str], cap: int | None) -> None:
        self.parser = parser
        self.headers = headers
        self.cap = cap
        self.tail = bytearray()
        self.size = 0

    def feed(self, data: bytes) -> None:
        self.size += len(data)
        self.tail += data[-USAGE_TAIL_BYTES:]
        if len(self.tail) > 2 * USAGE_TAIL_BYTES:
            del self.tail[: len(self.tail) - USAGE_TAIL_BYTES]

    def finish(self) -> ResponseFacts:
        text = bytes(self.tail[-USAGE_TAIL_BYTES:]).decode("utf-8", "replace")
        found = _last_object(text, self._KEYS)
        facts = ResponseFacts()
        if found is not None:
            key, usage = found
            # Anthropic's accumulator reads a whole message by its type; the others, the key.
            for answer in ({key: usage}, {"type": "message", key: usage}):
                facts = PARSERS[self.parser].parse_response(self.headers, answer)
                if not facts.usage.is_empty():
                    break
        if facts.usage.is_empty():
            facts.usage = Usage()
            # No usage: at most the cap was generated; without one, every byte may be output.
            facts.output_chars = self.cap * CHARS_PER_TOKEN if self.cap is not None else self.size
        return facts


def _last_object(text: str, keys: tuple[str, ...]) -> tuple[str, dict[str, Any]] | None:
    """The last of these keys in a JSON text's tail that holds an object: (key, object)."""
    decoder = json.JSONDecoder()
    best: tuple[int, str, dict[str, Any]] | None = None
    for quoted in keys:
        at = len(text)
        tries = 0
        while (at := text.rfind(quoted, 0, at)) >= 0 and (tries := tries + 1) <= 16:
            value_at = at + len(quoted)
            while value_at < len(text) and text[value_at] in " \t\r\n:":
                value_at += 1
            try:
                value, _ = decoder.raw_decode(text, value_at)
            except ValueError:
                continue
            if isinstance(value, dict):
                if best is None or at > best[0]:
                    best = (at, quoted.strip('"'), value)
                break
    return (best[1], best[2]) if best is not None else None


class GrpcUsageStream:
    """The usage of a Gemini or Vertex AI gRPC answer (GenerateContent, or a StreamGenerateContent
    stream, whose last message carries the totals), read frame by frame: its usage metadata is
    field 3 of each GenerateContentResponse on the Gemini API, field 4 on Vertex AI
    (google.cloud.aiplatform). Memory: one frame at most; a frame over GRPC_FRAME_MAX is not
    kept but walked field by field as it streams, its candidates skipped, to read the usage
    metadata beside them (red-team F106: a 5 MB GenerateContent answer)."""

    def __init__(self, path: str, text: bool = False) -> None:
        self.usage_field = 4 if ".aiplatform." in path else 3
        self.buffer = bytearray()
        self.large: _LargeMessage | None = None  # the frame too large to keep, being walked
        self.usage: tuple[int | None, int | None] | None = None
        self.base64 = Base64Text() if text else None

    def feed(self, data: bytes) -> None:
        if self.base64 is not None:
            data = self.base64.decode(data)
        self._feed(data)

    def _feed(self, data: bytes) -> None:
        while data and self.large is not None:
            taken = self.large.feed(data)
            data = data[taken:]
            if self.large.left == 0:
                self.usage = self.large.usage() or self.usage
                self.large = None
        if not data:
            return
        self.buffer += data
        while len(self.buffer) >= 5:
            size = int.from_bytes(self.buffer[1:5], "big")
            if size > GRPC_FRAME_MAX:
                # A compressed one cannot be walked: skipped, its usage estimated.
                self.large = _LargeMessage(size, self.usage_field, walk=self.buffer[0] == 0)
                rest = bytes(self.buffer[5:])
                self.buffer.clear()
                self._feed(rest)
                return
            if len(self.buffer) < 5 + size:
                return
            frame = bytes(self.buffer[: 5 + size])
            del self.buffer[: 5 + size]
            try:
                self.usage = grpc_usage(grpc_messages(frame), self.usage_field) or self.usage
            except UndecodableBody:
                continue

    def finish(self) -> ResponseFacts:
        return ResponseFacts(usage=usage_or_empty(*self.usage)) if self.usage is not None else ResponseFacts()


class Base64Text:
    """Base64 decoded as it streams, in whole 4-character groups; padding may end one message's
    encoding mid-stream (gRPC-Web text encodes each frame on its own), and decoding goes on after it."""

    def __init__(self) -> None:
        self.pending = bytearray()

    def decode(self, data: bytes) -> bytes:
        self.pending += data.translate(None, b" \t\r\n")
        out = bytearray()
        while True:
            end = self.pending.find(b"=")
            end = len(self.pending) // 4 * 4 if end < 0 else (end // 4 + 1) * 4
            if not end or end > len(self.pending):
                return bytes(out)
            try:
                out += binascii.a2b_base64(bytes(self.pending[:end]))
            except binascii.Error:
                pass
            del self.pending[:end]


_FIELD_MASKS = frozenset({"fields", "$fields"})


def _is_protobuf(content_type: str) -> bool:
    media = content_type.split(";", 1)[0].strip().lower()
    return "protobuf" in media and not is_grpc(media)


class ProtoUsage:
    """The usage metadata of a Gemini or Vertex AI answer in binary protobuf (`alt=proto`): one
    GenerateContentResponse, walked field by field as it streams (nothing kept but the usage)."""

    def __init__(self, host: str) -> None:
        self.message = _LargeMessage(1 << 62, 4 if "aiplatform" in host else 3, walk=True)

    def feed(self, data: bytes) -> None:
        self.message.feed(data)

    def finish(self) -> ResponseFacts:
        usage = self.message.usage()
        return ResponseFacts(usage=usage_or_empty(*usage)) if usage is not None else ResponseFacts()


class _LargeMessage:
    """The top-level fields of a protobuf message too large to keep, read as it streams: every
    field skipped but the usage metadata's (kept up to GRPC_USAGE_MAX bytes)."""

    def __init__(self, size: int, usage_field: int, walk: bool) -> None:
        self.left = size  # bytes of the message still to come
        self.usage_field = usage_field
        self.walk = walk
        self.head = bytearray()  # a field's tag and length, read so far
        self.skip = 0
        self.keep_left = 0
        self.kept = bytearray()
        self.found: bytes | None = None

    def feed(self, data: bytes) -> int:
        """Read what of `data` belongs to the message; how many bytes that was."""
        taken = min(self.left, len(data))
        self.left -= taken
        at = 0
        while self.walk and at < taken:
            if self.skip:
                step = min(self.skip, taken - at)
                self.skip -= step
                at += step
            elif self.keep_left:
                step = min(self.keep_left, taken - at)
                self.kept += data[at : at + step]
                self.keep_left -= step
                at += step
                if not self.keep_left:
                    self.found = bytes(self.kept)
            else:
                self.head.append(data[at])
                at += 1
                self._header()
        return taken

    def _header(self) -> None:
        ends = [i for i, byte in enumerate(self.head) if not byte & 0x80]
        if not ends:
            self.walk = len(self.head) <= 10  # a varint is at most 10 bytes
            return
        tag = _varint_value(self.head[: ends[0] + 1])
        number, wire_type = tag >> 3, tag & 7
        if wire_type in (1, 5):  # fixed 64 / 32 bits
            self.skip, self.head = (8 if wire_type == 1 else 4), bytearray()
        elif wire_type in (0, 2):  # a varint, or a length and that many bytes
            if len(ends) < 2:
                self.walk = len(self.head) <= 20
                return
            value = _varint_value(self.head[ends[0] + 1 : ends[1] + 1])
            self.head = bytearray()
            if wire_type == 2 and number == self.usage_field and value <= GRPC_USAGE_MAX:
                self.keep_left, self.kept = value, bytearray()
                if not value:
                    self.found = b""
            elif wire_type == 2:
                self.skip = value
        else:  # groups: no GenerateContentResponse field is one
            self.walk = False

    def usage(self) -> tuple[int | None, int | None] | None:
        if self.found is None:
            return None
        message = _varint_bytes(self.usage_field << 3 | 2) + _varint_bytes(len(self.found)) + self.found
        try:
            return grpc_usage([message], self.usage_field)
        except Exception:
            return None


def _varint_value(data: bytes | bytearray) -> int:
    return sum((byte & 0x7F) << (7 * i) for i, byte in enumerate(data))


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def decoded_body(response: http.Response) -> bytes:
    """The answer's body without its content codings, stacked ("gzip, br") and aliased
    ("x-gzip") ones too, which mitmproxy's decoder refuses: a provider may compress whatever
    accept-encoding asked for. A body no decoder reads is returned as it came."""
    try:
        return response.get_content() or b""
    except ValueError:
        raw = response.raw_content or b""
        decoder = StreamDecoder(response.headers.get("content-encoding"))
        decoded = decoder.decode(raw)
        return raw if decoder.failed else decoded


def _error_type(message: str) -> str:
    # Error messages may carry hosts and addresses; keep a short, groupable kind.
    lowered = message.lower()
    for kind in ("killed", "timeout", "refused", "reset", "tls", "certificate", "disconnect"):
        if kind in lowered:
            return kind
    return message.split(":", 1)[0][:60] or "error"
