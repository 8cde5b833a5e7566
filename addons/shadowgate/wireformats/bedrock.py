"""Amazon Bedrock Runtime: Converse / ConverseStream and InvokeModel / InvokeModelWithResponseStream.

Streams use the AWS binary event stream; the model id comes from the path (%-encoded ARNs too).
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from . import anthropic
from .base import RequestFacts
from .base import ResponseFacts
from .base import Route
from .base import TextDelta
from .base import Usage
from .common import Accumulator
from .common import JsonWireParser
from .common import as_int
from .common import body_model
from .common import body_streaming
from .common import dicts
from .common import dig
from .common import items
from .common import json_len
from .common import nonempty_str
from .common import text_chars
from .common import text_len
from .common import usage_or_empty
from .framing import header
from .framing import loads
from .openai import ChatAccumulator
from .openai import OpenAIChatParser

EVENT_STREAM = "application/vnd.amazon.eventstream"
CONVERSE_EVENTS = frozenset(
    {"messageStart", "contentBlockStart", "contentBlockDelta", "contentBlockStop", "messageStop", "metadata"}
)


# ARN resource types that name the model they run: a foundation model, and a system (cross-
# region) inference profile, whose id is the model's with a region prefix (`us.anthropic...`).
_ARN_NAMING_A_MODEL = ("foundation-model/", "inference-profile/")


def model_by_reference(model: str | None) -> str | None:
    """What a Bedrock model id that is an ARN of another kind refers to: a Prompt management
    prompt (its stored model runs), an application inference profile (a wrapper of any model),
    a prompt router (it picks the model per request), a provisioned, custom or imported model.
    The model it runs is not in the call: judged as any model (red-team F95). None for a model
    named by its id."""
    if model is None or not model.lower().startswith("arn:"):
        return None
    resource = model.split(":", 5)[-1]
    if resource.lower().startswith(_ARN_NAMING_A_MODEL):
        return None
    return f"a Bedrock {resource.split('/', 1)[0][:60]} ARN"


def _facts(route: Route, body: Any, prompt_chars: int) -> RequestFacts:
    model = body_model(route, body)
    facts = RequestFacts(route.operation, model, body_streaming(route, body), prompt_chars)
    facts.model_reference = model_by_reference(model)
    return facts


def _error_type(headers: Mapping[str, str], body: Any) -> str | None:
    # Bedrock's HTTP errors are {"message": ...}; the type is in x-amzn-ErrorType ("ThrottlingException:http://...").
    kind = header(headers, "x-amzn-errortype") or nonempty_str(dig(body, "__type"))
    if not kind:
        return None
    return kind.split(":", 1)[0].rsplit("#", 1)[-1] or None


def converse_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    uncached = as_int(usage.get("inputTokens"))
    read = as_int(usage.get("cacheReadInputTokens"))
    written = as_int(usage.get("cacheWriteInputTokens"))
    # inputTokens counts only the non-cached prompt: the Bedrock user guide on prompt caching
    # (docs.aws.amazon.com/bedrock/latest/userguide/prompt-caching.html) gives total input as
    # inputTokens + cacheReadInputTokens + cacheWriteInputTokens, and totalTokens adds all four.
    total = None if uncached is None else uncached + (read or 0) + (written or 0)
    return usage_or_empty(total, as_int(usage.get("outputTokens")), read, written)


def _block_chars(block: dict[str, Any]) -> int:
    """Generated characters in a content block, or in a streamed delta of one (where reasoning
    text sits one level higher and tool input is a JSON string fragment)."""
    reasoning = block.get("reasoningContent")
    return (
        text_len(block.get("text"))
        + text_len(dig(reasoning, "reasoningText", "text"))
        + text_len(dig(reasoning, "text"))
        + json_len(dig(block, "toolUse", "input"))
    )


class _ConverseAccumulator:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self._facts = ResponseFacts(error_type=_error_type(headers, None))

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        facts = self._facts
        if event is None:  # the whole Converse response, or an error body
            if "output" not in data and nonempty_str(data.get("message")):
                facts.error_type = facts.error_type or nonempty_str(data.get("__type")) or "error"
                return
            facts.output_chars += sum(_block_chars(b) for b in dicts(dig(data, "output", "message", "content")))
            self._stop(data.get("stopReason"))
            self._usage(data.get("usage"))
        elif event == "contentBlockDelta":
            if isinstance(delta := data.get("delta"), dict):
                facts.output_chars += _block_chars(delta)
        elif event == "messageStop":
            self._stop(data.get("stopReason"))
        elif event == "metadata":
            self._usage(data.get("usage"))

    def _stop(self, reason: Any) -> None:
        if reason := nonempty_str(reason):
            self._facts.finish_reasons = [reason]

    def _usage(self, usage: Any) -> None:
        if (parsed := converse_usage(usage)) is not None:
            self._facts.usage = parsed

    def result(self) -> ResponseFacts:
        return self._facts


def _converse_prompt_chars(body: Any) -> int:
    # Content blocks: {text}, {toolResult: {content: [{text}]}}; images/documents are not text.
    keys = ("text", "content", "toolResult")
    return text_chars(dig(body, "system"), keys) + sum(
        text_chars(dig(m, "content"), keys) for m in items(dig(body, "messages"))
    )


def _bedrock_error(status: int, message: str) -> tuple[Any, dict[str, str]]:
    # Bedrock's SDKs read the error class from x-amzn-ErrorType, not from the body.
    kind = "ThrottlingException" if status == 429 else "AccessDeniedException"
    return {"message": message}, {"x-amzn-errortype": kind}


def converse_deltas(event: Any) -> Iterator[TextDelta]:
    """A contentBlockDelta's pieces of answer text: text, reasoning text and tool input (a JSON
    string fragment), each joined per content block."""
    delta = dig(event, "delta")
    if not isinstance(delta, dict):
        return
    index = event.get("contentBlockIndex", 0)
    if isinstance(delta.get("text"), str):
        yield TextDelta(delta, "text", index)
    reasoning = delta.get("reasoningContent")
    if isinstance(reasoning, dict) and isinstance(reasoning.get("text"), str):
        yield TextDelta(reasoning, "text", ("reasoning", index))
    tool = delta.get("toolUse")
    if isinstance(tool, dict) and isinstance(tool.get("input"), str):
        yield TextDelta(tool, "input", ("args", index))


class BedrockConverseParser(JsonWireParser):
    id = "bedrock-converse"
    default_framing = EVENT_STREAM
    prompt_keys = frozenset({"system", "messages", "content", "text", "toolResult"})
    system_keys = frozenset({"system"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        # Converse has no model in the body and only lists of blocks as message content;
        # Bedrock's native Anthropic and Nova bodies carry their own version markers.
        messages = body.get("messages")
        return (
            isinstance(messages, list)
            and bool(messages)
            and all(isinstance(dig(m, "content"), list) for m in messages)
            and not any(k in body for k in ("model", "anthropic_version", "schemaVersion"))
        )

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        return _facts(route, body, _converse_prompt_chars(body))

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _ConverseAccumulator(headers)

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        return converse_deltas(event)

    def error_body(self, status: int, message: str) -> tuple[Any, dict[str, str]]:
        return _bedrock_error(status, message)


class _NativeAccumulator:
    """Model-native bodies without a richer parser (Meta Llama, Mistral, Amazon Titan, Cohere
    Command): text and stop reason only; Bedrock's own counters supply the usage."""

    _TEXT = ("generation", "outputText", "completion", "text")
    _STOP = ("stop_reason", "finish_reason", "completionReason", "stopReason")

    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        for obj in [data, *dicts(data.get("outputs")), *dicts(data.get("results")), *dicts(data.get("generations"))]:
            self._facts.output_chars += sum(text_len(obj.get(k)) for k in self._TEXT)
            for key in self._STOP:
                if reason := nonempty_str(obj.get(key)):
                    self._facts.finish_reasons = [reason]
        if (usage := _native_usage(data)) is not None:
            self._facts.usage = usage

    def result(self) -> ResponseFacts:
        return self._facts


