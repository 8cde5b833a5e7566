"""DLP detection engine: detectors, whole spans, hard negatives, placeholders, corpus quality floors,
fuzzing, and `shadowgate scan`.

Every key and identifier below is random or computed here (never a real one). No timing
assertions: speed is measured by scripts/bench_dlp.py; the fuzz tests only bound run time as a
guard against catastrophic backtracking.
"""

from __future__ import annotations

import base64
import io
import itertools
import json
import os
import random
import string
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadowgate.cli.scan import run_scan
from shadowgate.dlp import OPT_IN_TYPES
from shadowgate.dlp import TYPES
from shadowgate.dlp import Finding
from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.dlp import ScanTimeout
from shadowgate.dlp import redact
from shadowgate.dlp.evaluation import evaluate
from shadowgate.dlp.evaluation import load
from shadowgate.dlp.numberchecks import card_valid
from shadowgate.dlp.numberchecks import de_tax_id_valid
from shadowgate.dlp.numberchecks import es_dni_valid
from shadowgate.dlp.numberchecks import fr_nir_valid
from shadowgate.dlp.numberchecks import iban_valid
from shadowgate.dlp.numberchecks import it_fiscal_code_valid
from shadowgate.dlp.numberchecks import nl_bsn_valid
from shadowgate.dlp.numberchecks import ssn_valid
from shadowgate.dlp.numberchecks import uk_nino_valid
from shadowgate.dlp.numberchecks import vat_valid
from shadowgate.dlp.servicekeys import SERVICE_KEY_TYPES
from shadowgate.dlp.validators import luhn_valid

SCANNER = Scanner()
R = random.Random(4)
ALNUM = string.ascii_letters + string.digits
HEX = "0123456789abcdef"


def rnd(chars: str, n: int) -> str:
    return "".join(R.choice(chars) for _ in range(n))


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in SCANNER.scan(text)]


def jwt(alg: str = "HS256") -> str:
    def b64(obj: dict) -> str:
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    return f"{b64({'alg': alg, 'typ': 'JWT'})}.{b64({'sub': '42', 'name': 'Ann Example'})}.{rnd(ALNUM + '-_', 43)}"


