"""Key formats found from a literal of their own rather than a dispatch word (servicekeys.py):
AWS key ids, Google API keys, Atlassian tokens and Twilio SIDs from their "A"; formats with a
literal inside (`Q~`, `:AA`, `-us`, `sha256~`, `EAA`); formats with a "." inside and no word
(Discord bot tokens, Terraform, Airtable), tried where the separator search stops at a "."; the
webhook URLs whose whole URL is the credential; Azure connection-string keys and SAS signatures.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from .model import Hits
from .model import Source
from .model import needles
from .validators import char_classes
from .validators import hand_typed
from .validators import is_placeholder
from .validators import low_variety
from .validators import shannon_entropy

KEYCHARS = "A-Za-z0-9_\\-"
TAIL = rf"(?![{KEYCHARS}])"  # a key ends where key characters end
TAIL_B64 = r"(?![A-Za-z0-9+/=_\-])"


def ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def random_enough(value: str) -> bool:
    """Not filler like sk-aaaaaaaa... or sk-1234567890abcdef..."""
    return not low_variety(value) and shannon_entropy(value) >= 3.0


def discord_id(segment: str) -> bool:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).isdigit()
    except (binascii.Error, ValueError):
        return False


# --- Formats found from a literal of their own ----------------------------------------------

# "A": AWS key ids, Google API keys, Atlassian API tokens, Twilio account SIDs.
_A_RX = re.compile(
    r"A(?:"
    r"(?P<aws>(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z2-7]{16})(?![A-Za-z0-9])"
    r"|(?P<google>IzaSy[A-Za-z0-9_\-]{33})" + TAIL + r"|(?P<atlassian>TATT3[A-Za-z0-9_=\-]{150,250})(?![A-Za-z0-9_=\-])"
    r"|(?P<twilio>C[a-f0-9]{32})(?![A-Za-z0-9])"
    r"|(?P<bedrock>BSKQmVkcm9ja0FQSUtleS[A-Za-z0-9+/]{80,300}={0,2})(?![A-Za-z0-9+/=])"
    r")"
)
_A_TYPES = {
    "aws": ("AWS_ACCESS_KEY", "aws"),
    "google": ("GOOGLE_API_KEY", "google"),
    "atlassian": ("ATLASSIAN_API_TOKEN", "atlassian"),
    "twilio": ("TWILIO_ACCOUNT_SID", "twilio"),
    "bedrock": ("AWS_BEDROCK_API_KEY", "aws"),
}
# An AWS secret access key: 40 base64 characters; reported only near a key id (or, in
# credentials.py, when assigned to an aws_secret... name).
_AWS_SECRET_RX = re.compile(r"(?<![A-Za-z0-9/+=])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])")
_AWS_SECRET_WINDOW = 300


def aws_secret_like(value: str) -> bool:
    return char_classes(value) >= 3 and shannon_entropy(value) >= 4.0 and not is_placeholder(value)


def _scan_a(text: str, hits: Hits) -> None:
    for m in _A_RX.finditer(text):
        s = m.start()
        # Inside a word, no key; after "+" or "/" (a base64 blob's alphabet) an AWS key id still
        # counts when it ends at a path's or a line's boundary: `/iam/keys/AKIA.../rotate`, a
        # request line (red-team F46). A run inside base64 goes on in its alphabet.
        after = text[m.end() : m.end() + 1]
        glued = s and text[s - 1] in "+/" and (m.lastgroup != "aws" or after in ("+", "="))
        if s and (ascii_alnum(text[s - 1]) or glued):
            continue
        type_, detector = _A_TYPES[m.lastgroup or ""]
        value = m.group()
        if is_placeholder(value) or hand_typed(value) or low_variety(value):
            continue
        hits.add(s, m.end(), type_, detector)
        if detector == "aws":
            lo, hi = max(0, s - _AWS_SECRET_WINDOW), min(len(text), m.end() + _AWS_SECRET_WINDOW)
            for sm in _AWS_SECRET_RX.finditer(text, lo, hi):
                if aws_secret_like(sm.group()):
                    hits.add(sm.start(), sm.end(), "AWS_SECRET_KEY", "aws")


@dataclass(frozen=True, slots=True)
class Literal:
    """A format found from a literal inside it: the key starts `back` characters before it."""

    literal: str
    backs: tuple[int, ...]
    pattern: re.Pattern[str]
    type: str
    detector: str
    check: Callable[[str], bool] | None = None
    # What must be around the literal for the key to match (look-arounds implied by the pattern):
    # a literal that prose or an attacker can repeat ("|", ":AA") is then searched with them, in C,
    # rather than tried in Python at every occurrence.
    near: bytes = b""


_LITERAL_FORMATS: list[Literal] = [
    Literal("sha256~", (0,), re.compile(rf"sha256~[A-Za-z0-9_\-]{{43}}{TAIL}"), "OPENSHIFT_TOKEN", "openshift", random_enough),
    # GitLab runner registration tokens (deprecated, still in old runner configs)
    Literal("GR1348941", (0,), re.compile(rf"GR1348941[A-Za-z0-9_\-]{{20}}{TAIL}"), "GITLAB_TOKEN", "gitlab", random_enough),
    # EasyPost production (EZAK) and test (EZTK) API keys
    Literal("EZ", (0,), re.compile(rf"EZ[AT]K[A-Za-z0-9]{{54}}{TAIL}"), "EASYPOST_API_KEY", "easypost", random_enough),
    # Facebook/Meta user and page access tokens (EAAC..., EAAM..., EAAG...); Square's are EAAA + 60
    Literal("EAA", (0,), re.compile(rf"EAA[B-Z][A-Za-z0-9]{{90,400}}{TAIL}"), "FACEBOOK_ACCESS_TOKEN", "facebook", random_enough),
    # Facebook app access tokens: app id "|" app secret
    Literal("|", (15, 16), re.compile(rf"[0-9]{{15,16}}\|[A-Za-z0-9_\-]{{27}}{TAIL}"), "FACEBOOK_ACCESS_TOKEN", "facebook", random_enough, rb"(?<=[0-9]{15}\|)(?=[A-Za-z0-9_\-]{27})"),
    # A JWT that was base64-encoded once more (Kubernetes secrets, basic-auth wrappers): "eyJhbGciOi"
    Literal("ZXlKaGJHY2lPaU", (0,), re.compile(r"ZXlKaGJHY2lPaU[A-Za-z0-9+/]{60,4000}={0,2}(?![A-Za-z0-9+/=])"), "JWT", "jwt", None),
    # Grafana API keys (before service accounts): base64 of {"k":"...
    Literal("eyJrIjoi", (0,), re.compile(r"eyJrIjoi[A-Za-z0-9]{70,400}={0,2}(?![A-Za-z0-9+/=])"), "GRAFANA_TOKEN", "grafana", random_enough),
    # JFrog Artifactory API keys
    Literal("AKCp", (0,), re.compile(rf"AKCp[A-Za-z0-9]{{69}}{TAIL}"), "ARTIFACTORY_TOKEN", "artifactory", random_enough),
    # MaxMind license keys: 6 + "_" + 29 + "_mmk"
    Literal("_mmk", (36,), re.compile(rf"[A-Za-z0-9]{{6}}_[A-Za-z0-9]{{29}}_mmk{TAIL}"), "MAXMIND_LICENSE_KEY", "maxmind", random_enough, rb"(?<=[A-Za-z0-9]{6}_[A-Za-z0-9]{29}_mmk)"),
    Literal("SK", (0,), re.compile(r"SK[a-fA-F0-9]{32}(?![A-Za-z0-9])"), "TWILIO_API_KEY", "twilio", random_enough),
    Literal("EAAA", (0,), re.compile(rf"EAAA[A-Za-z0-9_\-]{{60}}{TAIL}"), "SQUARE_TOKEN", "square", random_enough),
    Literal("dapi", (0,), re.compile(rf"dapi[a-f0-9]{{32}}(?:-[0-9])?{TAIL}"), "DATABRICKS_TOKEN", "databricks", random_enough),
    # Azure AD client secrets: 3 characters, a digit, "Q~", 31-34 more.
    Literal("Q~", (4,), re.compile(r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])"), "AZURE_CLIENT_SECRET", "azure", None, rb"(?<=[A-Za-z0-9_~.]{3}[0-9]Q~)(?=[A-Za-z0-9_~.\-]{31})"),
    # Telegram bot tokens: bot id, ":AA", 33 more.
    Literal(":AA", (8, 9, 10), re.compile(rf"[0-9]{{8,10}}:AA[A-Za-z0-9_\-]{{33}}{TAIL}"), "TELEGRAM_BOT_TOKEN", "telegram", None, rb"(?<=[0-9]{8}:AA)(?=[A-Za-z0-9_\-]{33})"),
    # Mailchimp: 32 hex digits, "-us" and the data centre number.
    Literal("-us", (32,), re.compile(r"[a-f0-9]{32}-us[0-9]{1,2}(?![A-Za-z0-9])"), "MAILCHIMP_API_KEY", "mailchimp", None, rb"(?<=[a-f0-9]{32}-us)(?=[0-9])"),
    # AWS STS session tokens (base64 of a binary blob with a fixed start).
    Literal("IQoJb3JpZ2lu", (0,), re.compile(r"IQoJb3JpZ2lu[A-Za-z0-9+/]{100,3000}={0,2}(?![A-Za-z0-9+/=])"), "AWS_SESSION_TOKEN", "aws"),
    Literal("FwoGZXIvYXdz", (0,), re.compile(r"FwoGZXIvYXdz[A-Za-z0-9+/]{100,3000}={0,2}(?![A-Za-z0-9+/=])"), "AWS_SESSION_TOKEN", "aws"),
]  # fmt: skip


# Found with the scan's one literal pass (Source.occurrences): a literal that starts inside the key
# found from the previous one is skipped, as a search from the key's end would.
needles("latin1", *(lit.literal.encode() for lit in _LITERAL_FORMATS if not lit.near))
_NEAR_RXS = {
    lit.literal: re.compile(re.escape(lit.literal.encode()) + lit.near) for lit in _LITERAL_FORMATS if lit.near
}


# Formats whose key has a "." inside but no dispatch word: tried at a "." the separator search
# stops at. (offsets of the token start from that "."; what must come just before the "." (a
# fixed-width look-behind, implied by the pattern); what must come after it; pattern, type,
# detector, check.) The look-arounds are what keeps this cheap on hostile text: a probe of one
# character (Discord's earlier "." seven back) made every "." of a text cost up to five pattern
# matches, so a 1 MB tool result of dots took seconds of CPU. Now a "." is tried only where the
# characters on both sides can be the key, and the separator search (servicekeys.py) holds the
# same look-behinds, so a "." that fits none of them never reaches Python.
_DOTTED: list[
    tuple[tuple[int, ...], str, str, re.Pattern[str], str, str, Callable[[str], bool] | None]
] = [
    # Terraform Cloud / HCP Terraform tokens: 14 characters ".atlasv1." 60-70 more
    ((22,), r"[A-Za-z0-9]{14}\.atlasv1", r"[A-Za-z0-9_=\-]{60}", re.compile(r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,70}(?![A-Za-z0-9_=\-])"), "TERRAFORM_TOKEN", "terraform", None),
    # Airtable personal access tokens: pat + 14 "." 64 hex
    ((17,), r"pat[A-Za-z0-9]{14}", r"[a-f0-9]{64}", re.compile(rf"pat[A-Za-z0-9]{{14}}\.[a-f0-9]{{64}}{TAIL}"), "AIRTABLE_TOKEN", "airtable", None),
    # Discord bot tokens: base64(user id) "." 6 characters "." HMAC (found from the second ".")
    ((31, 32, 33, 34, 35), r"[A-Za-z0-9_\-]{24}\.[A-Za-z0-9_\-]{6}", r"[A-Za-z0-9_\-]{27}", re.compile(rf"[MNO][A-Za-z0-9_\-]{{23,27}}\.[A-Za-z0-9_\-]{{6}}\.[A-Za-z0-9_\-]{{27,40}}{TAIL}"), "DISCORD_BOT_TOKEN", "discord", lambda v: discord_id(v.split(".", 1)[0])),
]  # fmt: skip
# (before, after) of each format: the "." can be its key's where `before` ends just before it and
# `after` starts just after it (servicekeys joins them into its "." search).
DOTTED_AROUND = [(before, after) for _, before, after, *_ in _DOTTED]
_DOTTED_PROBES = [re.compile(rf"(?<={before})\.(?={after})") for before, after in DOTTED_AROUND]


def _try_at(
    text: str,
    hits: Hits,
    s: int,
    pattern: re.Pattern[str],
    type_: str,
    detector: str,
    check: Callable[[str], bool] | None,
) -> int | None:
    """Match a key starting at s (after no key character); the end of what was added."""
    if s < 0 or (s and (ascii_alnum(text[s - 1]) or text[s - 1] in "+/")):
        return None
    m = pattern.match(text, s)
    if m is None or is_placeholder(m.group()) or hand_typed(m.group()) or (check is not None and not check(m.group())):
        return None
    hits.add(s, m.end(), type_, detector)
    return m.end()


def match_dotted(text: str, hits: Hits, p: int) -> int | None:
    for probe, (backs, _, _, pattern, type_, detector, check) in zip(_DOTTED_PROBES, _DOTTED):
        if probe.match(text, p) is None:
            continue
        for back in backs:
            end = _try_at(text, hits, p - back, pattern, type_, detector, check)
            if end is not None:
                return end
    return None


def _scan_literals(src: Source, hits: Hits) -> None:
    text = src.text
    for lit in _LITERAL_FORMATS:
        done = 0  # the end of the last key this format found
        near = _NEAR_RXS.get(lit.literal)
        found = src.occurrences("latin1", lit.literal.encode()) if near is None else _starts(near, src.latin1)
        for at in found:
            if at >= done:
                end = _try_literal(text, hits, lit, at)
                if end is not None:
                    done = end


def _starts(rx: re.Pattern[bytes], raw: bytes) -> list[int]:
    return [m.start() for m in rx.finditer(raw)]


def _try_literal(text: str, hits: Hits, lit: Literal, at: int) -> int | None:
    for back in lit.backs:
        end = _try_at(text, hits, at - back, lit.pattern, lit.type, lit.detector, lit.check)
        if end is not None:
            return end
    return None


# --- Webhook URLs: the whole URL is the credential ------------------------------------------
# (literal to search for, pattern matched from where the literal starts, type, detector)
_WEBHOOKS: list[tuple[str, re.Pattern[str], str, str]] = [
    (
        "hooks.slack.com/",
        re.compile(r"hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/+\-]{20,200}"),
        "SLACK_WEBHOOK",
        "slack",
    ),
    ("/api/webhooks/", re.compile(r"/api/webhooks/[0-9]{17,20}/[A-Za-z0-9_\-]{60,80}"), "DISCORD_WEBHOOK", "discord"),
    (
        ".webhook.office.com/",
        re.compile(r"\.webhook\.office\.com/webhookb2/[A-Za-z0-9@/\-]{60,250}"),
        "TEAMS_WEBHOOK",
        "teams",
    ),
]
_WEBHOOK_HOSTS_BEFORE = {
    "DISCORD_WEBHOOK": re.compile(r"(?:https?://)?(?:ptb\.|canary\.)?discord(?:app)?\.com\Z"),
    "TEAMS_WEBHOOK": re.compile(r"(?:https?://)?[A-Za-z0-9\-]{1,63}\Z"),
    "SLACK_WEBHOOK": re.compile(r"(?:https?://)?\Z"),
}


needles("latin1", *(literal.encode() for literal, *_ in _WEBHOOKS))


def _scan_webhooks(src: Source, hits: Hits) -> None:
    text = src.text
    for literal, rx, type_, detector in _WEBHOOKS:
        pos = 0
        for at in src.occurrences("latin1", literal.encode()):
            if at < pos:
                continue
            pos = at + 1
            m = rx.match(text, at)
            host = _WEBHOOK_HOSTS_BEFORE[type_].search(text, max(0, at - 80), at)
            if m is None or host is None:
                continue
            hits.add(host.start(), m.end(), type_, detector)
            pos = m.end()


# --- Azure connection strings and SAS URLs: the key value only ------------------------------
_AZURE_KEY_RX = re.compile(r"Key=([A-Za-z0-9+/]{40,88}={0,2})(?![A-Za-z0-9+/=])")
_AZURE_SAS_RX = re.compile(r"sig=((?:[A-Za-z0-9+/]|%2[BbFf])+(?:=|%3[Dd]){0,2})(?![A-Za-z0-9%+/=])")


needles("latin1", b"Key=", b"sig=")


def _scan_azure(src: Source, hits: Hits) -> None:
    text = src.text
    pos = 0
    for at in src.occurrences("latin1", b"Key="):
        if at < pos:
            continue
        pos = at + 4
        m = _AZURE_KEY_RX.match(text, at)
        if m is None:
            continue
        head = text[max(0, at - 12) : at]
        if head.endswith("Account") and len(m.group(1)) == 88:
            hits.add(m.start(1), m.end(1), "AZURE_STORAGE_KEY", "azure")
        elif head.endswith("SharedAccess") and len(m.group(1)) == 44:
            hits.add(m.start(1), m.end(1), "AZURE_SHARED_ACCESS_KEY", "azure")
    pos = 0
    for at in src.occurrences("latin1", b"sig="):
        if at < pos:
            continue
        pos = at + 4
        m = _AZURE_SAS_RX.match(text, at)
        url = text[max(0, at - 400) : at]
        if m is not None and url[-1:] in ("?", "&") and "sv=20" in url and len(m.group(1)) >= 40:
            hits.add(m.start(1), m.end(1), "AZURE_SAS_TOKEN", "azure")


def scan_literal_formats(src: Source, hits: Hits) -> None:
    """Every format of this module but the dotted ones (servicekeys runs those at its "." stops)."""
    _scan_a(src.text, hits)
    _scan_literals(src, hits)
    _scan_webhooks(src, hits)
    _scan_azure(src, hits)


LITERAL_KEY_TYPES = (
    {t for t, _ in _A_TYPES.values()}
    | {lit.type for lit in _LITERAL_FORMATS}
    | {t for _, _, _, _, t, _, _ in _DOTTED}
    | {t for _, _, t, _ in _WEBHOOKS}
    | {"AWS_SECRET_KEY", "AZURE_STORAGE_KEY", "AZURE_SHARED_ACCESS_KEY", "AZURE_SAS_TOKEN"}
)