def _native_usage(data: dict[str, Any]) -> Usage | None:
    """Counts a model-native body carries itself (Bedrock user guide, model parameters): Meta
    Llama prompt_token_count / generation_token_count (a stream's chunks count as they go, so the
    latest wins); Amazon Titan Text inputTextTokenCount and each result's tokenCount."""
    if "prompt_token_count" in data or "generation_token_count" in data:
        return usage_or_empty(as_int(data.get("prompt_token_count")), as_int(data.get("generation_token_count")))
    if "inputTextTokenCount" in data:
        results = dicts(data.get("results"))
        counts = [as_int(r.get("tokenCount")) for r in results]
        output = sum(c for c in counts if c is not None) if results and None not in counts else None
        return usage_or_empty(as_int(data.get("inputTextTokenCount")), output)
    return None


def _delegate_for(data: dict[str, Any]) -> tuple[Accumulator, bool]:
    """The accumulator for a model-native body, and whether its events are wrapped Converse
    events ({"contentBlockDelta": {...}}, as Amazon Nova streams them)."""
    if data.get("type") == "message" or data.get("type") in anthropic.STREAM_EVENTS:
        return anthropic.AnthropicAccumulator(), False
    if "choices" in data:  # OpenAI-style bodies (gpt-oss, Mistral Large chat, DeepSeek)
        return ChatAccumulator(), False
    if "output" in data or any(k in CONVERSE_EVENTS for k in data):  # Amazon Nova
        return _ConverseAccumulator({}), True
    return _NativeAccumulator(), False