# --- Service keys: (type, value); every value must be found whole, in a sentence and assigned -----
AWS_KEY = "AKIA" + rnd("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)
SERVICE_KEYS = [
    ("AWS_ACCESS_KEY", AWS_KEY),
    ("AWS_ACCESS_KEY", "ASIA" + rnd("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", 16)),
    ("OPENAI_API_KEY", f"sk-proj-{rnd(ALNUM + '-_', 74)}T3BlbkFJ{rnd(ALNUM + '-_', 74)}"),
    ("OPENAI_API_KEY", f"sk-svcacct-{rnd(ALNUM, 58)}T3BlbkFJ{rnd(ALNUM, 58)}"),
    ("OPENAI_API_KEY", f"sk-{rnd(ALNUM, 20)}T3BlbkFJ{rnd(ALNUM, 20)}"),
    ("ANTHROPIC_API_KEY", f"sk-ant-api03-{rnd(ALNUM + '-_', 93)}AA"),
    ("ANTHROPIC_API_KEY", f"sk-ant-admin01-{rnd(ALNUM + '-_', 93)}AA"),
    ("OPENROUTER_API_KEY", "sk-or-v1-" + rnd(HEX, 64)),
    ("GOOGLE_API_KEY", "AIzaSy" + rnd(ALNUM + "-_", 33)),
    ("GOOGLE_OAUTH_SECRET", "GOCSPX-" + rnd(ALNUM + "-_", 28)),
    ("GITHUB_TOKEN", "ghp_" + rnd(ALNUM, 36)),
    ("GITHUB_TOKEN", "ghs_" + rnd(ALNUM, 36)),
    ("GITHUB_TOKEN", f"github_pat_{rnd(ALNUM, 22)}_{rnd(ALNUM, 59)}"),
    ("GITLAB_TOKEN", "glpat-" + rnd(ALNUM + "-_", 20)),
    ("GITLAB_TOKEN", "gldt-" + rnd(ALNUM, 20)),
    ("SLACK_TOKEN", f"xoxb-{rnd(string.digits, 12)}-{rnd(string.digits, 13)}-{rnd(ALNUM, 24)}"),
    ("SLACK_TOKEN", f"xapp-1-A{rnd('ABCDEFGHJK0123456789', 10)}-{rnd(string.digits, 13)}-{rnd(HEX, 64)}"),
    (
        "SLACK_WEBHOOK",
        f"https://hooks.slack.com/services/T{rnd('ABCDEFGH0123', 8)}/B{rnd('ABCDEFGH0123', 10)}/{rnd(ALNUM, 24)}",
    ),
    ("STRIPE_KEY", "sk_live_" + rnd(ALNUM, 24)),
    ("STRIPE_KEY", "rk_live_51" + rnd(ALNUM, 97)),
    ("STRIPE_KEY", "whsec_" + rnd(ALNUM, 32)),
    ("TWILIO_ACCOUNT_SID", "AC" + rnd(HEX, 32)),
    ("TWILIO_API_KEY", "SK" + rnd(HEX, 32)),
    ("SENDGRID_API_KEY", f"SG.{rnd(ALNUM + '-_', 22)}.{rnd(ALNUM + '-_', 43)}"),
    ("HUGGINGFACE_TOKEN", "hf_" + rnd(string.ascii_letters, 34)),
    ("NPM_TOKEN", "npm_" + rnd(ALNUM, 36)),
    ("PYPI_TOKEN", "pypi-AgEIcHlwaS5vcmc" + rnd(ALNUM + "-_", 80)),
    ("AZURE_CLIENT_SECRET", "a1B8Q~" + rnd(ALNUM + "_~.-", 34)),
    ("DATABRICKS_TOKEN", "dapi" + rnd(HEX, 32)),
    ("SHOPIFY_TOKEN", "shpat_" + rnd(HEX, 32)),
    ("ATLASSIAN_API_TOKEN", "ATATT3xFfGF0" + rnd(ALNUM + "-_", 171) + "=" + rnd("0123456789ABCDEF", 8)),
    ("GROQ_API_KEY", "gsk_" + rnd(ALNUM, 52)),
    ("XAI_API_KEY", "xai-" + rnd(ALNUM, 80)),
    ("PERPLEXITY_API_KEY", "pplx-" + rnd(ALNUM, 48)),
    ("REPLICATE_API_TOKEN", "r8_" + rnd(ALNUM, 37)),
    ("MAILGUN_API_KEY", "key-" + rnd(HEX, 32)),
    ("MAILCHIMP_API_KEY", rnd(HEX, 32) + "-us14"),
    ("DIGITALOCEAN_TOKEN", "dop_v1_" + rnd(HEX, 64)),
    ("DOPPLER_TOKEN", "dp.pt." + rnd(ALNUM, 43)),
    ("LINEAR_API_KEY", "lin_api_" + rnd(ALNUM, 40)),
    ("NOTION_TOKEN", "secret_" + rnd(ALNUM, 43)),
    ("NOTION_TOKEN", "ntn_" + rnd(string.digits, 11) + rnd(ALNUM, 35)),
    ("HEROKU_API_KEY", "HRKU-AA" + rnd(ALNUM + "-_", 58)),
    ("SQUARE_TOKEN", "EAAA" + rnd(ALNUM + "-_", 60)),
    ("SQUARE_TOKEN", "sq0csp-" + rnd(ALNUM + "-_", 43)),
    (
        "BRAINTREE_ACCESS_TOKEN",
        f"access_token$production${rnd(string.ascii_lowercase + string.digits, 16)}${rnd(HEX, 32)}",
    ),
    (
        "DISCORD_BOT_TOKEN",
        base64.urlsafe_b64encode(b"123456789012345678").decode().rstrip("=")
        + "."
        + rnd(ALNUM, 6)
        + "."
        + rnd(ALNUM + "-_", 38),
    ),
    ("DISCORD_WEBHOOK", f"https://discord.com/api/webhooks/123456789012345678/{rnd(ALNUM + '-_', 68)}"),
    ("TELEGRAM_BOT_TOKEN", f"123456789:AA{rnd(ALNUM + '-_', 33)}"),
    ("VAULT_TOKEN", "hvs.CAESI" + rnd(ALNUM + "-_", 90)),
    ("PULUMI_TOKEN", "pul-" + rnd(HEX, 40)),
    ("TERRAFORM_TOKEN", rnd(ALNUM, 14) + ".atlasv1." + rnd(ALNUM + "-_", 67)),
    ("SENTRY_TOKEN", "sntryu_" + rnd(HEX, 64)),
    ("GRAFANA_TOKEN", f"glsa_{rnd(ALNUM, 32)}_{rnd(HEX, 8)}"),
    ("NEWRELIC_KEY", "NRAK-" + rnd(string.ascii_uppercase + string.digits, 27)),
    (
        "DYNATRACE_TOKEN",
        f"dt0c01.{rnd(string.ascii_uppercase + string.digits, 24)}.{rnd(string.ascii_uppercase + string.digits, 64)}",
    ),
    ("CLOUDFLARE_API_TOKEN", "cfut_" + rnd(ALNUM, 48)),
    ("FLYIO_TOKEN", "fo1_" + rnd(ALNUM + "-_", 43)),
    ("VERCEL_TOKEN", "vcp_" + rnd(ALNUM, 56)),
    ("SUPABASE_KEY", "sbp_" + rnd(HEX, 40)),
    ("AGE_SECRET_KEY", "AGE-SECRET-KEY-1" + rnd("QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L", 58)),
    ("POSTMAN_API_KEY", f"PMAK-{rnd(HEX, 24)}-{rnd(HEX, 34)}"),
    ("DOCKER_HUB_TOKEN", "dckr_pat_" + rnd(ALNUM + "-_", 27)),
    ("LANGSMITH_API_KEY", f"lsv2_pt_{rnd(HEX, 32)}_{rnd(HEX, 10)}"),
    ("AIRTABLE_TOKEN", f"pat{rnd(ALNUM, 14)}.{rnd(HEX, 64)}"),
    ("AWS_SESSION_TOKEN", "IQoJb3JpZ2luX2VjE" + rnd(ALNUM + "+/", 300)),
    ("JWT", jwt()),
    ("JWT", jwt("RS256")),
]


@pytest.mark.parametrize("type_, value", SERVICE_KEYS, ids=[f"{t}-{i}" for i, (t, _) in enumerate(SERVICE_KEYS)])
def test_service_key_found_whole(type_, value):
    for text in (f"here is my key {value} please help", f'API_TOKEN="{value}"', f"{value}\n", f"`{value}`."):
        assert found(text) == [(type_, value)], text


def test_at_least_40_services_have_a_published_format():
    assert len(SERVICE_KEY_TYPES - {"GENERIC_SECRET", "AWS_SECRET_KEY"}) >= 40


@pytest.mark.parametrize(
    "text, expected",
    [
        # AWS secret keys: next to a key id, or assigned to an aws_secret name
        (
            f"key {AWS_KEY} secret Xk9wJ2lMp4Qr7Zs1Tv8Yb3Nc6Dh0Fg5Je2Lk9Wm1",
            [("AWS_ACCESS_KEY", AWS_KEY), ("AWS_SECRET_KEY", "Xk9wJ2lMp4Qr7Zs1Tv8Yb3Nc6Dh0Fg5Je2Lk9Wm1")],
        ),
        (
            "aws_secret_access_key = Xk9wJ2lMp4Qr7Zs1Tv8Yb3Nc6Dh0Fg5Je2Lk9Wm1",
            [("AWS_SECRET_KEY", "Xk9wJ2lMp4Qr7Zs1Tv8Yb3Nc6Dh0Fg5Je2Lk9Wm1")],
        ),
        ("a random string Xk9wJ2lMp4Qr7Zs1Tv8Yb3Nc6Dh0Fg5Je2Lk9Wm1 alone", []),
        # services without a distinctive format: only from the name they are assigned to
        (
            "COHERE_API_KEY=Q3ZpV0sm9YxTq2LbNc7RwE4uH8jK1oFg6DaS5vXe",
            [("COHERE_API_KEY", "Q3ZpV0sm9YxTq2LbNc7RwE4uH8jK1oFg6DaS5vXe")],
        ),
        (
            'mistral_api_key: "Zq8Lm2Xv9Rt4Yb7Nc1Wd6Hf3Jk5Pa0Se"',
            [("MISTRAL_API_KEY", "Zq8Lm2Xv9Rt4Yb7Nc1Wd6Hf3Jk5Pa0Se")],
        ),
        (
            "OKTA_API_TOKEN=00aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7s",
            [("OKTA_API_TOKEN", "00aB3dE5gH7jK9mN1pQ3sT5vX7zA9cE1gI3kM5oQ7s")],
        ),
        (
            "HEROKU_API_KEY=3f6c2a1e-9b7d-4e8f-a1c2-5d6e7f8a9b0c",
            [("HEROKU_API_KEY", "3f6c2a1e-9b7d-4e8f-a1c2-5d6e7f8a9b0c")],
        ),
        # generic secrets and passwords: the value only, whole
        ('client_secret = "p9X2mQ7rT4vL8nB3cW6zK1jH5"', [("GENERIC_SECRET", "p9X2mQ7rT4vL8nB3cW6zK1jH5")]),
        ('{"apiKey": "Zx81bQ2mP7rLw3Tn9Vk4Hs6J"}', [("GENERIC_SECRET", "Zx81bQ2mP7rLw3Tn9Vk4Hs6J")]),
        ("Authorization: Bearer Zx81bQ2mP7rLw3Tn9Vk4Hs6Jq0", [("GENERIC_SECRET", "Zx81bQ2mP7rLw3Tn9Vk4Hs6Jq0")]),
        ("Authorization: Basic YWRtaW46czNjcjN0IQ==", [("GENERIC_SECRET", "YWRtaW46czNjcjN0IQ==")]),
        ("DB_PASSWORD=Summer2024!", [("PASSWORD", "Summer2024!")]),
        ("mysql -u root --password Tr0ub4dor&3 -h db", [("PASSWORD", "Tr0ub4dor&3")]),
        ("my password is Winter1999# thanks", [("PASSWORD", "Winter1999#")]),
        ("<password>Sup3r-S3cret</password>", [("PASSWORD", "Sup3r-S3cret")]),
        ("CREATE USER app WITH PASSWORD 'N0t-4-Guess';", [("PASSWORD", "N0t-4-Guess")]),
        ("Passwort: Sonne2023!", [("PASSWORD", "Sonne2023!")]),
        # URL credentials: the password only (user, host and database stay readable)
        ("postgres://app:S3cr3t!pw@db.internal:5432/orders", [("URL_PASSWORD", "S3cr3t!pw")]),
        ("mongodb+srv://etl:p%40ss-W0rd@cluster0.abc.mongodb.net/prod", [("URL_PASSWORD", "p%40ss-W0rd")]),
        ("redis://:Xy7-pQ2.rT9@cache.local:6379/0", [("URL_PASSWORD", "Xy7-pQ2.rT9")]),
        ("https://user:p@ss@w0rd@git.example.com/repo.git", [("URL_PASSWORD", "p@ss@w0rd")]),
        # placeholders, references and prose are not secrets
        ("password = os.environ['DB_PASSWORD']", []),
        ('api_key = "${OPENAI_API_KEY}"', []),
        ("token: {{ secrets.GITHUB_TOKEN }}", []),
        ("postgres://user:password@localhost/db", []),
        ("The password is required and the token is valid for an hour.", []),
        ("max_tokens = 4096, tokenizer = tiktoken, public_key = abcdef0123456789abcdef", []),
    ],
)
def test_credentials(text, expected):
    assert found(text) == expected


def test_pem_private_key_whole_from_begin_to_end():
    body = "\n".join(rnd(ALNUM + "+/", 64) for _ in range(5))
    for label in ("RSA PRIVATE KEY", "PRIVATE KEY", "OPENSSH PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY"):
        block = f"-----BEGIN {label}-----\n{body}\n-----END {label}-----"
        assert found(f"key:\n{block}\nthanks") == [("PRIVATE_KEY", block)]
    escaped = f"-----BEGIN PRIVATE KEY-----\\n{body.replace(chr(10), '\\n')}\\n-----END PRIVATE KEY-----"
    assert found(f'{{"private_key": "{escaped}\\n"}}') == [("PRIVATE_KEY", escaped)]
    truncated = f"-----BEGIN RSA PRIVATE KEY-----\n{body}"
    assert found(f"{truncated}\n") == [("PRIVATE_KEY", truncated)]
    assert found("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----") == []


def test_jwt_whole_and_only_with_a_json_header():
    token = jwt()
    assert found(f"Cookie: session={token}; Path=/") == [("JWT", token)]
    fake = "eyJub3QganNvbiB0aGF0IGlz.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"
    assert found(fake) == []


# --- Personal data -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("mail jane.o'neil+ai@mail.example.co.uk today", [("EMAIL", "jane.o'neil+ai@mail.example.co.uk")]),
        ("JOHN.DOE@EXAMPLE.COM", [("EMAIL", "JOHN.DOE@EXAMPLE.COM")]),
        ("icon@2x.png git@github.com:org/repo.git @decorator npm i pkg@1.2.3", []),
        # phones: international and national forms
        ("call +1 (415) 555-2671", [("PHONE", "+1 (415) 555-2671")]),
        ("call 415-555-2671 or 415.555.2671", [("PHONE", "415-555-2671"), ("PHONE", "415.555.2671")]),
        (
            "UK 020 7946 0958, mobile 07700 900123, +44 (0)20 7946 0958",
            [("PHONE", "020 7946 0958"), ("PHONE", "07700 900123"), ("PHONE", "+44 (0)20 7946 0958")],
        ),
        (
            "DE 030 12345678, 0171-2345678, +49 151 23456789, 0049 89 1234567",
            [
                ("PHONE", "030 12345678"),
                ("PHONE", "0171-2345678"),
                ("PHONE", "+49 151 23456789"),
                ("PHONE", "0049 89 1234567"),
            ],
        ),
        ("FR 01 23 45 67 89 et 06.12.34.56.78", [("PHONE", "01 23 45 67 89"), ("PHONE", "06.12.34.56.78")]),
        (
            "NL 06-12345678, IN +91 98765 43210, ES 612 345 678, JP 03-1234-5678",
            [
                ("PHONE", "06-12345678"),
                ("PHONE", "+91 98765 43210"),
                ("PHONE", "612 345 678"),
                ("PHONE", "03-1234-5678"),
            ],
        ),
        ("E.164 +14155552671", [("PHONE", "+14155552671")]),
        # not phones: versions, dates, order numbers, invalid calling codes and plans
        ("version 1.2.3.4, 2024-05-14, 05/14/2024, Order #415-555-2671, ticket 020 7946 0958", []),
        ("+999 1234 5678 and 123-456-7890 and 555-0199", []),
        # cards: Luhn and issuer prefix
        (
            "card 4539 1488 0343 6467 and 5425-2334-3010-9903 and 378282246310005",
            [
                ("CREDIT_CARD", "4539 1488 0343 6467"),
                ("CREDIT_CARD", "5425-2334-3010-9903"),
                ("CREDIT_CARD", "378282246310005"),
            ],
        ),
        ("not cards: 4539 1488 0343 6468 (Luhn), 1234567812345670 (no issuer), 4111111111111111 (test card)", []),
        # IBAN: country length and mod 97
        (
            "IBAN DE89 3704 0044 0532 0130 00, GB82WEST12345698765432 ok",
            [("IBAN", "DE89 3704 0044 0532 0130 00"), ("IBAN", "GB82WEST12345698765432")],
        ),
        ("DE89 3704 0044 0532 0130 01 fails mod 97, DE89 3704 0044 0532 0130 is short", []),
        # US SSN with the invalid ranges excluded; ITIN
        ("SSN 536-22-1234, ITIN 912-78-1234", [("US_SSN", "536-22-1234"), ("US_ITIN", "912-78-1234")]),
        ("000-12-3456 666-12-3456 536-00-1234 536-22-0000 123-45-6789", []),
        ("SSN: 536221234", [("US_SSN", "536221234")]),
        # IP addresses
        (
            "from 10.20.30.40 and 93.184.216.34:8443 and 2a00:1450:85a3::8a2e:370:7334 and [fe80::1ff:fe23:4567:890a]:443",
            [
                ("IPV4", "10.20.30.40"),
                ("IPV4", "93.184.216.34"),
                ("IPV6", "2a00:1450:85a3::8a2e:370:7334"),
                ("IPV6", "fe80::1ff:fe23:4567:890a"),
            ],
        ),
        ("version 1.2.3.4, 127.0.0.1, 0.0.0.0, 255.255.255.0, ::1, 1.2.3.4.5, std::vector, 10:22:31, 999.1.1.1", []),
        # addresses that identify nobody (round-6b G12): private, link-local, documentation, resolvers
        ("203.0.113.9 169.254.169.254 2001:db8:85a3::8a2e:370:7334 8.8.8.8 2001:4860:4860::8888", []),
        (
            "mac 00:1A:2B:3C:4D:5E and 00-1a-2b-3c-4d-5f",
            [("MAC_ADDRESS", "00:1A:2B:3C:4D:5E"), ("MAC_ADDRESS", "00-1a-2b-3c-4d-5f")],
        ),
        # European identifiers
        ("NINO AB 12 34 56 C and JG103759A", [("UK_NINO", "AB 12 34 56 C"), ("UK_NINO", "JG103759A")]),
        ("bad NINO BG123456A GB123456A AB123456E QQ123456A", []),
        ("Steuer-ID 86 095 742 719", [("DE_TAX_ID", "86 095 742 719")]),
        ("86095742719 without context, Steuer-ID 86095742718 wrong check digit", []),
        (
            "NIR 1 84 12 76 451 089 46 and 184127645108946",
            [("FR_NIR", "1 84 12 76 451 089 46"), ("FR_NIR", "184127645108946")],
        ),
        ("BSN: 111222333", [("NL_BSN", "111222333")]),
        ("BSN: 111222334", []),
        ("DNI 12345678Z, NIE X1234567L", [("ES_DNI", "12345678Z"), ("ES_NIE", "X1234567L")]),
        ("DNI 12345678A wrong letter", []),
        ("codice fiscale RSSMRA85T10A562S", [("IT_FISCAL_CODE", "RSSMRA85T10A562S")]),
        ("codice fiscale RSSMRA85T10A562T", []),
        (
            "VAT DE136695976, FR40303265045, IT00743110157, NL004495445B01, ATU13585627",
            [
                ("EU_VAT", "DE136695976"),
                ("EU_VAT", "FR40303265045"),
                ("EU_VAT", "IT00743110157"),
                ("EU_VAT", "NL004495445B01"),
                ("EU_VAT", "ATU13585627"),
            ],
        ),
        ("passport number 123456789", [("US_PASSPORT", "123456789")]),
    ],
)
def test_personal_data(text, expected):
    assert found(text) == expected


