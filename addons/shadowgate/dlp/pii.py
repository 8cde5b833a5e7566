"""Personal data with a structure: e-mail, phone, payment card, IBAN, national identifiers, IPs.

Speed: Source.classes maps the text to one byte per character class ("0" digit, "A" upper-case
letter, "a" other letter, ...). Values can only start after a blank or punctuation, so a search
of that byte string for a digit after a blank (and 5 more digits or separators), "+" and a digit,
or two upper-case letters finds every candidate start at C speed. At each one a single pattern
tries every number shape (or letter-prefixed shape: IBAN, NINO, codice fiscale, NIE, VAT) in
order, and a candidate is kept only when its shape's validator (Luhn and issuer prefix, mod 97,
check letters and digits, calling codes, numbering plans...) accepts it. E-mail is found from
"@", IPv6 and MAC addresses from ":". Identifiers that are plain digit runs (German tax id,
Dutch BSN, US passport, unformatted SSN) are only looked for just after a word that names them.

Decisions:
* PHONE: international "+CC ..." and "00CC ..." numbers (the calling code must exist and the
  length fit it) and national numbers written with separators (US 555-123-4567, UK
  020 7946 0958, DE 030 1234567 and (030) 1234567, FR 01 23 45 67 89, NL 06-12345678,
  IN 98765 43210, ES 612 345 678, IT 333 123 4567, JP 03-1234-5678). A national digit run
  without separators (5551234567) is not reported: it is as likely an order number. Numbers
  right after "order", "invoice", "ticket", "ref", "version"... are not phones.
* CREDIT_CARD: grouped by blanks, dashes, dots, slashes or tabs (the view turns no-break and
  other spaces into blanks, other scripts' digits into ASCII), or one run of digits; Luhn plus an
  issuer prefix and length that exist (13-digit Visa and 12-15-digit
  Maestro are not issued any more: those are EAN barcodes); the published test numbers with
  only two distinct digits (4111 1111 1111 1111, 4242...) are examples, not findings, and so
  are payment providers' other published test numbers where a word before them says test,
  sandbox or names the provider (round-6b G22).
* IPV4: valid dotted quads, except 0.x, 127.x and 255.x (unspecified, loopback, broadcast and
  netmasks identify nobody), the documentation ranges (RFC 5737), link-local 169.254/16 (the
  cloud metadata address) and public DNS resolvers (round-6b G12), and numbers right after
  "version", "v", "build" or "release". Private addresses (RFC 1918) are found: inside a
  company they name a person's machine.
* IPV6: valid per the ipaddress module, with at least one digit (so C++ "a::b" is not an
  address), except those that identify nobody as for IPV4 (::, ::1, 2001:db8::/32, resolvers;
  an IPv4-mapped address as its IPv4 address).
"""

from __future__ import annotations

import re
from collections.abc import Callable

from .model import PII
from .model import Detector
from .model import Hits
from .model import Source
from .model import needles
from .model import register_types
from .numberchecks import IBAN_LENGTHS
from .numberchecks import PUBLISHED_TEST_CARDS
from .numberchecks import card_valid
from .numberchecks import de_tax_id_valid
from .numberchecks import es_dni_valid
from .numberchecks import fr_nir_valid
from .numberchecks import iban_valid
from .numberchecks import international_phone_valid
from .numberchecks import ipv4_interesting
from .numberchecks import ipv6_interesting
from .numberchecks import ipv6_valid
from .numberchecks import it_fiscal_code_valid
from .numberchecks import itin_valid
from .numberchecks import nanp_valid
from .numberchecks import nl_bsn_valid
from .numberchecks import split_calling_code
from .numberchecks import ssn_valid
from .numberchecks import uk_nino_valid
from .numberchecks import vat_valid
from .validators import digits_only

# --- E-mail ---------------------------------------------------------------------------------
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
_DOMAIN_RX = re.compile(
    r"(?:[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?\.){1,8}([A-Za-z]{2,24}|xn--[a-z0-9]{2,59})(?![A-Za-z0-9\-]|\.[A-Za-z0-9])"
)
# Look like domains after "@" but are files: icon@2x.png, logo@3x.webp
_FILE_TLDS = frozenset(
    "png jpg jpeg gif svg webp ico bmp tif tiff js mjs ts tsx jsx css scss map json txt md py rb go rs java lock yml yaml toml xml html".split()
)


needles("latin1", b"@")


