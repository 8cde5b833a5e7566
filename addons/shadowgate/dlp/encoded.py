r"""Runs of encoded text in a text that decode to readable text, for the scanner to scan again: a
key pasted as `c2stYW50LWFwaTAz...` (base64), `sk%2Dant%2Dapi03...` (percent), `\x41KIA...` or
`\u0041KIA...` (escapes left as text), `&#65;KIA...` (HTML character references), `414b4941...`
(hex) or `IFFUSQKB...` (base32) is as readable to a model (or to whoever decodes it later) as the
key itself.

A run is a candidate when it is long enough and decodes to UTF-8 text that is mostly printable;
binary (images, hashes, keys that merely look like base64) is left alone.

* base64 (MIN_BASE64 characters): `-` or `_` means base64url, `+` or `/` standard, both means
  neither. Lines of a wrapped (MIME-style) run are decoded together, and one by one if the whole
  does not decode.
* base32 (RFC 4648, upper or lower case): a base64-alphabet run that holds only its letters and
  digits and does not decode as base64.
* hex (MIN_HEX digits, so twelve bytes): plain (`414b49`, also after `0x` or glued after a word) or
  wrapped like `xxd -p`. It must decode to printable ASCII, at most one byte in twenty otherwise:
  hashes, UUIDs and random ids decode to binary and are not scanned. Not hex with a separator
  between the bytes (`41 4b 49`, `41:4b:49`, `0x41, 0x4b`): finding those in prose cost 3 % of a
  clean scan (a search for twelve two-letter words in a row).
* escaped runs (MIN_ESCAPED characters, at least one escape, with the letters, digits and URL
  punctuation around it): percent-encoding (`%2D`); the backslash escapes of C, Python,
  JavaScript and JSON left as text (`\x41`, `\u0041`, `\u{41}`, `\U00000041`, octal `\101`),
  which no parser on the way undid (not in a text that is itself a JSON document: its callers
  scan the strings it parses to); HTML character references (`&#65;`, `&#x41;`, named ones such
  as `&amp;` or `&hyphen;`).
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
from collections.abc import Callable
from collections.abc import Iterator
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote

MIN_BASE64 = 24  # 18 bytes decoded: shorter than any key worth decoding for
MIN_PERCENT = 12
MIN_ESCAPED = 12  # backslash escapes and HTML references, like percent-encoding
MIN_HEX = 24  # 12 bytes; a hex run this long is also a base64-alphabet run, found the same way
_MIME_LINE_MIN = 40  # wrapped base64 (MIME 76, PEM 64) has long lines of whole quads

_BASE64_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/_-"
# One byte per character: "a" in the base64 alphabets, " " not. Finding MIN_BASE64 "a"s in a row
# there is a memory search, ~20 times faster than a character-class pattern over the text.
_BASE64_CLASSES = bytes(ord("a") if c in _BASE64_ALPHABET else ord(" ") for c in range(256))
_BASE64_START = b"a" * MIN_BASE64
_BASE64_RUN = re.compile(r"[A-Za-z0-9+/_-]{24,}={0,6}(?:\r?\n[A-Za-z0-9+/_-]{4,}={0,2})*")
_BASE32 = re.compile(r"[A-Z2-7]+=*|[a-z2-7]+=*")
_BASE32_FIRSTS = b"BEFGHIJKLMNOP"
# Hex in a base64-alphabet run: the whole of it (lines of a wrapped block too), or its end (after
# `0x` or glued to a word).
_HEX_ONLY = "0123456789abcdefABCDEF-\r\n"
_HEX_DIGITS = "0123456789abcdefABCDEF"
_HEX_CLASSES = bytes(ord("h") if chr(c) in _HEX_DIGITS else ord(" ") for c in range(256))
_HEX_START = b"h" * MIN_HEX
_HEX_RUN = re.compile(r"[0-9A-Fa-f]{24,}(?:\r?\n[0-9A-Fa-f]+)*")
_HIGH_DIGITS = b"0234567"  # the first hex digit of a printable ASCII byte, tab or line break
_PRINTABLE_ASCII = bytes(range(0x20, 0x7F)) + b"\t\n\r"
_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")

# One escape, then the run around it: a single pattern with the escape in the middle backtracks
# quadratically over a long word that holds a stray "%". The characters a run reaches over: URL
# punctuation, and for backslash escapes also what an assignment or a URL puts around a value
# (`password=\x73...`, `user:p\x40ss@host`).
_PERCENT_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
_PERCENT_RUN = re.compile(r"(?:[A-Za-z0-9._~+-]|%[0-9A-Fa-f]{2})+")
_UNRESERVED = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~+-")
_BACKSLASH = r"\\(?:x[0-9A-Fa-f]{2}|u[0-9A-Fa-f]{4}|u\{[0-9A-Fa-f]{1,6}\}|U[0-9A-Fa-f]{8}|[0-3][0-7]{2})"
_BACKSLASH_ESCAPE = re.compile(_BACKSLASH)
_BACKSLASH_RUN = re.compile(rf"(?:[A-Za-z0-9._~+/=:@!$%*?#-]|{_BACKSLASH})+")
_BACKSLASH_PLAIN = frozenset(_UNRESERVED | set("/=:@!$%*?#"))
# A numeric reference may end without its ";" (browsers read `&#65KIA` too); a named one must
# have it, so `a=1&b=2` in a URL is no reference.
_REFERENCE = r"&(?:#[0-9]{1,7};?|#[xX][0-9A-Fa-f]{1,6};?|[A-Za-z][A-Za-z0-9]{1,31};)"
_HTML_REFERENCE = re.compile(_REFERENCE)
_HTML_RUN = re.compile(rf"(?:[A-Za-z0-9._~+/=:@!$%*?-]|{_REFERENCE})+")
_HTML_PLAIN = frozenset(_UNRESERVED | set("/=:@!$%*?"))


@dataclass(frozen=True, slots=True)
class Run:
    start: int
    end: int
    decoded: str
    encoding: str  # "base64" | "base32" | "hex" | "percent" | "escape" | "html" | "tags"
    # Only secrets count here: a line of a whole DER block (a certificate, a public key), whose
    # text is a subject's names and dates, no person's data (round-6b G8)
    secrets_only: bool = False


# Tag characters spelling printable ASCII (U+E0020..U+E007E), "ASCII smuggling": invisible on
# screen, read by a model's tokenizer. A run of them is a value of its own, wherever it is glued.
_TAG_RUN = re.compile("[\U000e0020-\U000e007e]+")
# Variation selectors as bytes ("emoji smuggling": VS1-16 for 0-15, VS17-256 for 16-255, after an
# emoji): an emoji takes one selector, so a run of several is a payload of its own.
_SELECTOR_RUN = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]{4,}")


def hidden_runs(text: str) -> list[Run]:
    """Each run of invisible characters that spells text, decoded: ASCII-spelling tag characters
    and bytes written as variation selectors (red-team F38)."""
    if text.isascii():
        return []
    runs = []
    for m in _TAG_RUN.finditer(text):
        short = m.end() - m.start() < _TAG_RUN_MIN
        spelled = _tag_text(m.group())
        if not short:
            runs.append(Run(m.start(), m.end(), spelled, "tags"))
        # Glued to the visible words around it (`AKIA` + tags, tags + the key's tail: F90), read
        # as one with them too; the view reads the visible text with the tags removed (a tag
        # inside a visible key: F75). A short run counts only beside a key-long word: one or two
        # tags between the letters of a cover text are the scattered reading's (below).
        word = _WORD_BEFORE.search(text, max(0, m.start() - 64), m.start())
        after = _WORD_AFTER.match(text, m.end())
        if short and max(len(word.group()) if word else 0, len(after.group()) if after else 0) < _KEY_WORD_MIN:
            continue
        if word is not None or after is not None:
            start = word.start() if word is not None else m.start()
            end = after.end() if after is not None else m.end()
            runs.append(
                Run(start, end, (word.group() if word else "") + spelled + (after.group() if after else ""), "tags")
            )
    # In place: visible characters and tags mixed in one word (`AKIA2` + tags `OG` + `YBAH6` +
    # tags `ST` + `MMNXNN`, every other character a tag), each tag read as the character it
    # spells where it stands, as a model reads them (red-team F115).
    for m in _MIXED_WORD.finditer(text):
        mixed = m.group()
        if not mixed.isascii() and _VISIBLE.search(mixed):
            runs.append(Run(m.start(), m.end(), _TAG_RUN.sub(lambda t: _tag_text(t.group()), mixed), "tags"))
    for m in _SELECTOR_RUN.finditer(text):
        runs.append(Run(m.start(), m.end(), _selector_bytes(m.group()), "selectors"))
    # Scattered: one or a few after each character of a cover text, or split by joiners and
    # spaces (red-team F66). All of them in order are read too, the finding spanning from the
    # first to the last (a redaction there takes the cover text with it: refused, in effect).
    # An emoji's own invisible characters are left out: a subdivision flag's tags (black flag,
    # tag letters, cancel tag) and a lone presentation selector (U+FE0E/FE0F) after a character
    # (red-team F90: one flag or heart in the cover text spoiled the reading). Only a well-formed
    # flag's tags are a flag's, and every tag is read too, the emoji's included: chunks of a key
    # each dressed as a flag are in that reading (red-team F99), and a real flag spoils only one
    # of the two readings.
    for pattern, decode, name in ((_TAG_CHAR, _tag_text, "tags"), (_SELECTOR_CHAR, _selector_bytes, "selectors")):
        every = list(pattern.finditer(text))
        readings = [[m for m in every if not _emoji_part(text, m.start())]]
        if name == "tags" and len(readings[0]) < len(every):
            readings.append(every)
        for found in readings:
            if len(found) < _SCATTERED_MIN or any(
                r.start == found[0].start() and r.end == found[-1].end() for r in runs
            ):
                continue
            decoded = decode("".join(m.group() for m in found))
            if _SPELLS_A_VALUE.search(decoded):  # emoji's own selectors (U+FE0F each) spell nothing
                runs.append(Run(found[0].start(), found[-1].end(), decoded, name))
    return runs


# A word of key characters and tags, at least 8 long, with a tag in it (the visible part checked apart).
_MIXED_WORD = re.compile("(?=[A-Za-z0-9_+/=-]*[\U000e0020-\U000e007e])[A-Za-z0-9_+/=\U000e0020-\U000e007e-]{8,}")
_VISIBLE = re.compile(r"[A-Za-z0-9]")
_WORD_BEFORE = re.compile(r"[A-Za-z0-9_-]{1,64}\Z")
_WORD_AFTER = re.compile(r"[A-Za-z0-9_-]{1,64}")
_TAG_RUN_MIN = 4
_KEY_WORD_MIN = 8  # a visible word this long may be most of a key
_FLAG = "\U0001f3f4"
_CANCEL_TAG = "\U000e007f"


def _emoji_part(text: str, at: int) -> bool:
    """Whether text[at], a tag or selector character, belongs to an emoji: a tag in a flag
    sequence (after a black flag, before a cancel tag), or a presentation selector alone."""
    ch = text[at]
    if ch in "\ufe0e\ufe0f":
        before = text[at - 1] if at else ""
        after = text[at + 1] if at + 1 < len(text) else ""
        return not _SELECTOR_CHAR.fullmatch(before) and not _SELECTOR_CHAR.fullmatch(after or "x")
    if "\U000e0020" <= ch <= "\U000e007e":
        flag = text.rfind(_FLAG, max(0, at - 8), at)
        sequence = _FLAG_SEQUENCE.match(text, flag) if flag >= 0 else None
        return sequence is not None and at < sequence.end()
    return False


# A subdivision flag as Unicode writes it (UTS #51): the black flag, a lower-case region and
# subdivision code in tag letters and digits (gbeng, usca), the cancel tag. Upper-case or other
# tags are no flag's.
_FLAG_SEQUENCE = re.compile("\U0001f3f4[\U000e0061-\U000e007a\U000e0030-\U000e0039]{3,7}\U000e007f")


_TAG_CHAR = re.compile("[\U000e0020-\U000e007e]")
_SELECTOR_CHAR = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_SCATTERED_MIN = 8  # fewer hidden characters than this spell no key
_SPELLS_A_VALUE = re.compile("[!-~]{8}")


def _tag_text(chars: str) -> str:
    return "".join(chr(ord(c) - 0xE0000) for c in chars)


def _selector_bytes(chars: str) -> str:
    data = bytes(ord(c) - 0xFE00 if ord(c) < 0x10000 else ord(c) - 0xE0100 + 16 for c in chars)
    return data.decode("utf-8", "replace")


def base64_classes(text: str, latin1: bytes | None = None) -> bytes:
    """One byte per character of text: "a" in the base64 alphabets, " " not. latin1: the text
    encoded to Latin-1 (characters outside it as "?"), when the caller has it already."""
    if latin1 is None:
        latin1 = text.encode("ascii") if text.isascii() else text.encode("latin-1", "replace")
    return latin1.translate(_BASE64_CLASSES)


def may_hold_runs(text: str, classes: bytes | None = None) -> bool:
    """False when text surely holds no run: the scanner's fast path skips the rest.
    classes: base64_classes(text), when the caller has it."""
    if "%" in text or "\\" in text or "&" in text:
        return True
    if classes is None:
        classes = base64_classes(text)
    return _BASE64_START in classes


def encoded_runs(
    text: str, skip: Callable[[int, int], bool] = lambda start, end: False, classes: bytes | None = None
) -> Iterator[Run]:
    """The runs of text that decode to readable text: base64, base32 and hex first, then
    percent-encoded, backslash-escaped and HTML-escaped runs.
    skip(start, end): True for a span not worth decoding (the caller found a secret there).
    classes: base64_classes(text), when the caller has it."""
    if classes is None:
        classes = base64_classes(text)
    at = classes.find(_BASE64_START)
    while at >= 0:
        m = _BASE64_RUN.match(text, at)
        if m is None:  # cannot happen: the classes say the run is there
            break
        start, end = m.span()
        first_line = text.find("\n", start, end)
        if first_line >= 0 and not _wrapped(text[start:end]):
            end = first_line  # not a wrapped block: the next line is another value, or prose
            if text[end - 1] == "\r":
                end -= 1
        # from where this run ends: the lines after one that is not a wrapped block are runs too
        at = classes.find(_BASE64_START, end)
        if skip(start, end):
            continue
        run = text[start:end]
        if run.strip(_HEX_ONLY):
            yield from _alphabet_runs(text, start, end)
        elif _may_be_hex_text(run):  # most hex is a hash or a UUID: rejected here, at C speed
            yield from _hex_runs(text, start, end)
    if "%" in text:
        yield from _escaped_runs(
            text, _PERCENT_ESCAPE, _PERCENT_RUN, _UNRESERVED, MIN_PERCENT, _unpercent, "percent", skip
        )
    if "\\" in text:
        escaped = _escaped_runs(
            text, _BACKSLASH_ESCAPE, _BACKSLASH_RUN, _BACKSLASH_PLAIN, MIN_ESCAPED, _unbackslash, "escape", skip
        )
        first = next(escaped, None)
        # A text that is itself a JSON document (function-call arguments, a tool's output): its
        # escapes are the parser's, and the callers scan the strings it parses to
        # (wireformats.scope.nested_json_texts), so a value behind them is found there, once.
        # Parsed only once a run is found: most text with a backslash holds none.
        if first is not None and not _json_document(text):
            yield first
            yield from escaped
    if "&" in text:
        yield from _escaped_runs(
            text, _HTML_REFERENCE, _HTML_RUN, _HTML_PLAIN, MIN_ESCAPED, html.unescape, "html", skip
        )


def _alphabet_runs(text: str, start: int, end: int) -> Sequence[Run]:
    """What a run of the base64 alphabets that is not all hex decodes to: base64, else base32,
    else its lines one by one as either, else the hex lines in it, or the hex at its end (`0x414b...`,
    `hex_414b...`). (A
    function, not a generator: most runs decode to nothing, and this is called for each.)"""
    run = text[start:end]
    decoded = _decoded(run)
    if decoded is not None:
        return [Run(start, end, *decoded)]
    if "\n" in run:
        der = _der_block(run)
        found = [
            Run(start + line.start(), start + line.end(), *decoded, secrets_only=der)
            for line in re.finditer(r"[^\r\n]+", run)
            if len(line.group()) >= MIN_BASE64 and (decoded := _decoded(line.group())) is not None
        ]
        if found:
            return found
        # a wrapped hex block (`xxd -p`) and the line after it that the block took
        return list(_hex_runs(text, start, end))
    digits = len(run) - len(run.rstrip(_HEX_DIGITS))
    if digits >= MIN_HEX and _may_be_hex_text(run[-digits:]):
        hex_run = _hex_run(text, end - digits, end)
        if hex_run is not None:
            return [hex_run]
    return ()


def _may_be_hex_text(run: str) -> bool:
    """False when a run of hex digits (and dashes, line breaks) surely does not decode to text:
    printable ASCII has 2-7 as its first hex digit (0 for tab and line breaks), so a run whose
    every other digit, in either alignment, is mostly something else (a hash: 10 in 16) is
    binary. Line breaks shift the alignment: a wrapped block is decided by _hex_runs."""
    if "\n" in run:
        return True
    if "-" in run:  # a UUID, or hex pieces: only a piece of MIN_HEX digits can be decoded
        return max(map(len, run.split("-"))) >= MIN_HEX
    raw = run.encode("ascii")
    allowed = len(raw) // 40  # one byte in twenty of len(raw) / 2
    return len(raw[0::2].translate(None, _HIGH_DIGITS)) <= allowed or (
        len(raw) % 2 == 1 and len(raw[1::2].translate(None, _HIGH_DIGITS)) <= allowed
    )


def _hex_runs(text: str, start: int, end: int) -> Iterator[Run]:
    """The stretches of MIN_HEX or more hex digits in text[start:end] (the lines of a wrapped block
    are one stretch) that decode to text."""
    # Where MIN_HEX digits in a row start: a memory search (the pattern alone tries every
    # position of the run: 30 ms per MB of a wrapped block of binary base64).
    classes = text[start:end].encode("latin-1", "replace").translate(_HEX_CLASSES)
    at = classes.find(_HEX_START)
    while at >= 0:
        m = _HEX_RUN.match(text, start + at, end)
        if m is None:  # cannot happen: the classes say the digits are there
            return
        at = classes.find(_HEX_START, m.end() - start)
        if not _may_be_hex_text(m.group()):
            continue
        hex_run = _hex_run(text, *m.span())
        if hex_run is not None:
            yield hex_run


def _hex_run(text: str, start: int, end: int) -> Run | None:
    """The run of the hex digits text[start:end] (line breaks between them) if they decode to text;
    of an odd number, the first or the last is the end of a word."""
    digits = text[start:end]
    if "\n" in digits:
        digits = digits.replace("\r", "").replace("\n", "")
    if len(digits) % 2 == 0:
        decoded = _hex_text(digits)
        return None if decoded is None else Run(start, end, decoded, "hex")
    decoded = _hex_text(digits[1:])
    if decoded is not None:
        return Run(start + 1, end, decoded, "hex")
    decoded = _hex_text(digits[:-1])
    return None if decoded is None else Run(start, end - 1, decoded, "hex")


def _escaped_runs(
    text: str,
    escape_rx: re.Pattern[str],
    run_rx: re.Pattern[str],
    plain: frozenset[str],
    minimum: int,
    decode: Callable[[str], str | None],
    encoding: str,
    skip: Callable[[int, int], bool],
) -> Iterator[Run]:
    """Runs of escapes and the plain characters around them (percent-encoding, backslash escapes,
    HTML references): each escape found, the run reaches back over the plain characters before it
    and on over plain characters and escapes."""
    done = 0
    for escape in escape_rx.finditer(text):
        if escape.start() < done:
            continue  # inside the run already taken
        start = escape.start()
        while start > done and text[start - 1] in plain:
            start -= 1  # an escape further left would have taken this stretch: an escape ends it
        m = run_rx.match(text, start)
        if m is None:  # cannot happen: the escape itself matches
            continue
        done = m.end()
        if m.end() - m.start() < minimum or skip(m.start(), m.end()):
            continue
        decoded = decode(m.group())
        if decoded is not None and _readable(decoded):
            yield Run(m.start(), m.end(), decoded, encoding)


def _json_document(text: str) -> bool:
    """Whether text is an object or array of JSON."""
    if text.lstrip()[:1] not in ("{", "["):
        return False
    try:
        json.loads(text)
    except (ValueError, RecursionError):
        return False
    return True


def _unpercent(run: str) -> str | None:
    try:
        return unquote(run, errors="strict")
    except UnicodeDecodeError:
        return None


def _unbackslash(run: str) -> str:
    """run with its escapes undone: `\\x41` and octal `\\101` as code points (as in a Python or
    JavaScript string), `\\u` pairs of UTF-16 surrogates joined into one character."""
    decoded = _BACKSLASH_ESCAPE.sub(_escaped_char, run)
    if any("\ud800" <= c <= "\udfff" for c in decoded):
        decoded = decoded.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return decoded


def _escaped_char(m: re.Match[str]) -> str:
    escape = m.group()
    kind = escape[1]
    if kind == "x":
        return chr(int(escape[2:], 16))
    if kind == "u" and escape[2] == "{" or kind == "U":
        code = int(escape[2:].strip("{}"), 16)
        return chr(code) if code <= 0x10FFFF else "\ufffd"
    if kind == "u":
        return chr(int(escape[2:], 16))
    return chr(int(escape[1:], 8))


_STANDARD_LINES = re.compile(r"(?:[A-Za-z0-9+/=]+(?:\r?\n|\Z))+")


def _der_block(run: str) -> bool:
    """Whether a wrapped base64 run is one whole DER structure (a SEQUENCE whose length is the
    decoded length): a certificate, a CSR, a public key as PEM and DER files carry them. The
    run's lines of the standard alphabet count, up to the armour's END line the run took."""
    body = _STANDARD_LINES.match(run)
    try:
        raw = binascii.a2b_base64(body.group().replace("\r", "").replace("\n", "") if body else "", strict_mode=True)
    except binascii.Error:
        return False
    if len(raw) < 4 or raw[0] != 0x30:
        return False
    if raw[1] < 0x80:
        return len(raw) == 2 + raw[1]
    n = raw[1] & 0x7F
    return 1 <= n <= 3 and len(raw) == 2 + n + int.from_bytes(raw[2 : 2 + n])


def _decoded(run: str) -> tuple[str, str] | None:
    """The text a run decodes to as base64, else as base32, and the encoding; None if neither."""
    decoded = _base64_text(run)
    if decoded is not None:
        return decoded, "base64"
    # base32 is of one case: str.isupper/islower (C) turn away the mixed-case runs before its pattern
    decoded = _base32_text(run) if run.isupper() or run.islower() else None
    return None if decoded is None else (decoded, "base32")


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


def _base32_text(run: str) -> str | None:
    """The text a base32 run (RFC 4648, one case) decodes to, if it is printable ASCII (as for hex),
    else None."""
    compact = run.replace("\r", "").replace("\n", "") if "\n" in run else run
    if not _BASE32.fullmatch(compact):
        return None
    compact = compact.rstrip("=").upper()
    # Each group of eight characters holds five bytes, its first character the top five bits of
    # the first: one of B, E-P for printable ASCII, tab or a line break. A run of capitals and
    # digits that is no base32 of a text (a key, a constant) fails here, before b32decode (pure
    # Python, 7 us for 30 characters).
    firsts = compact[::8].encode("ascii")
    if len(firsts.translate(None, _BASE32_FIRSTS)) * 4 > len(firsts):
        return None
    if len(compact) % 8 in (1, 3, 6):
        compact = compact[:-1]  # a stray character after whole groups
    compact += "=" * (-len(compact) % 8)
    try:
        raw = base64.b32decode(compact)
    except (binascii.Error, ValueError):
        return None
    return _ascii_text(raw)


def _hex_text(digits: str) -> str | None:
    """The text hex digits decode to, if it is printable ASCII, else None."""
    return _ascii_text(bytes.fromhex(digits)) if len(digits) >= MIN_HEX else None


def _ascii_text(raw: bytes) -> str | None:
    """raw as text if it is printable ASCII (at most one byte in twenty other: the odd accented
    letter of UTF-8 text), else None."""
    if len(raw.translate(None, _PRINTABLE_ASCII)) * 20 > len(raw):
        return None
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _readable(decoded: str) -> bool:
    """Mostly printable: at most one control character in twenty."""
    return bool(decoded) and len(_CONTROLS.findall(decoded)) * 20 <= len(decoded)
