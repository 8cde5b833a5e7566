"""The finding type, the type catalogue (type -> kind) and how detectors are declared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

SECRET = "secret"
PII = "pii"


@dataclass(frozen=True, slots=True)
class Finding:
    """One sensitive value: text[start:end] is the WHOLE value (never part of a key)."""

    start: int
    end: int
    type: str  # e.g. "AWS_ACCESS_KEY", "EMAIL"; every type is listed in TYPES
    detector: str  # the detector that found it, e.g. "aws", "phone"
    kind: str  # "secret" | "pii"


# Every type a detector can report, with its kind. Policies name these.
TYPES: dict[str, str] = {}


def register_types(kind: str, *types: str) -> None:
    for t in types:
        TYPES[t] = kind


class Hits(list[Finding]):
    """What detectors append to: add() fills in the kind from TYPES."""

    def add(self, start: int, end: int, type_: str, detector: str) -> None:
        self.append(Finding(start, end, type_, detector, TYPES[type_]))


def _tables() -> tuple[bytes, bytes]:
    classes = bytearray(b" " * 256)  # blanks, punctuation, other scripts: may precede a value
    lower = bytearray(range(256))
    for c in range(256):
        ch = chr(c)
        if "0" <= ch <= "9":
            classes[c] = ord("0")
        elif "A" <= ch <= "Z":
            classes[c] = ord("A")
        elif ch in ".-":
            classes[c] = ord(".")  # join number groups: 1.2.3, 555-0199
        elif ch.isalpha() or ch in "_#$@%\\€£":
            classes[c] = ord("a")  # other letters and characters that join a word to what follows
        low = ch.lower()
        if len(low) == 1 and ord(low) < 256:
            lower[c] = ord(low)
    classes[ord("+")] = ord("+")
    return bytes(classes), bytes(lower)


_CLASSES, _LOWER = _tables()
# The classes with the digits told apart: "0" the digit zero, "1" any other digit (a national
# number starts with 0, most numbers of prose do not).
_NUMERIC = bytes(ord("1") if chr(c) in "123456789" else k for c, k in enumerate(_CLASSES))


class Source:
    """The text being scanned, with derived views computed once and shared by the detectors.

    The views are bytes with one byte per character (characters outside Latin-1 become "?"), so an
    offset found in them is an offset in text, and bytes.find searches them at C speed.
    """

    __slots__ = ("_classes", "_latin1", "_lower", "_numeric", "_padded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._latin1: bytes | None = None
        self._lower: bytes | None = None
        self._classes: bytes | None = None
        self._padded: bytes | None = None
        self._numeric: bytes | None = None

    @property
    def latin1(self) -> bytes:
        if self._latin1 is None:
            self._latin1 = self.text.encode("latin-1", "replace")
        return self._latin1

    @property
    def lower(self) -> bytes:
        """Lower case (ASCII and Latin-1 letters): search it for keywords, as bytes."""
        if self._lower is None:
            self._lower = self.latin1.translate(_LOWER)
        return self._lower

    @property
    def classes(self) -> bytes:
        """ "0" digit, "A" upper-case ASCII letter, "." for . and -, "a" another letter or a
        character that joins words (_ # $ @ %), "+" plus, " " anything else. Searching it for
        b" 00" finds every number of 2+ digits that starts after a blank or punctuation."""
        if self._classes is None:
            self._classes = self.latin1.translate(_CLASSES)
        return self._classes

    @property
    def padded_classes(self) -> bytes:
        """b" " + classes: the text's start counts as a blank, so a search for b" 0" (a number that
        starts after a blank) also finds one at offset 0, and the match's start is its offset in
        text. A literal two-byte prefix lets re skip ahead at C speed."""
        if self._padded is None:
            self._padded = b" " + self.classes
        return self._padded

    @property
    def padded_numeric(self) -> bytes:
        """padded_classes with the digit zero ("0") told from the other digits ("1"): a number
        candidate's look-ahead can then hold the shapes that need a leading 0 (national phone
        numbers) apart from dates and versions."""
        if self._numeric is None:
            self._numeric = b" " + self.latin1.translate(_NUMERIC)
        return self._numeric


# A detector reads the source and appends what it finds to hits.
DetectFn = Callable[[Source, Hits], None]


@dataclass(frozen=True, slots=True)
class Detector:
    name: str
    types: frozenset[str]
    run: DetectFn