def detect_email(src: Source, hits: Hits) -> None:
    text = src.text
    ats = src.occurrences("latin1", b"@")
    k = 0
    while k < len(ats):
        at = ats[k]
        k += 1
        s = at
        while s > 0 and at - s < 64 and (text[s - 1] in _LOCAL_CHARS or _unicode_letter(text[s - 1])):
            s -= 1
        while s < at and text[s] in ".'":
            s += 1
        m = _DOMAIN_RX.match(text, at + 1, at + 256) if s < at and text[at - 1] != "." else None
        if m is not None and m.group(1).lower() not in _FILE_TLDS and not _in_url_userinfo(text, s):
            end = m.end()
            if not (end < len(text) and text[end] == ":" and text[end + 1 : end + 2] not in ("", " ", "\n")):
                hits.add(s, end, "EMAIL", "email")
                while k < len(ats) and ats[k] < end:
                    k += 1


def _unicode_letter(c: str) -> bool:
    """Internationalised local parts (jürgen@...), but not CJK text running into an address."""
    return c.isalnum() and "\u00c0" <= c < "\u2e80"


def _in_url_userinfo(text: str, local_start: int) -> bool:
    """user:password@host in a URL: the password is a URL_PASSWORD, not an e-mail's local part."""
    if local_start == 0 or text[local_start - 1] not in ":/":
        return False
    scheme = text.rfind("://", max(0, local_start - 200), local_start)
    return scheme >= 0 and not any(c.isspace() for c in text[scheme:local_start])


# --- Numbers: cards, phones, SSN, IPv4, NIR, DNI --------------------------------------------
_END = r"(?![0-9A-Za-z_]|[.\-][0-9]|,[0-9]{2}(?![0-9.\-/]))"  # 736 640 101,47 € is an amount
_END_IP = r"(?![0-9A-Za-z_]|\.[0-9])"

# (shape, first character class, rest of the pattern after that first character)
_NUMBER_SHAPES: list[tuple[str, str, str]] = [
    ("ipv4", "[0-9]", r"[0-9]{0,2}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}" + _END_IP),
    (
        "card4",
        "[2-6]",
        r"[0-9]{3}(?P<card4_s>[ \-./\t])[0-9]{4}(?P=card4_s)[0-9]{4}(?P=card4_s)[0-9]{4}(?:(?P=card4_s)[0-9]{3})?"
        + _END,
    ),
    ("card465", "3", r"[0-9]{3}(?P<card465_s>[ \-./\t])[0-9]{6}(?P=card465_s)[0-9]{4,5}" + _END),
    ("digits", "[1-8]", r"[0-9]{12,18}" + _END),
    ("nir", "[1-478]", r" [0-9]{2} [0-9]{2} (?:[0-9]{2}|2[AB]) [0-9]{3} [0-9]{3} [0-9]{2}" + _END),
    ("ssn", "[0-9]", r"[0-9]{2}(?P<ssn_s>[\- .])[0-9]{2}(?P=ssn_s)[0-9]{4}" + _END),
    ("dni", "[0-9]", r"[0-9]{7}-?[A-HJ-NP-TV-Za-hj-np-tv-z](?![A-Za-z0-9_])"),
    (
        "intl",
        r"\+",
        # a group of up to 12 digits: the national number in one run (+91 4155550132)
        r"(?:[1-9][0-9]{0,3}(?:(?:[ .\-]|[ ]?\(0\)[ ]?|[ ]?\()[0-9]{1,12}\)?){1,6}|[1-9][0-9]{6,14})" + _END,
    ),
    ("intl00", "0", r"0[1-9][0-9]{0,3}(?:(?:[ .\-]|[ ]?\(0\)[ ]?)[0-9]{1,8}){1,6}" + _END),
    ("trunk0p", r"\(", r"0[1-9][0-9]{0,4}\)[ ]?[0-9]{2,8}(?:[ /\-][0-9]{2,8}){0,2}" + _END),
    # the trunk 0 before the parenthesised area code: 0 (917) 123 4567, 0 (532) 1234567
    ("trunk0sp", "0", r" \([1-9][0-9]{1,4}\)[ ]?[0-9]{2,8}(?:[ \-][0-9]{2,8}){0,2}" + _END),
    ("us_paren", r"\(", r"[2-9][0-9]{2}\)[ ]?[2-9][0-9]{2}[\-. ][0-9]{4}" + _END),
    ("us1", "1", r"(?P<us1_s>[\-. ])[2-9][0-9]{2}(?P=us1_s)[2-9][0-9]{2}(?P=us1_s)[0-9]{4}" + _END),
    ("us", "[2-9]", r"[0-9]{2}(?P<us_s>[\-. ])[2-9][0-9]{2}(?P=us_s)[0-9]{4}" + _END),
    # Philippine (09xx) and Turkish (05xx) mobiles are usually written as 11 digits without spaces
    ("mobile11", "0", r"(?:9[0-9]{2}|5[0-5][0-9])[0-9]{7}" + _END),
    # Turkish 3-3-2-2 grouping, with or without the trunk 0: 0532 123 45 67, 532.123.45.67
    (
        "tr",
        "[0-5]",
        r"(?:(?<=0)[ \-]?[2-5][0-9]{2}|(?<=[2-5])[0-9]{2})(?P<tr_s>[ \-.])[0-9]{3}(?P=tr_s)[0-9]{2}(?P=tr_s)[0-9]{2}"
        + _END,
    ),
    ("fr", "0", r"[1-9](?P<fr_s>[ .\-])[0-9]{2}(?P=fr_s)[0-9]{2}(?P=fr_s)[0-9]{2}(?P=fr_s)[0-9]{2}" + _END),
    ("trunk0", "0", r"[1-9][0-9]{0,4}(?:[ /\-][0-9]{2,8}){1,3}" + _END),
    ("in", "[6-9]", r"[0-9]{4}[ \-][0-9]{5}" + _END),
    ("es", "[6-9]", r"[0-9]{2} (?:[0-9]{3} [0-9]{3}|[0-9]{2} [0-9]{2} [0-9]{2})" + _END),
    ("it", "3", r"[1-9][0-9] [0-9]{3} [0-9]{3,4}" + _END),
]