def _counts_usage(input_tokens: Any, output_tokens: Any, read: Any = None, written: Any = None) -> Usage | None:
    uncached, output = as_int(input_tokens), as_int(output_tokens)
    if uncached is None and output is None:
        return None
    read, written = as_int(read), as_int(written)
    # Assumed to follow Converse: the input count excludes cache reads and writes.
    total = None if uncached is None else uncached + (read or 0) + (written or 0)
    return Usage(total, output, read, written, None)


def _header_int(headers: Mapping[str, str], name: str) -> int | None:
    value = header(headers, name)
    return int(value) if value is not None and value.strip().isdigit() else None


class _InvokeAccumulator:
    def __init__(self, headers: Mapping[str, str]) -> None:
        self._delegate: Accumulator | None = None
        self._unwrap = False
        self._metrics: Usage | None = None
        self._error = _error_type(headers, None)
        self._headers = _counts_usage(
            _header_int(headers, "x-amzn-bedrock-input-token-count"),
            _header_int(headers, "x-amzn-bedrock-output-token-count"),
            _header_int(headers, "x-amzn-bedrock-cache-read-input-token-count"),
            _header_int(headers, "x-amzn-bedrock-cache-write-input-token-count"),
        )

    def on_event(self, event: str | None, data: Any) -> None:
        if event == "chunk":  # {"bytes": base64 of one model-native JSON event}
            data = _chunk_json(data)
        elif event is not None:
            return
        if not isinstance(data, dict):
            return
        metrics = data.get("amazon-bedrock-invocationMetrics")
        if isinstance(metrics, dict):
            self._metrics = _counts_usage(
                metrics.get("inputTokenCount"),
                metrics.get("outputTokenCount"),
                metrics.get("cacheReadInputTokenCount"),
                metrics.get("cacheWriteInputTokenCount"),
            )
        if event is None and self._delegate is None and _is_error_body(data):
            self._error = self._error or nonempty_str(data.get("__type")) or "error"
            return
        if self._delegate is None:
            self._delegate, self._unwrap = _delegate_for(data)
        events = [(k, v) for k, v in data.items() if k in CONVERSE_EVENTS] if self._unwrap else []
        for name, inner in events or [(None, data)]:
            self._delegate.on_event(name, inner)

    def result(self) -> ResponseFacts:
        facts = self._delegate.result() if self._delegate is not None else ResponseFacts()
        native = facts.usage
        # The model's own usage is preferred when complete: for Anthropic it carries the cache
        # split. Bedrock's counters (stream metrics, else response headers) cover every model.
        if native.input_tokens is None or native.output_tokens is None:
            facts.usage = self._metrics or self._headers or native
        facts.error_type = facts.error_type or self._error
        return facts