@pytest.mark.parametrize(
    "check, good, bad",
    [
        (luhn_valid, "79927398713", "79927398710"),
        (card_valid, "4539148803436467", "4539148803436468"),
        (iban_valid, "GB82WEST12345698765432", "GB82WEST12345698765433"),
        (ssn_valid, "536221234", "666221234"),
        (uk_nino_valid, "AB123456C", "DF123456C"),
        (de_tax_id_valid, "86095742719", "86095742718"),
        (fr_nir_valid, "184127645108946", "184127645108947"),
        (nl_bsn_valid, "111222333", "111222334"),
        (es_dni_valid, "12345678Z", "12345678A"),
        (it_fiscal_code_valid, "RSSMRA85T10A562S", "RSSMRA85T10A562T"),
    ],
)
def test_validators(check, good, bad):
    assert check(good)
    assert not check(bad)


def test_vat_check_digits():
    assert vat_valid("DE", "136695976") and not vat_valid("DE", "136695977")
    assert vat_valid("FR", "40303265045") and not vat_valid("FR", "41303265045")
    assert vat_valid("BE", "0403019261") and not vat_valid("BE", "0403019262")
    assert vat_valid("GB", "980780684") and not vat_valid("XX", "123456789")


def test_vat_shaped_values_of_the_wrong_length_or_letters_are_no_vat_and_do_not_fail_the_scan():
    # The VAT shape admits 8 to 15 characters and letters for every country; a check that read
    # past the number raised, and a fail-closed proxy blocked any prompt holding "NL12345678".
    countries = ("AT", "BE", "DE", "DK", "ES", "FI", "FR", "GB", "IE", "IT", "LU", "NL", "PL", "PT", "SE")
    for country in countries:
        for number in ("1234567", "12345678", "123456789", "1234567B01", "A1234567", "1234567AB", "U1234567"):
            assert vat_valid(country, number) in (True, False)
    for text in ("NL12345678", "PL123456789", "PT12345678", "order NL12345678 shipped", "ESA1234567"):
        assert SCANNER.scan(text) == []


