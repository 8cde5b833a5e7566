"""Hidden text: characters a person does not see but a model reads, and HTML hidden by style.

* Unicode tag characters (U+E0000-E007F) spell ASCII invisibly ("ASCII smuggling"). The only
  legitimate use is an emoji subdivision flag (black flag U+1F3F4, tag letters, cancel tag U+E007F),
  which is skipped. The smuggled ASCII is returned so the phrase detectors can read it too.
* Zero-width and other format characters: one inside a Latin word splits a keyword
  ("ig\\u200bnore"); many of them encode a message in binary. ZWJ between emoji and ZWNJ/ZWJ in
  scripts that need them (Persian, Indic) are not counted.
* Bidi controls that reorder what is displayed (Trojan Source): the overrides and isolates, unless
  the text is right-to-left script, where isolates and embeddings are legitimate.
* HTML: elements styled display:none, visibility:hidden, font-size:0, opacity:0, white text, or
  pushed off-screen, whose text addresses an assistant or carries an instruction.
"""

from __future__ import annotations

import re

_TAGS = re.compile("[\U000e0000-\U000e007f]+")
_FLAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0030-\U000e0039\U000e0061-\U000e007a]{2,7}\U000e007f")
# Zero-width and invisible format characters used to hide or split text.
_ZERO_WIDTH = "\u200b\u200c\u200d\u2060\u2061\u2062\u2063\u2064\ufeff\u180e\u00ad\u034f\u115f\u1160\u3164\uffa0"
_ZERO_WIDTH_RE = re.compile("[" + _ZERO_WIDTH + "]")
_IN_LATIN_WORD = re.compile("[A-Za-z][" + _ZERO_WIDTH + "]+[A-Za-z]")
_ZERO_WIDTH_RUN = re.compile("[" + _ZERO_WIDTH + "]{3,}")
_JOINERS_OK = re.compile(
    "(?<=[\u0600-\u06ff\u0900-\u0dff\U0001f000-\U0001faff\u2600-\u27bf\ufe0f])[\u200c\u200d]"
    "|[\u200c\u200d](?=[\u0600-\u06ff\u0900-\u0dff\U0001f000-\U0001faff\u2600-\u27bf])"
)
ZERO_WIDTH_MIN = 4  # this many hidden format characters in one text is a message, not an accident
_BIDI_OVERRIDE = re.compile("[\u202d\u202e]")  # LRO, RLO: always reorder what is shown
_BIDI_OTHER = re.compile("[\u202a\u202b\u202c\u2066\u2067\u2068\u2069]")
_RTL_LETTER = re.compile("[\u0590-\u08ff\ufb1d-\ufdff\ufe70-\ufeff]")

_HIDDEN_STYLE = (
    r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:\.0+)?\s*(?:px|pt|em|rem|%)?\s*(?=[;\"'!]|$)|"
    r"opacity\s*:\s*0(?:\.0+)?\s*(?=[;\"'!]|$)|(?<![-\w])color\s*:\s*(?:#fff(?:fff)?|white|rgba?\(\s*255\s*,\s*255\s*,\s*255)"
    r"|(?:left|top|text-indent)\s*:\s*-\d{3,}|(?:height|width|max-height)\s*:\s*0(?:px)?\s*;[^\"']*overflow\s*:\s*hidden"
    r"|clip\s*:\s*rect\(\s*0"
)
# The opening tag of a hidden element; its text runs to the first closing tag of that name, or
# to the end of the text (no length limit: 4000 characters of padding once hid what followed).
_HIDDEN_OPEN = re.compile(
    r"<(\w+)\b[^>]*?(?:style\s*=\s*[\"'][^\"']*?(?:"
    + _HIDDEN_STYLE
    + r")[^\"']*[\"']|\shidden(?:\s*=\s*[\"']?[^\"'>]*[\"']?)?"
    r"(?=[\s/>]))[^>]*>",
    re.IGNORECASE | re.DOTALL,
)
_VOID = frozenset(
    {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}
)
_TAG_STRIP = re.compile(r"<[^>]{0,500}>")
# Hidden text that addresses an assistant or gives an order (the detectors' folded form).
_ADDRESSED = re.compile(
    r"\b(?:you|your|assistant|ai|llm|model|chatbot|gpt|agent|instructions?|ignore|must|do not|don'?t|"
    r"always|never|reply|respond|say|tell|send|include|recommend|visit|summar\w+)\b",
    re.IGNORECASE,
)


def tag_payload(text: str) -> str:
    """The ASCII spelled by tag characters outside emoji flag sequences ('' when none)."""
    if not _TAGS.search(text):
        return ""
    stripped = _FLAG_SEQUENCE.sub("", text)
    runs = _TAGS.findall(stripped)
    return " ".join("".join(chr(ord(c) - 0xE0000) for c in run if 0x20 <= ord(c) - 0xE0000 < 0x7F) for run in runs)


def zero_width_hidden(text: str) -> bool:
    """Zero-width characters splitting a Latin word, in a run, or in numbers that carry a message."""
    if not _ZERO_WIDTH_RE.search(text):
        return False
    if _IN_LATIN_WORD.search(text) or _ZERO_WIDTH_RUN.search(text):
        return True
    count = len(_ZERO_WIDTH_RE.findall(text)) - len(_JOINERS_OK.findall(text))
    if text.startswith("\ufeff"):
        count -= 1
    return count >= ZERO_WIDTH_MIN


def bidi_hidden(text: str) -> bool:
    """Bidi controls that reorder displayed text: overrides always, others outside RTL text."""
    if _BIDI_OVERRIDE.search(text):
        return True
    return bool(_BIDI_OTHER.search(text)) and not _RTL_LETTER.search(text)


def hidden_html(text: str) -> list[str]:
    """The text of HTML elements hidden by style or the hidden attribute that address a reader.

    The hidden text is returned so the caller can screen it; only text that talks to an assistant
    or gives an order counts, since pages hide menus and templates all the time.
    """
    if "<" not in text:
        return []
    found = []
    pos = 0
    while (match := _HIDDEN_OPEN.search(text, pos)) is not None:
        tag = match.group(1).lower()
        if tag in _VOID:  # no text of its own
            pos = match.end()
            continue
        close = re.compile(rf"</{re.escape(tag)}\s*>", re.IGNORECASE).search(text, match.end())
        end = len(text) if close is None else close.start()
        inner = _TAG_STRIP.sub(" ", text[match.end() : end]).strip()
        if len(inner) >= 8 and _ADDRESSED.search(inner):
            found.append(inner)
        pos = max(end, match.end())  # elements do not overlap: each character is read once
    return found
