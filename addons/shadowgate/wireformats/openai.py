"""OpenAI Chat Completions (and legacy Completions), Responses and Embeddings.

These shapes are also spoken by Azure OpenAI and most OpenAI-compatible servers (vLLM, Ollama's
/v1, LiteLLM, ...), so fields some of them add (reasoning_content) are read when present.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from .base import GatewayRoute
from .base import RequestFacts
from .base import ResponseFacts
from .base import Route
from .base import TextDelta
from .base import Usage
from .common import DEFAULT_OUTPUT_TOKENS
from .common import Accumulator
from .common import JsonWireParser
from .common import as_int
from .common import body_model
from .common import body_streaming
from .common import dicts
from .common import dig
from .common import fallback_models
from .common import items
from .common import json_len
from .common import nonempty_str
from .common import openai_error
from .common import output_cap
from .common import text_chars
from .common import text_len
from .common import tool_models
from .common import usage_or_empty
from .framing import loads


def _chat_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    cached = as_int(dig(usage, "prompt_tokens_details", "cached_tokens"))
    if cached is None:
        # DeepSeek's OpenAI-compatible API reports the cache split as prompt_cache_hit_tokens +
        # prompt_cache_miss_tokens = prompt_tokens (api-docs.deepseek.com, context caching).
        cached = as_int(usage.get("prompt_cache_hit_tokens"))
    return usage_or_empty(
        as_int(usage.get("prompt_tokens")),
        as_int(usage.get("completion_tokens")),
        cached=cached,
        reasoning=as_int(dig(usage, "completion_tokens_details", "reasoning_tokens")),
    )


def _message_chars(message: Any) -> int:
    """Generated characters in a chat message or a streamed delta of one."""
    if not isinstance(message, dict):
        return 0
    n = text_chars(message.get("content"))
    n += text_len(message.get("refusal"))
    n += text_len(message.get("reasoning_content")) + text_len(message.get("reasoning"))
    for call in dicts(message.get("tool_calls")):
        n += json_len(dig(call, "function", "arguments"))
    n += json_len(dig(message, "function_call", "arguments"))
    return n


class ChatAccumulator:
    def __init__(self) -> None:
        self._facts = ResponseFacts()
        self._finish: dict[int, str] = {}

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        facts = self._facts
        if (error := openai_error(data)) is not None:
            facts.error_type = error
            return
        # Azure's first chunk carries prompt_filter_results with empty id and model.
        facts.response_id = facts.response_id or nonempty_str(data.get("id"))
        facts.model = facts.model or nonempty_str(data.get("model"))
        # The tier that served it (flex, priority) prices it; every chunk of a stream repeats it.
        facts.service_tier = nonempty_str(data.get("service_tier")) or facts.service_tier
        for pos, choice in enumerate(items(data.get("choices"))):
            if not isinstance(choice, dict):
                continue
            index = as_int(choice.get("index"))
            facts.output_chars += _message_chars(choice.get("message")) + _message_chars(choice.get("delta"))
            facts.output_chars += text_len(choice.get("text"))  # legacy completions
            if reason := nonempty_str(choice.get("finish_reason")):
                self._finish[pos if index is None else index] = reason
        # Streams repeat "usage": null on every chunk; some servers send running totals.
        # Either way the last real object is the answer, so replace, never add.
        if (usage := _chat_usage(data.get("usage"))) is not None:
            facts.usage = usage

    def result(self) -> ResponseFacts:
        self._facts.finish_reasons = [self._finish[i] for i in sorted(self._finish)]
        return self._facts


# Where each OpenAI operation lives below a gateway's OpenAI-compatible base URL.
_GATEWAY_PATHS = {
    ("openai-chat", "chat"): "/chat/completions",
    ("openai-chat", "text_completion"): "/completions",
    ("openai-responses", "chat"): "/responses",
    ("openai-embeddings", "embeddings"): "/embeddings",
}


class _OpenAIParser(JsonWireParser):
    def gateway_route(self, route: Route) -> GatewayRoute | None:
        path = _GATEWAY_PATHS.get((self.id, route.operation))
        return None if path is None else GatewayRoute("openai", path)


def _facts(route: Route, body: Any, prompt_chars: int) -> RequestFacts:
    # A router's call that names only fallbacks (OpenRouter `models`) runs the first of them.
    fallbacks = fallback_models(body)
    model = body_model(route, body) or (fallbacks[0] if fallbacks else None)
    others = tuple(dict.fromkeys(fallbacks + tool_models(body)))
    facts = RequestFacts(route.operation, model, body_streaming(route, body), prompt_chars, others)
    facts.model_reference = router_reference(model, body)
    return facts


# Models a router picks or stores, which the request does not name (red-team F62): OpenRouter's
# Auto Router, a preset's model (`@preset/name`, or a `preset` member).
_ROUTER_PICKS = frozenset({"openrouter/auto"})


def router_reference(model: str | None, body: Any) -> str | None:
    # `@preset/...` only: Portkey's `@provider-slug/model` and Workers AI's `@cf/...` name a model
    # (red-team F85); a fallback can be a preset or the Auto Router too (F88).
    for name in (model, *items(dig(body, "models"))):
        if isinstance(name, str) and (
            name.strip().lower() in _ROUTER_PICKS or name.strip().lower().startswith("@preset/")
        ):
            return f"the router's choice ({name[:80]})"
    preset = dig(body, "preset")
    if isinstance(preset, str) and preset:
        return f"the preset {preset[:80]!r}"
    return None


class OpenAIChatParser(_OpenAIParser):
    id = "openai-chat"
    # arguments: tool calls the model made, fed back in the history.
    prompt_keys = frozenset({"messages", "content", "text", "prompt", "arguments"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        if not isinstance(body.get("model"), str):
            return False
        if isinstance(body.get("messages"), list):
            return True
        prompt = body.get("prompt")
        return isinstance(prompt, str) or (isinstance(prompt, list) and bool(prompt))

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        prompt_chars = sum(text_chars(dig(m, "content")) for m in items(dig(body, "messages")))
        prompt_chars += text_chars(dig(body, "prompt"))
        return _facts(route, body, prompt_chars)

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return ChatAccumulator()

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        for pos, choice in enumerate(dicts(dig(event, "choices"))):
            slot = choice.get("index", pos)
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                yield TextDelta(delta, "content", slot)
            elif isinstance(choice.get("text"), str):  # legacy completions
                yield TextDelta(choice, "text", slot)


def _responses_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return usage_or_empty(
        as_int(usage.get("input_tokens")),
        as_int(usage.get("output_tokens")),
        cached=as_int(dig(usage, "input_tokens_details", "cached_tokens")),
        reasoning=as_int(dig(usage, "output_tokens_details", "reasoning_tokens")),
    )


def _output_item_chars(item: dict[str, Any]) -> int:
    n = 0
    for part in dicts(item.get("content")):  # message: output_text / refusal; reasoning: reasoning_text
        n += text_len(part.get("text")) + text_len(part.get("refusal"))
    for part in dicts(item.get("summary")):  # reasoning summaries
        n += text_len(part.get("text"))
    return n + text_len(item.get("arguments"))  # function_call


# Streamed deltas of generated text; the matching *.done events repeat the whole text.
_RESPONSES_TEXT_DELTAS = frozenset(
    {
        "response.output_text.delta",
        "response.refusal.delta",
        "response.function_call_arguments.delta",
        "response.reasoning_text.delta",
        "response.reasoning_summary_text.delta",
    }
)
_SHOWN_DELTAS = frozenset({"response.output_text.delta", "response.refusal.delta"})  # what the user reads
_RESPONSES_LIFECYCLE = frozenset(
    {
        "response.created",
        "response.queued",
        "response.in_progress",
        "response.completed",
        "response.incomplete",
        "response.failed",
    }
)
_TERMINAL_STATUSES = frozenset({"completed", "incomplete", "failed", "cancelled"})


class _ResponsesAccumulator:
    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        kind = data.get("type")
        if kind in _RESPONSES_LIFECYCLE:
            # Their embedded response repeats all output text: take only metadata from it.
            self._response(data.get("response"), count_text=False)
        elif kind in _RESPONSES_TEXT_DELTAS:
            self._facts.output_chars += text_len(data.get("delta"))
        elif kind == "error":
            self._facts.error_type = (
                nonempty_str(data.get("code")) or openai_error(data) or nonempty_str(data.get("type"))
            )
        elif kind is None:
            if (error := openai_error(data)) is not None:
                self._facts.error_type = error
            else:
                self._response(data, count_text=True)

    def _response(self, response: Any, count_text: bool) -> None:
        if not isinstance(response, dict):
            return
        facts = self._facts
        facts.response_id = nonempty_str(response.get("id")) or facts.response_id
        facts.model = nonempty_str(response.get("model")) or facts.model
        facts.service_tier = nonempty_str(response.get("service_tier")) or facts.service_tier
        if count_text:
            facts.output_chars += sum(_output_item_chars(item) for item in dicts(response.get("output")))
        status = response.get("status")
        if status in _TERMINAL_STATUSES:
            reason = nonempty_str(dig(response, "incomplete_details", "reason"))
            facts.finish_reasons = [reason or status]
        if (usage := _responses_usage(response.get("usage"))) is not None:
            facts.usage = usage
        if isinstance(response.get("error"), dict):
            facts.error_type = nonempty_str(dig(response, "error", "code")) or "error"

    def result(self) -> ResponseFacts:
        return self._facts


class OpenAIResponsesParser(_OpenAIParser):
    id = "openai-responses"
    # output: function_call_output items fed back in.
    prompt_keys = frozenset({"input", "instructions", "content", "text", "output", "arguments"})
    system_keys = frozenset({"instructions"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        if not isinstance(body.get("model"), str):
            return False
        value = body.get("input")
        return isinstance(value, str) or (isinstance(value, list) and any(isinstance(v, dict) for v in value))

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        keys = ("text", "content", "output")  # output: function_call_output items fed back in
        prompt_chars = text_chars(dig(body, "input"), keys) + text_chars(dig(body, "instructions"))
        facts = _facts(route, body, prompt_chars)
        stored = nonempty_str(dig(body, "prompt", "id"))
        if stored is not None and facts.model is None:
            # A stored prompt carries its model, set in OpenAI's dashboard (red-team F15).
            facts.model_reference = f"the stored prompt {stored[:80]}"
        if isinstance(body, dict) and body.get("background") is True:
            # Answered "queued" without usage; it spends later, where only a retrieval through
            # the proxy would show it: charged its upper bound now, as a batch is (red-team F48).
            cap = output_cap(body)
            facts.output_cap = DEFAULT_OUTPUT_TOKENS if cap is None else cap
        return facts

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _ResponsesAccumulator()

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        if isinstance(event, dict) and event.get("type") in _SHOWN_DELTAS and isinstance(event.get("delta"), str):
            yield TextDelta(event, "delta", (event.get("output_index", 0), event.get("content_index", 0)))


class _EmbeddingsAccumulator:
    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        if (error := openai_error(data)) is not None:
            self._facts.error_type = error
            return
        self._facts.model = nonempty_str(data.get("model")) or self._facts.model
        prompt = as_int(dig(data, "usage", "prompt_tokens"))
        if prompt is not None:
            # An embedding generates no tokens (total_tokens == prompt_tokens), so 0 is a fact here.
            self._facts.usage = Usage(input_tokens=prompt, output_tokens=0)

    def result(self) -> ResponseFacts:
        return self._facts


def _embedding_input(value: Any) -> bool:
    if isinstance(value, str):
        return True
    # A list of strings, or pre-tokenised input: a list of ints or of lists of ints.
    return isinstance(value, list) and bool(value) and all(isinstance(v, str | int | list) for v in value)


class OpenAIEmbeddingsParser(_OpenAIParser):
    id = "openai-embeddings"
    prompt_keys = frozenset({"input"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("model"), str) and _embedding_input(body.get("input"))

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        return RequestFacts(route.operation, body_model(route, body), False, text_chars(dig(body, "input")))

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _EmbeddingsAccumulator()


# --- asking a Chat Completions stream for its usage (red-team F21) ---------------------------

_INCLUDE_USAGE = b'"stream_options":{"include_usage":true}'


def body_asking_usage(raw: bytes, parse: Callable[[bytes], Any] = json.loads) -> bytes | None:
    """A streamed Chat Completions body with `stream_options.include_usage` set, or None when it
    needs no change (the client asked already) or cannot be changed safely. A stream without it
    carries no usage at all: a reasoning model's hidden tokens would never be counted.

    A body without `stream_options` gets the member before its closing brace, so the client's
    bytes stay as they came (no parse: prompts run to megabytes). One with it (asking nothing,
    or `include_usage: false`) is re-serialised, so every reader of duplicate keys sees one value.
    A body in UTF-16/32 or behind a BOM is changed as its text and written back so."""
    encoding = json.detect_encoding(raw)
    if encoding != "utf-8":
        # UTF-16/32 or a BOM, which JSON readers take (red-team F117): changed as UTF-8, written
        # back in the body's own encoding.
        try:
            as_utf8 = body_asking_usage(raw.decode(encoding).encode("utf-8"), parse)
        except (UnicodeError, LookupError):
            return None
        return None if as_utf8 is None else as_utf8.decode("utf-8").encode(encoding)
    if raw.lstrip()[:1] != b"{":
        return None
    if b"stream_options" not in raw:
        end = raw.rstrip()
        if not end.endswith(b"}"):
            return None
        inner = end[:-1].rstrip()
        return inner + (b"" if inner.endswith(b"{") else b",") + _INCLUDE_USAGE + b"}"
    try:
        body = parse(raw)
    except (ValueError, RecursionError):
        return None  # not JSON the upstream reads either: its error is the client's to see
    options = body.get("stream_options") if isinstance(body, dict) else None
    if not isinstance(body, dict) or body.get("stream") is not True or not isinstance(options, dict | None):
        return None  # not a stream the upstream will run: its error is the client's to see
    if isinstance(options, dict) and options.get("include_usage") is True:
        return None
    changed = {**body, "stream_options": {**(options or {}), "include_usage": True}}
    return json.dumps(changed, ensure_ascii=False, separators=(",", ":")).encode()


def is_usage_only_chunk(data: bytes) -> bool:
    """An SSE event's data is the extra last chunk `include_usage` adds: no choices, only the totals."""
    if b"usage" not in data or b"[]" not in data:  # every other chunk, without a parse
        return False
    event = loads(data)
    return isinstance(event, dict) and event.get("choices") == [] and isinstance(event.get("usage"), dict)
