"""Generate the labelled DLP corpus in tests/fixtures/dlp/ (seeded: the same files every run).

    cd /work/main && uv run python scripts/make_dlp_corpus.py

Every sensitive value is RANDOM and made here from the provider's published format or the
identifier's official rules (Luhn, IBAN mod 97, check letters and digits, numbering plans);
none is a real key or a real person's data. Values are placed in realistic prompts: code and
config with keys, support e-mails and CRM exports with customer data, logs with IPs and JWTs,
shell history, letters in German, French, Spanish, Italian, Dutch and Japanese, and documents
full of hard negatives (UUIDs, git SHAs, hashes, base64 images, version and order numbers,
dates, card-like numbers failing Luhn, documented example keys). clean.jsonl holds prompts with
no sensitive value at all.

The check-digit code below is written independently of addons/shadowgate/dlp/validators.py on purpose:
the corpus must not share a bug with the detector it measures.
"""

from __future__ import annotations

import base64
import ipaddress
import itertools
import json
import random
import string
import sys
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "tests" / "fixtures" / "dlp"
SEED = 20240514
R = random.Random(SEED)

UPPER = string.ascii_uppercase
LOWER = string.ascii_lowercase
DIGITS = string.digits
ALNUM = UPPER + LOWER + DIGITS
HEX = "0123456789abcdef"
B64 = ALNUM + "+/"
B64URL = ALNUM + "-_"


