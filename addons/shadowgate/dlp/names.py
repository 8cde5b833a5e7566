"""Person names (opt-in): a first name and a last name from the US Census name lists.

Not one of the default detectors: Scanner() never runs it. Names are in most prompts that mention
anyone ("Summarise Jane Smith's review"), public figures included, so reporting them by default
would redact ordinary requests; a policy has to ask for PERSON_NAME by name (see docs/dlp.md,
"Person names and postal addresses").

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

import re
from importlib import resources

from .model import PII
from .model import Detector
from .model import Finding
from .model import Hits
from .model import Source

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
_NAME_RX = re.compile(r"\b([A-Z][a-z]+)(?: [A-Z]\.)? ([A-Z][a-z]+(?:-[A-Z][a-z]+)?)\b")


def detect_person_names(src: Source, hits: Hits) -> None:
    for m in _NAME_RX.finditer(src.text):
        first, last = m.group(1), m.group(2)
        if first in _FIRST and first not in _NOT_FIRST and last.split("-", 1)[0] in _LAST:
            hits.append(Finding(m.start(), m.end(), PERSON_NAME, "person_name", PII))


# Not in any module's DETECTORS: scanner.py runs these only for a Scanner built with their type.
OPT_IN_TYPES = {PERSON_NAME: PII}
OPT_IN_DETECTORS = [Detector("person_name", frozenset(OPT_IN_TYPES), detect_person_names)]
