"""Credentials recognised by structure rather than by a service's key format.

* PRIVATE_KEY: a PEM private key block, whole from "-----BEGIN ... PRIVATE KEY-----" (four
  dashes or more) to the matching END line (to the end of the base64 body when a paste lost the
  END line); and a key's base64 body pasted without its armour, known by the fixed DER or
  OpenSSH start every key of its kind has (red-team F60).
* JWT: header.payload.signature, whole; the header must decode to a JSON object with "alg".
* URL_PASSWORD: the password of a URL's user:password@ part (postgres://, mongodb+srv://,
  redis://, amqp://, https://...). The finding is the password only, not the whole URL: the
  user, host and database stay readable for the model, and nothing secret is left.
* Assignments: a value assigned to a name whose last word says it is a secret (`password`,
  `DB_PASSWORD`, `clientSecret`, `api_key`, `GITHUB_TOKEN`, `Authorization: Bearer ...`,
  `--password x`), in code, env files, JSON, YAML, INI, connection strings and prose
  ("my password is ..."). The finding is the value only, whole. Passwords need a digit or a
  symbol; other secrets need length and randomness. When the name names a service whose keys
  have no distinctive format (Cohere, Mistral, Okta, Heroku, Cloudflare, Azure OpenAI, Twilio
  auth tokens, AWS secret keys) and the value has that service's shape, the service's type is
  reported instead of GENERIC_SECRET / PASSWORD.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re

from .literalkeys import aws_secret_like
from .model import SECRET
from .model import Detector
from .model import Hits
from .model import Source
from .model import needles
from .model import register_types
from .validators import char_classes
from .validators import classes_of
from .validators import few_distinct
from .validators import is_placeholder
from .validators import jwt_header_valid
from .validators import low_variety
from .validators import says_placeholder
from .validators import shannon_entropy

# --- PEM private keys -----------------------------------------------------------------------
# Tried only at the start of a run of dashes: from every dash of a long run, "-{4,}" would read
# the rest of the run again (quadratic in a text of dashes).
_PEM_BEGIN_RX = re.compile(r"(?<!-)-{4,}BEGIN ((?:[A-Z0-9]+ ){0,3})PRIVATE KEY(?: BLOCK)?-{4,}")
_PEM_BODY_RX = re.compile(r"(?:[A-Za-z0-9+/=:,\- \t\r\n]|\\[nr])*")
_PEM_MAX = 64 * 1024
# The smallest real key (an Ed25519 OpenSSH key) has ~200 base64 characters; a block whose body is
# "anything" or empty is documentation. A paste cut short after a few lines still counts.
_PEM_KEY_CHARS_RX = re.compile(r"[A-Za-z0-9+/]{16,}")
_PEM_MIN_KEY_CHARS = 40


def detect_pem(src: Source, hits: Hits) -> None:
    text = src.text
    pos = 0
    while (m := _PEM_BEGIN_RX.search(text, pos)) is not None:
        end_marker = f"END {m.group(1)}PRIVATE KEY"
        e = text.find(end_marker, m.end(), m.end() + _PEM_MAX)
        if e >= 0:
            close = text.find("----", e + len(end_marker), e + len(end_marker) + 16)
            end = close + 4 if close >= 0 else e + len(end_marker)
            while end < len(text) and text[end] == "-":
                end += 1
        else:  # no END line: the base64 body, without trailing blanks
            body = _PEM_BODY_RX.match(text, m.end(), m.end() + _PEM_MAX)
            end = body.end() if body else m.end()
            while end > m.end() and text[end - 1] in " \t\r\n":
                end -= 1
            if text[end - 2 : end] in ("\\n", "\\r"):
                end -= 2
        pos = end
        if sum(map(len, _PEM_KEY_CHARS_RX.findall(text, m.end(), end))) >= _PEM_MIN_KEY_CHARS:
            hits.add(m.start(), end, "PRIVATE_KEY", "pem")


# The base64 start of a private key's DER or OpenSSH encoding, which every key of its kind shares
# (the length bytes aside): PKCS#8 RSA, PKCS#1 RSA, SEC1 EC (P-256, P-384), PKCS#8 EC (P-256),
# PKCS#8 Ed25519, and OpenSSH's "openssh-key-v1\0" magic. Followed by the rest of the body,
# possibly wrapped (PEM's 64 columns, or escaped line breaks in a JSON string).
_B64_WRAP = r"(?:[A-Za-z0-9+/=]|\r|\n|\\[nr])"
_KEY_BODY_RX = re.compile(
    r"(?<![A-Za-z0-9+/])(?:"
    # PKCS#8 RSA (any length), PKCS#1 RSA (2048+ and 1024-bit length forms), DSA
    r"MII[A-Za-z0-9+/]{3}IBADANBgkqhkiG9w0BAQEFAAS|MII[A-Za-z0-9+/]{3}IBAAK[BC]|MIIB[A-Za-z0-9+/]{2}IBAAKBgQ"
    r"|MII[A-Za-z0-9+/]{3}IBADCCA[A-Za-z0-9+/]{2}GByqGSM44"
    # SEC1 EC: P-256 and secp256k1, P-384, P-521, brainpool P256r1/P384r1/P512r1, secp224r1
    r"|MH[cQgE]CAQEEI|MIGkAgEBBD[A-D]|MIHcAgEBBE[I-L]|MIGoAgEBBD[A-D]|MIHaAgEBBE[A-D]|MGgCAQEEH"
    # PKCS#12 (.pfx/.p12) without a password, as app settings carry a certificate with its key
    r"|MII[A-Za-z0-9+/]{3}IBAzCC"
    # PKCS#8 secp224r1 (another alignment)
    r"|MHgCAQAwEAYHKoZIzj0CAQYFK4EEACEE"
    # PKCS#8 EC (P-256, P-384, P-521, secp256k1): the ecPublicKey OID after a short header
    r"|MI[GH][A-Za-z0-9+/]{1,2}AgEAMB[AMQ]GByqGSM49AgE"
    # PKCS#8 Ed25519, X25519, Ed448, X448
    r"|MC4CAQAwBQYDK2V[wu]BCIEI|MEcCAQAwBQYDK2VxBDsEO|MEYCAQAwBQYDK2VvBDoEO"
    r"|b3BlbnNzaC1rZXktdjEAAAAA)" + _B64_WRAP + r"{24,}"
)
# A PuTTY private key file (.ppk), whole: its header through the private lines.
_PPK_RX = re.compile(
    r"PuTTY-User-Key-File-[23]: [^\n]*\n(?:[^\n]*\n){1,60}?Private-Lines: \d+\r?\n(?:[A-Za-z0-9+/=]+\r?\n?){1,200}"
)


# A base64 DER SEQUENCE whose first item is an INTEGER (30 LL 02, 30 81 LL 02 01, 30 82 HH LL
# 02 01), read by its structure rather than its literal start (red-team F101: Java's PKCS#8
# without the public key, openssl -no_public SEC1, RFC 8410 v2 Ed25519, RSA-PSS). The pattern
# takes the first 60 characters; the run's end is found only for a key. The look-behind follows
# the literal (see JWTs).
_DER_RUN_RX = re.compile(
    r"M(?<![A-Za-z0-9+/]M)(?:[A-H][A-Za-z0-9+/]C|I[GH][A-Za-z0-9+/]Ag|II[A-Za-z0-9+/]{3}IB)" + _B64_WRAP + r"{54}"
)
_B64_REST_RX = re.compile(r"(?:[A-Za-z0-9+/=]+|\r|\n|\\[nr])*")
_B64_BREAKS_RX = re.compile(r"\r|\n|\\[nr]")
# The key algorithms of a PKCS#8 PrivateKeyInfo (DER of the OID, without tag and length):
# rsaEncryption, RSASSA-PSS, ecPublicKey, DSA, DH (PKCS#3 and X9.42), X25519, X448, Ed25519, Ed448
_KEY_ALGORITHM_OIDS = frozenset(
    bytes.fromhex(h)
    for h in (
        "2a864886f70d010101", "2a864886f70d01010a", "2a8648ce3d0201", "2a8648ce380401", "2a864886f70d010301",
        "2a8648ce3e0201", "2b656e", "2b656f", "2b6570", "2b6571",
    )
)  # fmt: skip
# SEC1 private key octet string lengths: P-192, P-224, P-256/secp256k1/brainpool256, P-384, brainpool512, P-521
_SEC1_KEY_LENGTHS = frozenset({24, 28, 32, 48, 64, 66})


def _der_item(data: bytes, at: int) -> tuple[int, int, int] | None:
    """(tag, length, content offset) of the DER item at `at`, or None where the bytes end."""
    if at + 2 > len(data):
        return None
    tag, first = data[at], data[at + 1]
    if first < 0x80:
        return tag, first, at + 2
    n = first & 0x7F
    if not 1 <= n <= 3 or at + 2 + n > len(data):
        return None
    return tag, int.from_bytes(data[at + 2 : at + 2 + n]), at + 2 + n


def _der_private_key(head: bytes) -> bool:
    """The first bytes of a PKCS#8 PrivateKeyInfo / OneAsymmetricKey (version 0 or 1, then a
    known key algorithm), a SEC1 ECPrivateKey (version 1, then the key's octet string) or a
    PKCS#1 RSA / OpenSSL DSA key (version 0, then a long integer)."""
    outer = _der_item(head, 0)
    if outer is None or outer[0] != 0x30:
        return False
    version = _der_item(head, outer[2])
    if version is None or version[:2] != (0x02, 1) or version[2] >= len(head):
        return False
    v = head[version[2]]
    after = _der_item(head, version[2] + 1)
    if after is None or v > 1:
        return False
    tag, length, at = after
    if tag == 0x30:  # PKCS#8: AlgorithmIdentifier { OID, ... }
        oid = _der_item(head, at)
        return oid is not None and oid[0] == 0x06 and head[oid[2] : oid[2] + oid[1]] in _KEY_ALGORITHM_OIDS
    if tag == 0x04:
        return v == 1 and length in _SEC1_KEY_LENGTHS
    return tag == 0x02 and v == 0 and length >= 64  # the modulus (RSA) or p (DSA)


def _der_key_runs(text: str) -> list[tuple[int, int]]:
    runs = []
    for m in _DER_RUN_RX.finditer(text):
        head = _B64_BREAKS_RX.sub("", m.group())[:48]
        try:
            decoded = base64.b64decode(head, validate=True)
        except (binascii.Error, ValueError):
            continue
        if _der_private_key(decoded):
            runs.append((m.start(), _B64_REST_RX.match(text, m.end()).end()))  # type: ignore[union-attr]  # * matches
    return runs


def detect_key_body(src: Source, hits: Hits) -> None:
    """A private key's base64 body without its BEGIN/END lines (a key file with its first and
    last lines left out). The start is a key's and nothing else's, so no entropy test is needed."""
    for m in _PPK_RX.finditer(src.text):
        hits.add(m.start(), m.end(), "PRIVATE_KEY", "pem")
    spans = [m.span() for m in _KEY_BODY_RX.finditer(src.text)] + _der_key_runs(src.text)
    for start, end in spans:
        while end > start and src.text[end - 1] in "\r\n\\":
            end -= 1
        hits.add(start, end, "PRIVATE_KEY", "pem")


# --- JSON Web Tokens ------------------------------------------------------------------------
# Only at the start of a run of token characters: tried at every "eyJ", a run of "eyJeyJeyJ..."
# with no "." read to its end from each of them (a 64 KB text took 1.4 s), and a token that starts
# inside a longer word was dropped anyway. (The look-behind follows the literal: a pattern that
# starts with one is tried at every position instead of searched for its literal.)
_JWT_RX = re.compile(
    r"eyJ(?<![A-Za-z0-9_\-]eyJ)[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{2,}\.[A-Za-z0-9_\-]*(?:\.[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)?"
)


# Documented example tokens, whole (signature included), as AWS's example keys are: jwt.io's
# ("John Doe", signed with "your-256-bit-secret", and its newer admin one) and PyJWT's README
# ({"some": "payload"} signed with "secret"): in countless fixtures, nobody's credential (round-6b G20)
_EXAMPLE_JWTS = frozenset(
    {
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ"
        ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiYWRtaW4iOnRydWUsImlhdCI6MTUxNjIzOTAyMn0"
        ".KMUFsIDTnFmyG3nMiGM6H9FNFUROf3wh7SmqJp-QV30",
        "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzb21lIjoicGF5bG9hZCJ9.4twFt5NiznN84AWoo1d7KO1T_yoc0Z6XOpOVswacPZg",
    }
)


def detect_jwt(src: Source, hits: Hits) -> None:
    text = src.text
    for m in _JWT_RX.finditer(text):
        if m.group() in _EXAMPLE_JWTS:
            continue
        s = m.start()
        header, payload = m.group().split(".", 2)[:2]
        # a header that does not decode still makes a token when the payload is JSON too ("eyJ")
        if jwt_header_valid(header) or (payload.startswith("eyJ") and len(payload) >= 16):
            hits.add(s, m.end(), "JWT", "jwt")


# --- Jenkins credentials.xml: <secret>{AQAAABAAAAAQ...}</secret> ----------------------------
# Jenkins stores a credential encrypted with the controller's key, as "{" base64 "}"; the base64
# starts with the format's version byte and the IV length (AQAAABAAAA...). Whoever has the
# controller's secrets (or its script console) decrypts it, so the blob is as sensitive as the key.
_JENKINS_MARK = b"AQAAABAAA"
needles("latin1", _JENKINS_MARK)
_JENKINS_RX = re.compile(r"\{([^{}<>\n\"']{9,4096})\}")


def detect_jenkins(src: Source, hits: Hits) -> None:
    text = src.text
    pos = 0
    for at in src.occurrences("latin1", _JENKINS_MARK):
        if at < pos:
            continue
        pos = at + len(_JENKINS_MARK)
        brace = text.rfind("{", max(0, at - 64), at)
        m = None if brace < 0 else _JENKINS_RX.match(text, brace)
        if m is not None and m.end(1) > pos and not is_placeholder(m.group(1)):
            hits.add(m.start(1), m.end(1), "JENKINS_CREDENTIAL", "jenkins")
            pos = m.end()


# --- URLs with a password -------------------------------------------------------------------
_URL_RX = re.compile(r"://([^\s/?#@:\"'<>]*):([^\s/?#\"'<>]*)@(?=[A-Za-z0-9\[])")
_SCHEME_TAIL_RX = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]{0,30}\Z")
_URL_PLACEHOLDERS = frozenset(
    {"password", "pass", "passwd", "pwd", "secret", "pw", "mypassword", "yourpassword", "p", "x"}
)


