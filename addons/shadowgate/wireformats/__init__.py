"""Wire-format parsers, keyed by the parser ids used in providers.yaml's endpoint table."""

from __future__ import annotations

from typing import Any

from .anthropic import AnthropicMessagesParser
from .base import WireParser
from .bedrock import BedrockConverseParser
from .bedrock import BedrockInvokeParser
from .cohere import CohereV2Parser
from .framing import loads
from .gemini import GeminiParser
from .ollama import OllamaParser
from .openai import OpenAIChatParser
from .openai import OpenAIEmbeddingsParser
from .openai import OpenAIResponsesParser

PARSERS: dict[str, WireParser] = {
    parser.id: parser
    for parser in (
        OpenAIChatParser(),
        OpenAIResponsesParser(),
        OpenAIEmbeddingsParser(),
        AnthropicMessagesParser(),
        GeminiParser(),
        BedrockConverseParser(),
        BedrockInvokeParser(),
        CohereV2Parser(),
        OllamaParser(),
    )
}


def parse_json_body(raw: bytes) -> Any | None:
    """The decoded JSON value of a request/response body, or None (empty, not UTF-8, not JSON)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return None
    try:
        text = bytes(raw).decode("utf-8-sig")  # strict: a non-UTF-8 body is not JSON we can read
    except UnicodeDecodeError:
        return None
    return loads(text) if text.strip() else None


__all__ = ["PARSERS", "parse_json_body"]
