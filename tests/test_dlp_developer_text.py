"""Ordinary developer text that is no personal data and no secret (red-team round 6b), and the
real values in the same contexts that still are: each exclusion is a bypass an attacker tries."""

from __future__ import annotations

import base64

import pytest

from shadowgate.dlp import Scanner

SCANNER = Scanner()


def found(text: str) -> list[tuple[str, str]]:
    return [(f.type, text[f.start : f.end]) for f in SCANNER.scan(text)]


# --- G1: the verb "pass" and a quoted list of words are no password ---------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "How do I pass `api_key` to the OpenAI client? My code: client = OpenAI(api_key=api_key)",
        'Don\'t forget to pass "--no-cache" to docker build, and pass `verify=False` only in tests.',
        "Why does CI not pass `test_login_redirect` when it passes locally? pass `max_tokens=1024`",
        '# METHOD can be "trust", "reject", "md5", "password", "scram-sha-256",\nhost all all samenet scram-sha-256',
        'AUTH_METHODS = ["password", "oauth2", "saml"]  # which of these does Keycloak support?',
    ],
)
def test_pass_verb_and_word_lists_are_no_password(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('pass "Xy7#kq2Lm"', "Xy7#kq2Lm"),  # a random value after the verb is still one
        ('--pass "hunter22"', "hunter22"),
        ('pass: "hunter22"', "hunter22"),
        ('password: "scram-sha-256"', "scram-sha-256"),  # assigned: not a list item
        ('["password", "Xy7#kq2Lm", "x"]', "Xy7#kq2Lm"),  # a list item that is no word
        ('("PASSWORD", "hunter22")', "hunter22"),  # a pair, not a list
        # JSON members beside another member: a name and its value, not list items (red-team F120)
        ('{"password": "Summer-2024", "user": "bob"}', "Summer-2024"),
        ('{"user": "bob", "password": "Spring-2025"}', "Spring-2025"),
        ('{"password": "tq7-vbn4-kp2", "port": 5432}', "tq7-vbn4-kp2"),
        # a YAML flow mapping is no type annotation (red-team F127)
        ("{password: Summer2024Password, user: bob}", "Summer2024Password"),
    ],
)
def test_a_password_next_to_the_verb_or_in_a_pair_is_still_found(text: str, value: str) -> None:
    assert ("PASSWORD", value) in found(text)


# --- G4: code that computes or types a key is not the key -------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "def __init__(self):\n    self.key = base64.b64encode(os.urandom(16))\n",
        "password = hashlib.pbkdf2_hmac('sha256', pw, salt, 100000)\n",
        "class AuthType(Enum):\n  OAUTH_CLIENT_SECRET_AUTH = 'OAUTH_CLIENT_SECRET_AUTH'\n",
        "private_key: Ed25519PrivateKey = Ed25519PrivateKey.generate()\n",
        'def sign(backend: "Backend", private_key: "_EllipticCurvePrivateKey", data: bytes) -> bytes:\n',
    ],
)
def test_code_computing_or_typing_a_key_is_no_secret(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "api_key = sk9Fq2LmZp7XkR3vTq8W(",  # a random value is no function name
        "TOKEN = a3f9c2e1b7d4f6a8c0e2b4d6f8a1c3e5(",
        'secret_key: "Xq9kL2mZpR7vK3yAb"',  # an annotation-like operator before a random value
    ],
)
def test_a_key_in_code_shaped_context_is_still_found(text: str) -> None:
    assert [t for t, _ in found(text)] == ["GENERIC_SECRET"]


@pytest.mark.parametrize(
    "text",
    [
        '{"password": "Summer2024Password", "user": "x"}',  # a type-name-shaped password in JSON or YAML
        "password: Summer2024Password\n",
    ],
)
def test_a_type_name_shaped_password_outside_an_annotation_is_found(text: str) -> None:
    assert found(text) == [("PASSWORD", "Summer2024Password")]


# --- G12: addresses that identify nobody ------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Inside the pod `curl http://169.254.169.254/latest/meta-data/iam/info` times out. Why?",
        "In the docs example the server is 192.0.2.10 and the client 198.51.100.7 (or 203.0.113.5)",
        "Is `ip addr add 2001:db8::1/64 dev eth0` the right syntax? And ::ffff:192.0.2.1?",
        "Should /etc/resolv.conf say nameserver 8.8.8.8 or 1.1.1.1 (or 2001:4860:4860::8888) inside the container?",
    ],
)
def test_addresses_that_identify_nobody_are_no_personal_data(text: str) -> None:
    assert found(text) == []