def _password_value_ok(value: str) -> bool:
    return len(set(value)) > 2 and value.lower() not in _URL_PLACEHOLDERS and not is_placeholder(value)


# The official images' documented default passwords (postgres, RabbitMQ's guest, MySQL/MariaDB
# root, redis, mongo, ...): on a host that only the developer's machine or a compose network
# reaches (loopback, a one-label service name), a URL with one is a local setup's (round-6b G25).
_LOCAL_DEFAULT_PASSWORDS = frozenset(
    {"postgres", "postgresql", "guest", "root", "redis", "mysql", "mariadb", "mongo", "mongodb", "admin", "rabbitmq",
     "minioadmin", "elastic", "changeme", "sa", "dev", "local", "test"}
)  # fmt: skip
_URL_HOST_RX = re.compile(r"\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.\-]+")
_LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]", "0.0.0.0", "host.docker.internal"})


def _local_default(user: str, password: str, host: str) -> bool:
    """A default or user-named password of a local service: on loopback or a compose service."""
    local = host.lower() in _LOOPBACK_HOSTS or host.startswith("127.") or ("." not in host and host.isascii())
    return local and (password == user or password.lower() in _LOCAL_DEFAULT_PASSWORDS)


def detect_url_password(src: Source, hits: Hits) -> None:
    text = src.text
    for m in _URL_RX.finditer(text):
        if _SCHEME_TAIL_RX.search(text, max(0, m.start() - 31), m.start()) is None:
            continue
        # group 2 runs to the last "@" before the host: a password may contain "@"
        password = m.group(2)
        host = _URL_HOST_RX.match(text, m.end())
        if host is not None and _local_default(m.group(1), password, host.group()):
            continue
        if _password_value_ok(password) and not password.startswith("$"):
            hits.add(m.start(2), m.end(2), "URL_PASSWORD", "url_credentials")


