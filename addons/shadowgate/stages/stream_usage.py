"""StreamUsage, act: asks a Chat Completions stream for its usage where the client did not.

OpenAI's Chat Completions stream reports usage only when the request sets
`stream_options.include_usage`. Without it Meter can only estimate from the visible text, and a
reasoning model's hidden reasoning tokens (billed as output, often many times the answer) never
reach cost or budgets (red-team F21). For a service the catalog marks `stream_usage:
include_usage` the proxy sets the option in the forwarded body, and when the client had not asked
it drops the one extra chunk the option adds (empty `choices`, the totals) from what the client
receives, so a client that reads `choices[0]` of every chunk sees the stream it asked for. The
other chunks then carry `"usage": null`, as OpenAI documents for the option.

Placed after AnswerStream: its answer transform must be the last, after the answer inspection
and reversible DLP's restorer, and its request hook after every stage that rewrites the body.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http

from shadowgate.flow import FlowRecord
from shadowgate.flow import flow_record
from shadowgate.flow import timed_hook
from shadowgate.stages.answer import compose
from shadowgate.stages.meter import StreamTap
from shadowgate.stages.settings import ShadowgateSettings
from shadowgate.wireformats.decoding import StreamDecoder
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.decoding import decode_body
from shadowgate.wireformats.framing import EventCodec
from shadowgate.wireformats.framing import codec_for
from shadowgate.wireformats.openai import body_asking_usage
from shadowgate.wireformats.openai import is_usage_only_chunk

log = logging.getLogger(__name__)

MODES = ("ask", "off")
ASKED_KEY = "shadowgate_stream_usage_asked"  # flow.metadata: the proxy set include_usage, the client had not
PARSE_ON_LOOP_BYTES = 64 * 1024  # a body naming stream_options that is larger is parsed on a thread


class StreamUsage:
    name = "shadowgate_stream_usage"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.ask = True

    def load(self, loader) -> None:
        loader.add_option(
            name="shadowgate_stream_usage",
            typespec=str,
            default="ask",
            help="""
            Streamed Chat Completions to a service the catalog marks 'stream_usage: include_usage'
            (OpenAI; Azure OpenAI where the request's api-version takes it): 'ask' sets stream_options.include_usage in the forwarded request, so the
            call is metered from the provider's own counts (reasoning tokens included), and drops
            the extra usage chunk from the answer when the client had not asked for it; 'off'
            leaves the request alone (its usage is then estimated from the visible text).
            """,
            choices=MODES,
        )

    def configure(self, updated: set[str]) -> None:
        if "shadowgate_stream_usage" in updated:
            mode = ctx.options.shadowgate_stream_usage
            if mode not in MODES:
                raise exceptions.OptionsError(
                    f"shadowgate_stream_usage must be one of {', '.join(MODES)}, not {mode!r}"
                )
            self.ask = mode == "ask"

    @timed_hook
    def request(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        rec = flow_record(flow)
        if not self.ask or rec is None or not self._applies(flow, rec):
            return None
        raw = flow.request.raw_content or b""
        coding = flow.request.headers.get("content-encoding", "").strip()
        if coding or (b"stream_options" in raw and len(raw) > PARSE_ON_LOOP_BYTES):
            # A compressed body is read as the upstream reads it and goes out plain, as a
            # model-map rewrite sends it (red-team F117: gzip dodged the option); decoded, or a
            # large one parsed, on a thread.
            return self._ask_off_loop(flow, raw, coding)
        self._ask(flow, body_asking_usage(raw))
        return None

    @staticmethod
    def _applies(flow: http.HTTPFlow, rec: FlowRecord) -> bool:
        request = flow.request
        provider = rec.provider
        return (
            flow.response is None
            and flow.error is None
            and not request.stream
            and rec.route is not None
            and rec.route.parser == "openai-chat"
            and rec.facts is not None
            and rec.facts.streaming
            and rec.redirect_target is None
            and provider is not None
            and (
                provider.stream_usage == "include_usage"
                or (provider.stream_usage == "azure_api_version" and azure_takes_stream_options(request))
            )
        )

    async def _ask_off_loop(self, flow: http.HTTPFlow, raw: bytes, coding: str = "") -> None:
        self._ask(flow, await asyncio.to_thread(_asking_usage, raw, coding))

    @staticmethod
    def _ask(flow: http.HTTPFlow, body: bytes | None) -> None:
        if body is None:
            return
        flow.request.headers.pop("content-encoding", None)
        flow.request.content = body
        # The extra chunk is taken out of a stream the proxy reads: ask for it uncompressed.
        flow.request.headers["accept-encoding"] = "identity"
        flow.metadata[ASKED_KEY] = True

    @timed_hook
    def responseheaders(self, flow: http.HTTPFlow) -> None:
        response = flow.response
        if not flow.metadata.get(ASKED_KEY) or response is None or not 200 <= response.status_code < 300:
            return
        tap = response.stream
        content_type = response.headers.get("content-type", "").lower()
        codec = codec_for(content_type)
        if not isinstance(tap, StreamTap) or codec is None:
            return
        encoding = response.headers.get("content-encoding", "").strip()
        if encoding and encoding.lower() != "identity":
            # An upstream that compressed anyway: the client gets the stream decoded.
            del response.headers["content-encoding"]
            response.headers.pop("content-length", None)
        drop = UsageChunkDrop(codec, encoding)
        tap.transform = drop if tap.transform is None else compose(tap.transform, drop)


# Azure OpenAI's dated api-versions that take stream_options: the previews from this one on (its
# spec is the first to list it); the dated GA versions (2024-10-21 and before) refuse the member.
AZURE_FIRST_PREVIEW = "2024-08-01-preview"
_AZURE_PREVIEW = re.compile(r"(\d{4}-\d{2}-\d{2})-preview")


def azure_takes_stream_options(request: http.Request) -> bool:
    """Whether an Azure OpenAI request's API takes stream_options: the v1 API (`/openai/v1/`, an
    api-version of v1, preview or none), or a dated preview from AZURE_FIRST_PREVIEW on. The
    upstream reads the first api-version parameter."""
    path = request.path.split("?", 1)[0].lower()
    version = request.query.get("api-version", "").strip().lower()
    if "/openai/v1/" in path:
        return version in ("", "v1", "preview", "latest")
    dated = _AZURE_PREVIEW.fullmatch(version)
    return "/openai/" in path and dated is not None and dated[1] >= AZURE_FIRST_PREVIEW[:10]


class UsageChunkDrop:
    """The stream transform: every event as it came, but the usage-only chunk the client did not ask for."""

    def __init__(self, codec: EventCodec, encoding: str) -> None:
        self.codec = codec
        self.decoder = StreamDecoder(encoding) if encoding and encoding.lower() != "identity" else None

    def __call__(self, chunk: bytes) -> bytes:
        data = chunk
        if self.decoder is not None and chunk:
            data = self.decoder.decode(chunk)
            if self.decoder.failed:
                raise ValueError("the answer could not be decoded")
        events = self.codec.feed(data) if chunk else self.codec.finish()
        return b"".join(e.raw for e in events if not (e.ended and e.data is not None and is_usage_only_chunk(e.data)))


def _asking_usage(raw: bytes, coding: str) -> bytes | None:
    """body_asking_usage of a body that may be compressed (decoded first; None if it cannot be:
    DLP and the model rules refuse what they cannot read)."""
    if coding:
        try:
            raw = decode_body(raw, coding)
        except UndecodableBody:
            return None
    return body_asking_usage(raw)
