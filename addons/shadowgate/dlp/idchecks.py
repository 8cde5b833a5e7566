"""Check digits and embedded dates of national identifiers (Asia-Pacific, the Nordics, Poland,
Turkey, South Africa, Canada, UK NHS, US health ids) and Bitcoin address checksums.

Each function takes the value with separators removed (letters upper-case) and says whether it is
well formed: length, alphabet, any embedded date, and the published check digit algorithm.
"""

from __future__ import annotations

import datetime
import hashlib

from .validators import luhn_valid


def _date_ok(year: int, month: int, day: int) -> bool:
    try:
        datetime.date(year, month, day)
    except ValueError:
        return False
    return True


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(int(d) * w for d, w in zip(digits, weights, strict=False))


def ca_sin_valid(d: str) -> bool:
    """Canada SIN: 9 digits, Luhn; 0 and 8 are not issued as first digits."""
    return len(d) == 9 and d.isdigit() and d[0] not in "08" and luhn_valid(d) and len(set(d)) > 2


def au_tfn_valid(d: str) -> bool:
    return len(d) == 9 and d.isdigit() and _weighted(d, (1, 4, 3, 7, 5, 8, 6, 9, 10)) % 11 == 0 and len(set(d)) > 2


def au_abn_valid(d: str) -> bool:
    if len(d) != 11 or not d.isdigit() or d[0] == "0":
        return False
    return _weighted(str(int(d[0]) - 1) + d[1:], (10, 1, 3, 5, 7, 9, 11, 13, 15, 17, 19)) % 89 == 0


def au_acn_valid(d: str) -> bool:
    if len(d) != 9 or not d.isdigit() or len(set(d)) < 3:
        return False
    return (10 - _weighted(d, (8, 7, 6, 5, 4, 3, 2, 1)) % 10) % 10 == int(d[8])


def au_medicare_valid(d: str) -> bool:
    """10 digits (card number and check digit, then the issue number); first digit 2-6."""
    if len(d) not in (10, 11) or not d.isdigit() or d[0] not in "23456":
        return False
    return _weighted(d, (1, 3, 7, 9, 1, 3, 7, 9)) % 10 == int(d[8])


def uk_nhs_valid(d: str) -> bool:
    if len(d) != 10 or not d.isdigit() or len(set(d)) < 3:
        return False
    check = 11 - _weighted(d, (10, 9, 8, 7, 6, 5, 4, 3, 2)) % 11
    return (0 if check == 11 else check) == int(d[9])


def us_npi_valid(d: str) -> bool:
    """National Provider Identifier: 10 digits from 1 or 2, Luhn with the 80840 prefix."""
    return len(d) == 10 and d.isdigit() and d[0] in "12" and luhn_valid("80840" + d) and len(set(d)) > 3


_MBI_LETTER = "ACDEFGHJKMNPQRTUVWXY"
_MBI_ALNUM = _MBI_LETTER + "0123456789"


def us_mbi_valid(v: str) -> bool:
    """Medicare Beneficiary Identifier: C A AN N A AN N A A N N (no S L O I B Z)."""
    if len(v) != 11 or v[0] not in "123456789":
        return False
    shape = (
        None,
        _MBI_LETTER,
        _MBI_ALNUM,
        "0123456789",
        _MBI_LETTER,
        _MBI_ALNUM,
        "0123456789",
        _MBI_LETTER,
        _MBI_LETTER,
        "0123456789",
        "0123456789",
    )
    return all(allowed is None or c in allowed for c, allowed in zip(v, shape, strict=True))