# --- Values assigned to secret names --------------------------------------------------------
_PASSWORD_WORDS = frozenset(
    {
        "password",
        "passwd",
        "pwd",
        "pass",
        "passphrase",
        "pw",
        "pword",
        "passwort",
        "kennwort",
        "wachtwoord",
        "passe",
        "contraseña",
        "パスワード",
    }
)
_SECRET_WORDS = frozenset(
    {"secret", "token", "key", "apikey", "credential", "credentials", "auth", "authorization", "pat"}
)
# Names whose last word is "key"/"token"/... but that are not secrets.
_NOT_SECRET_PREV = frozenset(
    {"public", "primary", "foreign", "sort", "partition", "idempotency", "cache", "row", "hash", "range", "lookup", "map",
     "dict", "unique", "composite", "natural", "surrogate", "index", "next", "page", "continuation", "sync", "csrf", "xsrf",
     "max", "num", "total", "input", "output", "completion", "prompt", "ssh", "gpg", "pgp", "host", "storage", "object",
     "s3", "sequence", "translation", "i18n", "registry", "deploy", "ref", "matching", "authenticity"}
)  # fmt: skip
# One-word names that end in a secret word: ACRPWD, azurestorageaccountkey, tokenkey, duo_skey.
_SECRET_SUFFIXES = (
    "secret", "apikey", "accesskey", "privatekey", "secretkey", "token", "accountkey", "licensekey", "authkey",
    "masterkey", "tokenkey", "signingkey", "sharedkey", "clientkey", "appkey", "skey",
)  # fmt: skip
_NAME_RX = re.compile(r"[\w.\-]{1,64}")
# After the name: an optional closing quote, an operator, an optional auth scheme and quote; the
# value is parsed by hand after that.
_OPERATOR_RX = re.compile(
    r"""(?:
      (?P<pair>["'][ \t]*,[ \t]*|["'][ \t]+value[ \t]*=[ \t]*)(?P<pquote>["'])   # ("TOKEN", "v") / key="Password" value="v"
    | \\?["']?\]?(?:[ \t]+(?:string|String|str|&str|const))?[ \t]*(?:\r?\n[ \t]*(?==))?  # Go: var apiToken string = "v"; env["TOKEN"] = "v"
      (?::::=|::=|:=|\?=|\.=|\+=|=>|->|=|:|：)[ \t]*                                 # Make ::= ?= :::=, PHP .=
      (?:(?P<scheme>(?i:bearer|basic|token|bot|apikey|api-token|digest|sso-key))[ \t]+)?(?P<quote>\\?["'`])?
    )""",
    re.VERBOSE,
)
# Or blanks: a word operator ("my password is ..."), a quoted value (SQL's PASSWORD 'x'), or a
# command-line flag's value (--password x).
# "name - 'value'" (a list of credentials in a note) is a dash between blanks before a quote.
_SPACED_RX = re.compile(
    r"""[ \t]+(?:(?P<word>is|was|ist|est|es|lautet)[ \t]+|-[ \t]+(?=\\?["'`]))?(?P<quote>\\?["'`])?"""
)
# An auth scheme inside the quotes: token := "Bearer abc...", auth_token: "Basic dXNlcjpw..."
_QUOTED_SCHEME_RX = re.compile(r"(?i:bearer|basic|token|bot|apikey|digest)[ \t]+(?=\S)")
_XML_VALUE_RX = re.compile(r">\s*([^<\s]{6,4096})\s*</")
# An unquoted value ends at a blank, a quote, a separator or "&name=" (the next query parameter).
_UNQUOTED_RX = re.compile(r"""(?:[^\s"'`,;&<>()\[\]{}\\|]|&(?![A-Za-z_][A-Za-z0-9_]*=)){1,4096}""")
_HEADER_FLAG_RX = re.compile(r"""(?:-H|--header)[ \t=]*["']?\Z""")
_ATTRIBUTE_PAIR_RX = re.compile(r"""["'][ \t]+value[ \t]*=""")
# Not secrets although assigned to a secret-sounding name: an identifier with a version
# (SalesResults-1.2, Maven's io.jsonwebtoken:jjwt-jackson-0.11.2) or a value cut short ("ops_eyJ..").
_VERSIONED_RX = re.compile(r"[A-Za-z][A-Za-z0-9_.:\-]*[\-_:.]v?[0-9]+(?:\.[0-9]+)+(?:[\-.][A-Za-z0-9]+)?\Z")
_CAMEL_RX = re.compile(r"[A-Z]+(?=[A-Z][a-z])|[A-Z]?[a-z0-9]+|[A-Z0-9]+")
_CODE_REF_RX = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z_][A-Za-z0-9_]*)+|[A-Za-z_]+")
_DIGIT_RX = re.compile(r"[0-9]")
# A value that is code rather than a literal (round-6b G1, G4): a word of code (api_key,
# --no-cache, verify=False, scram-sha-256, oauth2: words, numbers and a word with one digit, joined
# by _ . - =), a call (base64.b64encode(...)), or a type name ending in a secret word
# (Ed25519PrivateKey, _EllipticCurvePrivateKey: capitalised words, digits only after a word).
_CODE_WORD_RX = re.compile(r"-{0,2}(?:[A-Za-z]+|[0-9]+|[a-z]+[0-9])(?:[_.=\-](?:[A-Za-z]+|[0-9]+|[a-z]+[0-9]))*")
# snake_case or CamelCase words, digits inside a word once (b64encode, pbkdf2_hmac, Ed25519Key):
# a random key is neither
_CODE_NAME = r"(?:_?[a-z]+[0-9]*[a-z]*(?:_[a-z]+[0-9]*[a-z]*)*|_?(?:[A-Z][a-z]+[0-9]*)+)"
_CALLED_RX = re.compile(_CODE_NAME + r"(?:\." + _CODE_NAME + r")*")
_TYPE_NAME_RX = re.compile(r"_?(?:[A-Z][a-z]+[0-9]*)+(?:Key|Secret|Token|Password|Credentials?|Passphrase)")
# What follows a type annotation: the assigned value, the next parameter or the signature's end
_ANNOTATION_END_RX = re.compile(r"[ \t]*[=,)]")
# A quoted item of a list: ("md5", "password", "scram-sha-256") or ["password", "oauth2", "saml"]
_ITEM_BEFORE_RX = re.compile(r"""["'][ \t]*,[ \t]*\Z""")
_ITEM_AFTER_RX = re.compile(r"""[ \t]*,[ \t]*["']""")
_UUID_RX = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z", re.IGNORECASE)