# --- Hard negatives: nothing here may be touched ------------------------------------------------

HARD_NEGATIVES = [
    "request 3f6c2a1e-9b7d-4e8f-a1c2-5d6e7f8a9b0c failed",
    "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 and short sha 9fceb02",
    "md5 d41d8cd98f00b204e9800998ecf8427e sha1 da39a3ee5e6b4b0d3255bfef95601890afd80709",
    "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "integrity sha512-" + base64.b64encode(bytes(range(64))).decode(),
    "data:image/png;base64," + base64.b64encode(random.Random(1).randbytes(900)).decode(),
    "release v1.2.3, version 2.14.0-rc.1, Chrome/120.0.6099.109, Python 3.12.1, node v20.11.0",
    "ORD-2024-001234, INV-88231, Order #123-456-7890, Bestellnummer 4711081512, tracking 1Z999AA10123456784",
    "card-like but failing Luhn: 4539 1488 0343 6468",
    "AWS docs: AKIAIOSFODNN7EXAMPLE / wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
    "stripe test keys sk_test_4eC39HqLyjWDarjtT1zdp7dc and pk_test_TYooMQauvdEDq54NiTphI7jx",
    "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx GITHUB_TOKEN=ghp_xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx",
    "api_key: <YOUR_API_KEY>, token: your-token-here, password: ********, secret: REDACTED",
    "dates 2024-05-14T10:22:31Z, 14.05.2024, 05/14/2024; amounts $1,234.56, 1.299,00 €, 736 640 101,47 €",
    "ISBN 978-3-16-148410-0, EAN 4006381333931, port 8080, 500m CPU, 12,345 requests, 48.8566, 2.3522",
    "listen 0.0.0.0:8000, 127.0.0.1:8080, [::1]:5432, netmask 255.255.255.0",
    "C++ std::vector<int>::iterator, Rust std::io::Result, PHP Foo::bar()",
]


