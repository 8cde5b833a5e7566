"""The small typed interface every wire-format parser implements.

A wire format is data (endpoints in providers.yaml: method, path pattern, operation, parser id)
plus one parser class here. The proxy never branches on provider names or format fields: it looks
up the parser by id and asks it. Meter asks for request and response facts, DLP for the prompt
text and the streamed text deltas, Act for the error shape and the gateway route, telemetry
capture for the prompt text. A new format is its parser module and its registry line.
"""

from __future__ import annotations

from collections.abc import Hashable
from collections.abc import Iterator
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import ClassVar
from typing import Protocol


@dataclass(slots=True)
class Usage:
    """Token counts in one convention across providers.

    input_tokens counts every prompt token, cached ones included (OpenAI's convention);
    cached_input_tokens and cache_creation_input_tokens are subsets of it.
    output_tokens includes reasoning tokens; reasoning_tokens is that subset.
    None means "the provider did not say", never zero.
    """

    input_tokens: int | None = None
    output_tokens: int | None = None
    cached_input_tokens: int | None = None
    cache_creation_input_tokens: int | None = None
    reasoning_tokens: int | None = None

    def is_empty(self) -> bool:
        return self.input_tokens is None and self.output_tokens is None


@dataclass(slots=True)
class RequestFacts:
    operation: str  # gen_ai.operation.name: chat, text_completion, embeddings, generate_content, ...
    model: str | None = None
    streaming: bool = False
    # Characters of prompt text, used only to estimate tokens when a response carries no usage.
    prompt_chars: int = 0
    # Other models the call may run (OpenRouter's `models` fallbacks, the requests of a batch):
    # model rules judge each of them as well (red-team F15).
    other_models: tuple[str, ...] = ()
    # A model the call runs that it names only by reference (a stored prompt's id, a gateway
    # config saved elsewhere): what the reference is. Model rules judge it as any model.
    model_reference: str | None = None
    # A batch's output caps summed over its requests (common.batch_output_cap), a background
    # response's cap: what it may spend once it runs, charged to the budgets when it is
    # submitted. None for other calls.
    output_cap: int | None = None
    # The most output tokens this one call may generate (its cap times the answers it asks for),
    # None when it names no cap: the estimate for an answer too large to read (red-team F106).
    answer_cap: int | None = None
    uncapped: int = 0  # of a batch's requests, those with no output cap (counted at the default)
    # Why what a batch may spend has no bound the proxy can read (its input file was uploaded too
    # large to read): refused under token and USD budgets, as an uncapped one is.
    unbounded: str | None = None
    # A call billed per unit other than tokens (storage/unit_prices.py, red-team F59): the unit
    # ("character", "image:<size>:<quality>", "video_second", "audio_second") and how many.
    billed_unit: str | None = None
    billed_units: float | None = None


@dataclass(slots=True)
class ResponseFacts:
    model: str | None = None
    response_id: str | None = None
    finish_reasons: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    # Characters of generated text seen, used only to estimate output tokens without usage.
    output_chars: int = 0
    # Provider error type/code when the body is an error envelope.
    error_type: str | None = None
    # The billed quantity when the answer tells it (seconds of audio transcribed): it replaces
    # the request's estimate (RequestFacts.billed_units).
    billed_units: float | None = None
    # The service tier the answer says served the call (OpenAI's "flex", "priority"; Anthropic's
    # usage.service_tier): it sets the price (red-team F108, round-6b G17).
    service_tier: str | None = None
    # Of the usage's cache writes, those kept one hour (Anthropic's `ttl: "1h"`), dearer (round-6b G16).
    cache_write_1h_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Route:
    """What the catalog's endpoint table says about a request before its body is read."""

    wire_format: str  # the catalog's wire format id, e.g. "azure-openai"
    parser: str  # parser id, e.g. "openai-chat"
    operation: str
    model_from_path: str | None = None  # Gemini/Vertex/Bedrock/Azure put the model in the URL
    streaming_from_path: bool = False  # e.g. :streamGenerateContent, /converse-stream


@dataclass(frozen=True, slots=True, eq=False)
class Shadowed:
    """The path step after a repeated key that leads into one of the values it shadows (the
    body holds the key's last value; see common.DuplicateKeys). Equal only to itself, so such a
    path never collides with the path of the value the key shows."""

    index: int


@dataclass(frozen=True, slots=True)
class KeyStep:
    """The last step of an object key's own path: the key itself, not the value under it."""

    key: str


# Where a string sits in a JSON body: the keys and list indexes that lead to it.
JsonPath = tuple[str | int | Shadowed | KeyStep, ...]


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of streamed answer text, where it lives in its event (container[key]), and the
    stream it continues (slot: a choice, a content block), so pieces can be joined per stream."""

    container: dict[str, Any]
    key: str
    slot: Hashable


@dataclass(frozen=True, slots=True)
class GatewayRoute:
    """Where a call of this format goes on the company gateway when a policy redirects it."""

    api: str  # which of the gateway's base URLs serves it: "openai" or "anthropic"
    path: str  # appended to that base URL, e.g. "/chat/completions"
    key_header: str | None = None  # a header besides Authorization that carries the key


class StreamParser(Protocol):
    """Incremental response parser.

    feed() gets content-decoded bytes at arbitrary boundaries (a UTF-8 character or an SSE line
    may be split across calls). It must keep memory bounded (partial-line buffers only, capped),
    must never raise, and must be O(len(data)). finish() is called once, after the last feed().
    """

    def feed(self, data: bytes) -> None: ...

    def finish(self) -> ResponseFacts: ...


class WireParser(Protocol):
    id: ClassVar[str]

    def looks_like(self, body: Any) -> bool:
        """Body shape check used to fingerprint unknown hosts (e.g. has model and messages)."""
        ...

    def parse_request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        """body is the decoded JSON value (dict, list, ...) or None when it was not JSON."""
        ...

    def batch_in_body(self, content: bytes, content_type: str) -> RequestFacts | None:
        """The requests a body that is not JSON holds (a batch input file in a multipart upload):
        their models as other_models (judged by model rules), their summed output caps and
        prompt size (charged to budgets). None for most formats and bodies."""
        ...

    def parse_response(self, headers: Mapping[str, str], body: Any) -> ResponseFacts:
        """Non-streaming response. body is the decoded JSON value or None."""
        ...

    def stream_parser(self, headers: Mapping[str, str]) -> StreamParser:
        """A fresh incremental parser for one streamed response with these headers."""
        ...

    # The keys whose values are text the model reads (message content, system prompt, tool
    # results, embedding inputs), so DLP scans them and content capture exports them.
    prompt_keys: ClassVar[frozenset[str]]
    # Those of them that hold the system prompt (content capture reports it apart).
    system_keys: ClassVar[frozenset[str]]

    def prompt_strings(self, body: Any) -> Iterator[tuple[JsonPath, str]]:
        """Every string of prompt text in a request body, with its path so it can be replaced."""
        ...

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        """The answer text in one decoded stream event (none for a format not streamed as text)."""
        ...

    def error_body(self, status: int, message: str) -> tuple[Any, dict[str, str]]:
        """The format's own error envelope (and headers), so its SDK raises its usual error."""
        ...

    def gateway_route(self, route: Route) -> GatewayRoute | None:
        """Where this call lives on an OpenAI- or Anthropic-compatible gateway; None: nowhere."""
        ...
