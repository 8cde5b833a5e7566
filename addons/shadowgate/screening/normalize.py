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


def _ranges(codepoints: list[int]) -> str:
    """A regex character class body of code-point ranges (a class of 1,000 single characters
    that includes astral ones is checked one by one; ranges are checked fast)."""
    out, start, prev = [], codepoints[0], codepoints[0]
    for cp in [*codepoints[1:], -1]:
        if cp == prev + 1:
            prev = cp
            continue
        out.append(re.escape(chr(start)) + ("-" + re.escape(chr(prev)) if prev > start else ""))
        start = prev = cp
    return "".join(out)


# Every format (Cf) character in the BMP, the tag block, and the extra invisibles.
_INVISIBLE_POINTS = sorted(
    {cp for cp in range(0x10000) if unicodedata.category(chr(cp)) == "Cf"}
    | set(range(0xE0000, 0xE0080))
    | {ord(c) for c in _EXTRA_INVISIBLE}
)
INVISIBLE_RE = re.compile("[" + _ranges(_INVISIBLE_POINTS) + "]")

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
_CONF_CLASS = "[" + "".join(_CONFUSABLES) + "]"
# A word holding both a Latin letter and a look-alike (checked only at word starts).
_MIXED_WORD = re.compile(r"\b(?=\w*[a-z])(?=\w*" + _CONF_CLASS + r")\w+")
# A digit or symbol touching a letter: the only places a leet substitution can be.
# (A trailing "!" or "$" stays: "instructions!" must keep its word boundary.)
_LEET_SPOT = re.compile(r"[013457@$!]+(?=[a-z])|(?<=[a-z])[013457]+(?![0-9])")
_HAS_CONFUSABLE = re.compile(_CONF_CLASS)
# Runs of blanks other than one plain space (one space needs no rewrite, and there are millions).
_SPACES = re.compile(r"[^\S\n]{2,}|[^\S\n ]")
# Blank lines and the blanks around a line break: one line break. The phrase patterns are searched
# in windows of gates.WINDOW characters from their first word, so 800 line breaks between
# "ignore" and "all previous instructions" once put the phrase out of reach.
_LINE_BREAKS = re.compile(r"[^\S\n]+\n\s*|\n\s+")


def _fold_word(match: re.Match[str]) -> str:
    word = match.group(0)
    return word.translate(_CONFUSABLE_TABLE) if _HAS_CONFUSABLE.search(word) else word


def _fold_leet(match: re.Match[str]) -> str:
    return match.group(0).translate(_LEET_TABLE)


_LEET_ANY = re.compile(r"[a-z][013457@$!]|[013457@$!][a-z]")


# Typographic quotes, as word processors and phones write them ("doesn’t"), read as ASCII ones.
_QUOTES = str.maketrans({"\u2018": "'", "\u2019": "'", "\u02bc": "'", "\u201b": "'", "\u201c": '"', "\u201d": '"'})


def fold(text: str) -> str:
    """The text as the patterns see it (patterns are folded the same way when compiled)."""
    if not text.isascii() and INVISIBLE_RE.search(text):
        text = INVISIBLE_RE.sub("", text)
    if not text.isascii():
        text = unicodedata.normalize("NFKC", text).translate(_QUOTES)
    text = text.casefold()
    if not text.isascii() and _HAS_CONFUSABLE.search(text):
        text = _MIXED_WORD.sub(_fold_word, text)
    if _LEET_ANY.search(text):
        text = _LEET_SPOT.sub(_fold_leet, text)
    return _SPACES.sub(" ", _LINE_BREAKS.sub("\n", text))


def fold_pattern(pattern: str) -> str:
    """A regex source folded like the text, so non-ASCII literals match their folded form.

    Only non-ASCII characters are casefolded: ASCII in a pattern is written in lower case already,
    and casefolding it would turn escapes such as \\S or \\W into their opposites.
    """
    if pattern.isascii():
        return pattern
    return "".join(c.casefold() if ord(c) > 127 else c for c in unicodedata.normalize("NFKC", pattern))
