"""Which JSON numbers DLP reads, and which of their findings count (red-team F19).

A model reads a number in a tool schema or a tool call as text, and an MCP server takes a card
number typed `integer` as a number: the digits of such numbers are scanned (after the names of
the keys above them, wireformats.scope.number_reading). But integer ids, timestamps and sizes
are everywhere in JSON: among 2,000 random 10-19 digit ids (scripts/bench_dlp_body.py) one in
forty passed a card's Luhn and issuer checks (at 18-19 digits) and one in four hundred a South
African id number's date and Luhn. So a number is
* a payment card only at the lengths most cards have (Amex 15, the others 16), and
* any other identifier only when the name of its key says what it is (`ssn`, `bsn`, `steuer`,
  `phone`, `aadhaar`, ...: the detectors that find a bare run of digits by that word).
Numbers that can be neither are not scanned at all (a Python check each, where a scan of the
numbers of a 180 KB body of records cost ~90 ms).
"""

from __future__ import annotations

import functools
import re
from typing import Any

from .nationalids import _CONTEXT as _NATIONAL_ID_WORDS
from .numberchecks import card_valid
from .pii import _CONTEXT_IDS

# Digit counts of the numbers read: SSNs and other national ids (9-12), phones, cards (15-16).
NUMBER_DIGITS = range(9, 20)
CARD_DIGITS = range(15, 17)
# The detectors that find a run of digits by the word before it.
NAMED_DETECTORS = frozenset({"us_ssn", "nl_bsn", "de_tax_id", "us_passport", "phone", "named_id"})
_WORDS = {word for words, *_ in _CONTEXT_IDS for word in words} | {
    word.decode() for words in _NATIONAL_ID_WORDS.values() for word in words
}
_ANY_WORD = re.compile("|".join(re.escape(word) for word in sorted(_WORDS)), re.IGNORECASE)


def may_hold_value(digits: str, names: str) -> bool:
    """Whether a number's digits under these key names can be a value that counts (see the
    module docstring): worth a scan."""
    if len(digits) in CARD_DIGITS and card_valid(digits):
        return True
    return _named(names)


@functools.lru_cache(maxsize=1024)
def _named(names: str) -> bool:  # a body repeats its keys: one search per name
    return _ANY_WORD.search(names) is not None


def counts(finding: Any, digits: str) -> bool:
    """Whether a finding over a number's digits counts."""
    if finding.type == "CREDIT_CARD":
        return len(digits) in CARD_DIGITS
    return getattr(finding, "detector", "") in NAMED_DETECTORS