# name word -> value shape -> (type, detector): keys of services without a distinctive format
_TYPED_VALUES: list[tuple[tuple[str, ...], re.Pattern[str], str, str]] = [
    (("aws", "secret"), re.compile(r"[A-Za-z0-9/+]{40}\Z"), "AWS_SECRET_KEY", "aws"),
    (("cohere",), re.compile(r"[A-Za-z0-9]{40}\Z"), "COHERE_API_KEY", "cohere"),
    (("co", "api"), re.compile(r"[A-Za-z0-9]{40}\Z"), "COHERE_API_KEY", "cohere"),
    (("mistral",), re.compile(r"[A-Za-z0-9]{32}\Z"), "MISTRAL_API_KEY", "mistral"),
    (("okta",), re.compile(r"00[A-Za-z0-9_\-]{40}\Z"), "OKTA_API_TOKEN", "okta"),
    (("heroku",), _UUID_RX, "HEROKU_API_KEY", "heroku"),
    (("cloudflare",), re.compile(r"[A-Za-z0-9_\-]{40}\Z"), "CLOUDFLARE_API_TOKEN", "cloudflare"),
    (("cf", "api"), re.compile(r"[A-Za-z0-9_\-]{40}\Z"), "CLOUDFLARE_API_TOKEN", "cloudflare"),
    (("cloudflare",), re.compile(r"[a-f0-9]{37}\Z"), "CLOUDFLARE_API_TOKEN", "cloudflare"),
    (("azure", "openai"), re.compile(r"[a-f0-9]{32}\Z|[A-Za-z0-9]{84}\Z"), "AZURE_OPENAI_KEY", "azure"),
    (("twilio",), re.compile(r"[a-f0-9]{32}\Z"), "TWILIO_AUTH_TOKEN", "twilio"),
]