_UPPER_SHAPES: list[tuple[str, str, str]] = [
    ("iban", "[A-Z]", r"[A-Z][0-9]{2}(?:[ \-]?[A-Z0-9]){10,30}"),  # grouped by blanks or dashes
    (
        "vat",
        "[A-Z]",
        r"[A-Z] ?(?:U[0-9]{8}|[0-9A-Z]{2} ?[0-9]{9}|[0-9]{8,12}(?:B[0-9]{2})?|[0-9A-Z][0-9]{7}[0-9A-Z]{1,2})(?![A-Za-z0-9_])",
    ),
    ("nino", "[A-CEGHJ-PR-TW-Z]", r"[A-CEGHJ-NPR-TW-Z] ?[0-9]{2} ?[0-9]{2} ?[0-9]{2} ?[A-D](?![A-Za-z0-9_])"),
    (
        "cf",
        "[A-Z]",
        r"[A-Z]{5}[0-9LMNPQRSTUV]{2}[ABCDEHLMPRST][0-9LMNPQRSTUV]{2}[A-Z][0-9LMNPQRSTUV]{3}[A-Z](?![A-Za-z0-9_])",
    ),
    ("nie", "[XYZ]", r"-?[0-9]{7}-?[A-Z](?![A-Za-z0-9_])"),
]


def shape_finder(first: str, then: str, shapes: list[tuple[str, str, str]]) -> re.Pattern[str]:
    """One pattern, matched where a value may start: the first character, a cheap check of the
    next one, then every shape's rest in order, each named after its shape (lookbehinds
    re-check the first character)."""
    alternatives = "|".join(f"(?P<{name}>(?<={f}){rest})" for name, f, rest in shapes)
    return re.compile(f"{first}(?={then})(?:{alternatives})")


_NUMBER_FINDER = shape_finder(r"[0-9+(]", r"[0-9 .\-/()]", _NUMBER_SHAPES)
_UPPER_FINDER = shape_finder(r"[A-Z]", r"[A-Z0-9 \-]", _UPPER_SHAPES)
# Where values may start, found in Source.classes: after a blank or punctuation (not after a
# letter, digit, or a joining character like "." "-" "_": 1.2.3.4.5 has no IP inside, ab12 no
# number), and shaped like the start of a value: a digit and 5 more digits or separators, or "+"
# and a digit; two upper-case letters, or one and a digit or dash. Each pattern starts with a
# two-byte literal (the blank and the first character), so re skips ahead to it at C speed; they
# run on Source.padded_classes, where a match's start is the value's offset in text.
#
# A digit-led number is searched in Source.padded_numeric (the classes with "0" the digit zero and
# "1" the others), and its look-ahead holds, after the first digit, the start of every shape the
# finder tries there, in view bytes: D a digit, " " any blank or punctuation (also "(", ")" and
# "/"), "." a "." or "-"; from the digit after a "(" for the shapes that start with one. The
# alternatives are merged by their first groups, so that each is cheap to reject:
#   after a 0: ipv4, ssn, intl00, trunk0, fr, tr, trunk0p "(0xx) " -> D{1,5} sep; dni; mobile11;
#              ipv4 "0.x"; trunk0sp "0 (x"; tr "0 5xx ".
#   after 1-9: ipv4; ssn, us, us_paren, tr, es, it -> DD sep DD; card4, card465; in; dni; digits;
#              nir "1 23 45 "; us1 "1 555 ..." (us1 with "." or "-" is ipv4-shaped).
# So a date, a version, a time or an amount that no shape fits never reaches the finder: they
# were four in five number candidates of prose.
_NUMBER_AFTER_ZERO = rb"D{1,5}[ .] ?D|D{7}\.?[Aa]|1D{9}|\.D| (?: 1D|1DD[ .])"
_NUMBER_AFTER_OTHER = (
    rb"D{0,2}\.D{1,3}\.D{1,3}\.D|DD[ .] ?DD|DDD[ .]DDDD|DDDD[ .]D{5}|D{7}\.?[Aa]|D{12}| DD DD | 1DD[ .]1DD"
)
_NUMBER_STARTS_NUMERIC = (
    re.compile(rb" 0(?=[01 .]{5})(?=" + _NUMBER_AFTER_ZERO.replace(b"D", b"[01]") + rb")"),
    re.compile(rb" 1(?=[01 .]{5})(?=" + _NUMBER_AFTER_OTHER.replace(b"D", b"[01]") + rb")"),
)
_NUMBER_STARTS = (re.compile(rb" \+(?=0)"),)  # in Source.padded_classes
# Every upper-case shape (IBAN, VAT, NINO, codice fiscale, NIE) has 9+ characters of letters,
# digits, blanks and dashes: "API is" is rejected here, not by the five shapes.
_UPPER_STARTS = (re.compile(rb" A(?=[A0.][A0 .]{7})"),)