@pytest.mark.parametrize("text", HARD_NEGATIVES)
def test_hard_negatives_stay_untouched(text):
    assert found(text) == []


# --- Scanner, redact, placeholders ---------------------------------------------------------------


def test_scanner_types_filter_and_validation():
    text = f"mail a.b@example.com key {AWS_KEY}"
    assert [(f.type, f.kind) for f in Scanner({"EMAIL"}).scan(text)] == [("EMAIL", "pii")]
    assert [(f.type, f.kind) for f in Scanner(["AWS_ACCESS_KEY"]).scan(text)] == [("AWS_ACCESS_KEY", "secret")]
    assert Scanner({"EMAIL"}).types == {"EMAIL"}
    with pytest.raises(ValueError, match="NOT_A_TYPE"):
        Scanner({"EMAIL", "NOT_A_TYPE"})
    assert set(TYPES.values()) == {"secret", "pii"}
    assert {
        "AWS_ACCESS_KEY",
        "OPENAI_API_KEY",
        "EMAIL",
        "CREDIT_CARD",
        "IBAN",
        "US_SSN",
        "PHONE",
        "IPV4",
        "IPV6",
        "JWT",
        "PRIVATE_KEY",
        "URL_PASSWORD",
        "GENERIC_SECRET",
    } <= set(TYPES)