def _is_error_body(data: dict[str, Any]) -> bool:
    # Bedrock HTTP errors: {"message": "..."} (sometimes with "__type"); no model body is that small.
    return isinstance(data.get("message"), str) and set(data) <= {"message", "Message", "__type"}


def _chunk_json(payload: Any) -> Any:
    raw = dig(payload, "bytes")
    if not isinstance(raw, str):
        return None
    try:
        return loads(base64.b64decode(raw, validate=False))
    except (binascii.Error, ValueError):
        return None


def _invoke_prompt_chars(body: Any) -> int:
    if not isinstance(body, dict):
        return 0
    keys = ("text", "content", "toolResult")
    n = sum(text_chars(dig(m, "content"), keys) for m in items(body.get("messages")))
    n += text_chars(body.get("system"), keys)
    # Llama/Mistral "prompt", Titan "inputText", Cohere Command "message"/"texts".
    return n + sum(text_chars(body.get(k)) for k in ("prompt", "inputText", "message", "texts"))


_NATIVE_TEXT = ("generation", "outputText", "completion", "text")
_ANTHROPIC = anthropic.AnthropicMessagesParser()
_CHAT = OpenAIChatParser()


class BedrockInvokeParser(JsonWireParser):
    id = "bedrock-invoke"
    default_framing = EVENT_STREAM
    # Each model's native body: Anthropic/Nova messages and system, Llama/Mistral prompt,
    # Titan inputText, Cohere Command message and texts.
    prompt_keys = frozenset(
        {"messages", "system", "content", "text", "toolResult", "prompt", "inputText", "message", "texts"}
    )
    system_keys = frozenset({"system"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        version = body.get("anthropic_version")
        if isinstance(version, str) and version.startswith("bedrock") and isinstance(body.get("messages"), list):
            return True
        if body.get("schemaVersion") == "messages-v1" and isinstance(body.get("messages"), list):
            return True
        if isinstance(body.get("prompt"), str) and "max_gen_len" in body:  # Meta Llama
            return True
        return isinstance(body.get("inputText"), str) and "model" not in body  # Amazon Titan

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        return _facts(route, body, _invoke_prompt_chars(body))

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _InvokeAccumulator(headers)

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        """Answer text in one model-native stream event (a chunk's decoded bytes): Anthropic
        content_block_delta, OpenAI-style choices, Amazon Nova's wrapped Converse events, and the
        plain text keys of Llama, Mistral, Titan and Cohere Command."""
        if not isinstance(event, dict):
            return
        if event.get("type") in anthropic.STREAM_EVENTS:
            yield from _ANTHROPIC.text_deltas(event)
        elif "choices" in event:
            yield from _CHAT.text_deltas(event)
        elif isinstance(event.get("contentBlockDelta"), dict):
            yield from converse_deltas(event["contentBlockDelta"])
        else:
            for key in _NATIVE_TEXT:
                if isinstance(event.get(key), str):
                    yield TextDelta(event, key, ("native", key))
            for i, output in enumerate(dicts(event.get("outputs"))):  # Mistral
                if isinstance(output.get("text"), str):
                    yield TextDelta(output, "text", ("native", i))

    def error_body(self, status: int, message: str) -> tuple[Any, dict[str, str]]:
        return _bedrock_error(status, message)