# Context checks run on Source.lower (Latin-1 bytes).
_NOT_PHONE_RX = re.compile(
    rb"\b(?:order|orders|invoice|ticket|ref|reference|tracking|serial|sku|part|item|case|po|isbn|version|build|"
    rb"account|acct|bestellung|bestellnummer|rechnung|rechnungsnummer|auftrag|kundennummer|commande|facture|"
    rb"pedido|factura|ordine|fattura)\b(?:\s*(?:no|nr|number|num|#|n\xb0)\.?)?[\s:#.\-]{0,4}\Z"
)
# A version's or a document section's context (section 2.3.2.4): the word (also ending a name:
# AssemblyVersion, FileVersion), then what sets it (Version="13.0.3.0", AssemblyVersion("1.0.0.0"));
# or a requirement's operator (brotlicffi>=1.2.0.0, ==, ~=, ~>) (round-6b G2).
_VERSION_RX = re.compile(
    rb"(?:version|\b(?:ver|v|release|build|firmware|rev|revision|versi\xf3n|versione|section|chapter|clause))\b"
    rb"(?:[\s.:=]{0,3}|[ \t]*(?:=|\(|:)[ \t]*[\"'])\Z|[\w\])](?:>=|==|~=|<=|!=|~>)[ \t]*\Z"
)
# A ZIP+4 after a US state's code (Boston, MA 02110-1301: the FSF address of every GPL header) is
# no phone number (round-6b G3)
_US_STATES = (
    "AL AK AZ AR CA CO CT DE DC FL GA HI ID IL IN IA KS KY LA ME MD MA MI MN MS MO MT NE NV NH NJ NM NY NC ND OH OK "
    "OR PA RI SC SD TN TX UT VT VA WA WV WI WY PR GU VI AS MP"
)
_STATE_BEFORE_RX = re.compile(r"(?<![A-Za-z])(?:" + _US_STATES.replace(" ", "|") + r"),?[ \t]+\Z")
_ZIP4_RX = re.compile(r"[0-9]{5}-[0-9]{4}\Z")
# Words that say a reserved or published example value is one: in the 160 characters before it.
# (Such values also stand in for real ones in data-protection examples, ours and presidio's:
# "my number is (415) 555-0132" is a finding.)
_EXAMPLE_CONTEXT_RX = re.compile(
    rb"\b(?:test|tests|testing|sandbox|stripe|adyen|braintree|paypal|worldpay|checkout\.com|dummy|fake|sample|"
    rb"example|examples|documentation|docs|fiction|fictional|reserved|placeholder|mock)\b"
)
# Numbers reserved for fiction: NANP 555-0100..0199; Ofcom's drama ranges, as national numbers
_OFCOM_DRAMA_PREFIXES = (
    "02079460", "01134960", "01144960", "01154960", "01164960", "01174960", "01184960", "01214960", "01314960",
    "01414960", "01514960", "01614960", "02896496", "02920180", "01632960", "07700900", "08081570", "09098790",
    "03069990",
)  # fmt: skip
# The IBAN registry's and the banks' documentation examples
_EXAMPLE_IBANS = frozenset(
    {"DE89370400440532013000", "GB82WEST12345698765432", "GB29NWBK60161331926819", "FR1420041010050500013M02606",
     "NL91ABNA0417164300", "ES9121000418450200051332", "IT60X0542811101000000123456", "BE68539007547034",
     "AT611904300234573201", "CH9300762011623852957"}
)  # fmt: skip


