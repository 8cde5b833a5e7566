"""Keys the red team hid from the detectors (round 6): private keys in DER encodings with other
starts than the literal list (F101) and tag characters dressed as subdivision flags (F99)."""

from __future__ import annotations

import base64
import random

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric import rsa

from shadowgate.dlp import Scanner

SCANNER = Scanner()
R = random.Random(101)


def types_in(text: str) -> list[str]:
    return [f.type for f in SCANNER.scan(text)]


def _der(tag: int, value: bytes) -> bytes:
    n = len(value)
    size = bytes([n]) if n < 128 else bytes([0x81, n]) if n < 256 else bytes([0x82, n >> 8, n & 255])
    return bytes([tag]) + size + value


def _seq(*items: bytes) -> bytes:
    return _der(0x30, b"".join(items))


def _secret(n: int) -> bytes:
    return bytes(R.randrange(256) for _ in range(n))


INT0, INT1 = _der(2, b"\x00"), _der(2, b"\x01")
EC_PUBLIC_KEY = bytes.fromhex("06072a8648ce3d0201")
P256, P384 = bytes.fromhex("06082a8648ce3d030107"), bytes.fromhex("06052b81040022")
RSA_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
PKCS1 = RSA_KEY.private_bytes(
    serialization.Encoding.DER, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
)
KEY_BODIES = {
    # Java's ECPrivateKey.getEncoded(): PKCS#8 without the public key
    "pkcs8-p256-no-public-key": _seq(INT0, _seq(EC_PUBLIC_KEY, P256), _der(4, _seq(INT1, _der(4, _secret(32))))),
    "pkcs8-p384-no-public-key": _seq(INT0, _seq(EC_PUBLIC_KEY, P384), _der(4, _seq(INT1, _der(4, _secret(48))))),
    # openssl ec -no_public: SEC1 without the public key
    "sec1-p256-no-public-key": _seq(INT1, _der(4, _secret(32)), _der(0xA0, P256)),
    # RFC 8410 OneAsymmetricKey v2 (BouncyCastle): Ed25519 with its public key
    "ed25519-pkcs8-v2": _seq(
        INT1, _seq(bytes.fromhex("06032b6570")), _der(4, _der(4, _secret(32))), _der(0x81, b"\x00" + _secret(32))
    ),
    # openssl genpkey -algorithm RSA-PSS: PKCS#8 with the RSASSA-PSS OID
    "rsa-pss-pkcs8": _seq(INT0, _seq(bytes.fromhex("06092a864886f70d01010a")), _der(4, PKCS1)),
}


@pytest.mark.parametrize("name", sorted(KEY_BODIES))
@pytest.mark.parametrize("wrap", [False, True])
def test_unarmoured_private_key_is_found_by_its_der_structure(name: str, wrap: bool) -> None:
    body = base64.b64encode(KEY_BODIES[name]).decode()
    if wrap:
        body = "\n".join(body[i : i + 64] for i in range(0, len(body), 64))
    assert types_in(f"here is the signing key for the build:\n{body}\nthanks") == ["PRIVATE_KEY"]


def test_public_der_structures_are_no_private_key() -> None:
    ec_key = ec.generate_private_key(ec.SECP256R1())
    public = [
        ec_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        RSA_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo),
        RSA_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.PKCS1),
    ]
    for der in public:
        assert "PRIVATE_KEY" not in types_in(f"the public key:\n{base64.b64encode(der).decode()}\n")


# --- F99: a tag-spelled key cut into chunks each dressed as a subdivision flag ----------------------
FLAG, CANCEL_TAG = "\U0001f3f4", "\U000e007f"
ENGLAND = FLAG + "".join(chr(0xE0000 + ord(c)) for c in "gbeng") + CANCEL_TAG


def _tags(chars: str) -> str:
    return "".join(chr(0xE0000 + ord(c)) for c in chars)


@pytest.mark.parametrize("chunk", [7, 5, 3])
def test_key_in_fake_flags_is_found(chunk: int) -> None:
    key = "AKIA2OGYBAH6STMMNXNN"
    flags = "".join(FLAG + _tags(key[i : i + chunk]) + CANCEL_TAG for i in range(0, len(key), chunk))
    assert types_in(f"Go team {flags} !") == ["AWS_ACCESS_KEY"]


def test_lower_case_key_in_well_formed_flags_is_found() -> None:
    """Chunks of lower-case letters and digits make well-formed flags: every tag is read too."""
    token = "ghp_" + "".join(R.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(36))
    flags = "".join(FLAG + _tags(token[i : i + 5]) + CANCEL_TAG for i in range(0, len(token), 5))
    assert types_in(f"Go {flags}") == ["GITHUB_TOKEN"]


def test_real_flags_spell_nothing_and_spoil_no_reading() -> None:
    assert types_in(f"Go {ENGLAND} team {ENGLAND * 5}") == []
    key = "AKIA2OGYBAH6STMMNXNN"
    cover = "the quick brown fox jumps over the lazy dog again"
    scattered = "".join(c + _tags(k) for c, k in zip(cover, key, strict=False)) + cover[len(key) :]
    assert types_in(f"{ENGLAND} {scattered} {ENGLAND}") == ["AWS_ACCESS_KEY"]


# --- F115: visible characters and short tag runs mixed in one word --------------------------------


@pytest.mark.parametrize(
    "word",
    [
        "AKIA2" + _tags("OG") + "YBAH6" + _tags("ST") + "MMNXNN",
        "".join(c if i % 2 else _tags(c) for i, c in enumerate("AKIA2OGYBAH6STMMNXNN")),  # every other one a tag
        "AKIA2OGYBAH6STMMNXN" + _tags("N"),
    ],
    ids=["two-runs", "every-other", "last-char"],
)
def test_tags_mixed_into_a_key_are_read_in_place(word: str) -> None:
    assert types_in(f"the deploy key is {word} for now") == ["AWS_ACCESS_KEY"]


def test_a_tag_in_an_ordinary_word_spells_no_finding() -> None:
    assert types_in("hello" + _tags("x") + "world and some" + _tags("yz") + "more text") == []
