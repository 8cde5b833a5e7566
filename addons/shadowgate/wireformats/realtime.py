"""The realtime (WebSocket) protocols' own messages: OpenAI Realtime and Gemini Live.

What stages/realtime.py reads from a session's JSON messages to record it: the model a client
message names (OpenAI `session.update`, Gemini `setup`) and each turn's usage (OpenAI
`response.done`, Gemini `usageMetadata`).
"""

from __future__ import annotations

import codecs
import json
from typing import Any

from .base import Usage
from .common import as_int
from .common import dig


def message_json(content: bytes) -> Any:
    # json.loads reads bytes as UTF-8 with a BOM, or UTF-16/32, as a provider's JSON reader does.
    stripped = content.removeprefix(codecs.BOM_UTF8).lstrip()
    if stripped[:1] not in (b"{", b"[") and not content.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return None
    try:
        return json.loads(content)
    except ValueError:
        return None


def client_model(body: Any) -> str | None:
    if not isinstance(body, dict):
        return None
    model = dig(body, "session", "model") if body.get("type") == "session.update" else dig(body, "setup", "model")
    if not isinstance(model, str) or not model:
        return None
    return model.removeprefix("models/")


def openai_usage(usage: Any) -> Usage | None:
    if not isinstance(usage, dict):
        return None
    return Usage(
        input_tokens=as_int(usage.get("input_tokens")),
        output_tokens=as_int(usage.get("output_tokens")),
        cached_input_tokens=as_int(dig(usage, "input_token_details", "cached_tokens")),
    )


def gemini_usage(meta: dict) -> Usage | None:
    prompt = as_int(meta.get("promptTokenCount"))
    response = as_int(meta.get("responseTokenCount"))
    thoughts = as_int(meta.get("thoughtsTokenCount"))
    if prompt is None and response is None:
        return None
    return Usage(
        input_tokens=(prompt or 0) + (as_int(meta.get("toolUsePromptTokenCount")) or 0),
        output_tokens=(response or 0) + (thoughts or 0),
        cached_input_tokens=as_int(meta.get("cachedContentTokenCount")),
        reasoning_tokens=thoughts,
    )
