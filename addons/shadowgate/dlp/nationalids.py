"""National identifiers of more countries, health ids and Bitcoin wallets (issue 16).

Decisions:
* A shape that is specific on its own (a birth date plus a check digit, a check letter, a
  separator pattern no other number uses) is reported anywhere: KR_RRN 960121-1234567, FI_HETU
  010594Y9032, SE_PERSONNUMMER 19871220-2384, SG_NRIC S2740116C, US_MBI 1EG4-TE5-MK73, IN_PAN,
  IN_GSTIN, ZA_ID, TR_TCKN, PL_PESEL, AU_ABN, IN_AADHAAR 3123 4567 8909, CA_SIN 130 692 544,
  Bitcoin addresses (base58check / bech32 checksums); German health and pension insurance
  numbers (KVNR, RVNR), German passport/ID numbers (ICAO check digit), UK driving licences and
  postcodes, US ABA routing numbers written 4-4-1.
* A bare run of 9 or 10 digits (or a 3-3-4 group, which US phone numbers share) passes a mod-10/mod-11 check one time in ten: order numbers would
  be reported. Those (CA_SIN, AU_TFN, AU_ACN, AU_MEDICARE, UK_NHS, US_NPI, and a bare
  12-digit Aadhaar, a bare 9-digit ABA routing number, Indian voter ids and letter-and-7-digit
  passports) are reported only within 40 characters after a word that names them.
"""

from __future__ import annotations

import re
from collections.abc import Callable

from . import idchecks as ck
from .model import PII
from .model import Detector
from .model import Hits
from .model import Source
from .model import needles
from .model import register_types
from .numberchecks import es_dni_valid
from .numberchecks import uk_nino_valid
from .pii import shape_finder

_END = r"(?![0-9A-Za-z_]|[.\-][0-9])(?!:[0-9A-Fa-f])"
# Digit-led shapes, most specific first: (name, first character, the rest). The name picks the
# checks (_SHAPE_TYPES). The patterns start with a character class, which re searches for at C
# speed; the look-behinds then re-check what precedes the value.
_DIGIT_SHAPES_SRC: list[tuple[str, str, str]] = [
    ("rrn", "[0-9]", r"[0-9]{5}-[1-8][0-9]{6}"),
    ("rvnr", "[0-9]", r"[0-9]{7}[A-Z][0-9]{3}"),
    ("aba441", "[0-9]", r"[0-9]{3}-[0-9]{4}-[0-9]"),
    ("hetu", "[0-9]", r"[0-9]{5}[\-+A-FU-Y][0-9]{3}[0-9A-Y]"),
    ("se12", "[12]", r"(?<=1)8[0-9]{6}[\-+]?[0-9]{4}|(?<=1)9[0-9]{6}[\-+]?[0-9]{4}|(?<=2)0[0-9]{6}[\-+]?[0-9]{4}"),
    ("se10", "[0-9]", r"[0-9]{5}[\-+][0-9]{4}"),
    ("mbi", "[1-9]", r"[A-Z][A-Z0-9][0-9]-?[A-Z][A-Z0-9][0-9]-?[A-Z]{2}[0-9]{2}"),
    ("gstin", "[0-3]", r"[0-9][A-Z]{5}[0-9]{4}[A-Z][0-9A-Z]Z[0-9A-Z]"),
    ("abn", "[0-9]", r"[0-9] [0-9]{3} [0-9]{3} [0-9]{3}"),
    ("g444", "[0-9]", r"[0-9]{3}(?P<s444>[ \-:])[0-9]{4}(?P=s444)[0-9]{4}"),
    ("medicare", "[2-6]", r"[0-9]{3} ?[0-9]{5} ?[0-9]"),
    ("g334", "[0-9]", r"[0-9]{2}(?P<s334>[ \-])[0-9]{3}(?P=s334)[0-9]{4}"),
    ("g433", "[0-9]", r"[0-9]{3}(?P<s433>[ \-])[0-9]{3}(?P=s433)[0-9]{3}"),
    ("g333", "[0-9]", r"[0-9]{2}(?P<s333>[ \-])[0-9]{3}(?P=s333)[0-9]{3}"),
    ("bare", "[0-9]", r"[0-9]{8,12}"),
]
# Letter-led shapes: Singapore NRIC/FIN, Indian PAN, Bitcoin.
_LETTER_SHAPES_SRC: list[tuple[str, str, str]] = [
    ("nric", "[STFGM]", r"[0-9]{7}[A-Z]"),
    ("pan", "[A-Z]", r"[A-Z]{2}[ABCFGHJLPT][A-Z][0-9]{4}[A-Z]"),
    ("b58", "[13]", r"[1-9A-HJ-NP-Za-km-z]{25,34}"),
    ("bech", "b", r"c1[02-9ac-hj-np-z]{11,71}"),
    ("kvnr", "[A-Z]", r"[0-9]{9}"),
    ("ukdl", "[A-Z]", r"(?:[A-Z]{4}|[A-Z]{3}9|[A-Z]{2}99|[A-Z]999|9999)[0-9]{6}[A-Z9]{2}[0-9][A-Z]{2}"),
    ("icao", "[CFGHJKLMNPRTVWXYZ]", r"[CFGHJKLMNPRTVWXYZ0-9]{7}[0-9]"),
    ("voter", "[A-Z]", r"[A-Z]{2}[0-9]{7}"),
    ("pass7", "[A-Z]", r"[A-Z]?[0-9]{7}"),
    (
        "postcode",
        "[A-PR-UWYZ]",
        r"(?:[0-9][0-9]?|[A-HK-Y][0-9][0-9]?|[0-9][A-HJKPSTUW]|[A-HK-Y][0-9][ABEHMNPRVWXY]|(?<=G)IR) ?[0-9][ABD-HJLNP-UW-Z]{2}",
    ),
]
_DIGIT_BEFORE = r"(?<![0-9A-Za-z_.\-+/:].)"
_LETTER_BEFORE = r"(?<![0-9A-Za-z_].)"
_LETTER_END = r"(?![0-9A-Za-z_])"


