"""Text normalisation before matching: the same folding for the text and for the patterns.

Attackers dodge keyword screens with compatibility forms (full-width letters, ligatures, math
alphanumerics), invisible characters inside words (zero-width space, soft hyphen, word joiner),
Unicode tag characters, and look-alike letters from other scripts ("іgnоrе" with Cyrillic і and о).
`fold` undoes those: NFKC, drop every format character (category Cf) and other invisibles,
casefold, and map Cyrillic/Greek look-alikes to Latin - but only inside words that also hold Latin
letters, so Russian or Greek text itself stays as it is for the patterns written in those scripts.
"""

from __future__ import annotations

import re
import unicodedata

# Invisible characters that are not category Cf but still render as nothing.
_EXTRA_INVISIBLE = "\u115f\u1160\u3164\uffa0\u034f\u17b4\u17b5"

# Every format (Cf) character in the BMP and the tag block, plus the extra invisibles: built once.
_INVISIBLE_CHARS = (
    "".join(ch for ch in map(chr, range(0x10000)) if unicodedata.category(ch) == "Cf")
    + "".join(map(chr, range(0xE0000, 0xE0080)))
    + _EXTRA_INVISIBLE
)
_DROP_INVISIBLE = {ord(ch): None for ch in _INVISIBLE_CHARS}
INVISIBLE_RE = re.compile("[" + re.escape(_INVISIBLE_CHARS) + "]")

# Cyrillic and Greek letters that look like Latin ones (lower case: applied after casefold).
_CONFUSABLES = {
    "а": "a", "в": "b", "е": "e", "ё": "e", "к": "k", "м": "m", "н": "h", "о": "o", "р": "p",
    "с": "c", "т": "t", "у": "y", "х": "x", "і": "i", "ї": "i", "ј": "j", "ѕ": "s", "һ": "h",
    "ԁ": "d", "ԛ": "q", "ԝ": "w", "ɡ": "g", "α": "a", "β": "b", "ε": "e", "η": "n", "ι": "i",
    "κ": "k", "ν": "v", "ο": "o", "ρ": "p", "τ": "t", "υ": "u", "χ": "x", "ϲ": "c", "ӏ": "l",
    "ı": "i", "ǃ": "!",
}  # fmt: skip
_CONFUSABLE_TABLE = str.maketrans(_CONFUSABLES)
# Digits and symbols standing in for letters inside a word ("1gn0r3", "pr3v!ous").
_LEET_TABLE = str.maketrans({"0": "o", "1": "i", "3": "e", "4": "a", "5": "s", "7": "t", "@": "a", "$": "s", "!": "i"})
_MIXED_WORD = re.compile(r"[^\W\d_]*[a-z][^\W\d_]*")
_LEET_WORD = re.compile(r"\b(?=[a-z0-9@$!]*[a-z])(?=[a-z0-9@$!]*[0-9@$!][a-z])[a-z0-9@$!]{3,}")
_HAS_CONFUSABLE = re.compile("[" + "".join(_CONFUSABLES) + "]")
_SPACES = re.compile(r"[^\S\n]+")


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    return word.translate(_CONFUSABLE_TABLE) if _HAS_CONFUSABLE.search(word) else word


def _fold_leet(match: re.Match[str]) -> str:
    return match.group(0).translate(_LEET_TABLE)


def fold(text: str) -> str:
    """The text as the patterns see it (patterns are folded the same way when compiled)."""
    text = text.translate(_DROP_INVISIBLE)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text)
    text = text.casefold()
    if not text.isascii() and _HAS_CONFUSABLE.search(text):
        text = _MIXED_WORD.sub(_fold_word, text)
    if any(c in text for c in "013457@$!"):
        text = _LEET_WORD.sub(_fold_leet, text)
    return _SPACES.sub(" ", text)


def fold_pattern(pattern: str) -> str:
    """A regex source folded like the text, so non-ASCII literals match their folded form.

    Only non-ASCII characters are casefolded: ASCII in a pattern is written in lower case already,
    and casefolding it would turn escapes such as \\S or \\W into their opposites.
    """
    if pattern.isascii():
        return pattern
    return "".join(c.casefold() if ord(c) > 127 else c for c in unicodedata.normalize("NFKC", pattern))
