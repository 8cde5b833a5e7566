"""Check digits and ranges of personal-data numbers: what turns a number-shaped match into a
finding. Payment cards (IIN and Luhn), IBAN (mod 97), US SSN and ITIN ranges, the European
national ids (UK NINO, German tax id, French NIR, Dutch BSN, Spanish DNI/NIE, Italian fiscal code),
EU VAT numbers, phone numbers (calling codes, NANP), IP addresses. The national ids of the other
countries are in idchecks.py; key heuristics (entropy, placeholders) in validators.py.

As there: each function takes the candidate text, already of the expected shape, returns a
bool, and never raises on any str.
"""

from __future__ import annotations

import ipaddress
from collections import Counter

from .validators import iso7064_mod11_10_valid
from .validators import luhn_valid

# ----------------------------------------------------------------------------------------------
# Payment cards


def card_brand(digits: str) -> str | None:
    """The card network whose issuer prefix (IIN) and length fit, or None."""
    n = len(digits)
    p2 = int(digits[:2])
    p3 = int(digits[:3])
    p4 = int(digits[:4])
    p6 = int(digits[:6])
    # 13-digit Visa and Maestro cards are no longer issued; 13-digit numbers are mostly EAN barcodes
    if digits[0] == "4" and n in (16, 19):
        return "visa"
    if (51 <= p2 <= 55 or 2221 <= p4 <= 2720) and n == 16:
        return "mastercard"
    if p2 in (34, 37) and n == 15:
        return "amex"
    if (p4 == 6011 or 644 <= p3 <= 649 or p2 == 65 or 622126 <= p6 <= 622925) and 16 <= n <= 19:
        return "discover"
    if 3528 <= p4 <= 3589 and 16 <= n <= 19:
        return "jcb"
    if (300 <= p3 <= 305 or p2 in (36, 38, 39)) and 14 <= n <= 19:
        return "diners"
    if p2 == 62 and 16 <= n <= 19:
        return "unionpay"
    if (p2 == 50 or 56 <= p2 <= 69) and 16 <= n <= 19:
        return "maestro"
    if 2200 <= p4 <= 2204 and 16 <= n <= 19:
        return "mir"
    if digits[0] == "1" and n == 15:
        return "uatp"  # airline travel cards (UATP): 1 and 14 digits
    return None


# Payment providers' published test card numbers (Stripe, Adyen, Braintree, PayPal, Worldpay,
# Checkout.com docs): no bank issues them. Left alone only where the text says test or names a
# provider (pii.py), so a listed number in a customer record is still a finding (round-6b G22).
PUBLISHED_TEST_CARDS = frozenset(
    """
    4000056655665556 2223003122003222 5200828282828210 5105105105105100 378282246310005 371449635398431
    6011111111111117 6011000990139424 6011981111111113 3056930009020004 36227206271667 6555900000604105
    3566002020360505 6200000000000005 6200000000000047 4000002500003155 4000000000009995 4000002760003184
    4000000000003220 4000000000000002 4000000000009987 4000000000009979 4000000000000069 4000000000000127
    4000000000000119 4000000000000101 4000000000000341 4000000000003063 4000008400001629 4000000000000077
    4000003720000278 4000000000000010 4000000000000028 4000000000000036 4000000000005126 4000000000000259
    4000000000001976 4000000000003238 4000000000003055 4000000000003097 4000000000003246 4000000000003253
    4000008260003178 4000002500001001 4000000000006975 4000003800000008 4000000760000002 4000001240000000
    4000004840008001 4000000400000008 4000000560000004 4000008260000000 4000002760000016 4000007240000007
    4111111145551142 4988438843884305 4166676667666746 4000620000000007 4400000000000008 5555341244441115
    5577000055770004 5136333333333335 5101180000000007 2222400070000005 370000000000002 6011601160116611
    6445644564456445 3569990010095841 36006666333344 6731012345678906 4035501000000008 4212345678901237
    4005519200000004 4009348888881881 4012000033330026 4012000077777777 4012888888881881 4217651111111119
    4500600000000061 3530111333300000 4000111111111115 36259600000004 6304000000000000 4444333322221111
    4917610000000000 4462030000000000 4917300800000000 4484070000000000 6011000400000000 3528000700000000
    5019717010103742 30569309025904 6759649826438453 4543059999999982 4263970000005262 5425233430109903
    2223000048410010 4917484589897107 5436031030606378 4263982640269299 4532015112830366 5200000000001005
    4000000000001000 5555555555554477 4000000000000093
    """.split()
)


