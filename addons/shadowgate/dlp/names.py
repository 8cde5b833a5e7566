"""Person names (opt-in): a first name and a last name from the US Census name lists.

Not one of the default detectors: Scanner() never runs it. Names are in most prompts that mention
anyone ("Summarise Jane Smith's review"), public figures included, so reporting them by default
would redact ordinary requests; a policy has to ask for PERSON_NAME by name (`dlp: {types:
{PERSON_NAME: redact}}`), which builds Scanner(opt_in={"PERSON_NAME"}) (see docs/dlp.md).

What it finds: two capitalised words, the first a first name and the second a last name of the
US Census Bureau's 1990 lists (public domain; data/census_names.txt, written by
scripts/make_dlp_names.py: every first name and the 20,000 most frequent last names), with an
optional middle initial: "Jane Smith", "Robert J. Langer", "Mary Smith-Jones". Measured on
human-written prompts (scripts/bench_dlp_names.py): about 97 % of what it reports is a person's
name; it misses single names ("Dan"), titles without a first name ("Mr. Mayers"), names written
in lower case, and names outside the US lists (many European and Asian names), so it is a
coarse net for English text, not a complete one.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from importlib import resources

from .model import PII
from .model import Detector
from .model import Finding
from .model import Hits
from .model import Source
from .model import register_types

PERSON_NAME = "PERSON_NAME"


def _load() -> tuple[frozenset[str], frozenset[str]]:
    text = resources.files(__package__).joinpath("data", "census_names.txt").read_text(encoding="ascii")
    _, first, last = re.split(r"^#(?:first|last)\n", text, flags=re.MULTILINE)
    return frozenset(first.split()), frozenset(last.split())


_FIRST, _LAST = _load()
# Census first names that are also English words that start a sentence ("So Jews have...").
_NOT_FIRST = frozenset(
    {"So", "Do", "In", "On", "My", "An", "As", "Is", "It", "No", "Or", "To", "We", "Me", "He", "The"}
)
# Latin letters with their accents (Latin-1 and Latin Extended-A, whose upper and lower case
# alternate, so the capital is checked in Python): "José García", "Allan Björk", "Ján Novák" are
# the listed Jose Garcia, Bjork, Novak as their owners write them.
_UP = "A-ZÀ-ÖØ-ÞĀ-ž"
_LOW = "a-zß-öø-ÿĀ-ž"
_WORD = f"[{_UP}][{_LOW}]+"
# a middle initial with or without its period: "Robert J. Langer", "Kate M Begum"
_NAME_RX = re.compile(rf"\b({_WORD})(?: [A-Z]\.?)? ({_WORD}(?:-{_WORD})?)\b")


@functools.lru_cache(maxsize=4096)
def _ascii(word: str) -> str:
    if word.isascii():
        return word
    return "".join(c for c in unicodedata.normalize("NFKD", word) if not unicodedata.combining(c))


# A listed name that is part of a street or place: "124 Devon Street", "Forrest Hill Road",
# "1317 Kimberly Way". Street words are Census surnames too (Street, Way), but rare ones.
_STREET_WORDS = frozenset(
    "Street St Road Rd Avenue Ave Boulevard Blvd Drive Dr Lane Ln Way Court Ct Place Pl Square Sq"
    " Terrace Parkway Pkwy Highway Hwy Crescent Creek Close Plaza Alley Row Walk".split()
)
_AFTER_RX = re.compile(r" ([A-Z][a-z]+)\b")
_NUMBER_BEFORE_RX = re.compile(r"[0-9]+[a-zA-Z]? \Z")


def _street(text: str, start: int, end: int, last: str) -> bool:
    if last in _STREET_WORDS or _NUMBER_BEFORE_RX.search(text, max(0, start - 12), start):
        return True
    after = _AFTER_RX.match(text, end)
    return after is not None and after.group(1) in _STREET_WORDS


def detect_person_names(src: Source, hits: Hits) -> None:
    text = src.text
    pos = 0
    while (m := _NAME_RX.search(text, pos)) is not None:
        first, last = m.group(1), m.group(2)
        if (
            first[0].isupper()
            and last[0].isupper()
            and first not in _NOT_FIRST
            and _ascii(first) in _FIRST
            and _ascii(last.split("-", 1)[0]) in _LAST
            and not _street(text, *m.span(), last)
        ):
            hits.append(Finding(m.start(), m.end(), PERSON_NAME, "person_name", PII))
            pos = m.end()
        else:
            pos = m.start(2)  # "Ask Jane Smith": the second word may start the name


# Not in any module's DETECTORS: scanner.py runs these only for a Scanner built with their type
# (a policy that names PERSON_NAME in dlp.types). Registered, so a policy may name it.
OPT_IN_TYPES = {PERSON_NAME: PII}
register_types(PII, *OPT_IN_TYPES)
OPT_IN_DETECTORS = [Detector("person_name", frozenset(OPT_IN_TYPES), detect_person_names)]