def _fictional_phone(shape: str, digits: str) -> bool:
    """A number reserved for fiction (NANP 555-01xx, Ofcom's drama ranges)."""
    nanp = uk = ""
    if shape in ("intl", "intl00"):
        international = digits[2:] if shape == "intl00" else digits
        if international[:1] == "1" and len(international) == 11:
            nanp = international[1:]
        elif international[:2] == "44":
            uk = "0" + international[2:].lstrip("0")
    elif shape in ("us_paren", "us", "us1"):
        nanp = digits[-10:]
    elif digits[:1] == "0":
        uk = digits
    return (nanp[3:6] == "555" and nanp[6:8] == "01") or (len(uk) == 11 and uk.startswith(_OFCOM_DRAMA_PREFIXES))


_DATE_LIKE_RX = re.compile(r"[0-9]{1,4}[/.\-][0-9]{1,2}[/.\-][0-9]{2,4}")


def _context_says(rx: re.Pattern[bytes], lower: bytes, start: int, window: int = 32) -> bool:
    return rx.search(lower, max(0, start - window), start) is not None


def _phone_groups_ok(value: str) -> bool:
    """National numbers: groups after the area code have 3+ digits (the last may have 2)."""
    groups = re.split(r"[ /\-.]", value)
    return all(len(g) >= 3 for g in groups[1:-1]) and len(groups[-1]) >= 2


def _after_digit_group(text: str, sep: int) -> bool:
    """text[sep] is a blank after a group of digits that itself follows a blank or the start
    (4564 0446 3343 5327: the tail of a longer grouped number), not after an id like ...e5a1."""
    i = sep
    while i > 0 and "0" <= text[i - 1] <= "9":
        i -= 1
    return i == 0 or text[i - 1] in " \t\n-"


def _validate_number(shape: str, value: str, src: Source, start: int) -> str | None:
    digits = digits_only(value)
    if shape == "ipv4":
        if ipv4_interesting(value.split(".")) and not _context_says(_VERSION_RX, src.lower, start, 16):
            return "IPV4"
        return None
    if shape in ("card4", "card465", "digits") and digits in PUBLISHED_TEST_CARDS:
        if _context_says(_EXAMPLE_CONTEXT_RX, src.lower, start, 160):
            return None  # a payment provider's published test number, said to be one (round-6b G22)
    if shape in ("card4", "card465"):
        return "CREDIT_CARD" if card_valid(digits) else None
    if shape == "digits":
        if card_valid(digits):
            return "CREDIT_CARD"
        # unformatted, only the usual sex digits 1 and 2 (15-digit IMEIs pass the key 1 time in 97)
        return "FR_NIR" if len(digits) == 15 and digits[0] in "12" and fr_nir_valid(value) else None
    if shape == "nir":
        return "FR_NIR" if fr_nir_valid(value.replace(" ", "")) else None
    if shape == "ssn":
        if ssn_valid(digits):
            return "US_SSN"
        return "US_ITIN" if itin_valid(digits) else None
    if shape == "dni":
        return "ES_DNI" if es_dni_valid(value.replace("-", "").upper()) else None
    # phones
    if len(set(digits)) <= 2 or _context_says(_NOT_PHONE_RX, src.lower, start):
        return None
    if _ZIP4_RX.match(value) and _STATE_BEFORE_RX.search(src.text, max(0, start - 8), start):
        return None
    if _fictional_phone(shape, digits) and _context_says(_EXAMPLE_CONTEXT_RX, src.lower, start, 160):
        return None  # a number reserved for fiction, said to be an example (round-6b G23)
    if shape in ("intl", "intl00"):
        cc_national = split_calling_code(digits_only(value.replace("(0)", ""))[2 if shape == "intl00" else 0 :])
        return "PHONE" if cc_national and international_phone_valid(*cc_national) else None
    if shape in ("us_paren", "us", "us1"):
        return "PHONE" if nanp_valid(digits[-10:]) else None
    if shape == "trunk0":
        if not 9 <= len(digits) <= 12 or not _phone_groups_ok(value) or _DATE_LIKE_RX.match(value):
            return None
        return "PHONE"
    if shape in ("trunk0p", "trunk0sp"):
        return "PHONE" if 9 <= len(digits) <= 12 else None
    return "PHONE"  # fr, in, es, it, tr, mobile11: the shape is specific enough