def card_valid(digits: str) -> bool:
    return 13 <= len(digits) <= 19 and card_brand(digits) is not None and luhn_valid(digits) and len(set(digits)) > 2


# ----------------------------------------------------------------------------------------------
# IBAN (ISO 13616): per-country length, then mod 97 == 1

IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28,
    "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23,
    "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26,
    "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20,
    "LV": 21, "LY": 25, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22,
    "SA": 24, "SC": 31, "SD": 18, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "SO": 23, "ST": 25,
    "SV": 28, "TL": 23, "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def mod97(s: str) -> int:
    """The value mod 97 of an alphanumeric string with A=10 ... Z=35 (ISO 7064 MOD 97-10)."""
    r = 0
    for c in s:
        v = ord(c) - 48 if c <= "9" else ord(c) - 55
        r = (r * (100 if v > 9 else 10) + v) % 97
    return r


def iban_valid(compact: str) -> bool:
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not compact.isascii() or not compact.isalnum():
        return False
    return mod97(compact[4:] + compact[:4]) == 1


# ----------------------------------------------------------------------------------------------
# US identifiers

# Values that are printed as examples so often that they identify nobody.
_SSN_EXAMPLES = frozenset({"078051120", "219099999", "123456789"})


def ssn_valid(digits: str) -> bool:
    """SSA rules: area not 000, 666 or 9xx; group not 00; serial not 0000."""
    if len(digits) != 9 or digits in _SSN_EXAMPLES:
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    return area not in ("000", "666") and area[0] != "9" and group != "00" and serial != "0000"


def itin_valid(digits: str) -> bool:
    """IRS ITIN: 9xx, then a group of 50-65, 70-88, 90-92 or 94-99."""
    if len(digits) != 9 or digits[0] != "9":
        return False
    g = int(digits[3:5])
    return 50 <= g <= 65 or 70 <= g <= 88 or 90 <= g <= 92 or 94 <= g <= 99


# ----------------------------------------------------------------------------------------------
# European national identifiers

_NINO_BAD_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"})


def uk_nino_valid(compact: str) -> bool:
    """UK National Insurance number: two prefix letters (with HMRC's exclusions), 6 digits, A-D."""
    if len(compact) != 9:
        return False
    a, b = compact[0], compact[1]
    if a in "DFIQUV" or b in "DFIOQUV" or compact[:2] in _NINO_BAD_PREFIXES:
        return False
    return compact[2:8].isdigit() and compact[8] in "ABCD"


def de_tax_id_valid(digits: str) -> bool:
    """Steuerliche Identifikationsnummer: 11 digits, no leading 0, one digit repeated 2-3 times in
    the first ten, ISO 7064 MOD 11,10 check digit."""
    if len(digits) != 11 or digits[0] == "0" or not digits.isdigit():
        return False
    counts = Counter(digits[:10])
    repeated = [d for d, k in counts.items() if k > 1]
    if len(repeated) != 1 or counts[repeated[0]] > 3:
        return False
    if counts[repeated[0]] == 3 and repeated[0] * 3 in digits[:10]:
        return False
    return iso7064_mod11_10_valid(digits)