_TYPED_NAME_WORDS = frozenset(w for need, _, _, _ in _TYPED_VALUES for w in need)


@functools.lru_cache(maxsize=4096)
def _name_words(name: str) -> tuple[str, ...]:
    """DB_PASSWORD -> (db, password); clientSecret -> (client, secret); Passwort -> (passwort,)."""
    words: list[str] = []
    for part in re.split(r"[_.\-\s]+", name):
        if part.isascii():
            words.extend(w.lower() for w in _CAMEL_RX.findall(part))
        elif part:
            words.append(part.lower())
    return tuple(words)


@functools.lru_cache(maxsize=4096)
def _name_kind(words: tuple[str, ...]) -> str | None:
    """'password', 'secret' or None, from the last word of a name (and the one before it)."""
    if not words:
        return None
    if words[0] == "bundle" and len(words) >= 3:
        return "bundler"  # BUNDLE_GEMS__CONTRIBSYS__COM=user:password, Bundler's per-host credential
    last = words[-1].rstrip("0123456789") or words[-1]  # bot_token4, API_KEY2: numbered credentials
    if last in _PASSWORD_WORDS or last.endswith(("password", "passwd", "pwd")):
        return "password"
    if len(words) > 1 and words[-2] in _NOT_SECRET_PREV:
        return None
    if last in _SECRET_WORDS or last.endswith(_SECRET_SUFFIXES):
        return "secret"
    if last == "login" and len(words) > 1:
        return "login"  # sonar.login, SONAR_LOGIN: a service's login that is its token
    return None


