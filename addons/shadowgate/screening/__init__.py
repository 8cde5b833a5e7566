"""Prompt screening (OWASP LLM01): find injection and jailbreak patterns in prompts, tool results
and retrieved documents. A pure-Python library (standard library only, no mitmproxy), like
shadowgate.dlp.

    from shadowgate.screening import screen, Screener

    result = screen(text)           # ScreenResult(flags=("override", "hidden_tags"), score=0.995)
    screen(tool_result, kind="document")   # a tool result / retrieved text: answer-steering counts
    if result: ...                  # any detector fired
    s = Screener()                  # streaming: s.feed(chunk) per piece, s.result() at the end

FLAGS lists every detector name (the only values a result can hold: names, never text), and
DETECTORS maps each to its weight in the score. What each detects and the measured accuracy:
docs/screening.md.
"""

from __future__ import annotations

from .screener import DETECTORS
from .screener import FLAGS
from .screener import KINDS
from .screener import Screener
from .screener import ScreenResult
from .screener import screen

__all__ = ["DETECTORS", "FLAGS", "KINDS", "ScreenResult", "Screener", "screen"]