def test_overlaps_resolved_secret_then_longer_then_specific():
    token = "ghp_" + rnd(ALNUM, 36)
    # the assignment detector and the GitHub detector report the same span: the specific type wins
    assert found(f"GITHUB_TOKEN={token}") == [("GITHUB_TOKEN", token)]
    # the URL password overlaps an e-mail-shaped "password@host": the secret wins
    assert found("https://bob:Zk8-qL2x@mail.example.com/") == [("URL_PASSWORD", "Zk8-qL2x")]
    findings = SCANNER.scan(f"a@b.example.com {token} +1 415-555-2671")
    assert all(a.end <= b.start for a, b in itertools.pairwise(findings))


def test_redact_with_placeholders_is_consistent_and_reversible():
    text = "Ann ann@example.com, Bob bob@example.org, Ann again ann@example.com, card 4539 1488 0343 6467"
    ph = Placeholders()
    out = redact(text, SCANNER.scan(text), ph.for_text(text))
    assert out == "Ann [EMAIL_1], Bob [EMAIL_2], Ann again [EMAIL_1], card [CREDIT_CARD_1]"
    second = "reply to bob@example.org"  # the same request's next message: same numbering
    assert redact(second, SCANNER.scan(second), ph.for_text(second)) == "reply to [EMAIL_2]"
    assert dict(ph.mapping) == {
        "[EMAIL_1]": "ann@example.com",
        "[EMAIL_2]": "bob@example.org",
        "[CREDIT_CARD_1]": "4539 1488 0343 6467",
    }
    assert ph.restore(out) == text
    assert (
        ph.restore("Dear [EMAIL_2], [UNKNOWN_1] and [EMAIL_9] stay")
        == "Dear bob@example.org, [UNKNOWN_1] and [EMAIL_9] stay"
    )
    assert Placeholders().restore(out) == out  # another request's mapping restores nothing
    with pytest.raises(TypeError):
        ph.mapping["[EMAIL_3]"] = "x"  # type: ignore[index]


def test_redact_covers_overlapping_and_unsorted_findings():
    text = "0123456789"
    fs = [Finding(6, 9, "B", "t", "pii"), Finding(1, 4, "A", "t", "pii"), Finding(3, 7, "C", "t", "pii")]
    assert redact(text, fs, lambda f: f"<{f.type}>") == "0<A>9"
    assert redact(text, [], lambda f: "x") == text


# --- The labelled corpus: the quality floors -----------------------------------------------------


@pytest.fixture(scope="module")
def corpus_report():
    docs, clean = load("corpus.jsonl"), load("clean.jsonl")
    assert len(docs) > 1000 and len(clean) > 300
    return evaluate(docs, clean, lambda t: [(f.start, f.end, f.type) for f in SCANNER.scan(t)])


def test_corpus_secrets_quality_floor(corpus_report):
    c = corpus_report.by_kind["secret"]
    assert c.labels > 2000
    assert c.recall >= 0.99, corpus_report.misses[:20]
    assert c.precision >= 0.98, corpus_report.false_positives[:20]


def test_corpus_pii_quality_floor(corpus_report):
    c = corpus_report.by_kind["pii"]
    assert c.labels > 2000
    assert c.recall >= 0.97, corpus_report.misses[:20]
    assert c.precision >= 0.95, corpus_report.false_positives[:20]


def test_corpus_clean_prompts_mostly_untouched(corpus_report):
    assert corpus_report.clean_altered_share <= 0.02, corpus_report.false_positives[:20]


def test_corpus_covers_every_type_and_every_type_is_found(corpus_report):
    labelled = set(corpus_report.by_type) & {t for t, c in corpus_report.by_type.items() if c.labels}
    default = set(TYPES) - OPT_IN_TYPES  # the opt-in PERSON_NAME is measured in test_dlp_names.py
    assert labelled == default, default ^ labelled
    for t in labelled:
        assert corpus_report.by_type[t].recall >= 0.9, t


