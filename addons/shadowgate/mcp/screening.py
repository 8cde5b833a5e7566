"""Prompt-injection screening of MCP tool results: instructions aimed at the model, invisible tag
characters, and URLs that smuggle data out in their query."""

from __future__ import annotations

import re
from typing import Any

MAX_SCREEN_CHARS = 1024 * 1024

_INSTRUCTION = re.compile(
    r"\b(?:ignore|disregard|forget|override)\s+(?:all\s+|any\s+)?(?:of\s+)?(?:the\s+|your\s+)?"
    r"(?:previous|prior|above|earlier|preceding|system)\s+(?:instructions?|prompts?|messages?|context|rules)"
    r"|\byou\s+are\s+now\s+(?:a|an|in)\b"
    r"|\bnew\s+instructions?\s*:"
    r"|<\s*/?\s*(?:system|important|instructions?)\s*>"
    r"|\bdo\s+not\s+(?:tell|inform|mention\s+(?:this\s+)?to)\s+the\s+user\b",
    re.IGNORECASE,
)
_TAG_CHARS = re.compile("[\U000e0000-\U000e007f]")
# A URL whose query carries a long base64/hex value: the classic markdown-image exfiltration.
_EXFIL_URL = re.compile(
    r"https?://[^\s\"'<>()]+\?[^\s\"'<>()]*?=(?:[A-Za-z0-9+/_-]{24,}={0,2}|[0-9a-fA-F]{32,})(?:[&#\s\"'<>()]|$)"
)


def injection_flags(text: str) -> list[str]:
    """Which injection patterns a tool result carries: instruction, tag_chars, exfil_url."""
    text = text[:MAX_SCREEN_CHARS]
    flags = []
    if _INSTRUCTION.search(text):
        flags.append("instruction")
    if _TAG_CHARS.search(text):
        flags.append("tag_chars")
    if _EXFIL_URL.search(text):
        flags.append("exfil_url")
    return flags


def _strings(value: Any, out: list[str], budget: list[int]) -> None:
    """Every string in a JSON value (keys too), up to a character budget."""
    if budget[0] <= 0:
        return
    if isinstance(value, str):
        out.append(value)
        budget[0] -= len(value)
    elif isinstance(value, dict):
        for k, v in value.items():
            _strings(k, out, budget)
            _strings(v, out, budget)
    elif isinstance(value, list):
        for v in value:
            _strings(v, out, budget)


def screen(result: Any) -> list[str]:
    """The injection flags of a tool result, over every string in it (keys too)."""
    texts: list[str] = []
    _strings(result, texts, [MAX_SCREEN_CHARS])
    return injection_flags("\n".join(texts))