def _candidates(*searches: tuple[bytes, tuple[re.Pattern[bytes], ...]]) -> list[int]:
    """Offsets where a value may start, in order: each (padded view, patterns) searched (the
    text's start counts as after a blank: a padded view is b" " + a view, so a value at offset 0
    is found like any other)."""
    found: list[int] = []
    for padded, starts in searches:
        for rx in starts:
            found.extend(m.start() for m in rx.finditer(padded))
    found.sort()
    return found


def _scan_shapes(
    src: Source,
    hits: Hits,
    finder: re.Pattern[str],
    candidates: list[int],
    validate: Callable[[str, str, Source, int, bool], tuple[str, int] | None],
    fallbacks: dict[str, list[tuple[str, re.Pattern[str]]]],
) -> None:
    text = src.text
    pos = 0
    last_end = -2  # where the last value found ends
    for start in candidates:
        if start < pos:
            continue
        after_value = start == last_end + 1  # "4012888888881881 4012 8888 8888 1881": a new value
        m = finder.match(text, start)
        if m is None and start and text[start - 1] == "(" and start - 1 >= pos:  # (555) 123-4567
            start -= 1
            m = finder.match(text, start)
        if m is None:
            continue
        shape = m.lastgroup or ""
        found = validate(shape, m.group(), src, start, after_value)
        for other, rx in fallbacks.get(shape, ()):  # later shapes that fit the same text
            if found is not None:
                break
            if (fm := rx.match(text, start)) is not None:
                found = validate(other, fm.group(), src, start, after_value)
        if found is not None:
            type_, end = found
            hits.add(start, end, type_, _DETECTOR_OF[type_])
            pos = last_end = end
        else:
            # A number that failed its checks: its tail is not a number of its own
            # (the last 12 digits of a card failing Luhn are no phone number).
            pos = m.end()


def _fallbacks(
    shapes: list[tuple[str, str, str]], ambiguous: dict[str, tuple[str, ...]]
) -> dict[str, list[tuple[str, re.Pattern[str]]]]:
    full = {name: re.compile(first + rest) for name, first, rest in shapes}
    return {shape: [(o, full[o]) for o in others] for shape, others in ambiguous.items()}


# The finder reports the first shape that matches; these later shapes can match the same text
# (NL123456789B01 is IBAN-shaped, a VAT number, never an IBAN).
_UPPER_FALLBACKS = _fallbacks(_UPPER_SHAPES, {"iban": ("vat", "nino", "cf"), "vat": ("nino", "cf"), "nino": ("cf",)})
_NUMBER_FALLBACKS = _fallbacks(_NUMBER_SHAPES, {"card4": ("ssn",), "digits": ("dni",), "ipv4": ("tr",)})


def _number(shape: str, value: str, src: Source, start: int, after_value: bool) -> tuple[str, int] | None:
    text = src.text
    before = text[max(0, start - 2) : start]
    if before[-1:] == "/" and before != "//":
        return None  # a path or a user agent (Chrome/120.0.6099.109), not a number of its own
    if (
        not after_value
        and value[0].isdigit()
        and len(before) == 2
        and before[1] == " "
        and "0" <= before[0] <= "9"
        and _after_digit_group(text, start - 1)
    ):
        return None  # the rest of a longer grouped number
    if (
        start >= 5
        and before[-1:] == " "
        and before[0] in _IBAN_CHARS
        and _IBAN_RUN_BEFORE_RX.search(text, max(0, start - 48), start)
    ):
        return None  # the groups of an IBAN whose checksum failed are not a phone or a card
    type_ = _validate_number(shape, value, src, start)
    return None if type_ is None else (type_, start + len(value))


_IBAN_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789")
_IBAN_RUN_BEFORE_RX = re.compile(r"(?:\A|[^0-9A-Za-z])[A-Z]{2}[0-9]{2}(?: [A-Z0-9]{2,4})* \Z")


def _upper(shape: str, value: str, src: Source, start: int, after_value: bool) -> tuple[str, int] | None:
    text = src.text
    if shape == "iban":
        length = IBAN_LENGTHS.get(value[:2])
        if length is None:
            return None
        n = end = 0
        for i, c in enumerate(value):  # take exactly the country's number of characters
            if c not in " -":
                n += 1
                if n == length:
                    end = i + 1
                    break
        compact = value[:end].replace(" ", "").replace("-", "")
        after = text[start + end : start + end + 1]
        if end and not (after.isascii() and after.isalnum()) and iban_valid(compact):
            if compact in _EXAMPLE_IBANS and _context_says(_EXAMPLE_CONTEXT_RX, src.lower, start, 160):
                return None  # the registry's example, said to be one (round-6b G23)
            return "IBAN", start + end
        return None
    compact = value.replace(" ", "").replace("-", "")
    if shape == "vat":
        return ("EU_VAT", start + len(value)) if vat_valid(compact[:2], compact[2:]) else None
    if shape == "nino":
        return ("UK_NINO", start + len(value)) if uk_nino_valid(compact) else None
    if shape == "cf":
        return ("IT_FISCAL_CODE", start + len(value)) if it_fiscal_code_valid(compact) else None
    if shape == "nie":
        return ("ES_NIE", start + len(value)) if es_dni_valid(compact) else None
    return None