def test_corpus_labels_are_well_formed():
    for doc in load("corpus.jsonl"):
        for start, end, type_ in doc.labels:
            assert 0 <= start < end <= len(doc.text) and type_ in TYPES
            value = doc.text[start:end]
            assert value == value.strip()


# --- Fuzzing: no input raises, offsets are valid, findings never overlap -------------------------

FRAGMENTS = [
    "ghp_", "sk-", "sk-proj-", "sk-ant-api03-", "AKIA", "AIza", "xoxb-", "glpat-", "SG.", "hvs.", "dp.pt.", "-----BEGIN RSA PRIVATE KEY-----",
    "-----END RSA PRIVATE KEY-----", "eyJ", "eyJhbGciOiJIUzI1NiJ9", ".", "..", "-", "_", "@", "@@", "://", "postgres://u:p@h", ":", "::", "+",
    "+44 ", "(", ")", "0", "00", "1234", "4539", "DE89", "GB82", " ", "\n", "\t", "=", '"', "'", "`", "password", "PASSWORD=", "token: ",
    "Bearer ", "api_key=", "Steuer-ID ", "BSN ", "passport ", "SSN ", "Q~", ":AA", "-us1", ".atlasv1.", "IQoJb3JpZ2lu", "é", "ß", "İ", "日本",
    "\u0130", "\ud800", "\x00", "€", "ﬃ", "\u212a", "\U0001f600", "a" * 40, "A1" * 30, "9" * 25, "f" * 64, "/" * 5, "=" * 3,
]  # fmt: skip


def check_findings(text: str) -> None:
    # Its own deadline: the scanner's default (0.25 s of CPU) can be met by a first scan that
    # also warms the scanner up on a loaded CI machine; pytest's timeout is the hang guard.
    findings = Scanner().scan(text, time.thread_time() + 30)
    previous_end = 0
    for f in findings:
        assert isinstance(f, Finding)
        assert 0 <= f.start < f.end <= len(text)
        assert f.start >= previous_end, findings
        assert f.type in TYPES and f.kind == TYPES[f.type]
        previous_end = f.end


# scripts/fuzz.py raises this to run the same properties far longer than CI does.
FUZZ_SCALE = int(os.environ.get("SG_FUZZ_SCALE", "1"))


@settings(max_examples=2500 * FUZZ_SCALE, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(FRAGMENTS) | st.text(max_size=12), max_size=40).map("".join))
def test_fuzz_fragments(text):
    check_findings(text)


@settings(max_examples=1500 * FUZZ_SCALE, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_any_text(text):
    check_findings(text)


@settings(max_examples=300 * FUZZ_SCALE, deadline=None)
@given(st.text(alphabet=string.ascii_letters + string.digits + "+/=-_.:@ ", min_size=100, max_size=3000))
def test_fuzz_key_alphabet(text):
    check_findings(text)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "text",
    [
        "a@" * 50_000,
        "a@a." * 25_000,
        ("A" * 63 + "=") * 1_600,
        "9" * 100_000,
        "1 " * 50_000,
        "1-" * 50_000,
        "+1 " * 33_000,
        ":" * 100_000,
        "f:" * 50_000,
        "ghp_" * 25_000,
        "sk-" * 33_000,
        "_-." * 33_000,
        "password=" * 10_000,
        "key: " * 20_000,
        "-----BEGIN PRIVATE KEY-----\n" + "A" * 100_000,
        "eyJ" + "a" * 100_000 + ".",
        "://" + "a:" * 50_000 + "@",
        ("0123456789abcdef" * 4 + " ") * 1_500,
        "DE89" * 25_000,
        "é" * 100_000 + "password: S3cret!99",
    ],
    ids=lambda t: repr(t[:12]),
)
def test_pathological_inputs_finish(text):
    """Long runs that would make a backtracking pattern explode: each finishes (the timeout is a
    hang guard, not a speed assertion)."""
    check_findings(text)


# Texts built to stall the scanner: each is one character or a short unit repeated, chosen where a
# detector starts work (a separator, a literal a key format is found from, a digit a number shape
# starts with, a character normalisation rewrites). Before the fix, 64 KB of "." took 40x a clean
# text of that size (the Discord probe), "eyJ" repeated 250x and growing with the square of the
# length, fullwidth letters 34x, colons 26x.
_HOSTILE_UNITS = [
    ".", "a.", "0.", "1.", "-", "a-", "_", "a_", "|", "1|", "~", "Q~", "1Q~", ":", "::", "a:", "00:",
    ":AA", "1:AA", "-us", "a-us", "eyJ", "eyJa", "M" * 24 + ".", "pat", "pat.", "sk-", "ghp_", "AKIA",
    "AIza", "A", "a", "0", "9", "1 ", "1-", "12.", "0 ", "+1 ", "+49 ", "(0)", "1/", "1.1.1.1 ",
    "DE89", "IBAN ", "ssn ", "a@", "a@b.", "@", "://", "http://a", "a:b@", "=", "a=", "password=",
    "Password", "pass ", "token:", "Key=", "sig=", "%41", "%", "AQAAABAAA", "{AQAAABAAA",
    "-----BEGIN ", "ZXlKaGJHY2lPaU", "IQoJb3JpZ2lu", "hooks.slack.com/", "/api/webhooks/",
    "\u200b", "\u00ad", "\uff21", "\uff21\uff11", "\u0430", "a\u0430", "\u00a0", "\u3000", "é", "bc1",
    "\\u0041", "${", "{{",
]  # fmt: skip
_HOSTILE_CHARS = 32 * 1024
_HOSTILE_BOUND = 20  # times the CPU time of clean prompts of the same size (the worst now: ~15x)