def _each(shapes: list[tuple[str, str, str]], end: str) -> dict[str, re.Pattern[str]]:
    """Each shape on its own, to retry a later shape at the same start (751010-7753 has a Finnish
    code's shape first and is a Swedish personnummer). Matched at the value's first character."""
    return {n: re.compile(f"(?P<{n}>{f}(?:{rest})){end}") for n, f, rest in shapes}


_DIGIT_RX = shape_finder(
    "[0-9]" + _DIGIT_BEFORE, "[0-9A-Z]", [(n, f, f"(?:{rest}){_END}") for n, f, rest in _DIGIT_SHAPES_SRC]
)
_LETTER_RX = shape_finder(
    "[A-Z13b]" + _LETTER_BEFORE,
    "[0-9A-Za-z]",
    [(n, f, f"(?:{rest}){_LETTER_END}") for n, f, rest in _LETTER_SHAPES_SRC],
)
_DIGIT_SHAPES = _each(_DIGIT_SHAPES_SRC, _END)
_LETTER_SHAPES = _each(_LETTER_SHAPES_SRC, _LETTER_END)

# type -> words that name it (searched in the 40 characters before a weak shape)
_CONTEXT: dict[str, tuple[bytes, ...]] = {
    "CA_SIN": (b"sin", b"social insurance", b"nas", b"assurance sociale"),
    "AU_TFN": (b"tfn", b"tax file"),
    "AU_ACN": (b"acn", b"company number"),
    "AU_ABN": (b"abn", b"business number"),
    "AU_MEDICARE": (b"medicare",),
    "UK_NHS": (b"nhs", b"health service", b"patient"),
    "US_NPI": (b"npi", b"provider"),
    "IN_AADHAAR": (b"aadhaar", b"aadhar", b"uidai", b"uid"),
    "KR_RRN": (b"rrn", b"resident registration", b"korea"),
    "US_ABA_ROUTING": (b"routing", b"aba", b"rtn", b"transit"),
    "IN_VOTER": (b"vote", b"epic", b"electoral"),
    "PASSPORT": (b"passport", b"travel document", b"reisepass", b"pass-nr", b"passnummer", b"pasaporte", b"passeport"),
}


def _uk_postcode(v: str) -> bool:
    return v[-2:] not in ("GB", "TB", "PB")  # "M1 8GB" is a chip and a memory size


