"""Keys broken by spaces or a line break: `ghp_1a2B3c4D5e6F7g8H9i` + newline + `0J1k2L3m4N5o6P7q8R9s`.

A model reads the pieces as one key (and a user who pastes a key from a wrapped terminal or a PDF
sends them that way), but the other detectors stop at the break. Joining any token with the next
word would redact words, so a rejoin is tried only for formats whose key has a fixed length (or
a fixed structure around a fixed marker) after a distinctive prefix:

* the prefix (whole), then the first piece (maybe empty), cut short of the format's length by a
  break;
* up to three more pieces, each after a break of one or two blanks, or a line break with up to
  four blanks around it; a piece is only key characters;
* the pieces must add up to exactly the format's length, ending where a piece ends (a word that
  runs past the length is no key), and the joined key must pass the format's own detector
  (its placeholder and filler checks included);
* a piece of four or more lower-case letters only is a word, not a piece of a key.

The finding spans from the prefix to the end of the last piece, breaks included, so redaction
replaces all of it. Formats of variable length (Stripe, Slack, generic `sk-` keys, passwords) are
not joined: where such a key ends cannot be told from the text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from . import servicekeys
from .model import Detector
from .model import Hits
from .model import Source


@dataclass(frozen=True, slots=True)
class SplitFormat:
    type: str
    lengths: frozenset[int]  # the key's possible lengths after the prefix
    piece: re.Pattern[str]  # one piece: a maximal run of the key's characters
    body: re.Pattern[str]  # the whole joined body after the prefix


_ALNUM = re.compile(r"[A-Za-z0-9]+")
_KEY = re.compile(r"[A-Za-z0-9_\-]+")
_OPENAI_BODY = r"(?:[A-Za-z0-9_\-]{74}|[A-Za-z0-9_\-]{58})T3BlbkFJ(?:[A-Za-z0-9_\-]{74}|[A-Za-z0-9_\-]{58})"

_GITHUB = SplitFormat("GITHUB_TOKEN", frozenset({36}), _ALNUM, re.compile(r"[A-Za-z0-9]{36}"))
_OPENAI = SplitFormat("OPENAI_API_KEY", frozenset({124, 140, 156}), _KEY, re.compile(_OPENAI_BODY))
_FORMATS: dict[str, SplitFormat] = {
    **{f"gh{c}_": _GITHUB for c in "pousr"},
    "github_pat_": SplitFormat(
        "GITHUB_TOKEN", frozenset({82}), re.compile(r"[A-Za-z0-9_]+"), re.compile(r"[A-Za-z0-9]{22}_[A-Za-z0-9]{59}")
    ),
    "sk-ant-api03-": SplitFormat("ANTHROPIC_API_KEY", frozenset({95}), _KEY, re.compile(r"[A-Za-z0-9_\-]{93}AA")),
    "sk-proj-": _OPENAI,
    "sk-svcacct-": _OPENAI,
    "sk-admin-": _OPENAI,
    **{p: SplitFormat("AWS_ACCESS_KEY", frozenset({16}), re.compile(r"[A-Z2-7]+"), re.compile(r"[A-Z2-7]{16}")) for p in ("AKIA", "ASIA")},
}  # fmt: skip

# Where a prefix ends, found from one character with the rest checked behind it in the same C
# search (a few tens of microseconds per 50 KB each).
_PREFIX_RXS = (
    re.compile(r"_(?:(?<=gh[pousr]_)|(?<=github_)pat_)"),
    re.compile(r"-(?<=sk-)(?:ant-api03|proj|svcacct|admin)-"),
    re.compile(r"IA(?<=A[KS]IA)"),
)
_BREAK = re.compile(r"[ \t]{1,2}(?![ \t\n\r])|[ \t]{0,4}\r?\n[ \t]{0,4}")
_MAX_PIECES = 4


def _word(piece: str) -> bool:
    return len(piece) >= 4 and piece.isascii() and piece.isalpha() and piece.islower()


def detect_split_keys(src: Source, hits: Hits) -> None:
    text = src.text
    for rx in _PREFIX_RXS:
        for m in rx.finditer(text):
            body_start = m.end()
            prefix_start = body_start - _prefix_length(text, body_start)
            if prefix_start < 0 or (prefix_start and text[prefix_start - 1].isalnum()):
                continue
            fmt = _FORMATS[text[prefix_start:body_start]]
            found = _join(text, body_start, fmt)
            if found is None:
                continue
            end, body = found
            key = text[prefix_start:body_start] + body
            if _passes_detector(key, fmt.type):
                hits.add(prefix_start, end, fmt.type, "split_key")


def _prefix_length(text: str, body_start: int) -> int:
    for prefix in _FORMATS:
        if text.startswith(prefix, body_start - len(prefix)):
            return len(prefix)
    return body_start + 1  # cannot happen: every search ends a prefix


def _join(text: str, at: int, fmt: SplitFormat) -> tuple[int, str] | None:
    """(end of the last piece, the joined body) when pieces from `at` make exactly one of the
    format's lengths; None otherwise (not split, too long, a word, too many pieces)."""
    longest = max(fmt.lengths)
    first = fmt.piece.match(text, at)
    pieces = [first.group() if first is not None else ""]  # a break may follow the prefix itself
    if len(pieces[0]) >= min(fmt.lengths):
        return None  # a whole key: the other detectors see it
    end = at + len(pieces[0])
    total = len(pieces[0])
    while len(pieces) < _MAX_PIECES:
        gap = _BREAK.match(text, end)
        piece = fmt.piece.match(text, gap.end()) if gap is not None else None
        if piece is None or _word(piece.group()):
            return None
        pieces.append(piece.group())
        end = piece.end()
        total += len(piece.group())
        if total in fmt.lengths:
            body = "".join(pieces)
            return (end, body) if fmt.body.fullmatch(body) else None
        if total > longest:
            return None
    return None


def _passes_detector(key: str, type_: str) -> bool:
    """The joined key is what the format's detector reports, whole (placeholders, filler and
    documentation examples are not)."""
    hits = Hits()
    servicekeys.DETECTOR.run(Source(key), hits)
    return any(f.start == 0 and f.end == len(key) and f.type == type_ for f in hits)


SPLIT_KEY_TYPES = frozenset(fmt.type for fmt in _FORMATS.values())

DETECTOR = Detector("split_keys", SPLIT_KEY_TYPES, detect_split_keys)
