"""Plausibility checks shared by the detectors: digits, Luhn, entropy, placeholders and filler,
JSON Web Token headers. The check digits of personal-data numbers are in numberchecks.py.

Every function takes the candidate text (already matched by a detector's pattern, so ASCII and of
the expected shape unless the docstring says otherwise) and returns a bool. None of them raises on
any str.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from collections import Counter

# ----------------------------------------------------------------------------------------------
# Generic


_NOT_DIGITS_RX = re.compile(r"[^0-9]+")


def digits_only(s: str) -> str:
    return _NOT_DIGITS_RX.sub("", s)


def luhn_valid(digits: str) -> bool:
    """Luhn (mod 10) over a string of ASCII digits."""
    if not digits or not digits.isascii() or not digits.isdigit():
        return False
    total = 0
    for i, c in enumerate(reversed(digits)):
        d = ord(c) - 48
        if i % 2:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


def iso7064_mod11_10_valid(digits: str) -> bool:
    """ISO 7064 MOD 11,10 (German tax id and VAT number): the last digit checks the others."""
    product = 10
    for c in digits[:-1]:
        s = (ord(c) - 48 + product) % 10 or 10
        product = (s * 2) % 11
    check = (11 - product) % 10
    return check == ord(digits[-1]) - 48


_C_LOG2_C = [0.0] + [c * math.log2(c) for c in range(1, 4097)]


def shannon_entropy(s: str) -> float:
    """Bits per character: log2(n) - sum(c * log2(c)) / n over the character counts c."""
    n = len(s)
    if n == 0:
        return 0.0
    counts = Counter(s).values()
    if n > 4096:
        return math.log2(n) - sum(c * math.log2(c) for c in counts) / n
    return math.log2(n) - sum(map(_C_LOG2_C.__getitem__, counts)) / n


_LOWER = frozenset("abcdefghijklmnopqrstuvwxyz")
_UPPER = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_DIGITS = frozenset("0123456789")
_ALNUM = _LOWER | _UPPER | _DIGITS


def char_classes(s: str) -> int:
    """How many of lower case, upper case, digits and other characters the string uses."""
    return classes_of(set(s))


def classes_of(chars: set[str]) -> int:
    """char_classes of a string whose set of characters is chars (for a caller that has it)."""
    return (
        (not chars.isdisjoint(_LOWER))
        + (not chars.isdisjoint(_UPPER))
        + (not chars.isdisjoint(_DIGITS))
        + (not chars <= _ALNUM)
    )


# Documented example values and filler: never a finding (AWS's documentation keys, "EXAMPLE",
# runs of x or *, template syntax, "your_api_key_here", Stripe test-mode keys ...). Checked on the
# lower-cased value.
_PLACEHOLDER_WORDS = (
    "example", "xxxx", "***", "####", "...", "redacted", "changeme", "change_me",
    "placeholder", "dummy", "insert_", "insert-", "replace_me", "replaceme", "replace-me", "your_", "your-", "yourapi",
    "yourtoken", "yourkey", "yoursecret", "yourpass", "your api", "your key", "your token",
    "k_test_",  # Stripe test mode (sk_test_, pk_test_, rk_test_): moves no money, published in docs
)  # fmt: skip
# A value that is only a template reference (${DB_PASS}, {{ .Values.token }}, %(pw)s) is no
# secret; a password that merely contains "${" or "{{" (Tr0ub${4dor) is one.
_TEMPLATE_RX = re.compile(r"\$\{[^}]*\}|\{\{[^}]*\}\}|%\([^)]*\)[sd]")
# Typed sequences: filler in a key's shape (12345678-ABCD-ABCD-ABCD-1234567890AB).
_FILLER_SEQUENCES = ("00000000", "1234567890", "abcdefgh")
# Filler typed by hand: a run of 6 consecutive letters (abcdef, klmnop) or
# "abc123" (sk-ant-api03-abc123xyz-456def789ghij-...). A random 100-character key has one by
# chance about once in 10^7. Digit runs are left out: ids inside keys (a Telegram bot id) can be
# 123456789.
_HAND_TYPED = ("abc123", *("abcdefghijklmnopqrstuvwxyz"[i : i + 6] for i in range(21)))
# These run on every candidate key, so they are substring tests (`in`, C speed) rather than one
# alternation regex, which re tries at every position of the value (10x slower).


def _says_placeholder_lower(low: str) -> bool:
    for word in _PLACEHOLDER_WORDS:
        if word in low:
            return True
    lt = low.find("<")
    if lt >= 0 and low.find(">", lt + 1) >= 0:  # <token>, <your key>
        return True
    return low[:1] in ("$", "{", "%") and _TEMPLATE_RX.fullmatch(low) is not None


def hand_typed(value: str) -> bool:
    """A long key-shaped value typed by hand for documentation: alphabet sequences. (Short
    formats are checked for filler by is_placeholder and low_variety; this runs only where the
    filler was seen: keys of 40+ characters.)"""
    if len(value) < 40:
        return False
    low = value.lower()
    for seq in _HAND_TYPED:
        if seq in low:
            return True
    return False


def is_placeholder(value: str) -> bool:
    """Documented example keys and placeholders ("EXAMPLE", "xxxx", "<token>", "${VAR}"...)."""
    low = value.lower()
    for seq in _FILLER_SEQUENCES:
        if seq in low:
            return True
    return _says_placeholder_lower(low)


def says_placeholder(value: str) -> bool:
    """A value that says it is not a real one ("EXAMPLE", "changeme", "<token>", "${VAR}").
    Used where a name already says the value is a credential: a key-shaped run of typed
    sequences there (SNYK_TOKEN = "12345678-ABCD-ABCD-ABCD-1234567890AB") is still reported,
    since redacting a documentation example costs one placeholder and missing a real key costs
    the key."""
    return _says_placeholder_lower(value.lower())


def low_variety(value: str) -> bool:
    """Too few distinct characters to be a generated key (e.g. 'aaaa...', '1111...', 'abab...')."""
    return few_distinct(len(set(value)), len(value))


def few_distinct(distinct: int, length: int) -> bool:
    """low_variety of a string of that length with that many distinct characters."""
    return distinct < max(4, min(12, length // 4))


# ----------------------------------------------------------------------------------------------
# JSON Web Tokens


def b64url_json(segment: str) -> object:
    """Decode a base64url JSON segment; None when it is not one."""
    try:
        raw = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4))
        return json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError, RecursionError):
        return None


def jwt_header_valid(segment: str) -> bool:
    header = b64url_json(segment)
    return isinstance(header, dict) and isinstance(header.get("alg"), str)
