"""Wire-format parsers, keyed by the parser ids used in providers.yaml's endpoint table."""

from __future__ import annotations

import codecs
from collections.abc import Iterator
from typing import Any

from .anthropic import AnthropicBatchesParser
from .anthropic import AnthropicMessagesParser
from .base import JsonPath
from .base import WireParser
from .bedrock import BedrockConverseParser
from .bedrock import BedrockInvokeParser
from .cohere import CohereV2Parser
from .common import JsonTooDeep
from .common import loads_lenient
from .common import looks_like_json
from .common import openai_error_body
from .common import prompt_strings as _prompt_strings
from .decoding import READABLE_CHARSETS
from .decoding import json_text
from .gemini import GeminiParser
from .multipart import declared_charset
from .ollama import OllamaParser
from .openai import OpenAIChatParser
from .openai import OpenAIEmbeddingsParser
from .openai import OpenAIResponsesParser
from .openai_platform import OpenAIAssistantsParser
from .openai_platform import OpenAIEvalsParser
from .openai_platform import OpenAIFilesParser
from .openai_platform import OpenAIMediaParser
from .openai_platform import OpenAISpeechParser
from .openai_platform import OpenAITranscriptionParser

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
        OpenAIEvalsParser(),
        OpenAISpeechParser(),
        OpenAIMediaParser(),
        OpenAITranscriptionParser(),
        GeminiParser(),
        BedrockConverseParser(),
        BedrockInvokeParser(),
        CohereV2Parser(),
        OllamaParser(),
    )
}

# Operations that generate no tokens when called (uploads, batch submissions, token counts,
# thread bookkeeping, a response's retrieval, a transcription billed per second of audio):
# Meter estimates no usage for them.
# GET of a stored or background response (OpenAI Responses): its usage, once per response id.
RETRIEVE_RESPONSE = "retrieve_response"
NO_TOKEN_OPERATIONS = frozenset(
    {
        "upload_file",
        "create_batch",
        "count_tokens",
        "create_thread",
        "create_message",
        "create_agent",
        RETRIEVE_RESPONSE,
        "transcription",
    }
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


# The inspect_note of a request whose body looks like JSON but does not parse (Identify, Decide).
UNPARSED_JSON_NOTE = "body not read: it looks like JSON but the proxy cannot parse it"
# The inspect_note of a request whose declared charset reads other text than the proxy (F14).
CHARSET_NOTE = "body not read: its declared charset reads other text than the proxy checks"


def charset_problem(content: bytes, content_type: str | None) -> str | None:
    """Why a body's declared `charset` makes a server that honours it read other text than the
    proxy reads (None: it does not). Express/body-parser decodes any `utf-*` charset with
    iconv-lite, UTF-7 included, and aiohttp or Spring any charset at all: `"+AEEASwBJAEE-"` is
    AKIA to them (red-team F14). A charset of the UTF/ASCII/Latin-1 family reads every ASCII
    secret as the proxy does; another is a problem only when its reading of these bytes differs
    from the proxy's, or when the proxy does not know it."""
    charset = declared_charset(content_type or "")
    if charset is None:
        return None
    try:
        codec = codecs.lookup(charset).name
        if codec in READABLE_CHARSETS:
            return None
        theirs = content.decode(codec)
    except LookupError:
        return f"its declared charset {charset!r} is one the proxy cannot read"
    except (UnicodeDecodeError, ValueError):
        return f"its bytes are not valid in its declared charset {charset!r}"
    try:
        ours = json_text(content)
    except (UnicodeDecodeError, LookupError):
        ours = content.decode("utf-8", "replace")
    if theirs != ours:
        return f"its declared charset {charset!r} reads it as other text than the proxy checks"
    return None


def parse_json_body(raw: bytes) -> Any | None:
    """The decoded JSON value of a request/response body, or None (empty, no Unicode, not JSON)."""
    return read_json_body(raw)[0]


def read_json_body(raw: bytes, content_type: str | None = None) -> tuple[Any | None, str | None]:
    """(the body's JSON value or None, why a body that looks like JSON cannot be read or None).

    Read without Python's own limits where lifting them is cheap (an integer longer than int()
    takes is a common.LongNumber); nesting past common.MAX_JSON_DEPTH is not read. A body looks
    like JSON when its first significant character is { or [, or its content-type says JSON:
    the upstream reads it as JSON, so a body the proxy cannot parse must not pass as text, where
    JSON escapes (\\u0041KIA...) hide its secrets and its model is unknown (red-team F1). JSON
    lines (one document per line) are read by the DLP scan line by line: not a problem here."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        return None, None
    try:
        # UTF-8, or UTF-16/32 as RFC 8259 readers (Python's json among them) detect it.
        text = json_text(bytes(raw))
    except (UnicodeDecodeError, LookupError):
        # Other bytes (a stray 0xFF in a string, Latin-1): Node's and other lenient readers read
        # the JSON with replacement characters, so its model is there to judge (red-team F14/F18).
        text = bytes(raw).decode("utf-8", "replace")
    if not text.strip():
        return None, None
    try:
        return loads_lenient(text), None
    except (ValueError, RecursionError) as e:
        if not looks_like_json(text, content_type):
            return None, None
        if not isinstance(e, JsonTooDeep) and json_lines(text):
            return None, None
        why = str(e) if isinstance(e, JsonTooDeep) else f"JSON the proxy cannot parse: {e}"
        return None, why[:200]


def json_lines(text: str) -> bool:
    """Whether every non-blank line of the text is a JSON document of its own (and there are two)."""
    lines = [line for line in text.split("\n") if line.strip()]
    if len(lines) < 2:
        return False
    try:
        for line in lines:
            loads_lenient(line)
    except (ValueError, RecursionError):
        return False
    return True


__all__ = [
    "CHARSET_NOTE",
    "NO_TOKEN_OPERATIONS",
    "RETRIEVE_RESPONSE",
    "PARSERS",
    "PROMPT_KEYS",
    "UNPARSED_JSON_NOTE",
    "SYSTEM_KEYS",
    "charset_problem",
    "error_body",
    "json_lines",
    "looks_like_json",
    "parse_json_body",
    "read_json_body",
    "prompt_strings",
]
