"""Runs of base64 or percent-encoding in a text that decode to readable text, for the scanner to
scan again: a key pasted as `c2stYW50LWFwaTAz...` or `sk%2Dant%2Dapi03...` is as readable to a
model (or to whoever decodes it later) as the key itself.

A run is a candidate when it is long enough (MIN_BASE64 / MIN_PERCENT characters) and decodes
to UTF-8 text that is mostly printable; binary (images, hashes, keys that merely look like
base64) is left alone. Which alphabet: `-` or `_` means base64url, `+` or `/` standard, both
means neither. Lines of a wrapped (MIME-style) run are decoded together, and one by one if the
whole does not decode.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import unquote

MIN_BASE64 = 24  # 18 bytes decoded: shorter than any key worth decoding for
MIN_PERCENT = 12
_MIME_LINE_MIN = 40  # wrapped base64 (MIME 76, PEM 64) has long lines of whole quads

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
# One byte per character: "a" in the base64 alphabets, " " not. Finding MIN_BASE64 "a"s in a row
# there is a memory search, ~20 times faster than a character-class pattern over the text.
_BASE64_CLASSES = bytes(ord("a") if c in _BASE64_ALPHABET else ord(" ") for c in range(256))
_BASE64_START = b"a" * MIN_BASE64
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,2}(?:\r?\n[A-Za-z0-9+/_-]{4,}={0,2})*")
# One escape, then the run around it: a single pattern with the escape in the middle backtracks
# quadratically over a long word that holds a stray "%".
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_PERCENT_RUN = re.compile(r"(?:[A-Za-z0-9._~+-]|%[0-9A-Fa-f]{2})+")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+-")
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_HEX = "0123456789abcdefABCDEF-"


@dataclass(frozen=True, slots=True)
class Run:
    start: int
    end: int
    decoded: str
    encoding: str  # "base64" | "percent"


def base64_classes(text: str, latin1: bytes | None = None) -> bytes:
    """One byte per character of text: "a" in the base64 alphabets, " " not. latin1: the text
    encoded to Latin-1 (characters outside it as "?"), when the caller has it already."""
    if latin1 is None:
        latin1 = text.encode("ascii") if text.isascii() else text.encode("latin-1", "replace")
    return latin1.translate(_BASE64_CLASSES)


def may_hold_runs(text: str, classes: bytes | None = None) -> bool:
    """False when text surely holds no run: the scanner's fast path skips the rest.
    classes: base64_classes(text), when the caller has it."""
    return "%" in text or _BASE64_START in (base64_classes(text) if classes is None else classes)


def encoded_runs(
    text: str, skip: Callable[[int, int], bool] = lambda start, end: False, classes: bytes | None = None
) -> Iterator[Run]:
    """The runs of text that decode to readable text, base64 first, then percent-encoded.
    skip(start, end): True for a span not worth decoding (the caller found a secret there).
    classes: base64_classes(text), when the caller has it."""
    if classes is None:
        classes = base64_classes(text)
    at = classes.find(_BASE64_START)
    while at >= 0:
        m = _BASE64_RUN.match(text, at)
        if m is None:  # cannot happen: the classes say the run is there
            break
        at = classes.find(_BASE64_START, m.end())
        start, end = m.span()
        first_line = text.find("\n", start, end)
        if first_line >= 0 and not _wrapped(text[start:end]):
            end = first_line  # not a wrapped block: the next line is another value, or prose
            if text[end - 1] == "\r":
                end -= 1
        run = text[start:end]
        if not run.strip(_HEX) or skip(start, end):
            continue  # hex (a hash, a UUID) decodes to binary, never to text worth scanning
        decoded = _base64_text(run)
        if decoded is not None:
            yield Run(start, end, decoded, "base64")
        elif "\n" in run:
            for line in re.finditer(r"[^\r\n]+", run):
                if len(line.group()) >= MIN_BASE64 and (decoded := _base64_text(line.group())) is not None:
                    yield Run(start + line.start(), start + line.end(), decoded, "base64")
    if "%" not in text:
        return
    done = 0
    for escape in _PERCENT_ESCAPE.finditer(text):
        if escape.start() < done:
            continue  # inside the run already taken
        start = escape.start()
        while start > done and text[start - 1] in _UNRESERVED:
            start -= 1  # an escape further left would have taken this stretch: a "%" ends it
        m = _PERCENT_RUN.match(text, start)
        if m is None:  # cannot happen: the escape itself matches
            continue
        done = m.end()
        if m.end() - m.start() < MIN_PERCENT or skip(m.start(), m.end()):
            continue
        try:
            decoded = unquote(m.group(), errors="strict")
        except UnicodeDecodeError:
            continue
        if _readable(decoded):
            yield Run(m.start(), m.end(), decoded, "percent")


def _wrapped(run: str) -> bool:
    """Whether a run over several lines is one wrapped base64 block (MIME's 76 columns with CRLF or
    LF, PEM's 64, or any fixed width of whole quads): every line but the last the same length."""
    width = run.index("\n")
    width -= run[width - 1] == "\r"
    if width % 4:
        return False
    if width >= _MIME_LINE_MIN:
        return True  # decided by the first line alone: no copy of a long block
    lines = run.replace("\r\n", "\n").split("\n")
    return all(len(line) == width for line in lines[:-1]) and 0 < len(lines[-1]) <= width


def _base64_text(run: str) -> str | None:
    """The text a base64 run decodes to, or None if it is not readable text."""
    compact = run.replace("\r", "").replace("\n", "").rstrip("=")
    urlsafe = "-" in compact or "_" in compact
    if urlsafe:
        if "+" in compact or "/" in compact:
            return None
        compact = compact.replace("-", "+").replace("_", "/")
    if len(compact) % 4 == 1:
        compact = compact[:-1]  # a stray character after a whole run of quads
    compact += "=" * (-len(compact) % 4)
    try:
        raw = binascii.a2b_base64(compact, strict_mode=True)
        decoded = raw.decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    return decoded if _readable(decoded) else None


def _readable(decoded: str) -> bool:
    """Mostly printable: at most one control character in twenty."""
    return bool(decoded) and len(_CONTROLS.findall(decoded)) * 20 <= len(decoded)