Check = Callable[[str], bool]
# shape -> [(type, check, needs a context word)], tried in order
_SHAPE_TYPES: dict[str, list[tuple[str, Check, bool]]] = {
    "rrn": [("KR_RRN", ck.kr_rrn_valid, False)],
    "hetu": [("FI_HETU", ck.fi_hetu_valid, False)],
    "se12": [("SE_PERSONNUMMER", ck.se_personnummer_valid, False)],
    "se10": [("SE_PERSONNUMMER", ck.se_personnummer_valid, False)],
    "mbi": [("US_MBI", ck.us_mbi_valid, False)],
    "gstin": [("IN_GSTIN", ck.in_gstin_valid, False)],
    "abn": [("AU_ABN", ck.au_abn_valid, False)],
    "g444": [("IN_AADHAAR", ck.in_aadhaar_valid, False)],
    "medicare": [("AU_MEDICARE", ck.au_medicare_valid, True)],
    "g334": [("UK_NHS", ck.uk_nhs_valid, True), ("US_NPI", ck.us_npi_valid, True)],
    "g433": [("US_NPI", ck.us_npi_valid, False)],
    "g333": [("CA_SIN", ck.ca_sin_valid, False), ("AU_TFN", ck.au_tfn_valid, True), ("AU_ACN", ck.au_acn_valid, True)],
    "bare9": [
        ("CA_SIN", ck.ca_sin_valid, True),
        ("AU_TFN", ck.au_tfn_valid, True),
        ("AU_ACN", ck.au_acn_valid, True),
        ("US_ABA_ROUTING", ck.us_aba_valid, True),
    ],
    "rvnr": [("DE_SOCIAL_SECURITY", ck.de_rvnr_valid, False)],
    "aba441": [("US_ABA_ROUTING", ck.us_aba_valid, False)],
    "kvnr": [("DE_HEALTH_INSURANCE", ck.de_kvnr_valid, False)],
    "ukdl": [("UK_DRIVING_LICENCE", ck.uk_driving_licence_valid, False)],
    "icao": [("DE_ID_DOCUMENT", ck.de_id_document_valid, False)],
    "voter": [("IN_VOTER", lambda v: len(set(v[2:])) > 2, True)],
    "pass7": [("PASSPORT", lambda v: len(set(v)) > 3, True)],
    "postcode": [("UK_POSTCODE", _uk_postcode, False)],
    "bare10": [
        ("SE_PERSONNUMMER", ck.se_personnummer_valid, True),
        ("UK_NHS", ck.uk_nhs_valid, True),
        ("US_NPI", ck.us_npi_valid, True),
        ("AU_MEDICARE", ck.au_medicare_valid, True),
    ],
    "bare11": [
        ("TR_TCKN", ck.tr_tckn_valid, False),
        ("PL_PESEL", ck.pl_pesel_valid, False),
        ("AU_ABN", ck.au_abn_valid, True),
    ],
    "bare12": [("SE_PERSONNUMMER", ck.se_personnummer_valid, False), ("IN_AADHAAR", ck.in_aadhaar_valid, True)],
    "bare13": [("ZA_ID", ck.za_id_valid, False), ("KR_RRN", ck.kr_rrn_valid, True)],
    "nric": [("SG_NRIC", ck.sg_nric_valid, False)],
    "pan": [("IN_PAN", ck.in_pan_valid, False)],
    "b58": [("CRYPTO_WALLET", ck.btc_base58_valid, False)],
    "bech": [("CRYPTO_WALLET", ck.btc_bech32_valid, False)],
}
_CONTEXT_WINDOW = 40


def _named(window: bytes, type_: str) -> bool:
    for word in _CONTEXT.get(type_, ()):
        if word in window:
            return True
    return False


# A grouped value inside a longer grouped run (the groups of an IBAN with a bad checksum,
# "AL47 2121 1009 0000 0002") is not a value of its own.
_GROUP_BEFORE_RX = re.compile(r"(?:\A|[^0-9A-Za-z.,])(?:[A-Z]{2}[0-9]{2}(?:[ \-][A-Z0-9]{2,4})*|[0-9]{1,4})[ \-]\Z")
_GROUP_AFTER_RX = re.compile(r"[ \-](?=[A-Z]*[0-9])[A-Z0-9]{1,4}(?![A-Za-z0-9])")