_VERHOEFF_D = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 2, 3, 4, 0, 6, 7, 8, 9, 5), (2, 3, 4, 0, 1, 7, 8, 9, 5, 6),
    (3, 4, 0, 1, 2, 8, 9, 5, 6, 7), (4, 0, 1, 2, 3, 9, 5, 6, 7, 8), (5, 9, 8, 7, 6, 0, 4, 3, 2, 1),
    (6, 5, 9, 8, 7, 1, 0, 4, 3, 2), (7, 6, 5, 9, 8, 2, 1, 0, 4, 3), (8, 7, 6, 5, 9, 3, 2, 1, 0, 4),
    (9, 8, 7, 6, 5, 4, 3, 2, 1, 0),
)  # fmt: skip
_VERHOEFF_P = (
    (0, 1, 2, 3, 4, 5, 6, 7, 8, 9), (1, 5, 7, 6, 2, 8, 3, 0, 9, 4), (5, 8, 0, 3, 7, 9, 6, 1, 4, 2),
    (8, 9, 1, 6, 0, 4, 3, 5, 2, 7), (9, 4, 5, 3, 1, 2, 6, 8, 7, 0), (4, 2, 8, 6, 5, 7, 3, 9, 0, 1),
    (2, 7, 9, 3, 8, 0, 6, 4, 1, 5), (7, 0, 4, 6, 9, 1, 3, 2, 5, 8),
)  # fmt: skip


def in_aadhaar_valid(d: str) -> bool:
    """Aadhaar: 12 digits, first 2-9, Verhoeff check digit, not a palindrome (UIDAI rule)."""
    if len(d) != 12 or not d.isdigit() or d[0] in "01" or d == d[::-1]:
        return False
    c = 0
    for i, ch in enumerate(reversed(d)):
        c = _VERHOEFF_D[c][_VERHOEFF_P[i % 8][int(ch)]]
    return c == 0


def in_pan_valid(v: str) -> bool:
    """PAN: 5 letters (the 4th is the holder type), 4 digits, a letter."""
    return (
        len(v) == 10
        and v[:5].isalpha()
        and v[3] in "ABCFGHJLPT"
        and v[5:9].isdigit()
        and v[9].isalpha()
        and v.isupper()
    )


_GST_CHARS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def in_gstin_valid(v: str) -> bool:
    """GSTIN: state code 01-38, a PAN, entity number, 'Z', mod-36 check character."""
    if len(v) != 15 or not v[:2].isdigit() or not 1 <= int(v[:2]) <= 38 or not in_pan_valid(v[2:12]) or v[13] != "Z":
        return False
    if v[12] not in _GST_CHARS[1:] or v[14] not in _GST_CHARS:
        return False
    total = 0
    for i, c in enumerate(v[:14]):
        p = _GST_CHARS.index(c) * (2 if i % 2 else 1)
        total += p // 36 + p % 36
    return _GST_CHARS[(36 - total % 36) % 36] == v[14]


def kr_rrn_valid(d: str) -> bool:
    """Resident registration number: birth date YYMMDD, then a sex/century digit 1-8."""
    if len(d) != 13 or not d.isdigit() or d[6] not in "12345678":
        return False
    century = {"1": 1900, "2": 1900, "5": 1900, "6": 1900, "3": 2000, "4": 2000, "7": 2000, "8": 2000}[d[6]]
    return _date_ok(century + int(d[:2]), int(d[2:4]), int(d[4:6]))


_NRIC_ST = "JZIHGFEDCBA"
_NRIC_FG = "XWUTRQPNMLK"
_NRIC_M = "KLJNPQRTUWX"


def sg_nric_valid(v: str) -> bool:
    """Singapore NRIC/FIN: S T F G M, 7 digits, check letter (weights 2 7 6 5 4 3 2)."""
    if len(v) != 9 or v[0] not in "STFGM" or not v[1:8].isdigit():
        return False
    total = _weighted(v[1:8], (2, 7, 6, 5, 4, 3, 2)) + {"S": 0, "T": 4, "F": 0, "G": 4, "M": 3}[v[0]]
    if v[0] in "ST":
        return _NRIC_ST[total % 11] == v[8]
    if v[0] in "FG":
        return _NRIC_FG[total % 11] == v[8]
    return _NRIC_M[10 - total % 11] == v[8]


