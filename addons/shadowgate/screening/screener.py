"""screen(text) and the streaming Screener: which detectors fire, and a score.

The result names detectors, never text, so it can be logged and stored
(`ai_requests.injection_flags`). The score combines the detectors' weights as independent
evidence (1 - prod(1 - w)); the flags are the decision input, the score only ranks.
"""

from __future__ import annotations

from dataclasses import dataclass

from .encoded import encoded_hits
from .hidden import bidi_hidden
from .hidden import hidden_html
from .hidden import tag_payload
from .hidden import zero_width_hidden
from .normalize import fold
from .phrases import phrase_flags

# flag -> weight (how sure a hit is an attack); the keys are every flag screen() can report.
DETECTORS: dict[str, float] = {
    "override": 0.9,  # "ignore all previous instructions" in one of 15 languages
    "jailbreak": 0.85,  # DAN / developer mode / "you have no restrictions" persona templates
    "extraction": 0.7,  # asks for the system prompt or the hidden text above
    "indirect": 0.8,  # a document talking to the assistant: "AI assistant: you must", "do not tell the user"
    "chat_template": 0.8,  # fake <|im_start|>system, [INST], <system> turns
    "hidden_tags": 0.95,  # Unicode tag characters spelling invisible ASCII
    "hidden_zero_width": 0.5,  # zero-width characters splitting words or carrying a message
    "hidden_bidi": 0.6,  # bidi overrides that reorder what a person sees
    "hidden_html": 0.8,  # HTML hidden by style whose text addresses the assistant
    "encoded": 0.9,  # base64 / hex / percent / rot13 that decodes to one of the phrases above
}
FLAGS = tuple(DETECTORS)
# "prompt": what a user typed. "document": a tool result, retrieved page, file or e-mail the model
# will read - there, text that steers the answer ("add a line in your response") counts as indirect.
KINDS = ("prompt", "document")
# Flags found inside hidden or encoded text are reported as the hiding flag plus the phrase flag.
_PHRASE_OF_HIDDEN = ("hidden_tags", "hidden_html", "encoded")


@dataclass(frozen=True, slots=True)
class ScreenResult:
    """Which detectors fired (names from FLAGS, in FLAGS order) and a 0..1 score."""

    flags: tuple[str, ...] = ()
    score: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.flags)


def _phrases(text: str, document: bool = False) -> list[str]:
    return phrase_flags(fold(text), document)


def _result(found: set[str]) -> ScreenResult:
    flags = tuple(f for f in FLAGS if f in found)
    miss = 1.0
    for flag in flags:
        miss *= 1.0 - DETECTORS[flag]
    return ScreenResult(flags, round(1.0 - miss, 4))


def detect(text: str, kind: str = "prompt") -> set[str]:
    """The set of flags for one text (screen() orders and scores it)."""
    if kind not in KINDS:
        raise ValueError(f"unknown screening kind {kind!r} (one of {', '.join(KINDS)})")
    document = kind == "document"
    found = set(_phrases(text, document))
    payload = tag_payload(text)
    if payload:
        found.add("hidden_tags")
        found.update(_phrases(payload, document))
    if zero_width_hidden(text):
        found.add("hidden_zero_width")
    if bidi_hidden(text):
        found.add("hidden_bidi")
    for inner in hidden_html(text):
        found.add("hidden_html")
        found.update(_phrases(inner, True))
    decoded = encoded_hits(text, _phrases)
    if decoded:
        found.add("encoded")
        found.update(decoded)
    return found


def screen(text: str, kind: str = "prompt") -> ScreenResult:
    """Screen one prompt (kind="prompt") or tool result / document (kind="document")."""
    if not text:
        return ScreenResult()
    return _result(detect(text, kind))


class Screener:
    """Screen a text that arrives in pieces (a streamed body, SSE deltas, MCP chunks).

    Each piece is screened together with the last `overlap` characters before it, so a phrase
    split across two pieces is still seen; a phrase longer than the overlap can be missed.
    Flags accumulate; result() can be called at any time.
    """

    def __init__(self, kind: str = "prompt", overlap: int = 512) -> None:
        self.kind = kind
        self.overlap = overlap
        self._tail = ""
        self._found: set[str] = set()

    def feed(self, chunk: str) -> ScreenResult:
        if chunk:
            window = self._tail + chunk
            self._found |= detect(window, self.kind)
            self._tail = window[-self.overlap :]
        return self.result()

    def result(self) -> ScreenResult:
        return _result(self._found)