def rs(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


def pick(*options):
    return R.choice(options)


# ----------------------------------------------------------------------------------------------
# Snippets: text plus labelled spans inside it


@dataclass
class Snip:
    text: str
    labels: list[tuple[int, int, str]] = field(default_factory=list)


def whole(value: str, type_: str) -> Snip:
    return Snip(value, [(0, len(value), type_)])


def inside(prefix: str, value: str, suffix: str, type_: str) -> Snip:
    return Snip(prefix + value + suffix, [(len(prefix), len(prefix) + len(value), type_)])


def join(*parts: Snip | str) -> Snip:
    out = Snip("")
    for p in parts:
        if isinstance(p, str):
            p = Snip(p)
        out.labels.extend((a + len(out.text), b + len(out.text), t) for a, b, t in p.labels)
        out.text += p.text
    return out


# ----------------------------------------------------------------------------------------------
# Check digits (independent implementations)


def luhn_digit(partial: str) -> str:
    total = 0
    for i, c in enumerate(reversed(partial)):
        d = int(c)
        if i % 2 == 0:
            d = d * 2 - 9 if d * 2 > 9 else d * 2
        total += d
    return str((10 - total % 10) % 10)


def mod97_of(s: str) -> int:
    return int("".join(str(int(c, 36)) for c in s)) % 97


def iso7064_digit(digits: str) -> str:
    p = 10
    for c in digits:
        s = (int(c) + p) % 10
        s = 10 if s == 0 else s
        p = s * 2 % 11
    return str((11 - p) % 10)


# ----------------------------------------------------------------------------------------------
# People and places (unlabelled filler)

FIRST = "James Mary Robert Patricia Michael Linda David Elizabeth Sarah Daniel Emma Lukas Anna Felix Lena Jonas Sophie Thomas Julia Pierre Camille Louis Chloé Lucas Manon Javier Lucía Carlos Sofía Marco Giulia Luca Chiara Jan Sanne Daan Femke Priya Arjun Rahul Ananya Wei Mei Hiroshi Yuki Aiko Kenji Olga Ivan Fatima Omar".split()
LAST = "Smith Johnson Williams Brown Jones Garcia Miller Davis Müller Schmidt Schneider Fischer Weber Meyer Martin Bernard Dubois Thomas Robert Richard García Fernández López Martínez Rossi Russo Ferrari Esposito Bianchi de Jong Jansen de Vries van den Berg Bakker Sharma Patel Singh Kumar Wang Li Zhang Tanaka Suzuki Takahashi Watanabe Ivanova Novak Kowalski Nowak".split()
COMPANIES = "Acme Globex Initech Umbrella Hooli Vandelay Stark Wayne Wonka Tyrell Cyberdyne Soylent Oscorp Aperture Massive Dynamic Northwind Contoso Fabrikam Litware Tailspin".split()
CITIES = "Berlin München Hamburg Köln Paris Lyon Marseille Madrid Barcelona Valencia Milano Roma Torino Amsterdam Rotterdam Utrecht London Manchester Leeds Boston Austin Seattle Chicago Denver Mumbai Bengaluru Tokyo Osaka".split()
STREETS = "Hauptstraße Bahnhofstraße Rue de Rivoli Avenue Victor Hugo Calle Mayor Gran Vía Via Roma Corso Italia Keizersgracht Damrak High Street Baker Street Main Street Elm Street Oak Avenue".split(
    " "
)
TLDS = ["com", "com", "com", "de", "fr", "es", "it", "nl", "co.uk", "io", "net", "org", "co.jp", "eu", "ch", "at", "be"]


def first() -> str:
    return R.choice(FIRST)


def last() -> str:
    return R.choice(LAST)


def person() -> str:
    return f"{first()} {last()}"


def company() -> str:
    return R.choice(COMPANIES)


def ascii_slug(s: str) -> str:
    table = str.maketrans("äöüßéèêëáíóúñçàìòùâîôûÄÖÜÉ ", "aousëeeeaiounçaiouaiouAOUE-")
    return "".join(c for c in s.translate(table).lower() if c.isascii() and (c.isalnum() or c in "-."))


def domain() -> str:
    return f"{ascii_slug(company())}{pick('', '-corp', '-group', 'mail', '')}.{R.choice(TLDS)}"


def hostname() -> str:
    return f"{pick('db', 'api', 'cache', 'mq', 'pg', 'mongo', 'redis', 'auth')}-{R.randint(1, 9)}.{pick('internal', 'prod', 'eu-west-1', 'corp')}.{ascii_slug(company())}.{pick('com', 'net', 'io')}"


# ----------------------------------------------------------------------------------------------
# Personal data generators (labelled)


def g_email() -> Snip:
    f, l = ascii_slug(first()), ascii_slug(last())
    local = pick(
        f"{f}.{l}",
        f"{f}{R.randint(1, 99)}",
        f"{f[0]}{l}",
        f"{f}_{l}",
        f"{f}.{l}+{pick('billing', 'ai', 'news')}",
        f"{l}.{f}",
    )
    host = pick(
        domain(),
        domain(),
        "gmail.com",
        "outlook.com",
        "yahoo.fr",
        "web.de",
        "gmx.net",
        "hotmail.es",
        "libero.it",
        "icloud.com",
    )
    return whole(f"{local}@{host}", "EMAIL")


def _nanp() -> str:
    npa = f"{R.randint(2, 9)}{R.randint(0, 8)}{R.randint(0, 9)}"
    while npa[1:] == "11":
        npa = f"{R.randint(2, 9)}{R.randint(0, 8)}{R.randint(0, 9)}"
    nxx = f"{R.randint(2, 9)}{rs(DIGITS, 2)}"
    while nxx[1:] == "11":
        nxx = f"{R.randint(2, 9)}{rs(DIGITS, 2)}"
    return npa + nxx + rs(DIGITS, 4)


def phone_us() -> str:
    n = _nanp()
    a, b, c = n[:3], n[3:6], n[6:]
    return pick(
        f"({a}) {b}-{c}",
        f"{a}-{b}-{c}",
        f"{a}.{b}.{c}",
        f"+1 {a}-{b}-{c}",
        f"+1 ({a}) {b}-{c}",
        f"1-{a}-{b}-{c}",
        f"+1{n}",
        f"+1 {a} {b} {c}",
    )


def phone_uk() -> str:
    kind = R.randint(0, 2)
    if kind == 0:
        n = "20" + pick("7", "3", "8") + rs(DIGITS, 7)
        return pick(f"0{n[:2]} {n[2:6]} {n[6:]}", f"+44 {n[:2]} {n[2:6]} {n[6:]}", f"+44 (0){n[:2]} {n[2:6]} {n[6:]}")
    if kind == 1:
        n = "7" + pick("4", "5", "7", "8", "9") + rs(DIGITS, 8)
        return pick(f"0{n[:4]} {n[4:]}", f"+44 {n[:4]} {n[4:]}", f"+44{n}")
    n = "1" + pick("61", "13", "21", "31", "41", "17") + "1" + rs(DIGITS, 6)
    return pick(f"0{n[:4]} {n[4:7]} {n[7:]}", f"+44 {n[:4]} {n[4:7]} {n[7:]}")


def phone_de() -> str:
    if R.random() < 0.5:
        area = pick("30", "40", "89", "69", "221", "211", "711", "351")
        sub = rs(DIGITS, 8 - len(area) + 1 + R.randint(0, 1))
        sub = str(R.randint(1, 9)) + sub[1:]
        return pick(
            f"0{area} {sub}",
            f"0{area}/{sub}",
            f"0{area}-{sub}",
            f"+49 {area} {sub}",
            f"+49 (0){area} {sub}",
            f"+49{area}{sub}",
        )
    pre = pick("151", "152", "157", "160", "162", "170", "171", "172", "176", "177")
    sub = rs(DIGITS, 8 if pre.startswith("15") else 7)
    return pick(f"0{pre} {sub}", f"0{pre}-{sub}", f"+49 {pre} {sub}", f"+49 {pre} {sub[:3]} {sub[3:]}")


def phone_fr() -> str:
    n = str(R.choice([1, 2, 3, 4, 5, 6, 7, 9])) + rs(DIGITS, 8)
    pairs = [n[1:3], n[3:5], n[5:7], n[7:9]]
    sep = pick(" ", " ", ".", "-")
    return pick(
        f"0{n[0]}{sep}{sep.join(pairs)}", f"+33 {n[0]} {' '.join(pairs)}", f"+33 (0){n[0]} {' '.join(pairs)}", f"+33{n}"
    )


def phone_nl() -> str:
    if R.random() < 0.5:
        sub = rs(DIGITS, 8)
        return pick(f"06-{sub}", f"06 {sub}", f"+31 6 {sub}", f"+316{sub}")
    area = pick("20", "10", "30", "70", "40")
    sub = str(R.randint(1, 9)) + rs(DIGITS, 6)
    return pick(f"0{area}-{sub}", f"0{area} {sub[:3]} {sub[3:]}", f"+31 {area} {sub[:3]} {sub[3:]}")


def phone_in() -> str:
    n = str(R.randint(6, 9)) + rs(DIGITS, 9)
    return pick(f"+91 {n[:5]} {n[5:]}", f"{n[:5]} {n[5:]}", f"+91-{n[:5]}-{n[5:]}", f"+91{n}")


def phone_es() -> str:
    if R.random() < 0.6:
        n = str(R.randint(6, 7)) + rs(DIGITS, 8)
    else:
        n = "9" + str(R.randint(1, 8)) + rs(DIGITS, 7)
    return pick(
        f"{n[:3]} {n[3:6]} {n[6:]}",
        f"+34 {n[:3]} {n[3:6]} {n[6:]}",
        f"+34 {n[:3]} {n[3:5]} {n[5:7]} {n[7:]}",
        f"{n[:3]} {n[3:5]} {n[5:7]} {n[7:]}",
    )


def phone_it() -> str:
    if R.random() < 0.5:
        n = "3" + str(R.randint(2, 9)) + rs(DIGITS, 8)
        return pick(f"+39 {n[:3]} {n[3:6]} {n[6:]}", f"{n[:3]} {n[3:6]} {n[6:]}", f"+39{n}")
    n = "0" + pick("2", "6", "11", "51") + rs(DIGITS, 7)
    return pick(f"+39 {n[:2]} {n[2:6]} {n[6:]}", f"{n[:2]} {n[2:6]} {n[6:]}")


def phone_jp() -> str:
    if R.random() < 0.5:
        n = pick("3", "6") + rs(DIGITS, 8)
        return pick(f"0{n[0]}-{n[1:5]}-{n[5:]}", f"+81 {n[0]}-{n[1:5]}-{n[5:]}")
    n = pick("90", "80", "70") + rs(DIGITS, 8)
    return pick(f"0{n[:2]}-{n[2:6]}-{n[6:]}", f"+81 {n[:2]}-{n[2:6]}-{n[6:]}")


PHONES_BY_COUNTRY = {
    "us": phone_us,
    "uk": phone_uk,
    "de": phone_de,
    "fr": phone_fr,
    "nl": phone_nl,
    "in": phone_in,
    "es": phone_es,
    "it": phone_it,
    "jp": phone_jp,
}


def g_phone(country: str | None = None) -> Snip:
    return whole(PHONES_BY_COUNTRY[country or R.choice(list(PHONES_BY_COUNTRY))](), "PHONE")


def card_number() -> str:
    brand = R.choice(["visa", "visa", "visa", "mc", "mc", "mc2", "amex", "discover", "jcb", "diners", "unionpay"])
    prefix, length = {
        "visa": ("4", 16),
        "mc": (str(R.randint(51, 55)), 16),
        "mc2": (str(R.randint(2221, 2720)), 16),
        "amex": (pick("34", "37"), 15),
        "discover": ("6011", 16),
        "jcb": (str(R.randint(3528, 3589)), 16),
        "diners": (pick("36", "38"), 14),
        "unionpay": ("62" + str(R.randint(10, 99)), 16),
    }[brand]
    partial = prefix + rs(DIGITS, length - len(prefix) - 1)
    return partial + luhn_digit(partial)


def format_card(n: str) -> str:
    if len(n) == 15:
        sep = pick(" ", "-", "")
        return f"{n[:4]}{sep}{n[4:10]}{sep}{n[10:]}"
    if len(n) == 14:
        return pick(n, f"{n[:4]} {n[4:10]} {n[10:]}")
    sep = pick(" ", " ", "-", "")
    return sep.join(n[i : i + 4] for i in range(0, 16, 4))


def g_card() -> Snip:
    return whole(format_card(card_number()), "CREDIT_CARD")


IBAN_BBAN = {
    "DE": lambda: rs(DIGITS, 18),
    "FR": lambda: rs(DIGITS, 10) + rs(DIGITS + UPPER, 11) + rs(DIGITS, 2),
    "ES": lambda: rs(DIGITS, 20),
    "IT": lambda: R.choice(UPPER) + rs(DIGITS, 10) + rs(DIGITS, 12),
    "NL": lambda: rs(UPPER, 4) + rs(DIGITS, 10),
    "GB": lambda: rs(UPPER, 4) + rs(DIGITS, 14),
    "BE": lambda: rs(DIGITS, 12),
    "AT": lambda: rs(DIGITS, 16),
    "CH": lambda: rs(DIGITS, 5) + rs(DIGITS, 12),
    "PL": lambda: rs(DIGITS, 24),
    "SE": lambda: rs(DIGITS, 20),
    "IE": lambda: rs(UPPER, 4) + rs(DIGITS, 14),
    "PT": lambda: rs(DIGITS, 21),
}


def iban(country: str | None = None) -> str:
    cc = country or R.choice(list(IBAN_BBAN))
    bban = IBAN_BBAN[cc]()
    check = 98 - mod97_of(bban + cc + "00")
    compact = f"{cc}{check:02d}{bban}"
    if R.random() < 0.6:
        return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
    return compact


def g_iban(country: str | None = None) -> Snip:
    return whole(iban(country), "IBAN")


def g_ssn() -> Snip:
    area = R.randint(1, 899)
    while area == 666:
        area = R.randint(1, 899)
    return whole(f"{area:03d}-{R.randint(1, 99):02d}-{R.randint(1, 9999):04d}", "US_SSN")


def g_itin() -> Snip:
    group = R.choice(list(range(70, 89)) + list(range(90, 93)) + list(range(94, 100)))
    return whole(f"9{R.randint(0, 99):02d}-{group}-{R.randint(0, 9999):04d}", "US_ITIN")


def g_passport() -> Snip:
    return whole(pick(str(R.randint(1, 9)) + rs(DIGITS, 8), R.choice("ACEFGHJKLMN") + rs(DIGITS, 8)), "US_PASSPORT")


def g_ipv4() -> Snip:
    kind = R.randint(0, 3)
    if kind == 0:
        ip = f"10.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    elif kind == 1:
        ip = f"192.168.{R.randint(0, 255)}.{R.randint(1, 254)}"
    elif kind == 2:
        ip = f"172.{R.randint(16, 31)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    else:
        ip = f"{R.choice([8, 23, 34, 45, 52, 62, 81, 91, 104, 141, 151, 185, 193, 203, 212])}.{R.randint(0, 255)}.{R.randint(0, 255)}.{R.randint(1, 254)}"
    return whole(ip, "IPV4")


def g_ipv6() -> Snip:
    kind = R.randint(0, 2)
    if kind == 0:
        addr = ipaddress.IPv6Address((0x2001 << 112) | (R.getrandbits(16) << 96) | R.getrandbits(64))
    elif kind == 1:
        addr = ipaddress.IPv6Address((0xFE80 << 112) | R.getrandbits(64))
    else:
        addr = ipaddress.IPv6Address((R.choice([0x2A01, 0x2A02, 0x2600, 0x2607, 0x2803]) << 112) | R.getrandbits(112))
    text = addr.compressed if R.random() < 0.7 else addr.exploded
    return whole(text, "IPV6")


def g_mac() -> Snip:
    octets = [R.randint(0, 255) for _ in range(6)]
    octets[0] &= 0xFE
    sep = pick(":", ":", "-")
    fmt = pick("{:02x}", "{:02X}")
    return whole(sep.join(fmt.format(o) for o in octets), "MAC_ADDRESS")


NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"


def g_nino() -> Snip:
    while True:
        prefix = R.choice(NINO_FIRST) + R.choice(NINO_SECOND)
        if prefix not in ("BG", "GB", "KN", "NK", "NT", "TN", "ZZ"):
            break
    d = rs(DIGITS, 6)
    suffix = R.choice("ABCD")
    return whole(pick(f"{prefix}{d}{suffix}", f"{prefix} {d[:2]} {d[2:4]} {d[4:]} {suffix}"), "UK_NINO")


def g_de_tax_id() -> Snip:
    while True:
        digits = [str(R.randint(1, 9))]
        pool = [d for d in DIGITS if d != digits[0]]
        R.shuffle(pool)
        digits += pool[:8]
        digits.insert(R.randint(1, 9), R.choice(digits))
        ten = "".join(digits[:10])
        counts = Counter(ten)
        if sorted(counts.values()) == [1] * 8 + [2]:
            break
    full = ten + iso7064_digit(ten)
    return whole(pick(full, f"{full[:2]} {full[2:5]} {full[5:8]} {full[8:]}"), "DE_TAX_ID")


def g_fr_nir() -> Snip:
    sex = pick("1", "2")
    yy = f"{R.randint(0, 99):02d}"
    mm = f"{R.randint(1, 12):02d}"
    dept = pick(f"{R.randint(1, 95):02d}", f"{R.randint(1, 95):02d}", "2A", "2B")
    commune = f"{R.randint(1, 990):03d}"
    order = f"{R.randint(1, 999):03d}"
    body = sex + yy + mm + dept + commune + order
    n = int(body.replace("2A", "19").replace("2B", "18"))
    key = f"{97 - n % 97:02d}"
    if dept in ("2A", "2B") or R.random() < 0.6:
        return whole(f"{sex} {yy} {mm} {dept} {commune} {order} {key}", "FR_NIR")
    return whole(body + key, "FR_NIR")


def g_nl_bsn() -> Snip:
    while True:
        eight = rs(DIGITS, 8)
        s = sum((9 - i) * int(c) for i, c in enumerate(eight)) % 11
        if s < 10:
            bsn = eight + str(s)
            break
    return whole(pick(bsn, bsn, f"{bsn[:4]}.{bsn[4:6]}.{bsn[6:]}"), "NL_BSN")


DNI = "TRWAGMYFPDXBNJZSQVHLCKE"


def g_es_dni() -> Snip:
    n = R.randint(10_000_000, 99_999_999)
    return whole(pick(f"{n}{DNI[n % 23]}", f"{n}-{DNI[n % 23]}"), "ES_DNI")


def g_es_nie() -> Snip:
    p = R.choice("XYZ")
    n = R.randint(0, 9_999_999)
    return whole(f"{p}{n:07d}{DNI[int(str('XYZ'.index(p)) + f'{n:07d}') % 23]}", "ES_NIE")


CF_ODD = {c: v for c, v in zip("0123456789", [1, 0, 5, 7, 9, 13, 15, 17, 19, 21], strict=True)}
CF_ODD.update(
    zip(
        UPPER,
        [1, 0, 5, 7, 9, 13, 15, 17, 19, 21, 2, 4, 18, 20, 11, 3, 6, 8, 12, 14, 16, 10, 22, 25, 24, 23],
        strict=True,
    )
)
CONSONANTS = "BCDFGHJKLMNPQRSTVWXZ"


def g_it_cf() -> Snip:
    body = rs(CONSONANTS, 3) + rs(CONSONANTS, 3) + f"{R.randint(0, 99):02d}" + R.choice("ABCDEHLMPRST")
    body += f"{R.randint(1, 31) + pick(0, 40):02d}" + R.choice("ABCDEFGHILM") + f"{R.randint(1, 999):03d}"
    total = sum(CF_ODD[c] if i % 2 == 0 else (int(c) if c.isdigit() else ord(c) - 65) for i, c in enumerate(body))
    return whole(body + chr(65 + total % 26), "IT_FISCAL_CODE")


def _vat_number(cc: str) -> str:
    if cc == "DE":
        b = str(R.randint(1, 9)) + rs(DIGITS, 7)
        return b + iso7064_digit(b)
    if cc == "FR":
        siren8 = str(R.randint(1, 9)) + rs(DIGITS, 7)
        siren = siren8 + luhn_digit(siren8)
        return f"{(12 + 3 * (int(siren) % 97)) % 97:02d}{siren}"
    if cc == "IT":
        b = rs(DIGITS, 7) + f"{R.randint(1, 100):03d}"
        return b + luhn_digit(b)
    if cc == "NL":
        while True:
            b = rs(DIGITS, 8)
            c = sum((9 - i) * int(x) for i, x in enumerate(b)) % 11
            if c < 10:
                return f"{b}{c}B{R.randint(1, 3):02d}"
    if cc == "AT":
        b = rs(DIGITS, 7)
        d = [int(x) for x in b]
        s = (
            d[0]
            + sum(divmod(2 * d[1], 10))
            + d[2]
            + sum(divmod(2 * d[3], 10))
            + d[4]
            + sum(divmod(2 * d[5], 10))
            + d[6]
        )
        return f"U{b}{(10 - (s + 4) % 10) % 10}"
    if cc == "BE":
        b = "0" + str(R.randint(2, 9)) + rs(DIGITS, 6)
        return f"{b}{97 - int(b) % 97:02d}"
    if cc == "PL":
        while True:
            b = str(R.randint(1, 9)) + rs(DIGITS, 8)
            c = sum(w * int(x) for w, x in zip((6, 5, 7, 2, 3, 4, 5, 6, 7), b, strict=True)) % 11
            if c < 10:
                return b + str(c)
    if cc == "SE":
        b = rs(DIGITS, 9)
        return b + luhn_digit(b) + "01"
    raise ValueError(cc)


def g_vat() -> Snip:
    cc = R.choice(["DE", "DE", "FR", "FR", "IT", "NL", "AT", "BE", "PL", "SE"])
    return whole(f"{cc}{pick('', ' ') if cc in ('DE', 'FR', 'IT') else ''}{_vat_number(cc)}", "EU_VAT")


# ----------------------------------------------------------------------------------------------
# Secrets: (type, conventional variable name, value generator, distinctive format?)


def jwt_value() -> str:
    def b64(obj: object) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj, separators=(",", ":")).encode()).rstrip(b"=").decode()

    alg = pick("HS256", "RS256", "ES256")
    header: dict[str, object] = {"alg": alg, "typ": "JWT"}
    if alg != "HS256":
        header["kid"] = rs(HEX, 16)
    payload = {
        "sub": str(uuid.UUID(int=R.getrandbits(128))),
        "name": person(),
        "iat": R.randint(1_690_000_000, 1_720_000_000),
    }
    payload["exp"] = payload["iat"] + 3600  # type: ignore[operator]
    if R.random() < 0.5:
        payload["email"] = g_email().text
    if R.random() < 0.3:
        payload["scope"] = "read:orders write:orders"
    sig = rs(B64URL, {"HS256": 43, "RS256": 342, "ES256": 86}[alg])
    return f"{b64(header)}.{b64(payload)}.{sig}"


def pem_block(escaped: bool = False) -> str:
    label = pick("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY", "ENCRYPTED PRIVATE KEY")
    body = base64.b64encode(bytes(R.getrandbits(8) for _ in range(R.choice([121, 240, 680, 1190])))).decode()
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    nl = "\\n" if escaped else "\n"
    return f"-----BEGIN {label}-----{nl}{nl.join(lines)}{nl}-----END {label}-----"


def sentry_org_token() -> str:
    claims = {
        "iat": R.randint(1_700_000_000, 1_720_000_000) + 0.5,
        "url": f"https://{ascii_slug(company())}.sentry.io",
        "region_url": "https://us.sentry.io",
        "org": ascii_slug(company()),
    }
    return "sntrys_" + base64.b64encode(json.dumps(claims).encode()).decode().rstrip("=") + "_" + rs(ALNUM + "+/", 43)