def pl_pesel_valid(d: str) -> bool:
    if len(d) != 11 or not d.isdigit() or len(set(d)) < 3:
        return False
    if (10 - _weighted(d, (1, 3, 7, 9, 1, 3, 7, 9, 1, 3)) % 10) % 10 != int(d[10]):
        return False
    month = int(d[2:4])
    century = {0: 1900, 1: 1900, 2: 2000, 3: 2000, 4: 2100, 5: 2100, 6: 2200, 7: 2200, 8: 1800, 9: 1800}[month // 10]
    return _date_ok(century + int(d[:2]), month % 20, int(d[4:6]))


def se_personnummer_valid(d: str) -> bool:
    """10 digits YYMMDDNNNC (or 12 with the century): a date (day+60 for coordination numbers), Luhn."""
    if len(d) == 12:
        if d[:2] not in ("18", "19", "20"):
            return False
        year, d = int(d[:4]), d[2:]
    elif len(d) == 10:
        year = 2000 + int(d[:2])
    else:
        return False
    if not d.isdigit():
        return False
    day = int(d[4:6])
    return _date_ok(year if len(str(year)) == 4 else 2000, int(d[2:4]), day - 60 if day > 60 else day) and luhn_valid(d)


_HETU_CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_HETU_CENTURY = {"+": 1800, "-": 1900, "Y": 1900, "X": 1900, "W": 1900, "V": 1900, "U": 1900,
                 "A": 2000, "B": 2000, "C": 2000, "D": 2000, "E": 2000, "F": 2000}  # fmt: skip


def fi_hetu_valid(v: str) -> bool:
    """Finnish personal identity code: DDMMYY, century sign, 3 digits, mod-31 check character."""
    if len(v) != 11 or not v[:6].isdigit() or v[6] not in _HETU_CENTURY or not v[7:10].isdigit():
        return False
    if not _date_ok(_HETU_CENTURY[v[6]] + int(v[4:6]), int(v[2:4]), int(v[:2])):
        return False
    return _HETU_CHECK[int(v[:6] + v[7:10]) % 31] == v[10]


def tr_tckn_valid(d: str) -> bool:
    if len(d) != 11 or not d.isdigit() or d[0] == "0":
        return False
    n = [int(c) for c in d]
    return (sum(n[0:9:2]) * 7 - sum(n[1:8:2])) % 10 == n[9] and sum(n[:10]) % 10 == n[10]


def za_id_valid(d: str) -> bool:
    """South Africa: YYMMDD, 4 digits, citizenship 0-2, a digit, Luhn check digit."""
    if len(d) != 13 or not d.isdigit() or d[10] not in "012":
        return False
    return (
        _date_ok(1900 + int(d[:2]), int(d[2:4]), int(d[4:6])) or _date_ok(2000 + int(d[:2]), int(d[2:4]), int(d[4:6]))
    ) and luhn_valid(d)


_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_INDEX = {c: i for i, c in enumerate(_B58)}


def btc_base58_valid(v: str) -> bool:
    """P2PKH (1...) and P2SH (3...) addresses: base58check with a double SHA-256 checksum."""
    if not 26 <= len(v) <= 35 or v[0] not in "13":
        return False
    n = 0
    for c in v:
        i = _B58_INDEX.get(c)
        if i is None:
            return False
        n = n * 58 + i
    raw = n.to_bytes(25, "big") if n.bit_length() <= 200 else b""
    if len(raw) != 25:
        return False
    return hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


_BECH32 = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"


def _bech32_polymod(values: list[int]) -> int:
    gen = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
    chk = 1
    for v in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ v
        for i in range(5):
            chk ^= gen[i] if (top >> i) & 1 else 0
    return chk


def btc_bech32_valid(v: str) -> bool:
    """Segwit (bc1q...) and taproot (bc1p...) addresses: bech32 / bech32m checksum."""
    v = v.lower()
    if not v.startswith("bc1") or not 14 <= len(v) <= 74 or any(c not in _BECH32 for c in v[3:]):
        return False
    data = [_BECH32.index(c) for c in v[3:]]
    return _bech32_polymod([3, 3, 0, 2, 3] + data) in (1, 0x2BC830A3)


# --- Germany, UK and US numbers of the second table (issue 16, third round) --------------------
def _letter_number(c: str) -> str:
    """A=01 ... Z=26, as the German insurance numbers write a letter inside their digits."""
    return f"{ord(c) - 64:02d}"


def _cross_sum(n: int) -> int:
    return n if n < 10 else n // 10 + n % 10


def de_kvnr_valid(v: str) -> bool:
    """German health insurance number (Krankenversichertennummer): a letter, 8 digits, a check
    digit; the letter as two digits, then weights 1,2,1,2... and the products' cross sums, mod 10."""
    if len(v) != 10 or not ("A" <= v[0] <= "Z") or not v[1:].isdigit():
        return False
    digits = _letter_number(v[0]) + v[1:9]
    total = sum(_cross_sum(int(d) * (1 if i % 2 == 0 else 2)) for i, d in enumerate(digits))
    return total % 10 == int(v[9])


def de_rvnr_valid(v: str) -> bool:
    """German pension insurance number (Rentenversicherungsnummer): area (2 digits), birth date
    DDMMYY, the surname's initial, a serial (2 digits), a check digit (weights 2,1,2,5,7,1,2,1,2,1,2,1
    over the digits with the letter as two digits, the products' cross sums, mod 10)."""
    if len(v) != 12 or not v[:8].isdigit() or not ("A" <= v[8] <= "Z") or not v[9:].isdigit():
        return False
    day, month = int(v[2:4]), int(v[4:6])
    if day > 50:
        day -= 50  # a second number for the same birth date (serial numbers used up) adds 50 to the day
    if not (1 <= day <= 31 and 1 <= month <= 12):
        return False
    digits = v[:8] + _letter_number(v[8]) + v[9:11]
    weights = (2, 1, 2, 5, 7, 1, 2, 1, 2, 1, 2, 1)
    return sum(_cross_sum(int(d) * w) for d, w in zip(digits, weights, strict=True)) % 10 == int(v[11])


_ICAO_FIRST = frozenset("CFGHJKLMNPRTVWXYZ")
_ICAO_CHARS = _ICAO_FIRST | frozenset("0123456789")


def de_id_document_valid(v: str) -> bool:
    """German passport and identity card numbers: 9 characters of the documents' alphabet (no
    vowels, no B D Q S), the last an ICAO 9303 check digit (weights 7,3,1; A=10 ... Z=35)."""
    if len(v) != 9 or v[0] not in _ICAO_FIRST or not set(v[1:8]) <= _ICAO_CHARS or not v[8].isdigit():
        return False
    if sum(c.isdigit() for c in v) < 4:
        return False  # a word of capitals with a digit at the end is no document number
    total = sum((int(c) if c.isdigit() else ord(c) - 55) * (7, 3, 1)[i % 3] for i, c in enumerate(v[:8]))
    return total % 10 == int(v[8])


def uk_driving_licence_valid(v: str) -> bool:
    """UK driving licence number: surname (5, padded with 9), decade digit, month (+50 for women),
    day, year digit, initials (2, padded with 9), a digit, 2 check letters."""
    if len(v) != 16 or not v[5:11].isdigit():
        return False
    month, day = int(v[6:8]), int(v[8:10])
    if month > 50:
        month -= 50
    return 1 <= month <= 12 and 1 <= day <= 31


def us_aba_valid(d: str) -> bool:
    """US bank routing (ABA) number: 9 digits, prefix of a Federal Reserve district, checksum
    3-7-1 mod 10."""
    if len(d) != 9 or not d.isdigit() or len(set(d)) < 3:
        return False
    prefix = int(d[:2])
    if not (prefix <= 12 or 21 <= prefix <= 32 or 61 <= prefix <= 72 or prefix == 80):
        return False
    return (
        3 * (int(d[0]) + int(d[3]) + int(d[6]))
        + 7 * (int(d[1]) + int(d[4]) + int(d[7]))
        + int(d[2])
        + int(d[5])
        + int(d[8])
    ) % 10 == 0