def _is_reference(value: str, quoted: bool) -> bool:
    """A variable, an expression, a path or a template rather than a literal secret."""
    if value[0] in "$%{<@/~#" or value.startswith(
        ("./", "../", "http://", "https://", "file:", "env:", "vault:", "arn:", "ENC[")
    ):
        return True
    if value.lower() in ("true", "false", "null", "none", "nil", "undefined", "required", "optional", "string", "str"):
        return True
    # unquoted identifiers are variables (api_key = settings.key); quoted letters are a literal
    return not quoted and _CODE_REF_RX.fullmatch(value) is not None and not any(c.isdigit() for c in value)


def _is_code(
    text: str, a: int, b: int, span: tuple[int, int], value: str, quote: str | None, words: tuple[str, ...]
) -> bool:
    """A value that the code around it shows is no literal secret (round-6b G1, G4): the verb
    "pass" before a quoted word of code (pass `api_key`, pass "--no-cache"); the next item of a
    list of quoted words ("md5", "password", "scram-sha-256"); a call (key = base64.b64encode(..));
    a type annotation (private_key: Ed25519PrivateKey); an enum member named after its value
    (CLIENT_SECRET_AUTH = 'CLIENT_SECRET_AUTH'). Each needs its context: a random password
    after "pass" or in a list is still one, as is a word of code assigned as `password = "x"`."""
    start, end = span
    if value.replace("-", "_").upper() == text[a:b].strip("\"'").replace("-", "_").upper():
        return True
    if not quote and text[end : end + 1] == "(" and _CALLED_RX.fullmatch(value):
        return True
    if (
        (a == 0 or text[a - 1] not in "\"'")  # a parameter or variable, not a JSON/YAML key
        and not _in_flow_mapping(text, a)  # {password: Summer2024Password, user: bob}: YAML (red-team F127)
        and text[b:start].lstrip(" \t\\\"'").startswith(":")
        and _TYPE_NAME_RX.fullmatch(value)
        and _ANNOTATION_END_RX.match(text, end + (1 if quote else 0))
    ):
        return True  # private_key: Ed25519PrivateKey = ..., (private_key: "_EcKey", data: bytes)
    if not quote or not _CODE_WORD_RX.fullmatch(value):
        return False
    if words == ("pass",) and text[b : b + 1] in (" ", "\t") and text[max(0, a - 2) : a] != "--":
        return True  # the verb: "How do I pass `api_key`?"; --pass "x" and pass: "x" stay names
    quote_char = quote[-1]
    # The name and the value are items of one list: a comma between them, no `:` or `=` (a JSON
    # or YAML member whose object has another member is a name with its value: red-team F120).
    between = text[b + 1 : start]
    return (
        a > 0
        and text[a - 1] == quote_char
        and text[b : b + 1] == quote_char
        and "," in between
        and not any(c in between for c in ":=")
        and (
            _ITEM_BEFORE_RX.search(text, max(0, a - 8), a - 1) is not None
            or _ITEM_AFTER_RX.match(text, end + 1) is not None
        )
    )


def _in_flow_mapping(text: str, at: int) -> bool:
    """Whether `at` is inside `{...}` (a YAML flow mapping or a dict literal), not `(...)`."""
    window = text[max(0, at - 200) : at]
    opened = max(window.rfind("{"), window.rfind("("), window.rfind("["))
    return opened >= 0 and window[opened] == "{" and "}" not in window[opened:]


def _secret_value_ok(value: str, kind: str, word_operator: bool, quoted: bool) -> bool:
    if len(value) < (6 if kind == "password" else 16) or _is_reference(value, quoted) or says_placeholder(value):
        return False
    chars = set(value)  # one set for both checks: this runs on every value under a credential name
    if few_distinct(len(chars) + ("~" not in chars), len(value) + 3):  # low_variety(value + "~~~")
        return False
    classes = classes_of(chars)
    if kind == "password":
        # a digit or a symbol (not only letters), and some letters or length
        if (word_operator and len(value) < 8) or classes < 2 or value.isalpha():
            return False
        return any(c.isalpha() for c in value) or len(value) >= 8
    if value.endswith(("..", "\u2026")) or _VERSIONED_RX.match(value):
        return False
    # tokens, keys, secrets: long and random (a random 32-letter key has no digit 0.4% of the time)
    if len(value) < 16 or " " in value or value.isdigit() or not (len(value) >= 24 or _DIGIT_RX.search(value)):
        return False
    return classes >= 2 and shannon_entropy(value) >= 3.0


def _typed(words: tuple[str, ...], value: str) -> tuple[str, str] | None:
    present = set(words)
    if present.isdisjoint(_TYPED_NAME_WORDS):
        return None
    for need, rx, type_, detector in _TYPED_VALUES:
        if present.issuperset(need) and rx.match(value):
            if type_ == "AWS_SECRET_KEY" and not aws_secret_like(value):
                continue
            if not says_placeholder(value) and not low_variety(value):
                return type_, detector
    return None