def inside_grouped_run(text: str, start: int, end: int) -> bool:
    if start < 2 or text[start - 1] not in " -" or not text[start - 2].isalnum():
        return (
            text[end : end + 1] in (" ", "-")
            and start > 0
            and text[start - 1] in " -"
            and _GROUP_AFTER_RX.match(text, end) is not None
        )
    return _GROUP_BEFORE_RX.search(text, max(0, start - 48), start) is not None or (
        text[end : end + 1] in (" ", "-")
        and _GROUP_AFTER_RX.match(text, end) is not None
        and text[start - 1 : start] in (" ", "-")
    )


def _types_of(shape: str, value: str) -> list[tuple[str, Check, bool]]:
    return _SHAPE_TYPES.get(f"bare{len(value)}" if shape == "bare" else shape, [])


# The later shapes that can match where a shape matched (751010-7753 has a Finnish code's shape
# and is a Swedish personnummer; 2123 45670 1 is a Medicare shape and may be a bare NPI).
_RETRY: dict[str, tuple[str, ...]] = {
    "hetu": ("se10",),
    "se12": ("bare",),
    "medicare": ("g433", "bare"),
    "rrn": ("se10",),
    "icao": ("pass7",),
}


def _report(src: Source, hits: Hits, m: re.Match[str], shapes: dict[str, re.Pattern[str]]) -> None:
    first = m.lastgroup or ""
    for shape in (first, *_RETRY.get(first, ())):
        sm = shapes[shape].match(src.text, m.start())  # the combined match leaves the first character out of the group
        if sm is None:
            continue
        value = sm.group(shape)
        if not value.isalnum() and inside_grouped_run(src.text, sm.start(), sm.end()):
            return
        compact = (
            value
            if shape == "hetu" or not value[:1].isdigit()
            else value.replace(" ", "").replace("-", "").replace(":", "").replace("+", "")
        )
        window = b""  # the 40 characters before the value, lower case, taken once
        for type_, check, needs_context in _types_of(shape, value):
            if needs_context:  # the context word first: a few `in` tests cost less than a check digit
                if not window:
                    window = src.lower[max(0, sm.start() - _CONTEXT_WINDOW) : sm.start()] or b" "
                if not _named(window, type_):
                    continue
            if check(compact):
                hits.add(sm.start(), sm.end(), type_, "named_id" if needs_context else "national_id")
                return


# Where a digit-led value may start, searched in Source.classes ("0" digit, "A" upper-case letter,
# "." for . and -, "a" other letters, " " blanks and punctuation): a digit after a blank, then at
# least 8 more characters that a shape can hold. The literal two-byte prefix " 0" lets re skip
# ahead at C speed (a lookbehind on every digit cost 3x as much). Searched in
# Source.padded_classes, where a match's start (the blank) is the value's offset in text.
# The look-ahead holds the class run of every shape after its first digit (rrn, hetu, se and bare
# runs: 4 digits and a digit, joiner or letter; gstin; abn; g333/g334; g433; g444; medicare; mbi),
# so dates, times, amounts and IP addresses are not tried against the shapes one by one.
_DIGIT_STARTS_RX = re.compile(
    rb" 0(?=0{4}[0.+A]|0A{5}|0 000 000|00[ .]000[ .]000|000[ .]000[ .]000|000[ .]0000|000 ?00000|A[0A]0)"
)
# Letter-led values: an upper-case letter then 7 digits and a letter (NRIC) or 4 letters, 4 digits
# and a letter (PAN); 26+ letters and digits from a digit (base58). After a blank or a "+".
# Third round: letter and 9 digits (KVNR), 9 characters ending in a digit (German documents, and
# the UK driving licence's first 9), 2 letters and 7 digits (voter id, passports), postcodes.
_LETTER_AHEAD = rb"(?=0{7}A|A{4}0{4}A|0{9}|[A0]{7}0|A?0{7}|A{2}0{7}|A?0[A0]? ?0AA|AA ?0AA)"
# Every alternative starts with a letter or a digit: checked first, re drops a capitalised word
# ("The") without trying the eight (half the cost of this search in prose).
_LETTER_STARTS_RXS = (
    re.compile(rb" A(?=[A0])" + _LETTER_AHEAD),
    re.compile(rb"\+A(?=[A0])" + _LETTER_AHEAD),
)
# Base58 (Bitcoin) starts with 1 or 3 and has no 0 (nor O, I, l): searched in
# Source.padded_numeric, where "1" is a digit other than 0, so most hex hashes drop out here.
_BASE58_STARTS_RXS = (re.compile(rb" 1(?=[1Aa]{25})"), re.compile(rb"\+1(?=[1Aa]{25})"))


