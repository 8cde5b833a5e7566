"""Cohere v2 Chat (with its SSE stream) and Embed."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

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


def _usage(usage: Any, generated: bool = True) -> Usage | None:
    # `tokens` counts everything the model read and wrote, including the chat template and
    # system preamble Cohere adds; `billed_units` is the pricing view that leaves those out (and
    # is absent or different for some deployments). Metering model consumption consistently
    # with other providers means `tokens`; billed_units is only a fallback (Embed reports only it).
    if not isinstance(usage, dict):
        return None
    counts = usage.get("tokens") if isinstance(usage.get("tokens"), dict) else usage.get("billed_units")
    if not isinstance(counts, dict):
        return None
    output = as_int(counts.get("output_tokens"))
    # cached_tokens (v2 chat, beside tokens and billed_units): prompt tokens served from Cohere's
    # cache, a subset of the input count; an explicit 0 is a cache miss, recorded as 0.
    cached = as_int(usage.get("cached_tokens"))
    return usage_or_empty(as_int(counts.get("input_tokens")), output if generated else 0, cached=cached)


def _message_chars(message: Any) -> int:
    """Generated characters in a message or a streamed delta.message (whose content is one block)."""
    if not isinstance(message, dict):
        return 0
    content = message.get("content")
    blocks = dicts(content) if isinstance(content, list) else [content] if isinstance(content, dict) else []
    n = sum(text_len(b.get("text")) + text_len(b.get("thinking")) for b in blocks)
    n += text_len(message.get("tool_plan"))
    calls = message.get("tool_calls")
    for call in dicts(calls) if isinstance(calls, list) else [calls] if isinstance(calls, dict) else []:
        n += json_len(dig(call, "function", "arguments"))
    return n


class _CohereAccumulator:
    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        facts = self._facts
        kind = data.get("type")
        facts.response_id = facts.response_id or nonempty_str(data.get("id"))
        if kind is None:
            message = data.get("message")
            if isinstance(message, str):  # error bodies are {"id"?, "message": "..."}, with no type
                facts.error_type = "error"
                return
            facts.output_chars += _message_chars(message)
            self._finish(data.get("finish_reason"))
            embed = "embeddings" in data
            usage = _usage(data.get("usage")) or _usage(data.get("meta"), generated=not embed)
            if usage is not None:
                facts.usage = usage
        elif kind in ("content-delta", "tool-plan-delta", "tool-call-delta"):
            facts.output_chars += _message_chars(dig(data, "delta", "message"))
        elif kind == "message-end":
            delta = data.get("delta")
            self._finish(dig(delta, "finish_reason"))
            if (usage := _usage(dig(delta, "usage"))) is not None:
                facts.usage = usage
            if nonempty_str(dig(delta, "error")):
                facts.error_type = "error"

    def _finish(self, reason: Any) -> None:
        if reason := nonempty_str(reason):
            self._facts.finish_reasons = [reason]

    def result(self) -> ResponseFacts:
        return self._facts


class CohereV2Parser(JsonWireParser):
    id = "cohere-v2"
    # texts/inputs: Embed; query/documents: Rerank and grounded chat; message/preamble: the v1
    # chat fields that v2 endpoints of compatible servers still accept.
    prompt_keys = frozenset(
        {"messages", "content", "text", "texts", "inputs", "query", "documents", "message", "preamble"}
    )
    system_keys = frozenset({"preamble"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        if not isinstance(body.get("model"), str):
            return False
        if isinstance(body.get("messages"), list):
            return True
        # Embed: texts or inputs, and the input_type v2 requires.
        return isinstance(body.get("input_type"), str) and isinstance(body.get("texts") or body.get("inputs"), list)

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        prompt_chars = sum(text_chars(dig(m, "content")) for m in items(dig(body, "messages")))
        prompt_chars += text_chars(dig(body, "texts")) + text_chars(dig(body, "inputs"))
        return RequestFacts(route.operation, body_model(route, body), body_streaming(route, body), prompt_chars)

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _CohereAccumulator()

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        content = dig(event, "delta", "message", "content")
        if dig(event, "type") == "content-delta" and isinstance(dig(content, "text"), str):
            yield TextDelta(content, "text", event.get("index", 0))

    def error_body(self, status: int, message: str) -> tuple[Any, dict[str, str]]:
        return {"message": message}, {}