def detect_numbers(src: Source, hits: Hits) -> None:
    candidates = _candidates((src.padded_numeric, _NUMBER_STARTS_NUMERIC), (src.padded_classes, _NUMBER_STARTS))
    _scan_shapes(src, hits, _NUMBER_FINDER, candidates, _number, _NUMBER_FALLBACKS)


def detect_identifiers(src: Source, hits: Hits) -> None:
    candidates = _candidates((src.padded_classes, _UPPER_STARTS))
    _scan_shapes(src, hits, _UPPER_FINDER, candidates, _upper, _UPPER_FALLBACKS)


# --- IPv6 and MAC addresses -----------------------------------------------------------------
_COLON_RX = re.compile(r":(?::|[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]{1,4}:)")
_ADDRESS_RX = re.compile(r"[0-9A-Fa-f:.]{2,45}(?:%[A-Za-z0-9_.\-]{1,15})?")
_MAC_RX = re.compile(r"[0-9A-Fa-f]{2}(?P<s>[:\-])(?:[0-9A-Fa-f]{2}(?P=s)){4}[0-9A-Fa-f]{2}\Z")
_DASH_MAC_RX = re.compile(
    r"-[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}-[0-9A-Fa-f]{2}(?![0-9A-Za-z_\-])"
)
_HEXCOLON = frozenset("0123456789abcdefABCDEF:")
_HEXCOLON_BEFORE_RX = re.compile(r"[0-9A-Fa-f:]+\Z")
_DIGIT_RX = re.compile(r"[0-9]")
_CISCO_MAC_RX = re.compile(r"\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}(?![0-9A-Za-z_.\-])")


def _mac_ok(value: str) -> bool:
    return value.replace(":", "").replace("-", "").lower() not in ("000000000000", "ffffffffffff")


def detect_network(src: Source, hits: Hits) -> None:
    text = src.text
    pos = 0
    while (m := _COLON_RX.search(text, pos)) is not None:
        # the start of the run of hex digits and colons before the match (at most 40 back), in C:
        # a Python walk of 40 characters at every "::" of a text of colons cost ~20 us each
        run = _HEXCOLON_BEFORE_RX.search(text, max(0, m.start() - 40), m.start())
        s = run.start() if run else m.start()
        am = _ADDRESS_RX.match(text, s)
        end = am.end() if am else m.end()
        pos = max(end, m.start() + 1)
        before = text[s - 1] if s else " "
        if (before.isascii() and (before.isalnum() or before in "_.")) or (
            end < len(text) and text[end].isascii() and text[end].isalnum()
        ):
            continue
        value = text[s:end].rstrip(".")
        if _MAC_RX.match(value):
            if _mac_ok(value):
                hits.add(s, s + len(value), "MAC_ADDRESS", "mac")
            continue
        if not _DIGIT_RX.search(value):
            continue  # nothing below can then be an address: spare the parse
        if value.endswith(":") and not value.endswith("::"):
            value = value[:-1]
        if not ipv6_valid(value) and value.count(":") > 2:
            value = value.rsplit(":", 1)[0]  # an unbracketed port: 2001:db8:0:0:0:0:0:1:443
        if _DIGIT_RX.search(value) and ipv6_interesting(value):
            hits.add(s, s + len(value), "IPV6", "ip")
    for m in _CISCO_MAC_RX.finditer(text):  # Cisco notation: 0012.3456.789a
        s = m.start() - 4
        if s < 0 or not all(c in _HEXCOLON for c in text[s : m.start()]) or ":" in text[s : m.start()]:
            continue
        if s and text[s - 1].isascii() and (text[s - 1].isalnum() or text[s - 1] in "_.-"):
            continue
        value = text[s : m.end()]
        if any(c.isdigit() for c in value) and any(c.isalpha() for c in value) and _mac_ok(value.replace(".", "")):
            hits.add(s, m.end(), "MAC_ADDRESS", "mac")
    for m in _DASH_MAC_RX.finditer(text):
        s = m.start() - 2
        if s < 0 or not all(c in _HEXCOLON for c in text[s : m.start()]):
            continue
        if s and text[s - 1].isascii() and (text[s - 1].isalnum() or text[s - 1] in "_-"):
            continue
        if _mac_ok(text[s : m.end()]):
            hits.add(s, m.end(), "MAC_ADDRESS", "mac")