def fr_nir_valid(compact: str) -> bool:
    """Numéro de sécurité sociale: 13 characters (Corsica 2A/2B), then the key 97 - (N mod 97)."""
    if len(compact) != 15 or compact[0] not in "123478":
        return False
    body, key = compact[:13], compact[13:]
    if not key.isdigit():
        return False
    month = int(compact[3:5])
    if not (1 <= month <= 12 or 20 <= month <= 42 or 50 <= month <= 99):
        return False
    dept = body[5:7]
    if dept in ("2A", "2B"):  # Corsica: 2A counts as 19, 2B as 18
        number = int(body[:5] + ("19" if dept == "2A" else "18") + body[7:])
    elif body.isdigit():
        number = int(body)
    else:
        return False
    return 97 - number % 97 == int(key)


def nl_bsn_valid(digits: str) -> bool:
    """Burgerservicenummer: 9 digits passing the 11-proof (the last digit weighs -1)."""
    if len(digits) != 9 or not digits.isdigit() or digits == "000000000":
        return False
    total = sum((9 - i) * (ord(c) - 48) for i, c in enumerate(digits[:8])) - (ord(digits[8]) - 48)
    return total % 11 == 0


DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def es_dni_valid(compact: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter)."""
    if len(compact) != 9:
        return False
    head = compact[:8]
    if head[0] in "XYZ":
        head = str("XYZ".index(head[0])) + head[1:]
    return head.isdigit() and DNI_LETTERS[int(head) % 23] == compact[8]


_CF_ODD = dict(
    zip(
        "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ",
        [
            1,
            0,
            5,
            7,
            9,
            13,
            15,
            17,
            19,
            21,
            1,
            0,
            5,
            7,
            9,
            13,
            15,
            17,
            19,
            21,
            2,
            4,
            18,
            20,
            11,
            3,
            6,
            8,
            12,
            14,
            16,
            10,
            22,
            25,
            24,
            23,
        ],
        strict=True,
    )
)


def it_fiscal_code_valid(code: str) -> bool:
    """Codice fiscale: 15 characters, then a check letter from the odd/even position tables."""
    if len(code) != 16:
        return False
    total = 0
    for i, c in enumerate(code[:15]):
        if i % 2 == 0:
            total += _CF_ODD.get(c, 0)
        else:
            total += ord(c) - 48 if c <= "9" else ord(c) - 65
    return chr(65 + total % 26) == code[15]


# ----------------------------------------------------------------------------------------------
# VAT identification numbers (VIES formats; GB kept for the UK's own scheme)


def _digit_sum(n: int) -> int:
    return n // 10 + n % 10


def _weighted(digits: str, weights: tuple[int, ...]) -> int:
    return sum(w * (ord(c) - 48) for w, c in zip(weights, digits, strict=False))


def _vat_at(n: str) -> bool:
    d = [ord(c) - 48 for c in n[1:]]
    s = d[0] + _digit_sum(2 * d[1]) + d[2] + _digit_sum(2 * d[3]) + d[4] + _digit_sum(2 * d[5]) + d[6]
    return (10 - (s + 4) % 10) % 10 == d[7]


def _vat_fi(n: str) -> bool:
    r = _weighted(n, (7, 9, 10, 5, 8, 4, 2)) % 11
    return r != 1 and (0 if r == 0 else 11 - r) == ord(n[7]) - 48


def _vat_fr(n: str) -> bool:
    key, siren = n[:2], n[2:]
    if not luhn_valid(siren):
        return False
    return (12 + 3 * (int(siren) % 97)) % 97 == int(key) if key.isdigit() else key.isalnum()


def _vat_gb(n: str) -> bool:
    total = _weighted(n, (8, 7, 6, 5, 4, 3, 2)) + int(n[7:9])
    return total % 97 == 0 or (total + 55) % 97 == 0


def _vat_ie(n: str) -> bool:
    total = _weighted(n, (8, 7, 6, 5, 4, 3, 2))
    if len(n) == 9:
        total += 9 * (ord(n[8]) - 64)
    return "WABCDEFGHIJKLMNOPQRSTUV"[total % 23] == n[7]


def _vat_nl(n: str) -> bool:
    if (_weighted(n, (9, 8, 7, 6, 5, 4, 3, 2)) % 11) == ord(n[8]) - 48:
        return True
    return mod97("NL" + n) == 1  # sole proprietors' numbers since 2020


def _vat_pt(n: str) -> bool:
    check = 11 - _weighted(n, (9, 8, 7, 6, 5, 4, 3, 2)) % 11
    return (0 if check >= 10 else check) == ord(n[8]) - 48


def _vat_es(n: str) -> bool:
    if n[0].isdigit() or n[0] in "XYZ":
        return es_dni_valid(n)
    if not n[1:8].isdigit():
        return False
    d = [ord(c) - 48 for c in n[1:8]]
    total = d[1] + d[3] + d[5] + sum(_digit_sum(2 * x) for x in d[0::2])
    check = (10 - total % 10) % 10
    return n[8] == str(check) or n[8] == "JABCDEFGHI"[check]


VAT_CHECKS = {
    "AT": _vat_at,
    "BE": lambda n: 97 - int(n[:8]) % 97 == int(n[8:]),
    "DE": iso7064_mod11_10_valid,
    "DK": lambda n: _weighted(n, (2, 7, 6, 5, 4, 3, 2, 1)) % 11 == 0,
    "ES": _vat_es,
    "FI": _vat_fi,
    "FR": _vat_fr,
    "GB": _vat_gb,
    "IE": _vat_ie,
    "IT": luhn_valid,
    "LU": lambda n: int(n[:6]) % 89 == int(n[6:]),
    "NL": _vat_nl,
    "PL": lambda n: _weighted(n, (6, 5, 7, 2, 3, 4, 5, 6, 7)) % 11 == ord(n[9]) - 48,
    "PT": _vat_pt,
    "SE": lambda n: n.endswith("01") and luhn_valid(n[:10]),
}


def vat_valid(country: str, number: str) -> bool:
    check = VAT_CHECKS.get(country)
    if check is None or len(set(number)) <= 2:
        return False
    try:
        return check(number)
    except (IndexError, ValueError):
        # The VAT shape admits the lengths and letters of every country's format, so a number
        # can be too short or hold letters where this country's check reads digits
        # ("NL12345678"): not this country's number. Raising would fail the whole scan, and a
        # fail-closed caller would block the request.
        return False


# ----------------------------------------------------------------------------------------------
# Phone numbers: ITU country calling codes (prefix-free) and length rules


def _codes(*spec: str) -> frozenset[str]:
    out: set[str] = set()
    for item in spec:
        if "-" in item:
            lo, hi = item.split("-")
            out.update(str(i) for i in range(int(lo), int(hi) + 1))
        else:
            out.add(item)
    return frozenset(out)


CALLING_CODES = _codes(
    "1", "7", "20", "27", "30-34", "36", "39", "40", "41", "43-49", "51-58", "60-66", "81", "82",
    "84", "86", "90-95", "98", "211-213", "216", "218", "220-258", "260-269", "290", "291",
    "297-299", "350-359", "370-378", "380-383", "385-387", "389", "420", "421", "423", "500-509",
    "590-599", "670", "672-692", "850", "852", "853", "855", "856", "880", "886", "960-968",
    "970-977", "992-996", "998",
)  # fmt: skip

# National significant number lengths (digits after the country code, trunk 0 dropped).
_NSN_LENGTHS: dict[str, tuple[int, int]] = {
    "1": (10, 10), "7": (10, 10), "20": (9, 10), "27": (9, 9), "30": (10, 10), "31": (9, 9),
    "32": (8, 9), "33": (9, 9), "34": (9, 9), "36": (8, 9), "39": (6, 11), "40": (9, 9),
    "41": (9, 9), "43": (7, 13), "44": (9, 10), "45": (8, 8), "46": (7, 9), "47": (8, 8),
    "48": (9, 9), "49": (6, 12), "52": (10, 10), "55": (10, 11), "61": (9, 9), "62": (8, 12),
    "64": (8, 10), "65": (8, 8), "81": (9, 10), "82": (8, 10), "86": (10, 11), "90": (10, 10),
    "91": (10, 10), "351": (9, 9), "353": (7, 9), "358": (6, 11), "420": (9, 9),
}  # fmt: skip


def split_calling_code(digits: str) -> tuple[str, str] | None:
    for n in (1, 2, 3):
        if digits[:n] in CALLING_CODES:
            return digits[:n], digits[n:]
    return None


def nanp_valid(ten: str) -> bool:
    """North American numbering plan: NPA and NXX start 2-9 and are not N11."""
    if len(ten) != 10:
        return False
    npa, nxx = ten[:3], ten[3:6]
    return npa[0] >= "2" and nxx[0] >= "2" and npa[1:] != "11" and nxx[1:] != "11" and len(set(ten)) > 2


def international_phone_valid(cc: str, national: str) -> bool:
    if cc == "1":
        return nanp_valid(national)
    lo, hi = _NSN_LENGTHS.get(cc, (7, 12))
    if not lo <= len(national) <= hi or len(cc) + len(national) > 15:
        return False
    return cc == "39" or national[0] != "0"


# ----------------------------------------------------------------------------------------------
# Network addresses


# Public DNS resolvers (Google, Cloudflare, Quad9, OpenDNS): in every resolv.conf question,
# nobody's address (round-6b G12)
_PUBLIC_RESOLVERS = frozenset(
    {
        ipaddress.ip_address(a)
        for a in (
            "8.8.8.8", "8.8.4.4", "1.1.1.1", "1.0.0.1", "9.9.9.9", "149.112.112.112", "208.67.222.222",
            "208.67.220.220", "2001:4860:4860::8888", "2001:4860:4860::8844", "2606:4700:4700::1111",
            "2606:4700:4700::1001", "2620:fe::fe", "2620:fe::9",
        )
    }
)  # fmt: skip


# Ranges that are nobody's: RFC 5737 / RFC 3849 documentation, link-local IPv4 (169.254/16: the
# cloud metadata address, self-assigned addresses), AWS's IPv6 metadata address. Private ranges
# (RFC 1918, fc00::/7, 100.64/10) are not here: inside a company they name a person's machine (the
# proxy itself maps client addresses to people), and fe80:: addresses often embed the MAC address.
_NOBODYS_NETWORKS = tuple(
    ipaddress.ip_network(n)
    for n in (
        "192.0.2.0/24",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "169.254.0.0/16",
        "2001:db8::/32",
        "fd00:ec2::254/128",
    )
)


def _identifies_nobody(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> bool:
    """Unspecified, loopback, documentation, link-local IPv4 or metadata, or a public resolver
    (round-6b G12)."""
    return (
        ip.is_unspecified
        or ip.is_loopback
        or ip in _PUBLIC_RESOLVERS
        or any(ip.version == n.version and ip in n for n in _NOBODYS_NETWORKS)
    )


def ipv4_interesting(octets: list[str]) -> bool:
    """Four decimal octets without leading zeros, not 0.x or broadcast/netmask (255.x) and not an
    address that identifies nobody."""
    values = []
    for o in octets:
        if not o or len(o) > 3 or (len(o) > 1 and o[0] == "0"):
            return False
        v = int(o)
        if v > 255:
            return False
        values.append(v)
    return values[0] not in (0, 255) and not _identifies_nobody(ipaddress.IPv4Address(bytes(values)))


def _ipv6(candidate: str) -> ipaddress.IPv6Address | None:
    if candidate.count(":") < 2:
        return None
    try:
        return ipaddress.IPv6Address(candidate.split("%", 1)[0])  # zone index allowed
    except ValueError:
        return None


def ipv6_valid(candidate: str) -> bool:
    return _ipv6(candidate) is not None


def ipv6_interesting(candidate: str) -> bool:
    """A valid IPv6 address that identifies someone (an IPv4-mapped one as its IPv4 address)."""
    ip = _ipv6(candidate)
    if ip is None:
        return False
    mapped = ip.ipv4_mapped
    return not _identifies_nobody(ip if mapped is None else mapped)