_PASSWORD_KEYWORDS = ("pass", "pw", "kennwort", "wachtwoord", "contraseña")
_SECRET_KEYWORDS = ("secret", "token", "key", "credential", "auth", "bundle_", "login")


def _keyword_rx(keyword: str, password: bool) -> re.Pattern[bytes]:
    """Searched in Source.lower (Latin-1 bytes): the keyword, the rest of the name, then an
    operator (or, for passwords, a blank: "password is x", "--password x", "PASSWORD 'x'").
    Rejecting "key points" and "max_tokens" here keeps them out of the Python loop."""
    tail = rb"""(?:\\?["']?\]?(?:[ \t]+(?:string|str|&str|const))?[ \t]*(?:\r?\n[ \t]*)?(?::=|=>|->|=|:|>|\?=|\.=|\+=)|["'][ \t]*,[ \t]*["']|["'][ \t]+value[ \t]*=)"""
    if password:
        tail = rb"(?:" + tail + rb"|[ \t])"
    else:  # "the API key is 2afd...", "pinata token - 'xw4x...'"
        tail = rb"(?:" + tail + rb"""|[ \t]+(?:is|was)[ \t]|[ \t]+-[ \t]+\\?["'`])"""
    return re.compile(re.escape(keyword.encode("latin-1")) + rb"[a-z0-9_.\-\xc0-\xff]{0,48}" + tail)


# (keyword, its pattern): each pattern is matched where the scan's one literal pass found its
# keyword (Source.occurrences), skipping those inside the previous match: what finditer gives.
_KEYWORD_RXS = [(k.encode("latin-1"), _keyword_rx(k, True)) for k in _PASSWORD_KEYWORDS] + [
    (k.encode("latin-1"), _keyword_rx(k, False)) for k in _SECRET_KEYWORDS
]
needles("lower", *(k for k, _ in _KEYWORD_RXS))
_UNICODE_KEYWORDS = ("パスワード",)  # outside Latin-1: searched in the text itself


def _keyword_hits(src: Source) -> list[int]:
    lower = src.lower
    hits = []
    for keyword, rx in _KEYWORD_RXS:
        done = 0
        for at in src.occurrences("lower", keyword):
            if at >= done and (m := rx.match(lower, at)) is not None:
                hits.append(at)
                done = m.end()
    for kw in _UNICODE_KEYWORDS:
        pos = 0
        while (h := src.text.find(kw, pos)) >= 0:
            hits.append(h)
            pos = h + len(kw)
    return hits


def _value_span(text: str, pos: int, quote: str | None) -> tuple[int, int] | None:
    if quote:
        q = quote[-1]
        end = text.find(q, pos, pos + 4097)
        if end <= pos:
            return None
        if text[end - 1] == "\\":  # an escaped closing quote: \"
            end -= 1
        if "\n" in text[pos:end]:
            return None
        while pos < end and text[pos] == " ":  # token = ' iahNbq... ': the blanks are not the value
            pos += 1
        while end > pos and text[end - 1] == " ":
            end -= 1
        return pos, end
    # A trailing "." or "?" may be the sentence's or the password's: keep it, over-covering is safe.
    m = _UNQUOTED_RX.match(text, pos)
    return None if m is None else (pos, m.end())


def _operator(text: str, h: int, a: int, b: int) -> tuple[int, str | None, str | None, bool] | None:
    """After a name from a to b: (value start, quote, scheme, word operator?) or None."""
    op = _OPERATOR_RX.match(text, b)
    if op is not None:
        if op.group("pair") is not None:
            if a == 0 or text[a - 1] != text[b]:
                return None  # a pair needs a quoted name: "TOKEN", "v"
            return op.end(), op.group("pquote"), None, False
        return op.end(), op.group("quote"), op.group("scheme"), False
    sp = _SPACED_RX.match(text, b)
    if sp is None:
        return None
    if sp.group("word") is None and sp.group("quote") is None:
        dash = text.rfind("--", max(0, h - 64), h)  # --password value
        if dash < 0 or not _NAME_RX.fullmatch(text, dash, b):
            return None
    return sp.end(), sp.group("quote"), None, sp.group("word") is not None