needles("latin1", b"bc1")


def detect_national_ids(src: Source, hits: Hits) -> None:
    text, padded = src.text, src.padded_classes
    pos = 0
    for sm in _DIGIT_STARTS_RX.finditer(padded):
        start = sm.start()  # the digit's offset in text (padded has one byte more in front)
        if start < pos:
            continue
        m = _DIGIT_RX.match(text, start)
        if m is not None:
            _report(src, hits, m, _DIGIT_SHAPES)
            pos = m.end()
    starts = [m.start() for rx in _LETTER_STARTS_RXS for m in rx.finditer(padded)]
    starts += [m.start() for rx in _BASE58_STARTS_RXS for m in rx.finditer(src.padded_numeric)]
    starts += src.occurrences("latin1", b"bc1")  # bech32 starts with a lower-case letter: its own literal
    pos = 0
    for start in sorted(starts):
        if start < pos:
            continue
        m = _LETTER_RX.match(text, start)
        if m is not None:
            _report(src, hits, m, _LETTER_SHAPES)
            pos = m.end()


# Spanish NIE and UK NINO written in lower case (x9613851n, tw987654a, hh 01 02 03 d): the
# upper-case shapes are in pii.py. Found from rare class runs (a letter and six digits, or the
# spaced NINO), then read at the value's start; the NIE has a check letter, the NINO's prefix
# rules and a final a-d are all it has, so it must be lower case throughout.
# Searched in Source.classes for the end of the value (six digits and the letter after them):
# a search that starts with a letter class would stop at every lower-case letter.
# bytes.find (a C substring search) for literals that re would stop at every digit for.
_LOWER_ID_ENDS = (b"000000a", b"000000.a", b" 00 00 00 a")
_LOWER_ID_RX = re.compile(
    r"(?<![0-9A-Za-z_.\-])(?:(?P<nie>[xyz]-?[0-9]{7}-?[a-zA-Z])|(?P<nino>[a-z]{2} ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[a-d]))"
    r"(?![0-9A-Za-z_])"
)


def _detect_lower_case_ids(src: Source, hits: Hits) -> None:
    text = src.text
    pos = 0
    classes = src.classes
    hits_at: list[int] = []
    for literal in _LOWER_ID_ENDS:
        at = classes.find(literal)
        while at >= 0:
            if classes[at + len(literal) : at + len(literal) + 1] not in (b"0", b"A", b"a"):
                hits_at.append(at)  # the letter ends a word: not inside a longer id
            at = classes.find(literal, at + 1)
    for hit in sorted(hits_at):
        for start in (hit - 2, hit - 3):  # x1234567n, x-1234567-n, tw987654a
            if start < pos or start < 0:
                continue
            m = _LOWER_ID_RX.match(text, start)
            if m is None:
                continue
            compact = m.group().replace(" ", "").replace("-", "").upper()
            if m.lastgroup == "nie" and es_dni_valid(compact):
                hits.add(m.start(), m.end(), "ES_NIE", "es_dni")
            elif m.lastgroup == "nino" and uk_nino_valid(compact):
                hits.add(m.start(), m.end(), "UK_NINO", "uk_nino")
            pos = m.end()
            break


NATIONAL_ID_TYPES = frozenset(t for options in _SHAPE_TYPES.values() for t, _, _ in options)
register_types(PII, *sorted(NATIONAL_ID_TYPES))

DETECTORS = [
    Detector("national_id", NATIONAL_ID_TYPES, detect_national_ids),
    Detector("lower_case_ids", frozenset({"ES_NIE", "UK_NINO"}), _detect_lower_case_ids),
]  # findings: national_id, or named_id when a word named them