def grafana_cloud_token() -> str:
    claims = {
        "o": str(R.randint(100000, 999999)),
        "n": f"stack-{R.randint(100000, 999999)}-hm-read-{ascii_slug(company())}",
        "k": rs(ALNUM, 24),
        "m": {"r": "prod-eu-west-0"},
    }
    return "glc_" + base64.b64encode(json.dumps(claims, separators=(",", ":")).encode()).decode()


def discord_bot_token() -> str:
    user_id = str(R.randint(10**17, 10**19 - 1))
    return base64.urlsafe_b64encode(user_id.encode()).decode().rstrip("=") + "." + rs(B64URL, 6) + "." + rs(B64URL, 38)


SERVICE_KEYS: list[tuple[str, str, Callable[[], str], bool]] = [
    ("AWS_ACCESS_KEY", "AWS_ACCESS_KEY_ID", lambda: pick("AKIA", "AKIA", "ASIA") + rs(UPPER + "234567", 16), True),
    (
        "OPENAI_API_KEY",
        "OPENAI_API_KEY",
        lambda: pick(
            f"sk-proj-{rs(B64URL, 74)}T3BlbkFJ{rs(B64URL, 74)}",
            f"sk-proj-{rs(B64URL, 58)}T3BlbkFJ{rs(B64URL, 58)}",
            f"sk-svcacct-{rs(B64URL, 74)}T3BlbkFJ{rs(B64URL, 74)}",
            f"sk-admin-{rs(B64URL, 58)}T3BlbkFJ{rs(B64URL, 58)}",
            f"sk-{rs(ALNUM, 20)}T3BlbkFJ{rs(ALNUM, 20)}",
        ),
        True,
    ),
    (
        "ANTHROPIC_API_KEY",
        "ANTHROPIC_API_KEY",
        lambda: f"sk-ant-{pick('api03', 'api03', 'admin01')}-{rs(B64URL, 93)}AA",
        True,
    ),
    ("GOOGLE_API_KEY", "GOOGLE_API_KEY", lambda: "AIzaSy" + rs(B64URL, 33), True),
    ("GOOGLE_OAUTH_SECRET", "GOOGLE_CLIENT_SECRET", lambda: "GOCSPX-" + rs(B64URL, 28), True),
    (
        "GITHUB_TOKEN",
        "GITHUB_TOKEN",
        lambda: pick(f"gh{R.choice('pousr')}_{rs(ALNUM, 36)}", f"github_pat_{rs(ALNUM, 22)}_{rs(ALNUM, 59)}"),
        True,
    ),
    (
        "GITLAB_TOKEN",
        "GITLAB_TOKEN",
        lambda: pick(
            f"glpat-{rs(B64URL, 20)}", f"gldt-{rs(B64URL, 20)}", f"glrt-{rs(B64URL, 20)}", f"glptt-{rs(HEX, 40)}"
        ),
        True,
    ),
    (
        "SLACK_TOKEN",
        "SLACK_BOT_TOKEN",
        lambda: pick(
            f"xoxb-{rs(DIGITS, 12)}-{rs(DIGITS, 13)}-{rs(ALNUM, 24)}",
            f"xoxp-{rs(DIGITS, 12)}-{rs(DIGITS, 12)}-{rs(DIGITS, 13)}-{rs(HEX, 32)}",
            f"xapp-1-A{rs(UPPER + DIGITS, 10)}-{rs(DIGITS, 13)}-{rs(HEX, 64)}",
        ),
        True,
    ),
    (
        "SLACK_WEBHOOK",
        "SLACK_WEBHOOK_URL",
        lambda: f"https://hooks.slack.com/services/T{rs(UPPER + DIGITS, 8)}/B{rs(UPPER + DIGITS, 10)}/{rs(ALNUM, 24)}",
        True,
    ),
    (
        "STRIPE_KEY",
        "STRIPE_SECRET_KEY",
        lambda: pick(
            f"sk_live_{rs(ALNUM, 24)}",
            f"sk_live_51{rs(ALNUM, 97)}",
            f"rk_live_51{rs(ALNUM, 97)}",
            f"pk_live_51{rs(ALNUM, 97)}",
            f"whsec_{rs(ALNUM, 32)}",
        ),
        True,
    ),
    ("TWILIO_ACCOUNT_SID", "TWILIO_ACCOUNT_SID", lambda: "AC" + rs(HEX, 32), True),
    ("TWILIO_API_KEY", "TWILIO_API_KEY", lambda: "SK" + rs(HEX, 32), True),
    ("SENDGRID_API_KEY", "SENDGRID_API_KEY", lambda: f"SG.{rs(B64URL, 22)}.{rs(B64URL, 43)}", True),
    ("HUGGINGFACE_TOKEN", "HF_TOKEN", lambda: "hf_" + rs(UPPER + LOWER, 34), True),
    ("NPM_TOKEN", "NPM_TOKEN", lambda: "npm_" + rs(ALNUM, 36), True),
    ("PYPI_TOKEN", "PYPI_API_TOKEN", lambda: "pypi-AgEIcHlwaS5vcmc" + rs(B64URL, R.randint(60, 170)), True),
    (
        "AZURE_CLIENT_SECRET",
        "AZURE_CLIENT_SECRET",
        lambda: rs(ALNUM + "_~.", 3) + str(R.randint(0, 9)) + "Q~" + rs(ALNUM + "_~.-", 34),
        True,
    ),
    ("DATABRICKS_TOKEN", "DATABRICKS_TOKEN", lambda: "dapi" + rs(HEX, 32) + pick("", "-2", "-3"), True),
    ("SHOPIFY_TOKEN", "SHOPIFY_ACCESS_TOKEN", lambda: pick("shpat_", "shpss_", "shpca_", "shppa_") + rs(HEX, 32), True),
    (
        "ATLASSIAN_API_TOKEN",
        "JIRA_API_TOKEN",
        lambda: "ATATT3xFfGF0" + rs(B64URL, 171) + "=" + rs(HEX.upper(), 8),
        True,
    ),
    ("GROQ_API_KEY", "GROQ_API_KEY", lambda: "gsk_" + rs(ALNUM, 52), True),
    ("XAI_API_KEY", "XAI_API_KEY", lambda: "xai-" + rs(ALNUM, 80), True),
    ("PERPLEXITY_API_KEY", "PERPLEXITY_API_KEY", lambda: "pplx-" + rs(ALNUM, 48), True),
    ("REPLICATE_API_TOKEN", "REPLICATE_API_TOKEN", lambda: "r8_" + rs(ALNUM, 37), True),
    ("MAILGUN_API_KEY", "MAILGUN_API_KEY", lambda: "key-" + rs(HEX, 32), True),
    ("MAILCHIMP_API_KEY", "MAILCHIMP_API_KEY", lambda: rs(HEX, 32) + f"-us{R.randint(1, 21)}", True),
    ("DIGITALOCEAN_TOKEN", "DIGITALOCEAN_TOKEN", lambda: pick("dop_v1_", "doo_v1_", "dor_v1_") + rs(HEX, 64), True),
    ("DOPPLER_TOKEN", "DOPPLER_TOKEN", lambda: pick("dp.pt.", "dp.st.", "dp.ct.", "dp.sa.") + rs(ALNUM, 43), True),
    ("LINEAR_API_KEY", "LINEAR_API_KEY", lambda: "lin_api_" + rs(ALNUM, 40), True),
    (
        "NOTION_TOKEN",
        "NOTION_TOKEN",
        lambda: pick("secret_" + rs(ALNUM, 43), "ntn_" + rs(DIGITS, 11) + rs(ALNUM, 35)),
        True,
    ),
    ("HEROKU_API_KEY", "HEROKU_API_KEY", lambda: "HRKU-AA" + rs(B64URL, 58), True),
    (
        "SQUARE_TOKEN",
        "SQUARE_ACCESS_TOKEN",
        lambda: pick("EAAA" + rs(B64URL, 60), "sq0csp-" + rs(B64URL, 43), "sq0atp-" + rs(B64URL, 22)),
        True,
    ),
    (
        "BRAINTREE_ACCESS_TOKEN",
        "BRAINTREE_ACCESS_TOKEN",
        lambda: f"access_token$production${rs(LOWER + DIGITS, 16)}${rs(HEX, 32)}",
        True,
    ),
    ("DISCORD_BOT_TOKEN", "DISCORD_BOT_TOKEN", discord_bot_token, True),
    (
        "DISCORD_WEBHOOK",
        "DISCORD_WEBHOOK_URL",
        lambda: (
            f"https://{pick('', 'ptb.', 'canary.')}discord.com/api/webhooks/{R.randint(10**17, 10**19 - 1)}/{rs(B64URL, 68)}"
        ),
        True,
    ),
    ("TELEGRAM_BOT_TOKEN", "TELEGRAM_BOT_TOKEN", lambda: f"{R.randint(10**8, 10**10 - 1)}:AA{rs(B64URL, 33)}", True),
    (
        "VAULT_TOKEN",
        "VAULT_TOKEN",
        lambda: pick("hvs.CAESI" + rs(B64URL, R.randint(86, 100)), "hvb.AAAAAQ" + rs(B64URL, 150)),
        True,
    ),
    ("PULUMI_TOKEN", "PULUMI_ACCESS_TOKEN", lambda: "pul-" + rs(HEX, 40), True),
    ("TERRAFORM_TOKEN", "TFE_TOKEN", lambda: rs(ALNUM, 14) + ".atlasv1." + rs(ALNUM + "_-", 67), True),
    ("SENTRY_TOKEN", "SENTRY_AUTH_TOKEN", lambda: pick(sentry_org_token(), "sntryu_" + rs(HEX, 64)), True),
    (
        "GRAFANA_TOKEN",
        "GRAFANA_TOKEN",
        lambda: pick(grafana_cloud_token(), "glsa_" + rs(ALNUM, 32) + "_" + rs(HEX, 8)),
        True,
    ),
    ("NEWRELIC_KEY", "NEW_RELIC_API_KEY", lambda: "NRAK-" + rs(UPPER + DIGITS, 27), True),
    (
        "DYNATRACE_TOKEN",
        "DT_API_TOKEN",
        lambda: "dt0c01." + rs(UPPER + DIGITS, 24) + "." + rs(UPPER + DIGITS, 64),
        True,
    ),
    (
        "CLOUDFLARE_API_TOKEN",
        "CLOUDFLARE_API_TOKEN",
        lambda: pick("cfut_", "cfat_", "cfk_") + rs(ALNUM, 40) + rs(HEX, 8),
        True,
    ),
    (
        "FLYIO_TOKEN",
        "FLY_API_TOKEN",
        lambda: pick("fo1_" + rs(B64URL, 43), "fm2_" + rs(B64, R.randint(180, 400))),
        True,
    ),
    ("VERCEL_TOKEN", "VERCEL_TOKEN", lambda: pick("vcp_", "vci_", "vck_") + rs(ALNUM, 56), True),
    (
        "SUPABASE_KEY",
        "SUPABASE_SERVICE_KEY",
        lambda: pick("sbp_" + rs(HEX, 40), "sb_secret_" + rs(ALNUM + "-", 22) + "_" + rs(ALNUM, 8)),
        True,
    ),
    ("OPENROUTER_API_KEY", "OPENROUTER_API_KEY", lambda: "sk-or-v1-" + rs(HEX, 64), True),
    ("AGE_SECRET_KEY", "AGE_KEY", lambda: "AGE-SECRET-KEY-1" + rs("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58), True),
    ("POSTMAN_API_KEY", "POSTMAN_API_KEY", lambda: f"PMAK-{rs(HEX, 24)}-{rs(HEX, 34)}", True),
    ("DOCKER_HUB_TOKEN", "DOCKERHUB_TOKEN", lambda: "dckr_pat_" + rs(B64URL, 27), True),
    ("FIGMA_TOKEN", "FIGMA_TOKEN", lambda: "figd_" + rs(B64URL, 40), True),
    ("LANGSMITH_API_KEY", "LANGSMITH_API_KEY", lambda: f"lsv2_{pick('pt', 'sk')}_{rs(HEX, 32)}_{rs(HEX, 10)}", True),
    ("TAVILY_API_KEY", "TAVILY_API_KEY", lambda: "tvly-" + pick("dev-", "prod-", "") + rs(ALNUM, 32), True),
    ("BREVO_API_KEY", "BREVO_API_KEY", lambda: f"xkeysib-{rs(HEX, 64)}-{rs(ALNUM, 16)}", True),
    ("AIRTABLE_TOKEN", "AIRTABLE_TOKEN", lambda: f"pat{rs(ALNUM, 14)}.{rs(HEX, 64)}", True),
    ("GOOGLE_OAUTH_TOKEN", "GOOGLE_ACCESS_TOKEN", lambda: "ya29.a0" + rs(B64URL, R.randint(150, 220)), True),
    ("PINECONE_API_KEY", "PINECONE_API_KEY", lambda: f"pcsk_{rs(ALNUM, 6)}_{rs(ALNUM, 64)}", True),
    ("PLANETSCALE_TOKEN", "PLANETSCALE_TOKEN", lambda: pick("pscale_tkn_", "pscale_pw_") + rs(B64URL, 43), True),
    ("PREFECT_API_KEY", "PREFECT_API_KEY", lambda: "pnu_" + rs(ALNUM, 36), True),
    ("RUBYGEMS_API_KEY", "GEM_HOST_API_KEY", lambda: "rubygems_" + rs(HEX, 48), True),
    (
        "TEAMS_WEBHOOK",
        "TEAMS_WEBHOOK_URL",
        lambda: (
            f"https://{ascii_slug(company())}.webhook.office.com/webhookb2/{n_uuid()}@{n_uuid()}/IncomingWebhook/{rs(HEX, 32)}/{n_uuid()}"
        ),
        True,
    ),
    # No distinctive format: recognisable only from the name they are assigned to.
    ("COHERE_API_KEY", "COHERE_API_KEY", lambda: rs(ALNUM, 40), False),
    ("MISTRAL_API_KEY", "MISTRAL_API_KEY", lambda: rs(ALNUM, 32), False),
    ("OKTA_API_TOKEN", "OKTA_API_TOKEN", lambda: "00" + rs(B64URL, 40), False),
    ("AZURE_OPENAI_KEY", "AZURE_OPENAI_API_KEY", lambda: rs(HEX, 32), False),
    ("TWILIO_AUTH_TOKEN", "TWILIO_AUTH_TOKEN", lambda: rs(HEX, 32), False),
    ("AWS_SECRET_KEY", "AWS_SECRET_ACCESS_KEY", lambda: rs(B64, 40), False),
    ("HEROKU_API_KEY", "HEROKU_API_KEY", lambda: str(uuid.UUID(int=R.getrandbits(128), version=4)), False),
    ("CLOUDFLARE_API_TOKEN", "CF_API_TOKEN", lambda: rs(B64URL, 40), False),
    ("GENERIC_SECRET", "CLIENT_SECRET", lambda: pick(rs(ALNUM, 32), rs(HEX, 64), rs(B64URL, 43)), False),
    ("GENERIC_SECRET", "JWT_SECRET", lambda: pick(rs(B64, 44), rs(HEX, 64)), False),
    ("GENERIC_SECRET", "SESSION_SECRET", lambda: rs(ALNUM, 48), False),
    ("GENERIC_SECRET", "WEBHOOK_SECRET", lambda: rs(ALNUM + "-_", 40), False),
    ("GENERIC_SECRET", "API_KEY", lambda: rs(ALNUM, 32), False),
    ("GENERIC_SECRET", "ENCRYPTION_KEY", lambda: rs(B64, 44), False),
]

PASSWORD_WORDS = "Summer Winter Autumn Spring Dragon Monkey Tiger Falcon Rocket Sunset Coffee Berlin Paris Madrid Pizza Guitar Horse Castle River Shadow".split()


def password_value() -> str:
    kind = R.randint(0, 3)
    if kind == 0:
        return R.choice(PASSWORD_WORDS) + str(R.randint(1, 2025)) + pick("!", "#", "$", "?", "")
    if kind == 1:
        return rs(ALNUM + "!#%&*+-=?@^_", R.randint(12, 24))
    if kind == 2:
        return (
            R.choice(PASSWORD_WORDS).lower()
            + pick(".", "-", "_")
            + R.choice(PASSWORD_WORDS).lower()
            + str(R.randint(10, 99))
        )
    return rs(ALNUM, R.randint(10, 16)) + str(R.randint(0, 9))


def url_password() -> str:
    pw = rs(ALNUM + "-_.~!*", R.randint(10, 24))
    return pw.replace("~~", "~a")


def g_url_credentials() -> Snip:
    user = pick("admin", "app", "svc_orders", "postgres", "root", ascii_slug(first()), "readonly", "etl")
    pw = url_password()
    host = hostname()
    scheme, port, path = R.choice([
        ("postgres", 5432, "/orders"), ("postgresql", 5432, "/analytics?sslmode=require"), ("mysql", 3306, "/shop"),
        ("mongodb+srv", None, "/prod?retryWrites=true&w=majority"), ("mongodb", 27017, "/admin"), ("redis", 6379, "/0"),
        ("rediss", 6380, ""), ("amqp", 5672, "/vhost"), ("amqps", 5671, "/"), ("https", None, "/repo.git"), ("ftp", 21, "/upload"),
        ("mssql", 1433, ";database=crm"),
    ])  # fmt: skip
    if R.random() < 0.15 and scheme == "redis":
        user = ""
    prefix = f"{scheme}://{user}:"
    suffix = f"@{host}{':' + str(port) if port else ''}{path}"
    return inside(prefix, pw, suffix, "URL_PASSWORD")


# ----------------------------------------------------------------------------------------------
# Hard negatives (unlabelled): things that look sensitive and are not


def n_uuid() -> str:
    return str(uuid.UUID(int=R.getrandbits(128), version=4))


def n_sha() -> str:
    return rs(HEX, 40)


def n_short_sha() -> str:
    return rs(HEX, R.randint(7, 12))


def n_hash() -> str:
    return pick(
        f"md5:{rs(HEX, 32)}",
        f"sha1 {rs(HEX, 40)}",
        f"sha256:{rs(HEX, 64)}",
        rs(HEX, 64),
        rs(HEX, 32),
        f"sha512-{base64.b64encode(bytes(R.getrandbits(8) for _ in range(64))).decode()}",
    )


def n_b64img() -> str:
    raw = bytes(R.getrandbits(8) for _ in range(R.randint(120, 900)))
    return f"data:image/{pick('png', 'jpeg', 'webp')};base64,{base64.b64encode(raw).decode()}"


def n_version() -> str:
    a, b, c, d = R.randint(0, 20), R.randint(0, 40), R.randint(0, 99), R.randint(0, 9999)
    return pick(f"v{a}.{b}.{c}", f"version {a}.{b}.{c}.{d}", f"Version: {R.randint(1, 12)}.{b}.{c}.{d}", f"{a}.{b}.{c}", f"Chrome/{R.randint(100, 130)}.0.{d}.{c}",
                f"{a}.{b}.{c}-rc.{R.randint(1, 5)}", f"build {a}.{b}.{c}.{d}", f"Python 3.{R.randint(8, 13)}.{R.randint(0, 9)}", f"node v{R.randint(16, 22)}.{b}.{c}")  # fmt: skip


def n_order() -> str:
    return pick(f"ORD-{R.randint(2019, 2025)}-{R.randint(0, 999999):06d}", f"Order #{R.randint(100, 999)}-{R.randint(100, 999)}-{R.randint(1000, 9999)}",
                f"order {R.randint(200, 999)}-{R.randint(200, 999)}-{R.randint(1000, 9999)}", f"INV-{R.randint(10000, 99999)}", f"ticket #{R.randint(10000, 999999)}",
                f"Bestellnummer {R.randint(10**9, 10**10 - 1)}", f"commande n° {R.randint(10**6, 10**8)}", f"case {R.randint(1000000, 9999999)}",
                f"PO-{R.randint(1000, 9999)}-{R.randint(10, 99)}", f"tracking 1Z{rs(UPPER + DIGITS, 16)}")  # fmt: skip


def n_badcard() -> str:
    while True:
        n = card_number()
        bad = n[:-1] + str((int(n[-1]) + R.randint(1, 9)) % 10)
        if bad != n:
            return format_card(bad)


def n_example_key() -> str:
    return pick("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", f"sk_test_{rs(ALNUM, 24)}", f"pk_test_{rs(ALNUM, 24)}", "sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
                "ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "your-api-key-here", "<YOUR_API_KEY>", "sk-...", "xoxb-your-token", "${OPENAI_API_KEY}", "os.environ['API_KEY']",
                "AKIAXXXXXXXXXXXXXXXX", "sk-proj-XXXXXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "hf_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", "YOUR_TOKEN_HERE")  # fmt: skip


def n_date() -> str:
    y, m, d = R.randint(2019, 2026), R.randint(1, 12), R.randint(1, 28)
    return pick(
        f"{y}-{m:02d}-{d:02d}",
        f"{d:02d}.{m:02d}.{y}",
        f"{m:02d}/{d:02d}/{y}",
        f"{d}/{m}/{y}",
        f"{y}-{m:02d}-{d:02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}Z",
        f"{d:02d}-{m:02d}-{y}",
    )


def n_amount() -> str:
    return pick(
        f"${R.randint(1, 99999):,}.{R.randint(0, 99):02d}",
        f"{R.randint(1, 9999)},{R.randint(0, 99):02d} €",
        f"EUR {R.randint(100, 99999)}.00",
        f"£{R.randint(1, 999)}.{R.randint(0, 99):02d}",
        f"¥{R.randint(1000, 999999):,}",
    )


def n_misc() -> str:
    return pick(f"ISBN 978-{R.randint(0, 9)}-{R.randint(10, 99)}-{R.randint(100000, 999999)}-{R.randint(0, 9)}", f"#{rs(HEX, 6)}", f"sha256:{rs(HEX, 64)}", f"@types/node@{R.randint(16, 22)}.{R.randint(0, 20)}.{R.randint(0, 9)}",
                f"requests=={R.randint(1, 2)}.{R.randint(0, 32)}.{R.randint(0, 9)}", "127.0.0.1:8080", "0.0.0.0:8000", "[::1]:5432", "localhost:3000", f"{R.randint(1_600_000_000, 1_750_000_000)}",
                f"cpu: {R.randint(1, 9)}00m", f"port {R.randint(1024, 65535)}", f"{R.randint(1, 999)} ms", f"line {R.randint(1, 9999)}", f"HTTP/1.1 {pick(200, 404, 500, 302)}",
                f"{R.randint(10, 99)}%", f"{R.randint(1, 64)} GB", f"255.255.{pick(0, 255)}.0", f"PR #{R.randint(100, 9999)}", f"JIRA-{R.randint(100, 9999)}", f"{R.randint(1, 12)}:{R.randint(0, 59):02d} {pick('AM', 'PM')}")  # fmt: skip


def n_ean() -> str:
    body = str(R.randint(1, 9)) + rs(DIGITS, 11)
    total = sum(int(c) * (3 if i % 2 else 1) for i, c in enumerate(body))
    return body + str((10 - total % 10) % 10)


def n_imei() -> str:
    body = pick("35", "86", "01") + rs(DIGITS, 12)
    return body + luhn_digit(body)


def n_numbers() -> str:
    return pick(f"{R.uniform(-90, 90):.4f}, {R.uniform(-180, 180):.4f}", f"{R.randint(1, 999)} {R.randint(100, 999)} {R.randint(100, 999)},{R.randint(10, 99)} €",
                f"sort code {R.randint(10, 99)}-{R.randint(10, 99)}-{R.randint(10, 99)}", f"ext. {R.randint(100, 9999)}", f"{R.randint(0, 5)}-{R.randint(0, 5)}",
                f"{R.randint(1990, 2020)}-{R.randint(2021, 2030)}", f"{R.randint(10, 99)} {R.randint(100, 999)} visitors", f"room {R.randint(100, 999)}, floor {R.randint(1, 30)}",
                f"Build 22H2 (OS Build {R.randint(19041, 22631)}.{R.randint(1000, 4000)})", f"{R.randint(100000, 999999)} rows in {R.randint(1, 60)}.{R.randint(0, 9)} s")  # fmt: skip


NEGATIVES: dict[str, Callable[[], str]] = {
    "uuid": n_uuid, "sha": n_sha, "shortsha": n_short_sha, "hash": n_hash, "b64img": n_b64img, "version": n_version, "order": n_order,
    "badcard": n_badcard, "examplekey": n_example_key, "date": n_date, "amount": n_amount, "misc": n_misc,
    "person": person, "first": first, "last": last, "company": company, "city": lambda: R.choice(CITIES), "street": lambda: f"{R.choice(STREETS)} {R.randint(1, 120)}",
    "host": hostname, "int": lambda: str(R.randint(2, 500)), "zip": lambda: f"{R.randint(10000, 99999)}",
    "ean": n_ean, "imei": n_imei, "numbers": n_numbers,
}  # fmt: skip


# ----------------------------------------------------------------------------------------------
# Templates: @@NAME@@ is a labelled value, @@name@@ unlabelled filler


def key_by_type(type_: str) -> tuple[str, str, Callable[[], str], bool]:
    return R.choice([s for s in SERVICE_KEYS if s[0] == type_])


LABELLED: dict[str, Callable[[], Snip]] = {
    "EMAIL": g_email, "PHONE": g_phone, "CARD": g_card, "IBAN": g_iban, "SSN": g_ssn, "ITIN": g_itin, "PASSPORT": g_passport,
    "IPV4": g_ipv4, "IPV6": g_ipv6, "MAC": g_mac, "NINO": g_nino, "STEUERID": g_de_tax_id, "NIR": g_fr_nir, "BSN": g_nl_bsn,
    "DNI": g_es_dni, "NIE": g_es_nie, "CF": g_it_cf, "VAT": g_vat, "URLCRED": g_url_credentials,
    "JWT": lambda: whole(jwt_value(), "JWT"), "PEM": lambda: whole(pem_block(), "PRIVATE_KEY"),
    "PEMJSON": lambda: whole(pem_block(escaped=True), "PRIVATE_KEY"), "PASSWORD": lambda: whole(password_value(), "PASSWORD"),
    "PHONE_US": lambda: g_phone("us"), "PHONE_UK": lambda: g_phone("uk"), "PHONE_DE": lambda: g_phone("de"), "PHONE_FR": lambda: g_phone("fr"),
    "PHONE_NL": lambda: g_phone("nl"), "PHONE_IN": lambda: g_phone("in"), "PHONE_ES": lambda: g_phone("es"), "PHONE_IT": lambda: g_phone("it"),
    "PHONE_JP": lambda: g_phone("jp"), "IBAN_DE": lambda: g_iban("DE"), "IBAN_FR": lambda: g_iban("FR"), "IBAN_ES": lambda: g_iban("ES"),
    "IBAN_IT": lambda: g_iban("IT"), "IBAN_NL": lambda: g_iban("NL"), "IBAN_GB": lambda: g_iban("GB"),
}  # fmt: skip


def render(template: str, extra: dict[str, Callable[[], Snip]] | None = None) -> Snip:
    parts = template.split("@@")
    out: list[Snip | str] = []
    for i, part in enumerate(parts):
        if i % 2 == 0:
            out.append(part)
        elif extra and part in extra:
            out.append(extra[part]())
        elif part in LABELLED:
            out.append(LABELLED[part]())
        elif part in NEGATIVES:
            out.append(NEGATIVES[part]())
        else:
            raise KeyError(part)
    return join(*out)


# --- Key contexts: one service key in a line of code/config/prose ---------------------------


def key_line(service: tuple[str, str, Callable[[], str], bool]) -> Snip:
    type_, var, gen, distinctive = service
    value = gen()
    lower = var.lower()
    camel = "".join(w.capitalize() if i else w for i, w in enumerate(lower.split("_")))
    contexts = [
        (f"{var}=", ""), (f'export {var}="', '"'), (f'"{lower}": "', '"'), (f"{lower}: ", ""), (f'{lower} = "', '"'),
        (f"const {camel} = '", "';"), (f'  {var}: "', '"'), (f"-e {var}=", ""), (f'{camel}: "', '",'), (f"set {var}=", ""),
    ]  # fmt: skip
    if distinctive:
        contexts += [
            ("here is the key: ", ""), ("use ", " for auth"), ('-H "Authorization: Bearer ', '"'), ("token=", "&page=2"), ("`", "`"),
            ("I pasted ", " into the settings page but it fails"), ('client = Client(api_key="', '")'), ("Key ", " was rotated yesterday?"),
        ]  # fmt: skip
    prefix, suffix = R.choice(contexts)
    return inside(prefix, value, suffix, type_)


def service_deck() -> list[tuple[str, str, Callable[[], str], bool]]:
    deck = list(SERVICE_KEYS)
    R.shuffle(deck)
    return deck


def doc_env_file(deck: list) -> Snip:
    lines: list[Snip | str] = [
        pick(
            "# .env\n",
            "# production settings\n",
            "Here is my .env, why does the app not start?\n\n",
            "```\n",
            "config dump:\n",
        )
    ]
    for _ in range(R.randint(2, 6)):
        if not deck:
            deck.extend(service_deck())
        lines.append(key_line(deck.pop()))
        lines.append("\n")
        if R.random() < 0.4:
            lines.append(pick("APP_ENV=production\n", f"LOG_LEVEL={pick('debug', 'info')}\n", f"PORT={R.randint(3000, 9000)}\n",
                              f"RELEASE={n_short_sha()}\n", f"REQUEST_ID={n_uuid()}\n", f"FEATURE_FLAGS=beta,{pick('search', 'export')}\n",
                              f"SENTRY_RELEASE={n_version()}\n", f"DATABASE_POOL_SIZE={R.randint(5, 50)}\n", f"API_KEY={n_example_key()}\n"))  # fmt: skip
    return join(*lines)


def doc_chat_key(deck: list) -> Snip:
    """One key with a distinctive format, in a chat prompt (no variable name around it)."""
    if not deck:
        deck.extend(s for s in service_deck() if s[3])
    service = deck.pop()
    value = whole(service[2](), service[0])
    return R.choice([
        lambda: join("My requests keep failing with 401. I'm using ", value, f" — is the key wrong or the endpoint? Region is {pick('eu', 'us')}, SDK {n_version()}."),
        lambda: join("can you write a curl command that calls the API with this token ", value, " and prints the response as JSON"),
        lambda: join("Debug this please:\n\n```python\nimport requests\nHEADERS = {'Authorization': 'Bearer ", value, f"'}}\nr = requests.get('https://api.{ascii_slug(company())}.com/v1/items', headers=HEADERS)\nprint(r.status_code)  # {pick(401, 403)}\n```"),
        lambda: join("Ich habe den Schlüssel ", value, " in die Pipeline eingetragen, aber der Build schlägt fehl. Was mache ich falsch?"),
        lambda: join("J'ai mis la clé ", value, " dans le fichier de config et ça ne marche toujours pas."),
        lambda: join(f"Traceback (most recent call last):\n  File \"app.py\", line {R.randint(10, 300)}, in <module>\n    client.auth(", value, ")\nAuthError: invalid credentials"),
        lambda: join(f"We rotated keys on {n_date()}. Old one was ", value, f", new one is in Vault. Can you update the runbook (ticket #{R.randint(1000, 99999)})?"),
    ])()  # fmt: skip


def doc_aws() -> Snip:
    key = whole(pick("AKIA", "ASIA") + rs(UPPER + "234567", 16), "AWS_ACCESS_KEY")
    secret = whole(rs(B64, 40), "AWS_SECRET_KEY")
    region = pick("eu-west-1", "us-east-1", "eu-central-1", "ap-southeast-2")
    return R.choice([
        lambda: join("[default]\naws_access_key_id = ", key, "\naws_secret_access_key = ", secret, f"\nregion = {region}\n"),
        lambda: join("Why does boto3 say SignatureDoesNotMatch?\n\n```python\ns3 = boto3.client('s3', aws_access_key_id='", key, "', aws_secret_access_key='", secret, f"', region_name='{region}')\n```"),
        lambda: join('{\n  "Credentials": {\n    "AccessKeyId": "', key, '",\n    "SecretAccessKey": "', secret, '",\n    "SessionToken": "',
                     whole("IQoJb3JpZ2luX2VjE" + rs(B64, R.randint(300, 420)) + pick("", "=", "=="), "AWS_SESSION_TOKEN"), f'",\n    "Expiration": "{n_date()}"\n  }}\n}}'),
        lambda: join("export AWS_ACCESS_KEY_ID=", key, "\nexport AWS_SECRET_ACCESS_KEY=", secret, f"\nexport AWS_DEFAULT_REGION={region}\n"),
        lambda: join("access key: ", key, "\nsecret: ", secret, "\n(the docs example AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY works in the simulator)"),
    ])()  # fmt: skip


def doc_db_urls() -> Snip:
    return R.choice([
        lambda: join("DATABASE_URL=", g_url_credentials(), f"\nREDIS_URL=redis://{hostname()}:6379/0\n"),
        lambda: join("Connection refused when I use ", g_url_credentials(), f" from the {pick('staging', 'prod')} pod. The host resolves to ", g_ipv4(), "."),
        lambda: join("spring.datasource.url=jdbc:postgresql://", hostname(), ":5432/app\nspring.datasource.username=app\nspring.datasource.password=", whole(password_value(), "PASSWORD"), "\n"),
        lambda: join(f"Server={hostname()};Database=crm;User Id=sa;Password=", whole(password_value(), "PASSWORD"), ";TrustServerCertificate=True"),
        lambda: join("```yaml\nservices:\n  worker:\n    environment:\n      BROKER_URL: ", g_url_credentials(), "\n      MONGO_URI: ", g_url_credentials(), "\n```"),
        lambda: join("git clone ", inside("https://oauth2:", "glpat-" + rs(B64URL, 20), f"@gitlab.{ascii_slug(company())}.com/team/repo.git", "GITLAB_TOKEN"), " fails with 403"),
    ])()  # fmt: skip


def doc_passwords() -> Snip:
    pw = whole(password_value(), "PASSWORD")
    return R.choice([
        lambda: join(f"Hi, can you log in to the staging box for me? user: {ascii_slug(first())}, password: ", pw, " — thanks!"),
        lambda: join("mysql -u root --password=", pw, f" -h {hostname()} < dump.sql"),
        lambda: join('{\n  "username": "svc_report",\n  "password": "', pw, f'",\n  "host": "{hostname()}",\n  "timeout": 30\n}}'),
        lambda: join("Mein Passwort ist ", pw, " aber der Login geht nicht. Benutzername ist ", g_email(), "."),
        lambda: join("ldap:\n  bind_dn: cn=admin,dc=corp,dc=local\n  bind_password: \"", pw, "\"\n  url: ldaps://", hostname(), ":636\n"),
        lambda: join("Le mot de passe : ", pw, f" ne fonctionne plus depuis la mise à jour {n_version()}."),
        lambda: join("my wifi password is ", pw, " if you need it for the setup guide"),
        lambda: join("DB_PASSWORD=", pw, f"\nDB_USER=app\nDB_HOST={hostname()}\n"),
        lambda: join("wachtwoord: ", pw, "\n"),
        lambda: join("La contraseña: ", pw, f" (cámbiala después del {n_date()})"),
    ])()  # fmt: skip


def doc_pem() -> Snip:
    return R.choice([
        lambda: join("Why does ssh say 'invalid format' for this key?\n\n", whole(pem_block(), "PRIVATE_KEY"), "\n"),
        lambda: join('{\n  "type": "service_account",\n  "project_id": "' + ascii_slug(company()) + f'-prod",\n  "private_key_id": "{rs(HEX, 40)}",\n  "private_key": "', whole(pem_block(escaped=True), "PRIVATE_KEY"), '\\n",\n  "client_email": "', g_email(), '",\n  "client_id": "' + rs(DIGITS, 21) + '"\n}'),
        lambda: join("tls:\n  cert: |\n    -----BEGIN CERTIFICATE-----\n    MIIC" + rs(B64, 60) + "\n    -----END CERTIFICATE-----\n  key: |\n    ", whole(pem_block().replace("\n", "\n    "), "PRIVATE_KEY"), "\n"),
    ])()  # fmt: skip


def doc_logs() -> Snip:
    lines: list[Snip | str] = []
    for _ in range(R.randint(4, 12)):
        ts = f"{R.randint(2023, 2025)}-{R.randint(1, 12):02d}-{R.randint(1, 28):02d}T{R.randint(0, 23):02d}:{R.randint(0, 59):02d}:{R.randint(0, 59):02d}.{R.randint(0, 999):03d}Z"
        kind = R.randint(0, 7)
        if kind == 0:
            lines.append(
                join(
                    f"{ts} INFO request_id={n_uuid()} ",
                    g_ipv4(),
                    f' - - "GET /api/v1/orders/{R.randint(1000, 99999)} HTTP/1.1" {pick(200, 200, 404)} {R.randint(100, 9000)} "-" "Mozilla/5.0 (X11; Linux x86_64) {n_version()}"\n',
                )
            )
        elif kind == 1:
            lines.append(
                join(
                    f"{ts} DEBUG auth header: Bearer ",
                    whole(jwt_value(), "JWT"),
                    f" path=/v2/users/{R.randint(1, 99999)}\n",
                )
            )
        elif kind == 2:
            lines.append(
                join(
                    f"{ts} WARN login failed for ",
                    g_email(),
                    " from ",
                    pick(g_ipv4, g_ipv6)(),
                    f" attempts={R.randint(2, 9)}\n",
                )
            )
        elif kind == 3:
            lines.append(
                f"{ts} INFO deploy {n_short_sha()} ({n_version()}) finished in {R.randint(10, 900)}s, digest sha256:{rs(HEX, 64)}\n"
            )
        elif kind == 4:
            lines.append(
                join(
                    f"{ts} INFO dhcp lease ",
                    g_ipv4(),
                    " -> ",
                    g_mac(),
                    f" host={pick('laptop', 'printer', 'phone')}-{R.randint(1, 99)}\n",
                )
            )
        elif kind == 5:
            lines.append(f"{ts} ERROR {n_order()} payment declined code={R.randint(1000, 9999)} trace={rs(HEX, 32)}\n")
        elif kind == 6:
            lines.append(join(f"{ts} INFO upstream ", g_ipv6(), f":443 latency={R.randint(1, 900)}ms retries=0\n"))
        else:
            lines.append(
                f"{ts} INFO GET /health 200 {R.randint(1, 20)}ms from 127.0.0.1 version {R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 99)}\n"
            )
    head = pick("Can you find why the errors started?\n\n", "Summarise these logs:\n", "```\n", "")
    return join(head, *lines)


def doc_support_email() -> Snip:
    name = person()
    country = R.choice(["us", "uk", "de", "fr", "nl", "es", "it", "in"])
    return join(
        pick(
            "Please draft a polite reply to this customer:\n\n",
            "Summarise this ticket for the handover:\n\n",
            "Translate to English:\n\n",
            "",
        ),
        f"From: {name} <",
        g_email(),
        f">\nSubject: Refund for {n_order()}\n\n",
        f"Hello, I was charged twice on {n_date()} ({n_amount()}). My card ending differs but the full number is ",
        g_card(),
        ". You can reach me on ",
        g_phone(country),
        " or reply to this address. For the refund please use my IBAN ",
        g_iban(),
        f". Thanks,\n{name}\n{R.choice(STREETS)} {R.randint(1, 120)}, {R.choice(CITIES)}\n",
    )


def doc_crm_export() -> Snip:
    rows: list[Snip | str] = [pick("name,email,phone,ssn,signup\n", "customer_id;name;email;phone;card\n")]
    ssn_style = rows[0].startswith("name")  # type: ignore[union-attr]
    for _ in range(R.randint(3, 8)):
        if ssn_style:
            rows.append(join(f"{person()},", g_email(), ",", g_phone("us"), ",", g_ssn(), f",{n_date()}\n"))
        else:
            rows.append(join(f"{n_uuid()};{person()};", g_email(), ";", g_phone(), ";", g_card(), "\n"))
    return join("Clean up this export and find duplicates:\n\n", *rows)


def doc_hr_us() -> Snip:
    return join(
        f"New hire onboarding for {person()}: SSN ",
        g_ssn(),
        ", passport number ",
        g_passport(),
        ", ITIN for the contractor ",
        g_itin(),
        ", personal email ",
        g_email(),
        ", mobile ",
        g_phone("us"),
        f". Start date {n_date()}, badge {R.randint(10000, 99999)}.",
    )


def doc_german() -> Snip:
    return join(
        "Sehr geehrte Damen und Herren,\n\nbitte ändern Sie meine Bankverbindung. Neue IBAN: ",
        g_iban("DE"),
        ". Meine Steuer-ID lautet ",
        g_de_tax_id(),
        ". Sie erreichen mich unter ",
        g_phone("de"),
        " oder per E-Mail an ",
        g_email(),
        f".\n\nMit freundlichen Grüßen\n{person()}\n{R.choice(STREETS)} {R.randint(1, 99)}, {R.randint(10000, 99999)} {R.choice(CITIES)}\nKundennummer {R.randint(100000, 999999)}, Rechnung vom {n_date()}",
    )


def doc_french() -> Snip:
    return join(
        "Bonjour,\n\nJe vous transmets mes informations pour le dossier de remboursement : numéro de sécurité sociale ",
        g_fr_nir(),
        ", téléphone ",
        g_phone("fr"),
        ", adresse e-mail ",
        g_email(),
        ". Mon RIB : ",
        g_iban("FR"),
        ".\nNuméro de TVA de la société : ",
        g_vat(),
        f".\n\nCordialement,\n{person()}",
    )


def doc_spanish() -> Snip:
    return join(
        "Hola, necesito actualizar mis datos. Mi DNI es ",
        g_es_dni(),
        " y el NIE de mi pareja es ",
        g_es_nie(),
        ". Teléfono: ",
        g_phone("es"),
        ". Cuenta: ",
        g_iban("ES"),
        ". Correo: ",
        g_email(),
        f". Pedido {n_order()} del {n_date()}.",
    )


def doc_italian() -> Snip:
    return join(
        "Buongiorno, allego i dati per il contratto: codice fiscale ",
        g_it_cf(),
        ", partita IVA ",
        whole("IT" + _vat_number("IT"), "EU_VAT"),
        ", cellulare ",
        g_phone("it"),
        ", IBAN ",
        g_iban("IT"),
        ", email ",
        g_email(),
        f". Grazie, {person()}",
    )


def doc_dutch() -> Snip:
    return join(
        "Goedemiddag, hierbij mijn gegevens voor de aanvraag. BSN: ",
        g_nl_bsn(),
        ", telefoon ",
        g_phone("nl"),
        ", rekeningnummer ",
        g_iban("NL"),
        ", e-mail ",
        g_email(),
        f". Met vriendelijke groet, {person()}",
    )


def doc_uk() -> Snip:
    return join(
        f"Payroll query for {person()}: National Insurance number ",
        g_nino(),
        ", phone ",
        g_phone("uk"),
        ", bank ",
        g_iban("GB"),
        ", email ",
        g_email(),
        f". Payslip {n_date()}, amount {n_amount()}.",
    )


def doc_japanese() -> Snip:
    return join(
        "お世話になっております。以下の情報で登録をお願いします。メール：",
        g_email(),
        "、電話番号：",
        g_phone("jp"),
        "、クレジットカード：",
        g_card(),
        f"。注文番号 {n_order()}、{n_date()}。よろしくお願いいたします。",
    )


def doc_india() -> Snip:
    return join(
        f"Customer {person()} from {pick('Mumbai', 'Pune', 'Delhi')} called from ",
        g_phone("in"),
        " about order ",
        n_order(),
        ". Email ",
        g_email(),
        ".",
    )


def doc_network() -> Snip:
    return join(
        pick("Why can't these hosts reach each other?\n", "Document this network:\n", ""),
        "gateway ",
        g_ipv4(),
        "\nvpn peer ",
        g_ipv4(),
        "\nipv6 uplink ",
        g_ipv6(),
        "\nswitch port 12 mac ",
        g_mac(),
        f"\nfirmware version {R.randint(1, 9)}.{R.randint(0, 9)}.{R.randint(0, 9)}.{R.randint(0, 99)}, netmask 255.255.255.0, dns 127.0.0.53, listen 0.0.0.0:53\n",
    )


def doc_payments() -> Snip:
    return join(
        f"Reconcile these payments ({n_date()}):\n",
        "- ",
        g_card(),
        f" {n_amount()} approved\n",
        "- ",
        n_badcard(),
        f" {n_amount()} declined (invalid number)\n",
        "- IBAN ",
        g_iban(),
        f" {n_amount()} SEPA\n",
        f"- {n_order()} refund {n_amount()}\n",
        "- VAT ",
        g_vat(),
        " reverse charge\n",
    )


def doc_mixed_hard_negatives() -> Snip:
    return join(
        f"Release notes {n_version()} (commit {n_sha()}):\n",
        f"* fixed {n_order()} regression, see {n_uuid()}\n* image: ",
        n_b64img()[:300],
        "\n",
        f"* checksum {n_hash()}\n* example config uses {n_example_key()} — replace with your own\n* test card {n_badcard()} is rejected as expected\n",
        "* contact: ",
        g_email(),
        " or ",
        g_phone(),
        "\n",
        f"* build {n_short_sha()} on {n_date()} {n_misc()}\n",
    )


def doc_curl() -> Snip:
    return R.choice([
        lambda: join(f"curl -s https://api.{ascii_slug(company())}.com/v1/charges \\\n  -u ", whole(f"sk_live_{rs(ALNUM, 24)}", "STRIPE_KEY"), ": \\\n  -d amount=2000"),
        lambda: join("curl -H 'X-API-Key: ", whole(rs(ALNUM, 40), "GENERIC_SECRET"), f"' https://{hostname()}/v2/export?since={n_date()}"),
        lambda: join('curl -X POST -H "Authorization: Bearer ', whole(jwt_value(), "JWT"), f'" https://{hostname()}/graphql -d @query.json'),
        lambda: join("curl -H \"Authorization: Basic ", whole(base64.b64encode(f"{ascii_slug(first())}:{password_value()}".encode()).decode(), "GENERIC_SECRET"), f"\" https://{hostname()}/api/status"),
        lambda: join(f"curl https://{hostname()}/webhook -H 'x-webhook-secret: ", whole(rs(HEX, 64), "GENERIC_SECRET"), "'"),
    ])()  # fmt: skip


def doc_azure() -> Snip:
    account = ascii_slug(company())[:10] + str(R.randint(10, 99))
    return R.choice([
        lambda: join(f"DefaultEndpointsProtocol=https;AccountName={account};AccountKey=", whole(rs(B64, 86) + "==", "AZURE_STORAGE_KEY"), ";EndpointSuffix=core.windows.net"),
        lambda: join(f"Endpoint=sb://{account}.servicebus.windows.net/;SharedAccessKeyName=RootManageSharedAccessKey;SharedAccessKey=", whole(rs(B64, 43) + "=", "AZURE_SHARED_ACCESS_KEY")),
        lambda: join(f"https://{account}.blob.core.windows.net/exports/report.csv?sv=2022-11-02&ss=b&srt=o&sp=r&se=2025-12-31T00:00:00Z&st=2025-01-01T00:00:00Z&spr=https&sig=",
                     whole(rs(ALNUM, 40) + pick("%2B", "%2F", "") + rs(ALNUM, 3) + "%3D", "AZURE_SAS_TOKEN")),
    ])()  # fmt: skip


def doc_wild() -> Snip:
    """Realistic variants the detectors were not written around: other phone notations, XML and
    SQL passwords, truncated keys, cookies, ports, brackets, upper-case e-mail."""
    country = R.choice(["de", "fr", "uk", "nl", "it"])
    return R.choice([
        lambda: join("Ruf mich an: ", whole(pick(f"0049 {pick('30', '89', '40')} {R.randint(2, 9)}{rs(DIGITS, 6)}", f"0033 {R.randint(1, 7)} {rs(DIGITS, 2)} {rs(DIGITS, 2)} {rs(DIGITS, 2)} {rs(DIGITS, 2)}",
                                                     f"0044 20 {R.randint(3, 8)}{rs(DIGITS, 3)} {rs(DIGITS, 4)}", f"0031 20 {R.randint(2, 9)}{rs(DIGITS, 2)} {rs(DIGITS, 4)}"), "PHONE"), " (abends)."),
        lambda: join("Office: ", whole(pick(f"(020) {R.randint(3, 8)}{rs(DIGITS, 3)} {rs(DIGITS, 4)}", f"({pick('030', '089', '040')}) {R.randint(2, 9)}{rs(DIGITS, 2)} {rs(DIGITS, 4)}", f"(0161) {R.randint(2, 9)}{rs(DIGITS, 2)} {rs(DIGITS, 4)}"), "PHONE"), ", mobile ", g_phone(country), "."),
        lambda: join("tel:", whole(pick(f"+1.{_nanp()[:3]}.{_nanp()[3:6]}.{rs(DIGITS, 4)}", f"+49-30-{R.randint(2, 9)}{rs(DIGITS, 7)}", f"+33.1.{rs(DIGITS, 2)}.{rs(DIGITS, 2)}.{rs(DIGITS, 2)}.{rs(DIGITS, 2)}"), "PHONE")),
        lambda: join("<settings>\n  <server>\n    <id>nexus</id>\n    <username>deploy</username>\n    <password>", whole(password_value(), "PASSWORD"), "</password>\n  </server>\n</settings>"),
        lambda: join("CREATE USER reporting WITH PASSWORD '", whole(password_value(), "PASSWORD"), "';\nGRANT SELECT ON ALL TABLES IN SCHEMA public TO reporting;"),
        lambda: join("The key got cut off when I pasted it:\n", whole(pem_block().rsplit("\n", 3)[0], "PRIVATE_KEY"), "\n... is that enough to rotate it?"),
        lambda: join("Cookie: theme=dark; session=", whole(jwt_value(), "JWT"), "; Path=/; HttpOnly"),
        lambda: join(f"https://maps.googleapis.com/maps/api/geocode/json?address={R.choice(CITIES)}&key=", whole("AIzaSy" + rs(B64URL, 33), "GOOGLE_API_KEY")),
        lambda: join("nginx listens on ", g_ipv4(), f":{R.randint(1024, 65535)} and the upstream is [", g_ipv6(), f"]:{R.randint(1024, 65535)}; allow ", g_ipv4(), "/32;"),
        lambda: join("From: ", whole(g_email().text.upper() if R.random() < 0.5 else g_email().text.title(), "EMAIL"), " — please update the CRM."),
        lambda: join('{"auths": {"https://index.docker.io/v1/": {"auth": "', whole(base64.b64encode(f"{ascii_slug(first())}:dckr_pat_{rs(B64URL, 27)}".encode()).decode(), "GENERIC_SECRET"), '"}}}'),
        lambda: join("authorization: bearer ", whole(rs(ALNUM, 40), "GENERIC_SECRET"), "\naccept: application/json"),
        lambda: join("//registry.npmjs.org/:_authToken=", whole("npm_" + rs(ALNUM, 36), "NPM_TOKEN"), "\n"),
        lambda: join("パスワード：", whole(password_value(), "PASSWORD"), "\nメール：", g_email()),
        lambda: join(f"SSN: {pick('', ' ')}", whole(f"{R.randint(1, 665):03d}{R.randint(1, 99):02d}{R.randint(1, 9999):04d}", "US_SSN"), f" (employee {R.randint(1000, 9999)})"),
    ])()  # fmt: skip


# --- Issue 16: identifiers of more countries and more key formats ----------------------------
# A separate random stream, so the documents above stay exactly as they were. Valid values are
# drawn at random until the format's check passes (shadowgate.dlp.idchecks); those checks are
# verified independently against the public examples of presidio's recognizer tests
# (tests/fixtures/dlp_public/, tests/test_dlp_public.py).
RG = random.Random(16)


def _draw(shape: Callable[[], str], check: Callable[[str], bool]) -> str:
    while True:
        value = shape()
        if check(value.replace(" ", "").replace("-", "")):
            return value


def _digits(n: int, first: str = "123456789") -> str:
    return RG.choice(first) + "".join(RG.choice(DIGITS) for _ in range(n - 1))


def _yymmdd() -> str:
    return f"{RG.randint(0, 99):02d}{RG.randint(1, 12):02d}{RG.randint(1, 28):02d}"


def _global_ids() -> list[tuple[str, str, Callable[[], str]]]:
    from shadowgate.dlp import idchecks as ck

    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    return [
        (
            "your SIN",
            "CA_SIN",
            lambda: _draw(lambda: f"{_digits(3, '1234567')} {_digits(3)} {_digits(3)}", ck.ca_sin_valid),
        ),
        ("TFN", "AU_TFN", lambda: _draw(lambda: f"{_digits(3)} {_digits(3)} {_digits(3)}", ck.au_tfn_valid)),
        (
            "ABN",
            "AU_ABN",
            lambda: _draw(lambda: f"{_digits(2)} {_digits(3)} {_digits(3)} {_digits(3)}", ck.au_abn_valid),
        ),
        ("ACN", "AU_ACN", lambda: _draw(lambda: f"{_digits(3)} {_digits(3)} {_digits(3)}", ck.au_acn_valid)),
        (
            "Medicare card",
            "AU_MEDICARE",
            lambda: _draw(lambda: f"{_digits(4, '23456')} {_digits(5)} {_digits(1)}", ck.au_medicare_valid),
        ),
        (
            "Aadhaar",
            "IN_AADHAAR",
            lambda: _draw(lambda: f"{_digits(4, '23456789')} {_digits(4)} {_digits(4)}", ck.in_aadhaar_valid),
        ),
        (
            "PAN",
            "IN_PAN",
            lambda: (
                "".join(RG.choice(letters) for _ in range(3))
                + RG.choice("PCHF")
                + RG.choice(letters)
                + _digits(4)
                + RG.choice(letters)
            ),
        ),
        (
            "GSTIN",
            "IN_GSTIN",
            lambda: _draw(
                lambda: (
                    f"{RG.randint(1, 37):02d}"
                    + "".join(RG.choice(letters) for _ in range(3))
                    + "P"
                    + RG.choice(letters)
                    + _digits(4)
                    + RG.choice(letters)
                    + "1Z"
                    + RG.choice(DIGITS + letters)
                ),
                ck.in_gstin_valid,
            ),
        ),
        (
            "RRN",
            "KR_RRN",
            lambda: _draw(lambda: f"{_yymmdd()}-{RG.choice('1234')}{_digits(6, DIGITS)}", ck.kr_rrn_valid),
        ),
        (
            "NRIC",
            "SG_NRIC",
            lambda: _draw(lambda: RG.choice("STFG") + _digits(7, DIGITS) + RG.choice(letters), ck.sg_nric_valid),
        ),
        ("PESEL", "PL_PESEL", lambda: _draw(lambda: _yymmdd() + _digits(5, DIGITS), ck.pl_pesel_valid)),
        (
            "personnummer",
            "SE_PERSONNUMMER",
            lambda: _draw(lambda: f"{_yymmdd()}-{_digits(4, DIGITS)}", ck.se_personnummer_valid),
        ),
        (
            "henkilötunnus",
            "FI_HETU",
            lambda: _draw(
                lambda: (
                    f"{RG.randint(1, 28):02d}{RG.randint(1, 12):02d}{RG.randint(0, 99):02d}{RG.choice('-A')}{_digits(3, DIGITS)}{RG.choice('0123456789ABCDEFHJKLMNPRSTUVWXY')}"
                ),
                ck.fi_hetu_valid,
            ),
        ),
        (
            "NHS number",
            "UK_NHS",
            lambda: _draw(lambda: f"{_digits(3, '4')} {_digits(3)} {_digits(4)}", ck.uk_nhs_valid),
        ),
        ("NPI", "US_NPI", lambda: _draw(lambda: _digits(10, "12"), ck.us_npi_valid)),
        (
            "MBI",
            "US_MBI",
            lambda: _draw(
                lambda: (
                    _digits(1)
                    + "".join(RG.choice("ACDEFGHJKMNPQRTUVWXY") for _ in range(2))
                    + _digits(1, DIGITS)
                    + "-"
                    + RG.choice("ACDEFGHJKMNPQRTUVWXY")
                    + RG.choice("ACDEFGHJK0123")
                    + _digits(1, DIGITS)
                    + "-"
                    + "".join(RG.choice("ACDEFGHJKMNPQRTUVWXY") for _ in range(2))
                    + _digits(2, DIGITS)
                ),
                ck.us_mbi_valid,
            ),
        ),
        ("TC Kimlik No", "TR_TCKN", lambda: _draw(lambda: _digits(11), ck.tr_tckn_valid)),
        (
            "ID number",
            "ZA_ID",
            lambda: _draw(
                lambda: _yymmdd() + _digits(4, DIGITS) + RG.choice("01") + _digits(2, DIGITS), ck.za_id_valid
            ),
        ),
    ]


def _btc_address() -> str:
    import hashlib

    raw = bytes([RG.choice((0, 5))]) + bytes(RG.randrange(256) for _ in range(20))
    raw += hashlib.sha256(hashlib.sha256(raw).digest()).digest()[:4]
    n, out = int.from_bytes(raw, "big"), ""
    while n:
        n, r = divmod(n, 58)
        out = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"[r] + out
    return "1" * (len(raw) - len(raw.lstrip(b"\0"))) + out


NEW_SERVICE_KEYS: list[tuple[str, Callable[[], str]]] = [
    (
        "SOURCEGRAPH_TOKEN",
        lambda: "sgp_" + "".join(RG.choice(HEX) for _ in range(16)) + "_" + "".join(RG.choice(HEX) for _ in range(40)),
    ),
    ("INTRA42_CLIENT_SECRET", lambda: "s-s4t2ud-" + "".join(RG.choice(HEX) for _ in range(64))),
    ("ONEPASSWORD_TOKEN", lambda: "ops_eyJ" + "".join(RG.choice(B64) for _ in range(300))),
    ("INFRACOST_API_KEY", lambda: "ico-" + "".join(RG.choice(ALNUM) for _ in range(32))),
    ("ADOBE_CLIENT_SECRET", lambda: "p8e-" + "".join(RG.choice(ALNUM) for _ in range(32))),
    ("SONAR_TOKEN", lambda: RG.choice(("squ_", "sqp_", "sqa_")) + "".join(RG.choice(HEX) for _ in range(40))),
    ("OPENSHIFT_TOKEN", lambda: "sha256~" + "".join(RG.choice(B64URL) for _ in range(43))),
    ("EASYPOST_API_KEY", lambda: "EZAK" + "".join(RG.choice(ALNUM) for _ in range(54))),
    ("FACEBOOK_ACCESS_TOKEN", lambda: "EAAC" + "".join(RG.choice(ALNUM) for _ in range(150))),
    ("AWS_BEDROCK_API_KEY", lambda: "ABSKQmVkcm9ja0FQSUtleS" + "".join(RG.choice(B64) for _ in range(110))),
]


def doc_global_ids() -> Snip:
    """A support or HR note with two identifiers named by their context word, and a key."""
    ids = _global_ids()
    parts: list[Snip | str] = [
        RG.choice(("Please update the record. ", "HR ticket: ", "Onboarding data follows. ", ""))
    ]
    for word, type_, gen in RG.sample(ids, 2):
        parts += [f"{word}: ", whole(gen(), type_), RG.choice(("; ", ", ", ". "))]
    if RG.random() < 0.3:
        parts += ["wallet ", whole(_btc_address(), "CRYPTO_WALLET"), ". "]
    type_, gen = RG.choice(NEW_SERVICE_KEYS)
    parts += [RG.choice(("Also the deploy key is ", "token: ", "export SVC_TOKEN=")), whole(gen(), type_), "\n"]
    return join(*parts)


# --- Issue 16, third round: syntaxes found missing on a held-out public source ----------------
# Its own random stream again, so every document above stays byte for byte the same.
R3 = random.Random(163)
SERVICES = "pinata webex liveagent mixpanel uploadcare apimetrics bannerbear checkvist tokeet neutrinoapi".split()


def _r3_key(n: int) -> str:
    while True:
        value = "".join(R3.choice(ALNUM) for _ in range(n))
        if any(c.isdigit() for c in value) and any(c.isupper() for c in value):
            return value


def _r3(chars: str, n: int) -> str:
    return "".join(R3.choice(chars) for _ in range(n))


LOWER_DIGITS = LOWER + DIGITS
ROUND3_KEYS: list[tuple[str, Callable[[], str]]] = [
    ("CLOJARS_TOKEN", lambda: "CLOJARS_" + _r3(LOWER_DIGITS, 60)),
    ("DUFFEL_TOKEN", lambda: "duffel_live_" + _r3(ALNUM, 43)),
    ("FLUTTERWAVE_KEY", lambda: "FLWSECK-" + _r3("abcdefgh0123456789", 32) + "-X"),
    ("FRAMEIO_TOKEN", lambda: "fio-u-" + _r3(B64URL, 64)),
    ("HARNESS_TOKEN", lambda: f"pat.{_r3(B64URL, 22)}.{_r3(ALNUM, 24)}.{_r3(ALNUM, 20)}"),
    ("README_TOKEN", lambda: "rdme_" + _r3(LOWER_DIGITS, 70)),
    ("SCALINGO_TOKEN", lambda: "tk-us-" + _r3(B64URL, 48)),
    ("SETTLEMINT_TOKEN", lambda: "sm_pat_" + _r3(ALNUM, 16)),
    ("SHIPPO_TOKEN", lambda: "shippo_live_" + _r3(HEX, 40)),
    ("OCTOPUS_DEPLOY_KEY", lambda: "API-" + _r3(UPPER + DIGITS, 26)),
    (
        "AUTHRESS_KEY",
        lambda: (
            f"sc_{_r3(LOWER_DIGITS, 12)}.{_r3(LOWER_DIGITS, 5)}.acc_{_r3(LOWER_DIGITS, 20)}.{_r3(LOWER_DIGITS, 60)}"
        ),
    ),
    ("ARTIFACTORY_TOKEN", lambda: "AKCp" + _r3(ALNUM, 69)),
    ("MAXMIND_LICENSE_KEY", lambda: f"{_r3(ALNUM, 6)}_{_r3(ALNUM, 29)}_mmk"),
]


_ROUND3_CYCLE = itertools.cycle(ROUND3_KEYS)


def _r3_draw(shape: Callable[[], str], check: Callable[[str], bool]) -> str:
    while True:
        value = shape()
        if check(value.replace(" ", "")):
            return value


def _round3_ids() -> list[tuple[str, str, Callable[[], str]]]:
    from shadowgate.dlp import idchecks as ck

    icao = "CFGHJKLMNPRTVWXYZ"
    return [
        (
            "Krankenkasse KVNR",
            "DE_HEALTH_INSURANCE",
            lambda: _r3_draw(lambda: R3.choice(UPPER) + _r3(DIGITS, 9), ck.de_kvnr_valid),
        ),
        (
            "Rentenversicherungsnummer",
            "DE_SOCIAL_SECURITY",
            lambda: _r3_draw(
                lambda: (
                    f"{_r3(DIGITS, 2)}{R3.randint(1, 28):02d}{R3.randint(1, 12):02d}{_r3(DIGITS, 2)}{R3.choice(UPPER)}{_r3(DIGITS, 3)}"
                ),
                ck.de_rvnr_valid,
            ),
        ),
        (
            "Reisepass",
            "DE_ID_DOCUMENT",
            lambda: _r3_draw(lambda: R3.choice(icao) + _r3(DIGITS, 8), ck.de_id_document_valid),
        ),
        (
            "driving licence",
            "UK_DRIVING_LICENCE",
            lambda: (
                f"{_r3(UPPER, 5)}{R3.randint(0, 9)}{R3.randint(1, 12):02d}{R3.randint(1, 28):02d}{R3.randint(0, 9)}{_r3(UPPER, 2)}9{_r3(UPPER, 2)}"
            ),
        ),
        (
            "ship to",
            "UK_POSTCODE",
            lambda: (
                f"{R3.choice(('SW1A', 'EC2A', 'M60', 'CR2', 'W1A'))} {R3.randint(0, 9)}{R3.choice('ABDEFGHJLNPQRSTUWXYZ')}{R3.choice('ADEFHJLNQRSUWXYZ')}"
            ),
        ),
        (
            "routing number",
            "US_ABA_ROUTING",
            lambda: _r3_draw(lambda: "0" + _r3("12", 1) + _r3(DIGITS, 7), ck.us_aba_valid),
        ),
        ("voter id", "IN_VOTER", lambda: _r3(UPPER, 3) + _r3(DIGITS, 7)),
        ("passport number", "PASSPORT", lambda: R3.choice(("AB", "J", "CD", "T")) + _r3(DIGITS, 7)),
    ]


_ROUND3_ID_CYCLE = itertools.cycle(range(8))


def doc_round3() -> Snip:
    """Jenkins credentials.xml, a key in prose, "name token - 'value'", a scheme inside quotes."""
    svc = R3.choice(SERVICES)
    form = R3.randrange(7)
    if form == 6:
        word, type_, gen = _round3_ids()[next(_ROUND3_ID_CYCLE)]
        return join(f"Please update the file. {word}: ", whole(gen(), type_), ". Thanks\n")
    if form == 5:
        type_, gen = next(_ROUND3_CYCLE)  # in turn, so that every type is in the corpus
        return join(
            R3.choice(("export SERVICE_CREDENTIAL=", "The deploy job fails with ", "creds: ")),
            whole(gen(), type_),
            "\n",
        )
    if form == 4:
        token = (
            R3.choice("01")
            + ".A"
            + "".join(R3.choice(B64URL) for _ in range(R3.randint(60, 90)))
            + ".Ag"
            + "".join(R3.choice(B64URL) for _ in range(R3.randint(300, 500)))
        )
        return join("grant_type=refresh_token&refresh_token=", whole(token, "AZURE_ENTRA_REFRESH_TOKEN"), "\n")
    if form == 0:
        blob = "AQAAABAAAAAQ" + "".join(R3.choice(B64) for _ in range(R3.choice((32, 44, 64)))) + "="
        return join(
            "<com.cloudbees.plugins.credentials.impl.StringCredentialsImpl>\n  <scope>GLOBAL</scope>\n",
            f"  <id>{svc}-token</id>\n  <secret>{{",
            whole(blob, "JENKINS_CREDENTIAL"),
            "}</secret>\n</com.cloudbees.plugins.credentials.impl.StringCredentialsImpl>\n",
        )
    if form == 1:
        return join(f"Your {svc} API key is ", whole(_r3_key(32), "GENERIC_SECRET"), ", keep it out of the repo.")
    if form == 2:
        return join(f"{svc} token - '", whole(_r3_key(R3.choice((24, 32, 40))), "GENERIC_SECRET"), "'\n")
    return join(
        f'{svc}Token := "Bearer ',
        whole(_r3_key(28), "GENERIC_SECRET"),
        f'"\nreq.Header.Set("Authorization", {svc}Token)',
    )


GENRES: list[tuple[str, Callable[..., Snip], int, bool]] = [
    ("env", doc_env_file, 420, True),
    ("chat_key", doc_chat_key, 340, True),
    ("aws", doc_aws, 45, False),
    ("db_urls", doc_db_urls, 70, False),
    ("passwords", doc_passwords, 70, False),
    ("pem", doc_pem, 45, False),
    ("logs", doc_logs, 60, False),
    ("support_email", doc_support_email, 60, False),
    ("crm_export", doc_crm_export, 30, False),
    ("hr_us", doc_hr_us, 40, False),
    ("german", doc_german, 45, False),
    ("french", doc_french, 45, False),
    ("spanish", doc_spanish, 45, False),
    ("italian", doc_italian, 45, False),
    ("dutch", doc_dutch, 45, False),
    ("uk", doc_uk, 45, False),
    ("japanese", doc_japanese, 30, False),
    ("india", doc_india, 25, False),
    ("network", doc_network, 40, False),
    ("payments", doc_payments, 35, False),
    ("hard_negatives", doc_mixed_hard_negatives, 50, False),
    ("curl", doc_curl, 50, False),
    ("azure", doc_azure, 45, False),
    ("wild", doc_wild, 150, False),
    ("global_ids", doc_global_ids, 150, False),  # last, on its own random stream: the rest is unchanged
    ("round3", doc_round3, 160, False),  # its own random stream too
]

# ----------------------------------------------------------------------------------------------
# Clean prompts: nothing sensitive, many near misses

CLEAN_TEMPLATES = [
    "Summarise the meeting notes from @@date@@: we agreed to ship @@version@@ after fixing the flaky test in commit @@sha@@. @@person@@ owns the rollout.",
    "Refactor this function so it is easier to test:\n\n```python\ndef total(items):\n    s = 0\n    for i in items:\n        if i['qty'] > 0:\n            s += i['price'] * i['qty']\n    return round(s, 2)\n```",
    "Write a SQL query that returns the top 10 customers by revenue in @@date@@, joining orders and customers on customer_id.",
    "Explain the difference between a UUID like @@uuid@@ and a ULID, and when to use each as a primary key.",
    "Our build @@shortsha@@ fails with `npm ERR! code ERESOLVE` after upgrading @@misc@@. What should I check?",
    "Translate to German: 'Your order @@order@@ has shipped and will arrive on @@date@@. Total: @@amount@@.'",
    "Traduis en français : « La mise à jour @@version@@ corrige le bug de connexion signalé le @@date@@. »",
    "Resume en español: el equipo de @@city@@ cerró el trimestre con @@amount@@ en ventas y @@int@@ clientes nuevos.",
    "この文章を英語に翻訳してください：「@@date@@の会議で、@@company@@の新しいプロジェクトについて話し合いました。」",
    "Why does `git rebase` say 'could not apply @@shortsha@@'? I was rebasing onto @@sha@@.",
    "Here is an image, describe it: @@b64img@@",
    "Checksums for the release:\n@@hash@@  app.tar.gz\n@@hash@@  app.zip\nWhich algorithm should we publish?",
    "Write a regex that matches semantic versions like @@version@@ but not dates like @@date@@.",
    "Create a Kubernetes deployment with 3 replicas, image registry.example/app:@@version@@, resources cpu 500m memory 512Mi, and a readiness probe on /healthz.",
    "The docs say to set OPENAI_API_KEY=@@examplekey@@ before running the sample. Where does the SDK read it from?",
    "Is the card number @@badcard@@ valid? It was rejected by the payment form and I think it's a typo.",
    "Plan a three-day trip to @@city@@ with a budget of @@amount@@, including museums and a day trip.",
    "Given the latency numbers p50=@@int@@ms p95=@@int@@ms p99=@@int@@ms, is our SLO of 300 ms at p95 met?",
    "Draft release notes for @@version@@: faster search, fixed @@order@@, new export to CSV.",
    "How do I configure nginx to proxy localhost:3000 and serve static files from /var/www? Keep 127.0.0.1:8080 for the admin panel.",
    "Explain this stack trace:\n  File \"/srv/app/handlers.py\", line @@int@@, in handle\n    raise TimeoutError('upstream @@host@@ timed out after 30s')",
    "Write unit tests for a function that validates IBANs; use obviously fake examples and don't include real ones.",
    "What is the complexity of quicksort, and why is the worst case O(n^2)? Give an example with @@int@@ elements.",
    "Rédige un e-mail pour reporter la réunion du @@date@@ à la semaine suivante, ton cordial.",
    "Schreibe eine kurze Produktbeschreibung für eine Kaffeemühle, Preis @@amount@@, Lieferung ab @@date@@.",
    "Compare PostgreSQL and MySQL for a write-heavy workload of @@int@@k inserts per second.",
    'Convert this JSON to YAML:\n{"name": "@@company@@", "replicas": @@int@@, "image": "app:@@version@@", "labels": {"team": "platform"}}',
    "In the logs I see request ids like @@uuid@@ and trace ids like @@sha@@. How do I correlate them in Grafana?",
    "Explain the Luhn algorithm and show why @@badcard@@ fails the check.",
    "My docker image digest is @@misc@@; how do I pin it in the compose file?",
    "What does HTTP @@misc@@ mean and when should an API return it?",
    "Write a haiku about @@city@@ in autumn.",
    "Give me a checklist for rotating credentials after an incident (no real values, just the steps).",
    "Sort these version strings: @@version@@, @@version@@, @@version@@, @@version@@.",
    "Calculate the monthly payment for a loan of @@amount@@ at 4.5% over 20 years.",
    "Our order numbers look like @@order@@ and @@order@@. Write a regex that validates both formats.",
    'Review this Terraform: resource "aws_s3_bucket" "logs" { bucket = "@@company@@-logs-@@int@@" versioning { enabled = true } }',
    'How do I read an environment variable in Go and fail fast when it is missing? Example: os.Getenv("API_KEY").',
    "Explain what the password policy 'at least 12 characters, one digit, one symbol' protects against.",
    "The token limit is 128k; how many pages of text is that roughly? Also what does max_tokens=@@int@@ do?",
    "Write a bash one-liner that counts unique IPs in access.log, ignoring 127.0.0.1 and ::1.",
    "Dates in the CSV look like @@date@@ and @@date@@; write pandas code to parse both.",
    "Give me three names for a bakery in @@city@@.",
    "Server version @@version@@ listens on 0.0.0.0:8000; the health check returns 200 in @@int@@ ms. Is that fast enough?",
    "The barcode on the box reads @@ean@@. Which product category does the prefix indicate?",
    "My phone's IMEI is @@imei@@ — how do I check whether it is blacklisted after a theft report?",
    "Plot these points on a map: @@numbers@@ and @@numbers@@. What is the distance between them?",
    "Summarise: revenue @@numbers@@, @@numbers@@, churn @@int@@%, NPS @@int@@, period @@numbers@@.",
    "Unix time @@misc@@ — which date and time is that in UTC and in Tokyo?",
    "Tabelle: @@numbers@@; @@numbers@@; @@numbers@@. Bitte als Markdown formatieren.",
    "The Windows update log says @@numbers@@ and then error 0x80070005. What does it mean?",
]


def build() -> tuple[list[dict], list[dict]]:
    docs: list[dict] = []
    decks: dict[str, list] = {"env": [], "chat_key": []}
    for genre, fn, count, takes_deck in GENRES:
        for i in range(count):
            snip = fn(decks[genre]) if takes_deck else fn()
            labels = [{"start": a, "end": b, "type": t} for a, b, t in sorted(snip.labels)]
            for lab in labels:
                assert snip.text[lab["start"] : lab["end"]].strip() == snip.text[lab["start"] : lab["end"]], (
                    genre,
                    lab,
                )
            docs.append({"id": f"{genre}-{i:03d}", "genre": genre, "text": snip.text, "labels": labels})
    clean: list[dict] = []
    for i in range(420):
        template = CLEAN_TEMPLATES[i % len(CLEAN_TEMPLATES)]
        snip = render(template)
        assert not snip.labels
        clean.append({"id": f"clean-{i:03d}", "genre": "clean", "text": snip.text, "labels": []})
    return docs, clean


def main() -> int:
    docs, clean = build()
    OUT.mkdir(parents=True, exist_ok=True)
    for name, rows in (("corpus.jsonl", docs), ("clean.jsonl", clean)):
        with open(OUT / name, "w", encoding="utf-8") as f:
            f.writelines(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    counts = Counter(lab["type"] for d in docs for lab in d["labels"])
    print(f"{len(docs)} labelled documents, {sum(counts.values())} labels, {len(clean)} clean prompts", file=sys.stderr)
    for t, n in sorted(counts.items()):
        print(f"  {t:28} {n}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