# --- Identifiers that are bare digits: only right after a word that names them -------------
_CONTEXT_IDS: list[tuple[tuple[str, ...], int, re.Pattern[str], Callable[[str], bool], str]] = [
    (
        ("steuer", "idnr", "identifikationsnummer", "tax"),
        60,
        re.compile(r"(?<![0-9])[1-9][0-9] ?[0-9]{3} ?[0-9]{3} ?[0-9]{3}(?![0-9])"),
        lambda v: de_tax_id_valid(digits_only(v)),
        "DE_TAX_ID",
    ),
    (
        ("bsn", "burgerservice", "sofi"),
        50,
        re.compile(r"(?<![0-9])(?:[0-9]{9}|[0-9]{4}\.[0-9]{2}\.[0-9]{3}|[0-9]{3}[ .][0-9]{3}[ .][0-9]{3})(?![0-9])"),
        lambda v: nl_bsn_valid(digits_only(v)),
        "NL_BSN",
    ),
    (
        ("passport", "travel document"),
        40,
        re.compile(r"(?<![A-Za-z0-9])[A-Z]?[0-9]{8,9}(?![A-Za-z0-9])"),
        lambda v: (len(v) == 9) and len(set(v)) > 3,
        "US_PASSPORT",
    ),
    (
        # national numbers written without separators (5321234567, 4155550132): only after a word
        # that says phone, since a bare run of 10 digits is as often an order or a timestamp
        ("phone", "tel:", "mobile", "telefon"),  # each word is one search of the whole text: few
        24,
        re.compile(r"(?<![0-9+\-])0?[1-9][0-9]{8,10}(?![0-9\-])"),
        lambda v: len(set(v)) > 3,
        "PHONE",
    ),
    (
        ("ssn", "social sec"),
        40,
        re.compile(r"(?<![0-9\-])[0-9]{9}(?![0-9\-])"),
        lambda v: ssn_valid(v),
        "US_SSN",
    ),
]


needles("lower", *(w.encode() for words, *_ in _CONTEXT_IDS for w in words))


def detect_context_ids(src: Source, hits: Hits) -> None:
    text, lower = src.text, src.lower
    for words, window, rx, check, type_ in _CONTEXT_IDS:
        for word in words:
            pos = 0
            for h in src.occurrences("lower", word.encode()):
                if h < pos:
                    continue
                pos = h + len(word)
                if type_ == "PHONE" and h and lower[h - 1 : h].isalpha():
                    continue  # "iPhone 15", "microphone"
                m = rx.search(text, pos, pos + window)
                if type_ == "PHONE" and m is not None and _context_says(_NOT_PHONE_RX, lower, m.start()):
                    continue  # "phone order 1234567890"
                if m is not None and check(m.group()):
                    hits.add(m.start(), m.end(), type_, _DETECTOR_OF[type_])
                    pos = m.end()


_DETECTOR_OF = {
    "IPV4": "ip",
    "CREDIT_CARD": "payment_card",
    "FR_NIR": "fr_nir",
    "US_SSN": "us_ssn",
    "US_ITIN": "us_itin",
    "ES_DNI": "es_dni",
    "PHONE": "phone",
    "IBAN": "iban",
    "EU_VAT": "eu_vat",
    "UK_NINO": "uk_nino",
    "IT_FISCAL_CODE": "it_fiscal_code",
    "ES_NIE": "es_dni",
    "DE_TAX_ID": "de_tax_id",
    "NL_BSN": "nl_bsn",
    "US_PASSPORT": "us_passport",
}
register_types(PII, "EMAIL", "IPV6", "MAC_ADDRESS", *_DETECTOR_OF)

DETECTORS = [
    Detector("email", frozenset({"EMAIL"}), detect_email),
    Detector(
        "numbers", frozenset({"IPV4", "CREDIT_CARD", "FR_NIR", "US_SSN", "US_ITIN", "ES_DNI", "PHONE"}), detect_numbers
    ),
    Detector("identifiers", frozenset({"IBAN", "EU_VAT", "UK_NINO", "IT_FISCAL_CODE", "ES_NIE"}), detect_identifiers),
    Detector("network", frozenset({"IPV6", "MAC_ADDRESS"}), detect_network),
    Detector("context_ids", frozenset({"DE_TAX_ID", "NL_BSN", "US_PASSPORT", "US_SSN", "PHONE"}), detect_context_ids),
]
