"""Gemini API and Vertex AI: generateContent, streamGenerateContent (SSE or JSON array), embeddings."""

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
from .common import batch_output_cap
from .common import body_model
from .common import body_streaming
from .common import dicts
from .common import dig
from .common import items
from .common import json_len
from .common import nonempty_str
from .common import text_chars
from .common import text_len
from .common import uncapped_requests


def _usage(meta: Any) -> Usage | None:
    if not isinstance(meta, dict):
        return None
    prompt = as_int(meta.get("promptTokenCount"))
    candidates = as_int(meta.get("candidatesTokenCount"))
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    tool_prompt = as_int(meta.get("toolUsePromptTokenCount"))
    if prompt is None and candidates is None and thoughts is None:
        return None
    # promptTokenCount already includes cachedContentTokenCount; tool-use prompts (search
    # results, code execution) are billed as input on top of it. candidatesTokenCount excludes
    # thoughtsTokenCount. proto3 JSON omits zero counts, so an absent count adds 0 to a sum.
    return Usage(
        input_tokens=(prompt or 0) + (tool_prompt or 0),
        output_tokens=(candidates or 0) + (thoughts or 0),
        cached_input_tokens=as_int(meta.get("cachedContentTokenCount")),
        cache_creation_input_tokens=None,
        reasoning_tokens=thoughts,
    )


def _vertex_embedding_usage(body: dict[str, Any]) -> Usage | None:
    counts = [as_int(dig(p, "embeddings", "statistics", "token_count")) for p in dicts(body.get("predictions"))]
    if not counts or any(c is None for c in counts):
        return None
    return Usage(input_tokens=sum(c for c in counts if c is not None), output_tokens=0)


class _GeminiAccumulator:
    def __init__(self) -> None:
        self._facts = ResponseFacts()
        self._finish: dict[int, str] = {}

    def on_event(self, event: str | None, data: Any) -> None:
        if not isinstance(data, dict):
            return
        facts = self._facts
        error = data.get("error")
        if isinstance(error, dict):
            facts.error_type = nonempty_str(error.get("status")) or str(error.get("code") or "error")
            return
        facts.response_id = facts.response_id or nonempty_str(data.get("responseId"))
        facts.model = facts.model or nonempty_str(data.get("modelVersion"))
        for pos, candidate in enumerate(items(data.get("candidates"))):
            if not isinstance(candidate, dict):
                continue
            for part in dicts(dig(candidate, "content", "parts")):
                # Thought summaries ("thought": true) are output too, and billed as thoughts.
                facts.output_chars += text_len(part.get("text")) + json_len(dig(part, "functionCall", "args"))
            if reason := nonempty_str(candidate.get("finishReason")):
                index = as_int(candidate.get("index"))
                self._finish[pos if index is None else index] = reason
        # Every streamed chunk carries the running usageMetadata; the last one is final.
        usage = _usage(data.get("usageMetadata")) or _vertex_embedding_usage(data)
        if usage is not None:
            facts.usage = usage

    def result(self) -> ResponseFacts:
        self._facts.finish_reasons = [self._finish[i] for i in sorted(self._finish)]
        return self._facts


def _prompt_chars(body: Any) -> int:
    n = sum(text_chars(c) for c in items(dig(body, "contents")))
    # The API accepts both the proto name and its JSON camelCase form.
    n += text_chars(dig(body, "systemInstruction")) + text_chars(dig(body, "system_instruction"))
    n += text_chars(dig(body, "content"))  # embedContent
    n += sum(text_chars(dig(r, "content")) for r in items(dig(body, "requests")))  # batchEmbedContents
    n += sum(text_chars(i, ("content", "title")) for i in items(dig(body, "instances")))  # Vertex :predict
    return n


class GeminiParser(JsonWireParser):
    id = "gemini"
    # The API accepts the proto field names and their JSON camelCase forms; content: embeddings.
    prompt_keys = frozenset({"contents", "parts", "text", "systemInstruction", "system_instruction", "content"})
    system_keys = frozenset({"systemInstruction", "system_instruction"})

    def _looks_like(self, body: dict[str, Any]) -> bool:
        contents = body.get("contents")
        return isinstance(contents, list) and all(isinstance(c, dict) for c in contents)

    def _request(self, route: Route, headers: Mapping[str, str], body: Any) -> RequestFacts:
        facts = RequestFacts(route.operation, body_model(route, body), body_streaming(route, body), _prompt_chars(body))
        if route.operation == "create_batch":
            # :batchGenerateContent inlines its requests (snake or camel case, as REST takes both);
            # a batch of an uploaded file names none here, and counts as one call.
            config = dig(body, "batch", "input_config") or dig(body, "batch", "inputConfig")
            requests = [dig(r, "request") for r in items(dig(config, "requests", "requests"))]
            facts.output_cap = batch_output_cap(requests or [None])
            facts.uncapped = uncapped_requests(requests)  # a batch of a file: its requests unseen
            facts.prompt_chars += sum(_prompt_chars(r) for r in requests)
        return facts

    def _accumulator(self, headers: Mapping[str, str]) -> Accumulator:
        return _GeminiAccumulator()

    def text_deltas(self, event: Any) -> Iterator[TextDelta]:
        for pos, candidate in enumerate(dicts(dig(event, "candidates"))):
            slot = candidate.get("index", pos)
            for part in dicts(dig(candidate, "content", "parts")):
                if isinstance(part.get("text"), str) and not part.get("thought"):
                    yield TextDelta(part, "text", slot)

    def error_body(self, status: int, message: str) -> tuple[Any, dict[str, str]]:
        kind = "RESOURCE_EXHAUSTED" if status == 429 else "PERMISSION_DENIED"
        return {"error": {"code": status, "message": message, "status": kind}}, {}