def test_public_and_private_addresses_are_still_found() -> None:
    """A private address names a person's machine inside the company (the proxy maps them to people)."""
    text = "from 93.184.216.34, 10.244.1.17, 192.168.1.10, [2a00:1450:4001:80b::200e]:443 and ::ffff:81.2.69.160"
    assert found(text) == [
        ("IPV4", "93.184.216.34"),
        ("IPV4", "10.244.1.17"),
        ("IPV4", "192.168.1.10"),
        ("IPV6", "2a00:1450:4001:80b::200e"),
        ("IPV6", "::ffff:81.2.69.160"),
    ]


# --- G2: four-part versions; G3: the FSF address's ZIP+4 ---------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        '<PackageReference Include="Newtonsoft.Json" Version="13.0.3.0" />\nWhy does restore fail?',
        '[assembly: AssemblyVersion("1.0.0.0")]\n[assembly: AssemblyFileVersion("2.4.1.0")]',
        "As section 2.3.2.4 of the spec says, the field is optional.",
        "Requires-Dist: brotlicffi>=1.2.0.0; platform_python_implementation != 'CPython' (pkg==2.4.1.0)",
        "# if not, write to the Free Software Foundation, Inc., 51 Franklin Street, Fifth Floor,\n"
        "# Boston, MA 02110-1301 USA.  (59 Temple Place, Suite 330, Boston, MA  02111-1307)\n",
    ],
)
def test_versions_and_zip_codes_are_no_personal_data(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ('server="81.2.69.160"', "81.2.69.160"),  # "ver" inside a word is no version
        ("the intersection 81.2.69.163", "81.2.69.163"),
        ('driver 81.2.69.161 and cover: "81.2.69.162"', "81.2.69.161"),
        ("call 02110-1301 today", "02110-1301"),  # a number without a state before it
    ],
)
def test_an_address_or_number_outside_those_contexts_is_still_found(text: str, value: str) -> None:
    assert value in [v for _, v in found(text)]


# --- G22: payment providers' published test card numbers ----------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "In test mode use 4000002500003155 to trigger 3D Secure and 4000000000009995 for insufficient_funds; "
        "Amex 378282246310005, Discover 6011111111111117. Why does my webhook not fire?",
        "Checkout fails with Adyen test card 4111 1111 4555 1142, expiry 03/2030, CVC 737.",
        "Braintree sandbox: 4005519200000004 is accepted but 4009348888881881 is not.",
    ],
)
def test_published_test_cards_said_to_be_test_ones_are_examples(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "customer card on file: 4012888888881881",  # a listed number without a word saying test
        "stripe test card 4539148803436467",  # a real-shaped number next to the words is not listed
    ],
)
def test_cards_outside_the_list_or_its_context_are_still_found(text: str) -> None:
    assert [t for t, _ in found(text)] == ["CREDIT_CARD"]


# --- G20: documented example JWTs -------------------------------------------------------------------
JWT_IO_EXAMPLE = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)


def test_the_jwt_io_example_token_is_an_example() -> None:
    assert (
        found(f'def test_decode():\n    token = "{JWT_IO_EXAMPLE}"\n    assert decode(token)["name"] == "John Doe"\n')
        == []
    )


def test_a_token_with_the_example_header_and_payload_but_another_signature_is_found() -> None:
    token = JWT_IO_EXAMPLE[:-10] + "Xq9kL2mZpR"
    assert found(f"Authorization: Bearer {token}") == [("JWT", token)]


# --- G25: default credentials of local services in connection URLs ---------------------------------
def test_default_local_credentials_are_no_secret() -> None:
    text = (
        "DATABASE_URL=postgresql://postgres:postgres@localhost:5432/app\n"
        "BROKER_URL=amqp://guest:guest@localhost:5672/\n"
        "CACHE_URL=redis://:redis@127.0.0.1:6379/0\nDB=mysql://root:root@db/app\n"
    )
    assert found(text) == []


@pytest.mark.parametrize(
    ("url", "password"),
    [
        ("postgres://app:Xy7kq2Lm9@db/app", "Xy7kq2Lm9"),  # a real password on a compose service
        ("postgres://postgres:postgres@prod-db.corp.example.com/app", "postgres"),  # a default on a real host
        ("postgres://admin:S3cretPass@localhost/x", "S3cretPass"),
    ],
)
def test_other_url_passwords_are_still_found(url: str, password: str) -> None:
    assert found(url) == [("URL_PASSWORD", password)]


