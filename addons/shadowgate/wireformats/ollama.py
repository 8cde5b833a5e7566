"""Ollama native API: /api/chat, /api/generate (NDJSON streams by default) and /api/embed."""

from __future__ import annotations

from collections.abc import Iterator
from collections.abc import Mapping
from typing import Any

from .base import RequestFacts
from .base import ResponseFacts
from .base import Route
from .base import TextDelta
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


class _OllamaAccumulator:
    def __init__(self) -> None:
        self._facts = ResponseFacts()

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        facts = self._facts
        if nonempty_str(data.get("error")):  # {"error": "model 'x' not found"}: a message, not a type
            facts.error_type = "error"
            return
        facts.model = facts.model or nonempty_str(data.get("model"))
        message = data.get("message")
        for obj in (data, message) if isinstance(message, dict) else (data,):
            facts.output_chars += text_len(obj.get("thinking"))
            for call in dicts(obj.get("tool_calls")):
                facts.output_chars += json_len(dig(call, "function", "arguments"))
        facts.output_chars += text_len(dig(message, "content")) + text_len(data.get("response"))
        if "embeddings" in data or "embedding" in data:
            # Embeddings generate nothing; prompt_eval_count is the only count reported.
            facts.usage = usage_or_empty(as_int(data.get("prompt_eval_count")), 0)
        elif data.get("done") is True:
            if reason := nonempty_str(data.get("done_reason")):
                facts.finish_reasons = [reason]
            # Ollama omits prompt_eval_count when the whole prompt came from its KV cache.
            facts.usage = usage_or_empty(as_int(data.get("prompt_eval_count")), as_int(data.get("eval_count")))

    def result(self) -> ResponseFacts:
        return self._facts


class OllamaParser(JsonWireParser):
    id = "ollama"
    default_framing = "application/x-ndjson"
    prompt_keys = frozenset({"messages", "content", "prompt", "system", "input"})
    system_keys = frozenset({"system"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        return isinstance(body.get("model"), str) and (
            isinstance(body.get("messages"), list) or isinstance(body.get("prompt"), str)
        )

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        prompt_chars = sum(text_chars(dig(m, "content")) for m in items(dig(body, "messages")))
        prompt_chars += sum(text_chars(dig(body, k)) for k in ("prompt", "system", "input"))
        # Ollama streams unless told "stream": false; embeddings never stream.
        streaming = route.operation != "embeddings" and body_streaming(route, body, default=True)
        return RequestFacts(route.operation, body_model(route, body), streaming, prompt_chars)

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _OllamaAccumulator()

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        message = dig(event, "message")
        if isinstance(dig(message, "content"), str):  # /api/chat
            yield TextDelta(message, "content", 0)
        elif isinstance(dig(event, "response"), str):  # /api/generate
            yield TextDelta(event, "response", 0)

    def error_body(self, status: int, message: str) -> tuple[Any, dict[str, str]]:
        return {"error": message}, {}