def _cpu_seconds(scanner: Scanner, text: str) -> float:
    start = time.process_time()
    scanner.scan(text, time.thread_time() + 60)
    return time.process_time() - start


@pytest.mark.timeout(300)
def test_hostile_texts_scan_in_time_proportional_to_a_clean_text():
    """No text makes a scan much slower than ordinary prompt text of the same size: each costs a
    bounded multiple of the clean prompts' time (best of 3, measured alternately, so the
    machine's load hits both alike). A quadratic pattern or a probe that fires at every character
    shows up as 30-250x at this size."""
    scanner = Scanner()
    clean_docs = "\n\n".join(d.text for d in load("clean.jsonl"))
    clean = (clean_docs * (_HOSTILE_CHARS // len(clean_docs) + 1))[:_HOSTILE_CHARS]
    slow = {}
    for unit in _HOSTILE_UNITS:
        text = (unit * (_HOSTILE_CHARS // len(unit) + 1))[:_HOSTILE_CHARS]
        base = hostile = float("inf")
        for _ in range(3):
            base = min(base, _cpu_seconds(scanner, clean))
            hostile = min(hostile, _cpu_seconds(scanner, text))
            if hostile <= _HOSTILE_BOUND * base:
                break
        if hostile > _HOSTILE_BOUND * base:
            slow[unit] = round(hostile / base, 1)
    assert not slow, f"slower than {_HOSTILE_BOUND}x a clean text: {slow}"


def test_one_huge_string_stops_at_the_deadline():
    """The deadline holds inside one string: a scan does not run on past it to the end of a long
    text (the proxy's budget was checked only between strings)."""
    scanner = Scanner()
    clean_docs = "\n\n".join(d.text for d in load("clean.jsonl"))
    text = clean_docs * (2_000_000 // len(clean_docs) + 1)
    full = _cpu_seconds(scanner, text)
    start = time.thread_time()
    with pytest.raises(ScanTimeout, match="ran out of time"):
        scanner.scan(text, start + full / 20)
    assert time.thread_time() - start < full / 2
    with pytest.raises(ScanTimeout):  # a deadline already past: nothing is scanned
        scanner.scan("my password is hunter2hunter2 " * 200, time.thread_time() - 1)


def test_a_scan_without_a_deadline_has_one_of_its_own(monkeypatch):
    # DEFAULT_BUDGET_S_PER_CHAR per character (at least DEFAULT_BUDGET_S): far above a real scan.
    from shadowgate.dlp import scanner as scanner_module

    text = "token ghp_" + rnd(ALNUM, 36) + " " + "word " * 40_000
    assert Scanner().scan(text)  # ~0.1 us per character: well inside
    monkeypatch.setattr(scanner_module, "DEFAULT_BUDGET_S", 1e-9)
    monkeypatch.setattr(scanner_module, "DEFAULT_BUDGET_S_PER_CHAR", 1e-12)
    with pytest.raises(ScanTimeout):
        Scanner().scan(text)


# --- shadowgate scan ---------------------------------------------------------------------------


def test_run_scan_prints_one_json_object_per_finding(tmp_path: Path, capsys):
    token = "ghp_" + rnd(ALNUM, 36)
    text = f"Grüße from jürgen@example.de, token {token}\n"
    path = tmp_path / "prompt.txt"
    path.write_bytes(text.encode("utf-8") + b"\xff tail 10.1.2.3\n")
    assert run_scan(str(path)) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    decoded = path.read_bytes().decode("utf-8", errors="replace")
    assert [set(r) for r in rows] == [{"start", "end", "type", "detector"}] * 3
    assert [(r["type"], decoded[r["start"] : r["end"]]) for r in rows] == [
        ("EMAIL", "jürgen@example.de"),
        ("GITHUB_TOKEN", token),
        ("IPV4", "10.1.2.3"),
    ]
    assert rows[1]["detector"] == "github"


def test_run_scan_reads_stdin_and_reports_missing_files(monkeypatch, capsys, tmp_path: Path):
    class Stdin:
        buffer = io.BytesIO(b"mail a.b@example.com\n")

    monkeypatch.setattr("sys.stdin", Stdin())
    assert run_scan("-") == 0
    assert json.loads(capsys.readouterr().out) == {"start": 5, "end": 20, "type": "EMAIL", "detector": "email"}
    assert run_scan(str(tmp_path / "missing.txt")) == 2
    assert "missing.txt" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("width", "newline"), [(76, "\r\n"), (76, "\n"), (64, "\r\n"), (32, "\n"), (24, "\r\n")], ids=str
)
def test_base64_wrapped_at_any_width_of_whole_quads_is_decoded(width, newline):
    # RFC 2045's own form is 76 columns with CRLF; Python, Go and Node decoders all skip the line
    # breaks, so a key in such a block reaches the provider readable (red-team finding F7).
    plain = ("some notes " * 8 + "aws_access_key_id=AKIA2OGYBAH6STMMNXNN and more text " * 2).encode()
    encoded = base64.b64encode(plain).decode()
    block = newline.join(encoded[i : i + width] for i in range(0, len(encoded), width))
    for text in (block, "data:text/plain;base64," + block, f"attachment:\n{block}\nend"):
        assert "AWS_ACCESS_KEY" in {t for t, _ in found(text)}, text[:40]
