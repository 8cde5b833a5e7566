"""Published key formats of cloud, AI and SaaS services.

How it stays fast: Python's `re` searches a pattern that starts with a literal at memory speed but
tries a character class at every position (10x slower). So nothing here starts with a class.

* Most formats start with a short word and a separator: `ghp_`, `sk-`, `glpat-`, `SG.`, `hvs.`.
  Three literal searches find every `_`, `-` or `.` followed by at least 15 key characters; the
  word that ends at that separator (`ghp_`) picks the rules to try (a dict lookup), and each rule
  is matched at the word's start. It must end at a token boundary, so the finding is the whole key.
* Formats without such a word are found from a literal of their own (`AKIA`, `Q~`, `:AA`,
  `hooks.slack.com/`) and extended backwards; formats with a "." inside but no word (Discord bot
  tokens, Terraform's `.atlasv1.`, Airtable) are tried at the "." the separator search stops at.
* Documented examples and fillers (AKIAIOSFODNN7EXAMPLE, sk_test_..., ghp_xxxx...) are not
  findings (validators.is_placeholder).
* Values whose format is not distinctive (Cohere, Mistral, Okta, legacy Cloudflare and Heroku
  keys) are only recognised when assigned to a name that says what they are: credentials.py.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass

from .model import SECRET
from .model import Detector
from .model import Hits
from .model import Source
from .model import register_types
from .validators import char_classes
from .validators import hand_typed
from .validators import is_placeholder
from .validators import low_variety
from .validators import shannon_entropy

_KEYCHARS = "A-Za-z0-9_\\-"
_TAIL = rf"(?![{_KEYCHARS}])"  # a key ends where key characters end
_TAIL_B64 = r"(?![A-Za-z0-9+/=_\-])"


@dataclass(frozen=True, slots=True)
class Rule:
    type: str
    detector: str
    pattern: re.Pattern[str]
    check: Callable[[str], bool] | None = None


# dispatch word (the text from the token start through its first separator) -> rules to try
_BY_WORD: dict[str, list[Rule]] = {}


def _rule(type_: str, detector: str, words: str, pattern: str, check: Callable[[str], bool] | None = None) -> Rule:
    rule = Rule(type_, detector, re.compile(pattern), check)
    for word in words.split():
        _BY_WORD.setdefault(word, []).append(rule)
    return rule


def _random_enough(value: str) -> bool:
    """Not filler like sk-aaaaaaaa... or sk-1234567890abcdef..."""
    return not low_variety(value) and shannon_entropy(value) >= 3.0


def _discord_id(segment: str) -> bool:
    try:
        return base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).isdigit()
    except (binascii.Error, ValueError):
        return False


# --- AI model providers ---------------------------------------------------------------------
_rule(
    "ANTHROPIC_API_KEY",
    "anthropic",
    "sk-",
    rf"sk-ant-(?:api|admin|oat|ort|sid)[0-9]{{2}}-[A-Za-z0-9_\-]{{80,120}}{_TAIL}",
)
_rule("OPENROUTER_API_KEY", "openrouter", "sk-", rf"sk-or-v1-[a-f0-9]{{64}}{_TAIL}")
_rule("OPENAI_API_KEY", "openai", "sk-", rf"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{{40,250}}{_TAIL}")
_rule("OPENAI_API_KEY", "openai", "sk-", rf"sk-[A-Za-z0-9]{{20}}T3BlbkFJ[A-Za-z0-9]{{20}}{_TAIL}")
_rule("OPENAI_API_KEY", "openai", "sk-", rf"sk-[A-Za-z0-9]{{48}}{_TAIL}", _random_enough)
# sk- plus 32+ random characters: DeepSeek, Moonshot, DashScope and many OpenAI-compatible servers
_rule("GENERIC_SECRET", "sk-key", "sk-", rf"sk-[A-Za-z0-9]{{32,128}}{_TAIL}", _random_enough)
_rule("GROQ_API_KEY", "groq", "gsk_", rf"gsk_[A-Za-z0-9]{{52}}{_TAIL}")
_rule("XAI_API_KEY", "xai", "xai-", rf"xai-[A-Za-z0-9]{{80}}{_TAIL}")
_rule("PERPLEXITY_API_KEY", "perplexity", "pplx-", rf"pplx-[A-Za-z0-9]{{48}}{_TAIL}")
_rule("REPLICATE_API_TOKEN", "replicate", "r8_", rf"r8_[A-Za-z0-9]{{37}}{_TAIL}")
_rule("HUGGINGFACE_TOKEN", "huggingface", "hf_", rf"hf_[A-Za-z]{{34}}{_TAIL}")
_rule("HUGGINGFACE_TOKEN", "huggingface", "api_", rf"api_org_[A-Za-z]{{34}}{_TAIL}")
_rule("LANGSMITH_API_KEY", "langsmith", "lsv2_", rf"lsv2_(?:pt|sk)_[a-f0-9]{{32}}_[a-f0-9]{{10}}{_TAIL}")
_rule("PINECONE_API_KEY", "pinecone", "pcsk_", rf"pcsk_[A-Za-z0-9_]{{50,120}}{_TAIL}")
_rule("TAVILY_API_KEY", "tavily", "tvly-", rf"tvly-(?:dev-|prod-)?[A-Za-z0-9]{{32}}{_TAIL}")
_rule("GOOGLE_OAUTH_SECRET", "google", "GOCSPX-", rf"GOCSPX-[A-Za-z0-9_\-]{{28}}{_TAIL}")
_rule("GOOGLE_OAUTH_TOKEN", "google", "ya29.", rf"ya29\.[A-Za-z0-9_\-]{{30,2048}}{_TAIL}")

# --- Code hosting and package registries ----------------------------------------------------
_rule("GITHUB_TOKEN", "github", "ghp_ gho_ ghu_ ghs_ ghr_", rf"gh[pousr]_[A-Za-z0-9]{{36,251}}{_TAIL}")
_rule("GITHUB_TOKEN", "github", "github_", rf"github_pat_[A-Za-z0-9_]{{70,251}}{_TAIL}")
_rule(
    "GITLAB_TOKEN",
    "gitlab",
    "glpat- gldt- glrt- glptt- glft- glimt- glagent- gloas- glcbt- glsoat- glffct-",
    rf"gl(?:pat|dt|rt|ptt|ft|imt|agent|oas|cbt|soat|ffct)-[A-Za-z0-9_\-]{{20,300}}(?:\.[0-9a-z]{{9}})?{_TAIL}",
)
_rule("NPM_TOKEN", "npm", "npm_", rf"npm_[A-Za-z0-9]{{36}}{_TAIL}")
_rule("PYPI_TOKEN", "pypi", "pypi-", rf"pypi-AgE[A-Za-z0-9_\-]{{50,1000}}{_TAIL}")
_rule("RUBYGEMS_API_KEY", "rubygems", "rubygems_", rf"rubygems_[a-f0-9]{{48}}{_TAIL}")
_rule("DOCKER_HUB_TOKEN", "docker", "dckr_", rf"dckr_pat_[A-Za-z0-9_\-]{{27}}{_TAIL}")

# --- Chat, e-mail and SaaS ------------------------------------------------------------------
# Tokens start with a numeric id (6-14 digits, after a version digit in xoxa-2- and xoxe-1-); "xoxb-my-bot-token" and
# a tail of "####" filler are documentation.
_SLACK_TAIL = r"(?![A-Za-z0-9_\-#*])"
_rule(
    "SLACK_TOKEN",
    "slack",
    "xoxb- xoxp- xoxa- xoxr- xoxs- xoxo- xoxe-",
    rf"xox[bparsoe]-(?:[0-9]-)?[0-9]{{6,14}}-[A-Za-z0-9\-]{{10,250}}{_SLACK_TAIL}",
)
_rule(
    "SLACK_TOKEN", "slack", "xoxe-", rf"xoxe-[0-9]-[A-Za-z0-9]{{100,300}}{_SLACK_TAIL}", _random_enough
)  # refresh tokens
_rule("SLACK_TOKEN", "slack", "xoxe.", rf"xoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{{140,180}}{_SLACK_TAIL}")
_rule("SLACK_TOKEN", "slack", "xapp-", rf"xapp-[0-9]-[A-Z0-9]{{6,20}}-[0-9]{{6,20}}-[a-z0-9]{{30,80}}{_TAIL}")
_rule("SENDGRID_API_KEY", "sendgrid", "SG.", rf"SG\.[A-Za-z0-9_\-]{{22}}\.[A-Za-z0-9_\-]{{43}}{_TAIL}")
_rule("BREVO_API_KEY", "brevo", "xkeysib-", rf"xkeysib-[a-f0-9]{{64}}-[A-Za-z0-9]{{16}}{_TAIL}")
_rule("MAILGUN_API_KEY", "mailgun", "key-", rf"key-[a-f0-9]{{32}}{_TAIL}", _random_enough)
_rule("LINEAR_API_KEY", "linear", "lin_", rf"lin_api_[A-Za-z0-9]{{40}}{_TAIL}")
_rule("NOTION_TOKEN", "notion", "secret_", rf"secret_[A-Za-z0-9]{{43}}{_TAIL}", _random_enough)
_rule("NOTION_TOKEN", "notion", "ntn_", rf"ntn_[0-9]{{11}}[A-Za-z0-9]{{35}}{_TAIL}")
_rule("FIGMA_TOKEN", "figma", "figd_", rf"figd_[A-Za-z0-9_\-]{{40}}{_TAIL}")
_rule("POSTMAN_API_KEY", "postman", "PMAK-", rf"PMAK-[a-f0-9]{{24}}-[a-f0-9]{{34}}{_TAIL}")
_rule("SENTRY_TOKEN", "sentry", "sntrys_", rf"sntrys_eyJ[A-Za-z0-9+/]{{20,400}}={{0,2}}_[A-Za-z0-9+/]{{43}}{_TAIL_B64}")
_rule("SENTRY_TOKEN", "sentry", "sntryu_", rf"sntryu_[a-f0-9]{{64}}{_TAIL}")

# --- Payments -------------------------------------------------------------------------------
# Stripe test-mode keys (sk_test_) move no money and are published in docs: not findings.
# Publishable keys (pk_live_) are public by design: they ship in every checkout page.
_rule("STRIPE_KEY", "stripe", "sk_ rk_", rf"[sr]k_(?:live|prod)_[A-Za-z0-9]{{10,247}}{_TAIL}")
_rule("STRIPE_KEY", "stripe", "whsec_", rf"whsec_[A-Za-z0-9+/=]{{32,128}}{_TAIL}")
_rule("SHOPIFY_TOKEN", "shopify", "shpat_ shpss_ shpca_ shppa_", rf"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{{32}}{_TAIL}")
_rule("SQUARE_TOKEN", "square", "sq0atp- sq0csp-", rf"sq0(?:atp-[A-Za-z0-9_\-]{{22}}|csp-[A-Za-z0-9_\-]{{43}}){_TAIL}")
_rule(
    "BRAINTREE_ACCESS_TOKEN",
    "braintree",
    "access_",
    rf"access_token\$production\$[0-9a-z]{{16}}\$[0-9a-f]{{32}}{_TAIL}",
)

# --- Cloud, infrastructure and observability ------------------------------------------------
_rule("DIGITALOCEAN_TOKEN", "digitalocean", "dop_ doo_ dor_", rf"do[opr]_v1_[a-f0-9]{{64}}{_TAIL}")
_rule("DOPPLER_TOKEN", "doppler", "dp.", rf"dp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{{40,64}}{_TAIL}")
_rule("HEROKU_API_KEY", "heroku", "HRKU-", rf"HRKU-AA[A-Za-z0-9_\-]{{58}}{_TAIL}")
_rule("VAULT_TOKEN", "vault", "hvs.", rf"hvs\.[A-Za-z0-9_\-]{{90,120}}{_TAIL}")
_rule("VAULT_TOKEN", "vault", "hvb.", rf"hvb\.[A-Za-z0-9_\-]{{138,300}}{_TAIL}")
_rule("PULUMI_TOKEN", "pulumi", "pul-", rf"pul-[a-f0-9]{{40}}{_TAIL}")
_rule("GRAFANA_TOKEN", "grafana", "glc_", rf"glc_[A-Za-z0-9+/]{{32,400}}={{0,2}}{_TAIL_B64}")
_rule("GRAFANA_TOKEN", "grafana", "glsa_", rf"glsa_[A-Za-z0-9]{{32}}_[A-Fa-f0-9]{{8}}{_TAIL}")
_rule(
    "NEWRELIC_KEY",
    "newrelic",
    "NRAK- NRII- NRJS- NRAA-",
    rf"NR(?:AK-[A-Z0-9]{{27}}|II-[A-Za-z0-9\-]{{32}}|JS-[a-f0-9]{{19}}|AA-[a-f0-9]{{27}}){_TAIL}",
)
_rule("DYNATRACE_TOKEN", "dynatrace", "dt0c01.", rf"dt0c01\.[A-Z0-9]{{24}}\.[A-Z0-9]{{64}}{_TAIL}")
_rule("CLOUDFLARE_API_TOKEN", "cloudflare", "cfk_ cfut_ cfat_", rf"cf(?:k|ut|at)_[A-Za-z0-9]{{40,60}}{_TAIL}")
_rule("CLOUDFLARE_API_TOKEN", "cloudflare", "v1.", rf"v1\.0-[a-f0-9]{{24}}-[a-f0-9]{{146}}{_TAIL}")
_rule("FLYIO_TOKEN", "flyio", "fo1_", rf"fo1_[A-Za-z0-9_\-]{{43}}{_TAIL}")
_rule("FLYIO_TOKEN", "flyio", "fm1r_ fm1a_ fm2_", rf"fm(?:1[ar]|2)_[A-Za-z0-9+/]{{100,4000}}={{0,3}}{_TAIL_B64}")
_rule("VERCEL_TOKEN", "vercel", "vcp_ vci_ vca_ vcr_ vck_", rf"vc[pciark]_[A-Za-z0-9]{{24,100}}{_TAIL}")
_rule("SUPABASE_KEY", "supabase", "sbp_", rf"sbp_[a-f0-9]{{40}}{_TAIL}")
_rule("SUPABASE_KEY", "supabase", "sb_", rf"sb_secret_[A-Za-z0-9_\-]{{20,80}}{_TAIL}")
_rule("PLANETSCALE_TOKEN", "planetscale", "pscale_", rf"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.\-]{{32,64}}{_TAIL}")
_rule("PREFECT_API_KEY", "prefect", "pnu_", rf"pnu_[A-Za-z0-9]{{36}}{_TAIL}")
_rule(
    "SOURCEGRAPH_TOKEN",
    "sourcegraph",
    "sgp_",
    rf"sgp_(?:(?:[a-fA-F0-9]{{16}}|local)_)?[a-fA-F0-9]{{40}}{_TAIL}",
    _random_enough,
)
_rule("INTRA42_CLIENT_SECRET", "intra42", "s-", rf"s-s4t2(?:ud|af)-[a-f0-9]{{64}}{_TAIL}")
_rule("ONEPASSWORD_TOKEN", "onepassword", "ops_", rf"ops_eyJ[A-Za-z0-9+/]{{250,}}={{0,3}}{_TAIL_B64}")
_1P_SECRET_KEY = r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"  # 1Password account secret key
_rule("ONEPASSWORD_TOKEN", "onepassword", "A3-", _1P_SECRET_KEY + _TAIL)
_rule("INFRACOST_API_KEY", "infracost", "ico-", rf"ico-[A-Za-z0-9]{{32}}{_TAIL}")
_rule("ADOBE_CLIENT_SECRET", "adobe", "p8e-", rf"p8e-[A-Za-z0-9]{{32}}{_TAIL}")
_rule("SONAR_TOKEN", "sonar", "squ_ sqp_ sqa_", rf"sq[upa]_[A-Za-z0-9]{{40}}{_TAIL}")
# Microsoft Entra ID (Azure AD) refresh tokens: version "0." or "1.", an "A" segment, ".Ag" and a
# long body (hundreds of base64url characters); a refresh token is a login that lasts for months.
_rule(
    "AZURE_ENTRA_REFRESH_TOKEN",
    "azure",
    "0. 1.",
    rf"[01]\.A[A-Za-z0-9_\-]{{50,}}(?:\.[0-9])?\.Ag[A-Za-z0-9_\-]{{250,}}(?:\.A[A-Za-z0-9_\-]{{200,}})?{_TAIL}",
)
# Prefixed formats that gitleaks' rule set covers (config/gitleaks.toml), from each vendor's
# published key format; scripts/bench_dlp_rules.py measures them rule by rule.
_rule("CLOJARS_TOKEN", "clojars", "CLOJARS_", rf"CLOJARS_[a-z0-9]{{60}}{_TAIL}", _random_enough)
_rule("DUFFEL_TOKEN", "duffel", "duffel_", rf"duffel_(?:test|live)_[A-Za-z0-9_\-=]{{43}}{_TAIL}", _random_enough)
_rule(
    "FLUTTERWAVE_KEY",
    "flutterwave",
    "FLWSECK_ FLWSECK-",
    rf"FLWSECK(?:_TEST)?-(?:[a-h0-9]{{32}}-X|[a-h0-9]{{12}}){_TAIL}",
    _random_enough,
)
_rule("FRAMEIO_TOKEN", "frameio", "fio-", rf"fio-u-[A-Za-z0-9_\-=]{{64}}{_TAIL}", _random_enough)
_rule(
    "HARNESS_TOKEN",
    "harness",
    "pat. sat.",
    rf"(?:pat|sat)\.[A-Za-z0-9_\-]{{22}}\.[A-Za-z0-9]{{24}}\.[A-Za-z0-9]{{20}}{_TAIL}",
    _random_enough,
)
_rule("README_TOKEN", "readme", "rdme_", rf"rdme_[a-z0-9]{{70}}{_TAIL}", _random_enough)
_rule("SCALINGO_TOKEN", "scalingo", "tk-", rf"tk-us-[A-Za-z0-9_\-]{{48}}{_TAIL}", _random_enough)
_rule("SETTLEMINT_TOKEN", "settlemint", "sm_", rf"sm_(?:pat|aat|sat)_[A-Za-z0-9]{{16}}{_TAIL}", _random_enough)
_rule("SHIPPO_TOKEN", "shippo", "shippo_", rf"shippo_(?:live|test)_[a-fA-F0-9]{{40}}{_TAIL}", _random_enough)
_rule("OCTOPUS_DEPLOY_KEY", "octopus", "API-", rf"API-[A-Z0-9]{{26}}{_TAIL}", _random_enough)
_rule(
    "AUTHRESS_KEY",
    "authress",
    "sc_ ext_ scauth_ authress_",
    r"(?:sc|ext|scauth|authress)_[a-z0-9]{5,30}\.[a-z0-9]{4,6}\.acc[_\-][a-z0-9\-]{10,32}\.[a-z0-9+/_=\-]{30,120}(?![A-Za-z0-9+/_=\-])",
)
_rule(
    "AWS_BEDROCK_API_KEY",
    "aws",
    "bedrock-",
    r"bedrock-api-key-YmVkcm9jay5hbWF6b25hd3MuY29t[A-Za-z0-9+/=%]{20,4000}(?![A-Za-z0-9+/=%])",
)
_rule("AGE_SECRET_KEY", "age", "AGE-", rf"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{{58}}{_TAIL}")

_WORD_LENGTHS: dict[str, tuple[int, ...]] = {
    sep: tuple(sorted({len(w) for w in _BY_WORD if w[-1] == sep})) for sep in "_-."
}

# Anything of these followed by 15 key characters may end a dispatch word. Literal searches run
# on Source.latin1 (bytes, one per character, so offsets are the text's): a bytes search is a
# memchr, while a str search in a text with any character above U+00FF walks 4-byte units.
_SEPARATOR_RX = {sep: re.compile(re.escape(sep.encode()) + rb"(?=[A-Za-z0-9_\-.$+/]{15})") for sep in "_-."}


def _ascii_alnum(c: str) -> bool:
    return c.isascii() and c.isalnum()


def _accept(rule: Rule, value: str) -> bool:
    if is_placeholder(value) or hand_typed(value) or low_variety(value):
        return False
    return rule.check is None or rule.check(value)


def _match_word(text: str, hits: Hits, p: int, lengths: tuple[int, ...]) -> int | None:
    """Try the rules of every dispatch word that ends at text[p]; the end of the key found."""
    for n in lengths:
        s = p + 1 - n
        if s < 0:
            return None
        rules = _BY_WORD.get(text[s : p + 1])
        if rules is None or (s and (_ascii_alnum(text[s - 1]) or text[s - 1] == ".")):  # video_box.ico-7a38...png
            continue
        for rule in rules:
            m = rule.pattern.match(text, s)
            if m is not None and _accept(rule, m.group()):
                hits.add(s, m.end(), rule.type, rule.detector)
                return m.end()
    return None


def _scan_separator(text: str, raw: bytes, hits: Hits, sep: str) -> None:
    search = _SEPARATOR_RX[sep].search
    lengths = _WORD_LENGTHS[sep]
    pos = 0
    while (m := search(raw, pos)) is not None:
        end = _match_word(text, hits, m.start(), lengths)
        if end is None and sep == ".":
            end = _match_dotted(text, hits, m.start())
        pos = m.start() + 1 if end is None else end


# --- Formats found from a literal of their own ----------------------------------------------

# "A": AWS key ids, Google API keys, Atlassian API tokens, Twilio account SIDs.
_A_RX = re.compile(
    r"A(?:"
    r"(?P<aws>(?:KIA|SIA|BIA|CCA|3T[A-Z0-9])[A-Z2-7]{16})(?![A-Za-z0-9])"
    r"|(?P<google>IzaSy[A-Za-z0-9_\-]{33})"
    + _TAIL
    + r"|(?P<atlassian>TATT3[A-Za-z0-9_=\-]{150,250})(?![A-Za-z0-9_=\-])"
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
        if s and (_ascii_alnum(text[s - 1]) or text[s - 1] in "+/"):
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


# Searched with str.find (faster than re for a literal).
_LITERAL_FORMATS: list[Literal] = [
    Literal("sha256~", (0,), re.compile(rf"sha256~[A-Za-z0-9_\-]{{43}}{_TAIL}"), "OPENSHIFT_TOKEN", "openshift", _random_enough),
    # GitLab runner registration tokens (deprecated, still in old runner configs)
    Literal("GR1348941", (0,), re.compile(rf"GR1348941[A-Za-z0-9_\-]{{20}}{_TAIL}"), "GITLAB_TOKEN", "gitlab", _random_enough),
    # EasyPost production (EZAK) and test (EZTK) API keys
    Literal("EZ", (0,), re.compile(rf"EZ[AT]K[A-Za-z0-9]{{54}}{_TAIL}"), "EASYPOST_API_KEY", "easypost", _random_enough),
    # Facebook/Meta user and page access tokens (EAAC..., EAAM..., EAAG...); Square's are EAAA + 60
    Literal("EAA", (0,), re.compile(rf"EAA[B-Z][A-Za-z0-9]{{90,400}}{_TAIL}"), "FACEBOOK_ACCESS_TOKEN", "facebook", _random_enough),
    # Facebook app access tokens: app id "|" app secret
    Literal("|", (15, 16), re.compile(rf"[0-9]{{15,16}}\|[A-Za-z0-9_\-]{{27}}{_TAIL}"), "FACEBOOK_ACCESS_TOKEN", "facebook", _random_enough),
    # A JWT that was base64-encoded once more (Kubernetes secrets, basic-auth wrappers): "eyJhbGciOi"
    Literal("ZXlKaGJHY2lPaU", (0,), re.compile(r"ZXlKaGJHY2lPaU[A-Za-z0-9+/]{60,4000}={0,2}(?![A-Za-z0-9+/=])"), "JWT", "jwt", None),
    # Grafana API keys (before service accounts): base64 of {"k":"...
    Literal("eyJrIjoi", (0,), re.compile(r"eyJrIjoi[A-Za-z0-9]{70,400}={0,2}(?![A-Za-z0-9+/=])"), "GRAFANA_TOKEN", "grafana", _random_enough),
    # JFrog Artifactory API keys
    Literal("AKCp", (0,), re.compile(rf"AKCp[A-Za-z0-9]{{69}}{_TAIL}"), "ARTIFACTORY_TOKEN", "artifactory", _random_enough),
    # MaxMind license keys: 6 + "_" + 29 + "_mmk"
    Literal("_mmk", (36,), re.compile(rf"[A-Za-z0-9]{{6}}_[A-Za-z0-9]{{29}}_mmk{_TAIL}"), "MAXMIND_LICENSE_KEY", "maxmind", _random_enough),
    Literal("SK", (0,), re.compile(r"SK[a-fA-F0-9]{32}(?![A-Za-z0-9])"), "TWILIO_API_KEY", "twilio", _random_enough),
    Literal("EAAA", (0,), re.compile(rf"EAAA[A-Za-z0-9_\-]{{60}}{_TAIL}"), "SQUARE_TOKEN", "square", _random_enough),
    Literal("dapi", (0,), re.compile(rf"dapi[a-f0-9]{{32}}(?:-[0-9])?{_TAIL}"), "DATABRICKS_TOKEN", "databricks", _random_enough),
    # Azure AD client secrets: 3 characters, a digit, "Q~", 31-34 more.
    Literal("Q~", (4,), re.compile(r"[A-Za-z0-9_~.]{3}[0-9]Q~[A-Za-z0-9_~.\-]{31,34}(?![A-Za-z0-9_~.\-])"), "AZURE_CLIENT_SECRET", "azure"),
    # Telegram bot tokens: bot id, ":AA", 33 more.
    Literal(":AA", (8, 9, 10), re.compile(rf"[0-9]{{8,10}}:AA[A-Za-z0-9_\-]{{33}}{_TAIL}"), "TELEGRAM_BOT_TOKEN", "telegram"),
    # Mailchimp: 32 hex digits, "-us" and the data centre number.
    Literal("-us", (32,), re.compile(r"[a-f0-9]{32}-us[0-9]{1,2}(?![A-Za-z0-9])"), "MAILCHIMP_API_KEY", "mailchimp"),
    # AWS STS session tokens (base64 of a binary blob with a fixed start).
    Literal("IQoJb3JpZ2lu", (0,), re.compile(r"IQoJb3JpZ2lu[A-Za-z0-9+/]{100,3000}={0,2}(?![A-Za-z0-9+/=])"), "AWS_SESSION_TOKEN", "aws"),
    Literal("FwoGZXIvYXdz", (0,), re.compile(r"FwoGZXIvYXdz[A-Za-z0-9+/]{100,3000}={0,2}(?![A-Za-z0-9+/=])"), "AWS_SESSION_TOKEN", "aws"),
]  # fmt: skip


def _anchor(literal: str) -> tuple[bytes, int]:
    """The character of a literal to search for, and its offset in the literal. A one-byte
    bytes.find is a memchr (~1 us per 50 KB); a longer needle costs 40-120 us per 50 KB. So a
    literal with a character that prose rarely has (~ | Q Z K J) is found from that character
    and checked around it; the others are searched whole."""
    for rare in "~|QZKJ":
        at = literal.find(rare)
        if at >= 0:
            return rare.encode(), at
    return b"", 0


_LITERAL_BYTES = [
    (lit, needle, anchor or needle, offset)
    for lit in _LITERAL_FORMATS
    for needle in [lit.literal.encode()]
    for anchor, offset in [_anchor(lit.literal)]
]
# The literals found from a rare character, one search per character: the character, then the
# literal around it checked in the same C search. A loop in Python over every "K" or "Z" of a
# text cost more than all the other literal searches together.
_BY_ANCHOR: dict[bytes, list[tuple[Literal, bytes, int]]] = {}
for _lit, _needle, _anchor_byte, _offset in _LITERAL_BYTES:
    if _anchor_byte != _needle:
        _BY_ANCHOR.setdefault(_anchor_byte, []).append((_lit, _needle, _offset))
_ANCHOR_RXS = [
    (
        re.compile(
            re.escape(anchor)
            + b"(?:"
            + b"|".join(
                (b"(?<=" + re.escape(needle[: offset + 1]) + b")" if offset else b"")
                + (b"(?=" + re.escape(needle[offset + 1 :]) + b")" if needle[offset + 1 :] else b"")
                for _, needle, offset in group
            )
            + b")"
        ),
        group,
    )
    for anchor, group in _BY_ANCHOR.items()
]
_WHOLE_LITERALS = [(lit, needle) for lit, needle, anchor, _ in _LITERAL_BYTES if anchor == needle]


# Formats whose key has a "." inside but no dispatch word: tried at every "." the separator search
# stops at. (offset of the token start from that ".", (offset, literal): a literal the format has
# that far before the ".", checked before any pattern runs; pattern, type, detector, check)
_DOTTED: list[
    tuple[tuple[int, ...], tuple[int, str], re.Pattern[str], str, str, Callable[[str], bool] | None]
] = [
    # Terraform Cloud / HCP Terraform tokens: 14 characters ".atlasv1." 60-70 more
    ((22,), (8, ".atlasv1"), re.compile(r"[A-Za-z0-9]{14}\.atlasv1\.[A-Za-z0-9_=\-]{60,70}(?![A-Za-z0-9_=\-])"), "TERRAFORM_TOKEN", "terraform", None),
    # Airtable personal access tokens: pat + 14 "." 64 hex
    ((17,), (17, "pat"), re.compile(rf"pat[A-Za-z0-9]{{14}}\.[a-f0-9]{{64}}{_TAIL}"), "AIRTABLE_TOKEN", "airtable", None),
    # Discord bot tokens: base64(user id) "." 6 characters "." HMAC (found from the second ".")
    ((31, 32, 33, 34, 35), (7, "."), re.compile(rf"[MNO][A-Za-z0-9_\-]{{23,27}}\.[A-Za-z0-9_\-]{{6}}\.[A-Za-z0-9_\-]{{27,40}}{_TAIL}"), "DISCORD_BOT_TOKEN", "discord", lambda v: _discord_id(v.split(".", 1)[0])),
]  # fmt: skip


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
    if s < 0 or (s and (_ascii_alnum(text[s - 1]) or text[s - 1] in "+/")):
        return None
    m = pattern.match(text, s)
    if m is None or is_placeholder(m.group()) or hand_typed(m.group()) or (check is not None and not check(m.group())):
        return None
    hits.add(s, m.end(), type_, detector)
    return m.end()


def _match_dotted(text: str, hits: Hits, p: int) -> int | None:
    for backs, (probe_back, probe), pattern, type_, detector, check in _DOTTED:
        if p < probe_back or not text.startswith(probe, p - probe_back):
            continue
        for back in backs:
            end = _try_at(text, hits, p - back, pattern, type_, detector, check)
            if end is not None:
                return end
    return None


def _scan_literals(text: str, raw: bytes, hits: Hits) -> None:
    for rx, group in _ANCHOR_RXS:
        done = [0] * len(group)  # per literal: the end of the last key it found
        for m in rx.finditer(raw):
            for k, (lit, needle, offset) in enumerate(group):
                at = m.start() - offset
                if at >= done[k] and raw.startswith(needle, at):
                    end = _try_literal(text, hits, lit, at)
                    if end is not None:
                        done[k] = end
    for lit, needle in _WHOLE_LITERALS:
        pos = 0
        while (at := raw.find(needle, pos)) >= 0:
            end = _try_literal(text, hits, lit, at)
            pos = at + 1 if end is None else end


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


def _scan_webhooks(text: str, raw: bytes, hits: Hits) -> None:
    for literal, rx, type_, detector in _WEBHOOKS:
        pos = 0
        needle = literal.encode()
        while (at := raw.find(needle, pos)) >= 0:
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


def _scan_azure(text: str, raw: bytes, hits: Hits) -> None:
    pos = 0
    while (at := raw.find(b"Key=", pos)) >= 0:
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
    while (at := raw.find(b"sig=", pos)) >= 0:
        pos = at + 4
        m = _AZURE_SAS_RX.match(text, at)
        url = text[max(0, at - 400) : at]
        if m is not None and url[-1:] in ("?", "&") and "sv=20" in url and len(m.group(1)) >= 40:
            hits.add(m.start(1), m.end(1), "AZURE_SAS_TOKEN", "azure")


def detect_service_keys(src: Source, hits: Hits) -> None:
    text, raw = src.text, src.latin1
    for sep in "_-.":
        _scan_separator(text, raw, hits, sep)
    _scan_a(text, hits)
    _scan_literals(text, raw, hits)
    _scan_webhooks(text, raw, hits)
    _scan_azure(text, raw, hits)


SERVICE_KEY_TYPES = (
    {r.type for rules in _BY_WORD.values() for r in rules}
    | {t for t, _ in _A_TYPES.values()}
    | {lit.type for lit in _LITERAL_FORMATS}
    | {t for _, _, _, t, _, _ in _DOTTED}
    | {t for _, _, t, _ in _WEBHOOKS}
    | {
        "AWS_SECRET_KEY",
        "ATLASSIAN_API_TOKEN",
        "DATABRICKS_TOKEN",
        "AZURE_STORAGE_KEY",
        "AZURE_SHARED_ACCESS_KEY",
        "AZURE_SAS_TOKEN",
    }
)
register_types(SECRET, *SERVICE_KEY_TYPES)

DETECTOR = Detector("service_keys", frozenset(SERVICE_KEY_TYPES), detect_service_keys)
