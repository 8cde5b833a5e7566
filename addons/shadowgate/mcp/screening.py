"""Prompt-injection screening of MCP tool results, with the prompt-screening library
(shadowgate.screening, kind "document": the model reads a tool result on someone's behalf), plus
URLs that smuggle data out in their query.

The library's detectors are recorded under the MCP stage's names, which mcp_calls has always
held: `instruction` (override, jailbreak, extraction, indirect, chat-template, encoded or hidden
HTML instructions), `tag_chars` (Unicode tag characters), `hidden_text` (zero-width or bidi
tricks), and `exfil_url`.

The screen runs on the event loop, inside the response tap, so it looks at most SCREEN_HEAD_CHARS
from the start and SCREEN_TAIL_CHARS from the end of a result's text (about 80 ms at worst on
the project machine): an instruction buried in the middle of a longer result is not seen. A
server entry's `max_result_bytes` caps results where that matters.
"""

from __future__ import annotations

import re
from typing import Any

from shadowgate.screening import screen as screen_text
from shadowgate.wireformats.common import every_string

SCREEN_HEAD_CHARS = 64 * 1024
SCREEN_TAIL_CHARS = 64 * 1024

_FLAG_OF = {
    "override": "instruction",
    "jailbreak": "instruction",
    "extraction": "instruction",
    "indirect": "instruction",
    "chat_template": "instruction",
    "encoded": "instruction",
    "hidden_html": "instruction",
    "hidden_tags": "tag_chars",
    "hidden_zero_width": "hidden_text",
    "hidden_bidi": "hidden_text",
}
_ORDER = ("instruction", "tag_chars", "hidden_text", "exfil_url")
# A URL whose query carries a long base64/hex value: the classic markdown-image exfiltration.
_EXFIL_URL = re.compile(
    r"https?://[^\s\"'<>()]+\?[^\s\"'<>()]*?=(?:[A-Za-z0-9+/_-]{24,}={0,2}|[0-9a-fA-F]{32,})(?:[&#\s\"'<>()]|$)"
)


def _screened_part(text: str) -> str:
    if len(text) <= SCREEN_HEAD_CHARS + SCREEN_TAIL_CHARS:
        return text
    return text[:SCREEN_HEAD_CHARS] + "\n" + text[-SCREEN_TAIL_CHARS:]


def injection_flags(text: str) -> list[str]:
    """Which injection signs a tool result's text carries: instruction, tag_chars, hidden_text, exfil_url."""
    text = _screened_part(text)
    found = {_FLAG_OF[f] for f in screen_text(text, kind="document").flags if f in _FLAG_OF}
    if _EXFIL_URL.search(text):
        found.add("exfil_url")
    return [f for f in _ORDER if f in found]


def screen(result: Any) -> list[str]:
    """The injection flags of a tool result, over every string in it (keys too)."""
    # The value is bounded: the response taps hand over messages up to shadowgate_max_parse_bytes.
    return injection_flags("\n".join(every_string(result, keys=True)))
