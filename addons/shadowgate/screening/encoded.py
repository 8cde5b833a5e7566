"""Encoded payloads: base64, hex, percent-encoding and ROT13 that decode to an instruction.

A blob alone is not an attack (prompts carry keys, hashes, images, minified data); a blob whose
decoded text trips a phrase detector is. Every candidate run is decoded and checked to be mostly
printable text; the decoded texts are screened together, in one pass, so the cost follows the
length of the text and not the number of blobs in it. (Only the first 64 runs were tried before:
an instruction in the 65th blob, after 64 harmless ones, was never decoded.)
"""

from __future__ import annotations

import base64
import binascii
import codecs
import re
from collections.abc import Callable
from urllib.parse import unquote

_BASE64_RUN = re.compile(r"(?<![A-Za-z0-9+/_-])[A-Za-z0-9+/]{16,}={0,2}(?![A-Za-z0-9+/=])|[A-Za-z0-9_-]{24,}={0,2}")
_HEX_RUN = re.compile(r"(?<![0-9A-Fa-f])(?:(?:\\x|0x)?[0-9A-Fa-f]{2}[\s:,]?){12,}")
_PERCENT_RUN = re.compile(r"(?:%[0-9A-Fa-f]{2}|[A-Za-z0-9._~+-]){0,400}(?:%[0-9A-Fa-f]{2}[A-Za-z0-9._~+-]*){6,}")
_ROT13_HINT = re.compile(r"\brot[\s-]?13\b|\bcaesar\b", re.IGNORECASE)
_JOIN = "\n\n"  # between decoded texts screened in one pass
MIN_DECODED_LETTERS = 8


def _texty(data: bytes) -> str | None:
    """Decoded bytes as text when they are mostly printable UTF-8 words."""
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None
    printable = sum(1 for c in text if c.isprintable() or c in "\n\t")
    letters = sum(1 for c in text if c.isalpha())
    if letters < MIN_DECODED_LETTERS or printable < 0.9 * len(text) or " " not in text.strip():
        return None
    return text


def _base64(run: str) -> str | None:
    run = run.rstrip("=")
    padded = run + "=" * (-len(run) % 4)
    try:
        data = base64.b64decode(padded, altchars=b"-_" if ("-" in run or "_" in run) else None, validate=True)
    except (binascii.Error, ValueError):
        return None
    return _texty(data)


def _hex(run: str) -> str | None:
    digits = re.sub(r"\\x|0x|[\s:,]", "", run)
    if len(digits) % 2:
        digits = digits[:-1]
    try:
        return _texty(bytes.fromhex(digits))
    except ValueError:
        return None


def decoded_texts(text: str) -> list[str]:
    """Every decoded text hidden in encoded runs (no more, together, than the text is long)."""
    out: list[str] = []
    for pattern, decode in ((_BASE64_RUN, _base64), (_HEX_RUN, _hex)):
        for match in pattern.finditer(text):
            decoded = decode(match.group(0).strip())
            if decoded:
                out.append(decoded)
    if "%" in text:
        for match in _PERCENT_RUN.finditer(text):
            out.append(unquote(match.group(0).replace("+", " ")))
    if _ROT13_HINT.search(text):
        out.append(codecs.decode(text, "rot13"))
    return out


def encoded_hits(text: str, screen_folded: Callable[[str], list[str]]) -> list[str]:
    """The phrase flags that fire on text decoded from the runs in `text`."""
    decoded = decoded_texts(text)
    return screen_folded(_JOIN.join(decoded)) if decoded else []