# --- G8: a public certificate's lines decoded one by one ----------------------------------------------
STARFIELD_ROOT_G2 = """\
-----BEGIN CERTIFICATE-----
MIID3TCCAsWgAwIBAgIBADANBgkqhkiG9w0BAQsFADCBjzELMAkGA1UEBhMCVVMx
EDAOBgNVBAgTB0FyaXpvbmExEzARBgNVBAcTClNjb3R0c2RhbGUxJTAjBgNVBAoT
HFN0YXJmaWVsZCBUZWNobm9sb2dpZXMsIEluYy4xMjAwBgNVBAMTKVN0YXJmaWVs
ZCBSb290IENlcnRpZmljYXRlIEF1dGhvcml0eSAtIEcyMB4XDTA5MDkwMTAwMDAw
MFoXDTM3MTIzMTIzNTk1OVowgY8xCzAJBgNVBAYTAlVTMRAwDgYDVQQIEwdBcml6
b25hMRMwEQYDVQQHEwpTY290dHNkYWxlMSUwIwYDVQQKExxTdGFyZmllbGQgVGVj
aG5vbG9naWVzLCBJbmMuMTIwMAYDVQQDEylTdGFyZmllbGQgUm9vdCBDZXJ0aWZp
Y2F0ZSBBdXRob3JpdHkgLSBHMjCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoC
ggEBAL3twQP89o/8ArFvW59I2Z154qK3A2FWGMNHttfKPTUuiUP3oWmb3ooa/RMg
nLRJdzIpVv257IzdIvpy3Cdhl+72WoTsbhm5iSzchFvVdPtrX8WJpRBSiUZV9Lh1
HOZ/5FSuS/hVclcCGfgXcVnrHigHdMWdSL5stPSksPNkN3mSwOxGXn/hbVNMYq/N
Hwtjuzqd+/x5AJhhdM8mgkBj87JyahkNmcrUDnXMN/uLicFZ8WJ/X7NfZTD4p7dN
dloedl40wOiWVpmKs/B/pM293DIxfJHP4F8R+GuqSVzRmZTRouNjWwl2tVZi4Ut0
HZbUJtQIBFnQmA4O5t78w+wfkPECAwEAAaNCMEAwDwYDVR0TAQH/BAUwAwEB/zAO
BgNVHQ8BAf8EBAMCAQYwHQYDVR0OBBYEFHwMMh+n2TB/xH1oo2Kooc6rB1snMA0G
CSqGSIb3DQEBCwUAA4IBAQARWfolTwNvlJk7mh+ChTnUdgWUXuEok21iXQnCoKjU
sHU48TRqneSfioYmUeYs0cYtbpUgSpIB7LiKZ3sx4mcujJUDJi5DnUox9g61DLu3
4jd/IroAow57UvtruzvE03lRTs2Q9GcHGcg8RnoNAX3FWOdt5oUwF5okxBDgBPfg
8n/Uqgr/Qh037ZTlZFkSIHc40zI+OIF1lnP6aI+xy84fxez6nH7PfrHxBy22/L/K
pL/QlwVKvOoYKAKQvVR4CSFx09F9HdkWsKlhPdAKACL8x3vLCWRFCztAgfd9fDL1
mMpYjn0q7pBZc2T5NnReJaH1ZgUufzkVqSr7UIuOhWn0
-----END CERTIFICATE-----
"""


def test_a_public_root_certificate_holds_no_personal_data() -> None:
    """Starfield Root CA G2 (certifi): one line decodes to its subject text and a date read as a phone."""
    assert found(f"Is this the right root for the AWS chain?\n{STARFIELD_ROOT_G2}") == []


def test_a_key_in_a_line_of_a_whole_der_block_is_still_found() -> None:
    key_line = b"key AKIA2OGYBAH6STMMNXNN and more text here...."  # 48 bytes: one 64-column line
    payload = bytes(range(45)) + key_line + bytes(range(100, 147))
    der = b"\x30\x81" + bytes([len(payload)]) + b"\x01" + payload[1:]
    body = base64.b64encode(der).decode()
    block = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    assert "AWS_ACCESS_KEY" in [t for t, _ in found(f"-----BEGIN CERTIFICATE-----\n{block}\n-----END CERTIFICATE-----")]


# --- G23: reserved example numbers said to be examples -------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "Our IVR test plan dials (555) 555-0123 and +1-202-555-0173 (reserved for fiction); the UK tests use 020 7946 0018.",
        "The SEPA validator rejects the documentation IBAN DE89 3704 0044 0532 0130 00; is the checksum wrong?",
        "test: call +44 20 7946 0018 or 07700 900123",
    ],
)
def test_reserved_example_numbers_said_to_be_examples_are_no_personal_data(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("My US number is (415) 555-0132", "(415) 555-0132"),  # a stand-in for a real one: no example word
        ("test: call +1 415 555 2671", "+1 415 555 2671"),  # not a reserved number
        ("test IBAN DE44 5001 0517 5407 3249 31", "DE44 5001 0517 5407 3249 31"),  # not the registry's example
    ],
)
def test_numbers_outside_the_reserved_ranges_or_their_context_are_still_found(text: str, value: str) -> None:
    assert value in [v for _, v in found(text)]
