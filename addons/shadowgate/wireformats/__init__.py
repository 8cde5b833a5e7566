"""Wire-format parsers, keyed by the parser ids used in providers.yaml's endpoint table."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from .anthropic import AnthropicBatchesParser
from .anthropic import AnthropicMessagesParser
from .base import JsonPath
from .base import WireParser
from .bedrock import BedrockConverseParser
from .bedrock import BedrockInvokeParser
from .cohere import CohereV2Parser
from .common import loads_request
from .common import openai_error_body
from .common import prompt_strings as _prompt_strings
from .decoding import json_text
from .gemini import GeminiParser
from .ollama import OllamaParser
from .openai import OpenAIChatParser
from .openai import OpenAIEmbeddingsParser
from .openai import OpenAIResponsesParser
from .openai_platform import OpenAIAssistantsParser
from .openai_platform import OpenAIFilesParser
from .openai_platform import OpenAISpeechParser

PARSERS: dict[str, WireParser] = {
    parser.id: parser
    for parser in (
        OpenAIChatParser(),
        OpenAIResponsesParser(),
        OpenAIEmbeddingsParser(),
        AnthropicMessagesParser(),
        AnthropicBatchesParser(),
        OpenAIFilesParser(),
        OpenAIAssistantsParser(),
        OpenAISpeechParser(),
        GeminiParser(),
        BedrockConverseParser(),
        BedrockInvokeParser(),
        CohereV2Parser(),
        OllamaParser(),
    )
}

# Operations that generate no tokens when called (uploads, batch submissions, token counts,
# thread bookkeeping): Meter estimates no usage for them.
NO_TOKEN_OPERATIONS = frozenset(
    {"upload_file", "create_batch", "count_tokens", "create_thread", "create_message", "create_agent"}
)

# Every format's prompt keys together. DLP scans (and content capture exports) the text under any
# of them, whatever the route's format: OpenAI-compatible servers and gateways take other formats'
# fields, Bedrock InvokeModel takes each model's native body, and a control that scans only the
# fields the route's format documents would let text through in a field the server still reads.
PROMPT_KEYS: frozenset[str] = frozenset().union(*(parser.prompt_keys for parser in PARSERS.values()))
SYSTEM_KEYS: frozenset[str] = frozenset().union(*(parser.system_keys for parser in PARSERS.values()))


def prompt_strings(body: Any, is_text: bool = False, shadowed: bool = True) -> Iterator[tuple[JsonPath, str]]:
    """Every string of prompt text in a request body in any known format, with its path.
    is_text: the whole value is text (a tool result), media and structure keys aside.
    shadowed: also the values a repeated key shadows (DLP scans them; see common.DuplicateKeys)."""
    return _prompt_strings(body, PROMPT_KEYS, is_text, shadowed)


def error_body(parser: str | None, status: int, message: str) -> tuple[Any, dict[str, str]]:
    """A refusal in the error envelope of this parser's format (OpenAI's for an unknown one)."""
    wire = PARSERS.get(parser or "")
    return wire.error_body(status, message) if wire is not None else openai_error_body(status, message)


def parse_json_body(raw: bytes) -> Any | None:
    """The decoded JSON value of a request/response body, or None (empty, no Unicode, not JSON)."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return None
    try:
        # UTF-8, or UTF-16/32 as RFC 8259 readers (Python's json among them) detect it; strict:
        # other bytes are not JSON we can read.
        text = json_text(bytes(raw))
    except (UnicodeDecodeError, LookupError):
        return None
    if not text.strip():
        return None
    try:
        return loads_request(text)
    except (ValueError, RecursionError):
        return None


__all__ = [
    "NO_TOKEN_OPERATIONS",
    "PARSERS",
    "PROMPT_KEYS",
    "SYSTEM_KEYS",
    "error_body",
    "parse_json_body",
    "prompt_strings",
]