def detect_assignments(src: Source, hits: Hits) -> None:
    text, classes = src.text, src.classes
    seen: set[int] = set()
    pos = 0
    for h in sorted(_keyword_hits(src)):
        if h < pos:
            continue
        b = _NAME_RX.match(text, h).end()  # type: ignore[union-attr]  # kw itself matches
        # the whole name around the keyword: back to the last blank or punctuation
        lo = max(0, h - 64)
        a = max(classes.rfind(b" ", lo, h), classes.rfind(b"+", lo, h)) + 1 or lo
        xml = None
        found: tuple[int, str | None, str | None, bool] | None
        if b < len(text) and text[b] == ">" and a and text[a - 1] == "<":  # <apiToken>x</apiToken>
            xml = _XML_VALUE_RX.match(text, b)
            found = None if xml is None else (xml.start(1), None, None, False)
        else:
            found = _operator(text, h, a, b)
        if found is None:
            continue
        if a in seen:
            continue
        seen.add(a)
        words = _name_words(text[a:b].strip(".-$@#%\\"))
        kind = _name_kind(words)
        start, quote, scheme, word_operator = found
        if kind is None or (word_operator and kind not in ("password", "secret")):
            continue
        span = xml.span(1) if xml is not None else _value_span(text, start, quote)
        if span is not None and quote and scheme is None:
            sm = _QUOTED_SCHEME_RX.match(text, span[0], span[1])
            if sm is not None:
                scheme, span = sm.group().split()[0], (sm.end(), span[1])
        if span is None or span[1] - span[0] < 6:
            continue
        if kind == "secret" and _HEADER_FLAG_RX.search(text, max(0, a - 12), a):
            kind = "header"  # curl -H "Token: 3fea6af1349166ea": a header value is a credential as sent
        if words in (("key",), ("name",)) and _ATTRIBUTE_PAIR_RX.match(text, span[1]):
            continue  # <add key="Password" value="..."/>: this value is the name; its own hit reads the pair
        value = text[span[0] : span[1]]
        if value in _EXAMPLE_JWTS or _is_code(text, a, b, span, value, quote, words):
            continue
        typed = _typed(words, value)
        if typed is not None:
            hits.add(span[0], span[1], typed[0], typed[1])
        elif scheme is not None and scheme.lower() == "basic" and _basic_auth(value):
            hits.add(span[0], span[1], "GENERIC_SECRET", "assignment")
        elif kind == "bundler":
            user, _, password = value.partition(":")
            if (
                user
                and "/" not in value
                and len(password) >= 6
                and not is_placeholder(password)
                and not low_variety(password + "~~~")
            ):  # hex: cafebabe:deadbeef
                hits.add(span[0], span[1], "PASSWORD", "assignment")
        elif kind == "header":
            if _secret_value_ok(value, "password", False, True) and " " not in value:
                hits.add(span[0], span[1], "GENERIC_SECRET", "assignment")
        elif kind == "login":
            # a user name is short or has "@" or "."; a random 24+ character login is a token
            if (
                len(value) >= 24
                and "@" not in value
                and "." not in value
                and _secret_value_ok(value, "secret", word_operator, bool(quote))
            ):
                hits.add(span[0], span[1], "GENERIC_SECRET", "assignment")
        elif _secret_value_ok(value, kind, word_operator, bool(quote)):
            hits.add(span[0], span[1], "PASSWORD" if kind == "password" else "GENERIC_SECRET", "assignment")
        pos = max(pos, span[1])


# --- Command-line credentials: curl -u user:password, --user 'user:password' ------------------
_CURL_USER_RX = re.compile(
    r"""(?<![\w\-])(?:-u|--user)(?:[ \t]+|=)["']?(?P<user>[^\s:"'$<>\[]*)["']?:["']?(?P<pw>[^\s"'<>]*)"""
)
_USERPASS_FILLER = frozenset(
    {"test", "pass", "password", "passwd", "token", "secret", "yyy", "xxx", "pwd", "apikey", "api_key"}
)


def _cli_password_ok(value: str) -> bool:
    if len(value) < 6 or value[0] in "$<[{%(" or value.lower() in _USERPASS_FILLER or is_placeholder(value):
        return False
    return char_classes(value) >= 2 and not low_variety(value + "~~~")


needles("latin1", b"-u")


def detect_cli_credentials(src: Source, hits: Hits) -> None:
    """curl's -u/--user user:password: the password (or, with an empty password, the user part,
    which then is an API key: `-u sk_live_...:`)."""
    text = src.text
    pos = 0
    for at in src.occurrences("latin1", b"-u"):
        if at < pos:
            continue
        pos = at + 2
        m = _CURL_USER_RX.match(text, at - 1 if at and text[at - 1] == "-" else at)
        if m is None:
            continue
        if m.group("pw"):
            if _cli_password_ok(m.group("pw")):
                hits.add(m.start("pw"), m.end("pw"), "PASSWORD", "cli")
        elif _cli_password_ok(m.group("user")):
            hits.add(m.start("user"), m.end("user"), "PASSWORD", "cli")
        pos = m.end()


def _basic_auth(value: str) -> bool:
    """An HTTP Basic credential: base64 of user:password."""
    try:
        return b":" in base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False


register_types(SECRET, "PRIVATE_KEY", "JWT", "URL_PASSWORD", "PASSWORD", "GENERIC_SECRET", "JENKINS_CREDENTIAL")
register_types(SECRET, *(t for _, _, t, _ in _TYPED_VALUES))

DETECTORS = [
    Detector("pem", frozenset({"PRIVATE_KEY"}), detect_pem),
    Detector("key_body", frozenset({"PRIVATE_KEY"}), detect_key_body),
    Detector("jwt", frozenset({"JWT"}), detect_jwt),
    Detector("jenkins", frozenset({"JENKINS_CREDENTIAL"}), detect_jenkins),
    Detector("url_credentials", frozenset({"URL_PASSWORD"}), detect_url_password),
    Detector("cli", frozenset({"PASSWORD"}), detect_cli_credentials),
    Detector(
        "assignment",
        frozenset({"PASSWORD", "GENERIC_SECRET", *(t for _, _, t, _ in _TYPED_VALUES)}),
        detect_assignments,
    ),
]
