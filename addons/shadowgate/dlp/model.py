"""The finding type, the type catalogue (type -> kind) and how detectors are declared."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import ahocorasick_rs

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


# The literals the detectors look for in each view (keywords, context words, key-format literals,
# markers), registered by each module at import (needles()). A scan finds all of a view's literals
# in one pass of an Aho-Corasick automaton (ahocorasick-rs, compiled) instead of one bytes.find
# pass per literal: ~55 passes of 20-40 us per 50 KB each were a third of a clean scan
# (scripts/bench_dlp_literals.py, docs/dlp-accuracy.md).
_NEEDLES: dict[str, list[bytes]] = {"latin1": [], "lower": []}
_REGISTERED: dict[str, set[bytes]] = {"latin1": set(), "lower": set()}
_AUTOMATA: dict[str, tuple[int, ahocorasick_rs.BytesAhoCorasick]] = {}
_NO_POSITIONS: list[int] = []


def needles(view: str, *literals: bytes) -> None:
    """Register literals that detectors read with Source.occurrences(view, literal)."""
    known = _NEEDLES[view]
    known.extend(lit for lit in dict.fromkeys(literals) if lit not in known)
    _REGISTERED[view].update(literals)


def _automaton(view: str) -> ahocorasick_rs.BytesAhoCorasick:
    words = _NEEDLES[view]
    built = _AUTOMATA.get(view)
    if built is None or built[0] != len(words):  # built once all modules have registered theirs
        built = _AUTOMATA[view] = (len(words), ahocorasick_rs.BytesAhoCorasick(words))
    return built[1]


class Source:
    """The text being scanned, with derived views computed once and shared by the detectors.

    The views are bytes with one byte per character (characters outside Latin-1 become "?"), so an
    offset found in them is an offset in text, and bytes.find searches them at C speed.
    """

    __slots__ = ("_classes", "_found", "_latin1", "_lower", "_numeric", "_padded", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self._latin1: bytes | None = None
        self._lower: bytes | None = None
        self._classes: bytes | None = None
        self._padded: bytes | None = None
        self._numeric: bytes | None = None
        self._found: dict[str, dict[bytes, list[int]]] = {}

    def occurrences(self, view: str, literal: bytes) -> list[int]:
        """Every offset where literal occurs in the view ("latin1" or "lower"), overlapping ones
        too, in order: what a loop of view.find(literal, at + 1) gives. The literal must have been
        registered with needles(view, literal)."""
        found = self._found.get(view)
        if found is None:
            found = self._found[view] = {}
            words = _NEEDLES[view]
            data = self.latin1 if view == "latin1" else self.lower
            for k, start, _ in _automaton(view).find_matches_as_indexes(data, overlapping=True):
                positions = found.get(words[k])
                if positions is None:
                    found[words[k]] = [start]
                else:
                    positions.append(start)
        positions = found.get(literal)
        if positions is None:
            if literal not in _REGISTERED[view]:  # would be found nowhere, silently
                raise KeyError(f"{literal!r} is not registered for the {view} view (needles())")
            return _NO_POSITIONS
        return positions

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
