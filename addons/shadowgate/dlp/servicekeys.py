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
  Those live in literalkeys.py; this module holds the dispatch-word rules, family by family.
* Documented examples and fillers (AKIAIOSFODNN7EXAMPLE, sk_test_..., ghp_xxxx...) are not
  findings (validators.is_placeholder).
* Values whose format is not distinctive (Cohere, Mistral, Okta, legacy Cloudflare and Heroku
  keys) are only recognised when assigned to a name that says what they are: credentials.py.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from .literalkeys import DOTTED_AROUND
from .literalkeys import LITERAL_KEY_TYPES
from .literalkeys import TAIL
from .literalkeys import TAIL_B64
from .literalkeys import match_dotted
from .literalkeys import random_enough
from .literalkeys import scan_literal_formats
from .model import SECRET
from .model import Detector
from .model import Hits
from .model import Source
from .model import register_types
from .validators import hand_typed
from .validators import is_placeholder
from .validators import low_variety


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


# --- AI model providers ---------------------------------------------------------------------
_rule(
    "ANTHROPIC_API_KEY",
    "anthropic",
    "sk-",
    rf"sk-ant-(?:api|admin|oat|ort|sid)[0-9]{{2}}-[A-Za-z0-9_\-]{{80,120}}{TAIL}",
)
_rule("OPENROUTER_API_KEY", "openrouter", "sk-", rf"sk-or-v1-[a-f0-9]{{64}}{TAIL}")
_rule("OPENAI_API_KEY", "openai", "sk-", rf"sk-(?:proj|svcacct|admin)-[A-Za-z0-9_\-]{{40,250}}{TAIL}")
_rule("OPENAI_API_KEY", "openai", "sk-", rf"sk-[A-Za-z0-9]{{20}}T3BlbkFJ[A-Za-z0-9]{{20}}{TAIL}")
_rule("OPENAI_API_KEY", "openai", "sk-", rf"sk-[A-Za-z0-9]{{48}}{TAIL}", random_enough)
# sk- plus 32+ random characters: DeepSeek, Moonshot, DashScope and many OpenAI-compatible servers
_rule("GENERIC_SECRET", "sk-key", "sk-", rf"sk-[A-Za-z0-9]{{32,128}}{TAIL}", random_enough)
_rule("GROQ_API_KEY", "groq", "gsk_", rf"gsk_[A-Za-z0-9]{{52}}{TAIL}")
_rule("XAI_API_KEY", "xai", "xai-", rf"xai-[A-Za-z0-9]{{80}}{TAIL}")
_rule("PERPLEXITY_API_KEY", "perplexity", "pplx-", rf"pplx-[A-Za-z0-9]{{48}}{TAIL}")
_rule("REPLICATE_API_TOKEN", "replicate", "r8_", rf"r8_[A-Za-z0-9]{{37}}{TAIL}")
_rule("HUGGINGFACE_TOKEN", "huggingface", "hf_", rf"hf_[A-Za-z]{{34}}{TAIL}")
_rule("HUGGINGFACE_TOKEN", "huggingface", "api_", rf"api_org_[A-Za-z]{{34}}{TAIL}")
_rule("LANGSMITH_API_KEY", "langsmith", "lsv2_", rf"lsv2_(?:pt|sk)_[a-f0-9]{{32}}_[a-f0-9]{{10}}{TAIL}")
_rule("PINECONE_API_KEY", "pinecone", "pcsk_", rf"pcsk_[A-Za-z0-9_]{{50,120}}{TAIL}")
_rule("TAVILY_API_KEY", "tavily", "tvly-", rf"tvly-(?:dev-|prod-)?[A-Za-z0-9]{{32}}{TAIL}")
_rule("GOOGLE_OAUTH_SECRET", "google", "GOCSPX-", rf"GOCSPX-[A-Za-z0-9_\-]{{28}}{TAIL}")
_rule("GOOGLE_OAUTH_TOKEN", "google", "ya29.", rf"ya29\.[A-Za-z0-9_\-]{{30,2048}}{TAIL}")

# --- Code hosting and package registries ----------------------------------------------------
_rule("GITHUB_TOKEN", "github", "ghp_ gho_ ghu_ ghs_ ghr_", rf"gh[pousr]_[A-Za-z0-9]{{36,251}}{TAIL}")
_rule("GITHUB_TOKEN", "github", "github_", rf"github_pat_[A-Za-z0-9_]{{70,251}}{TAIL}")
_rule(
    "GITLAB_TOKEN",
    "gitlab",
    "glpat- gldt- glrt- glptt- glft- glimt- glagent- gloas- glcbt- glsoat- glffct-",
    rf"gl(?:pat|dt|rt|ptt|ft|imt|agent|oas|cbt|soat|ffct)-[A-Za-z0-9_\-]{{20,300}}(?:\.[0-9a-z]{{9}})?{TAIL}",
)
_rule("NPM_TOKEN", "npm", "npm_", rf"npm_[A-Za-z0-9]{{36}}{TAIL}")
_rule("PYPI_TOKEN", "pypi", "pypi-", rf"pypi-AgE[A-Za-z0-9_\-]{{50,1000}}{TAIL}")
_rule("RUBYGEMS_API_KEY", "rubygems", "rubygems_", rf"rubygems_[a-f0-9]{{48}}{TAIL}")
_rule("DOCKER_HUB_TOKEN", "docker", "dckr_", rf"dckr_pat_[A-Za-z0-9_\-]{{27}}{TAIL}")

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
    "SLACK_TOKEN", "slack", "xoxe-", rf"xoxe-[0-9]-[A-Za-z0-9]{{100,300}}{_SLACK_TAIL}", random_enough
)  # refresh tokens
_rule("SLACK_TOKEN", "slack", "xoxe.", rf"xoxe\.xox[bp]-[0-9]-[A-Za-z0-9]{{140,180}}{_SLACK_TAIL}")
_rule("SLACK_TOKEN", "slack", "xapp-", rf"xapp-[0-9]-[A-Z0-9]{{6,20}}-[0-9]{{6,20}}-[a-z0-9]{{30,80}}{TAIL}")
_rule("SENDGRID_API_KEY", "sendgrid", "SG.", rf"SG\.[A-Za-z0-9_\-]{{22}}\.[A-Za-z0-9_\-]{{43}}{TAIL}")
_rule("BREVO_API_KEY", "brevo", "xkeysib-", rf"xkeysib-[a-f0-9]{{64}}-[A-Za-z0-9]{{16}}{TAIL}")
_rule("MAILGUN_API_KEY", "mailgun", "key-", rf"key-[a-f0-9]{{32}}{TAIL}", random_enough)
_rule("LINEAR_API_KEY", "linear", "lin_", rf"lin_api_[A-Za-z0-9]{{40}}{TAIL}")
_rule("NOTION_TOKEN", "notion", "secret_", rf"secret_[A-Za-z0-9]{{43}}{TAIL}", random_enough)
_rule("NOTION_TOKEN", "notion", "ntn_", rf"ntn_[0-9]{{11}}[A-Za-z0-9]{{35}}{TAIL}")
_rule("FIGMA_TOKEN", "figma", "figd_", rf"figd_[A-Za-z0-9_\-]{{40}}{TAIL}")
_rule("POSTMAN_API_KEY", "postman", "PMAK-", rf"PMAK-[a-f0-9]{{24}}-[a-f0-9]{{34}}{TAIL}")
_rule("SENTRY_TOKEN", "sentry", "sntrys_", rf"sntrys_eyJ[A-Za-z0-9+/]{{20,400}}={{0,2}}_[A-Za-z0-9+/]{{43}}{TAIL_B64}")
_rule("SENTRY_TOKEN", "sentry", "sntryu_", rf"sntryu_[a-f0-9]{{64}}{TAIL}")

# --- Payments -------------------------------------------------------------------------------
# Stripe test-mode keys (sk_test_) move no money and are published in docs: not findings.
# Publishable keys (pk_live_) are public by design: they ship in every checkout page.
_rule("STRIPE_KEY", "stripe", "sk_ rk_", rf"[sr]k_(?:live|prod)_[A-Za-z0-9]{{10,247}}{TAIL}")
_rule("STRIPE_KEY", "stripe", "whsec_", rf"whsec_[A-Za-z0-9+/=]{{32,128}}{TAIL}")
_rule("SHOPIFY_TOKEN", "shopify", "shpat_ shpss_ shpca_ shppa_", rf"shp(?:at|ss|ca|pa)_[a-fA-F0-9]{{32}}{TAIL}")
_rule("SQUARE_TOKEN", "square", "sq0atp- sq0csp-", rf"sq0(?:atp-[A-Za-z0-9_\-]{{22}}|csp-[A-Za-z0-9_\-]{{43}}){TAIL}")
_rule(
    "BRAINTREE_ACCESS_TOKEN",
    "braintree",
    "access_",
    rf"access_token\$production\$[0-9a-z]{{16}}\$[0-9a-f]{{32}}{TAIL}",
)

# --- Cloud, infrastructure and observability ------------------------------------------------
_rule("DIGITALOCEAN_TOKEN", "digitalocean", "dop_ doo_ dor_", rf"do[opr]_v1_[a-f0-9]{{64}}{TAIL}")
_rule("DOPPLER_TOKEN", "doppler", "dp.", rf"dp\.(?:pt|st|ct|sa|scim|audit)\.[A-Za-z0-9]{{40,64}}{TAIL}")
_rule("HEROKU_API_KEY", "heroku", "HRKU-", rf"HRKU-AA[A-Za-z0-9_\-]{{58}}{TAIL}")
_rule("VAULT_TOKEN", "vault", "hvs.", rf"hvs\.[A-Za-z0-9_\-]{{90,120}}{TAIL}")
_rule("VAULT_TOKEN", "vault", "hvb.", rf"hvb\.[A-Za-z0-9_\-]{{138,300}}{TAIL}")
_rule("PULUMI_TOKEN", "pulumi", "pul-", rf"pul-[a-f0-9]{{40}}{TAIL}")
_rule("GRAFANA_TOKEN", "grafana", "glc_", rf"glc_[A-Za-z0-9+/]{{32,400}}={{0,2}}{TAIL_B64}")
_rule("GRAFANA_TOKEN", "grafana", "glsa_", rf"glsa_[A-Za-z0-9]{{32}}_[A-Fa-f0-9]{{8}}{TAIL}")
_rule(
    "NEWRELIC_KEY",
    "newrelic",
    "NRAK- NRII- NRJS- NRAA-",
    rf"NR(?:AK-[A-Z0-9]{{27}}|II-[A-Za-z0-9\-]{{32}}|JS-[a-f0-9]{{19}}|AA-[a-f0-9]{{27}}){TAIL}",
)
_rule("DYNATRACE_TOKEN", "dynatrace", "dt0c01.", rf"dt0c01\.[A-Z0-9]{{24}}\.[A-Z0-9]{{64}}{TAIL}")
_rule("CLOUDFLARE_API_TOKEN", "cloudflare", "cfk_ cfut_ cfat_", rf"cf(?:k|ut|at)_[A-Za-z0-9]{{40,60}}{TAIL}")
_rule("CLOUDFLARE_API_TOKEN", "cloudflare", "v1.", rf"v1\.0-[a-f0-9]{{24}}-[a-f0-9]{{146}}{TAIL}")
_rule("FLYIO_TOKEN", "flyio", "fo1_", rf"fo1_[A-Za-z0-9_\-]{{43}}{TAIL}")
_rule("FLYIO_TOKEN", "flyio", "fm1r_ fm1a_ fm2_", rf"fm(?:1[ar]|2)_[A-Za-z0-9+/]{{100,4000}}={{0,3}}{TAIL_B64}")
_rule("VERCEL_TOKEN", "vercel", "vcp_ vci_ vca_ vcr_ vck_", rf"vc[pciark]_[A-Za-z0-9]{{24,100}}{TAIL}")
_rule("SUPABASE_KEY", "supabase", "sbp_", rf"sbp_[a-f0-9]{{40}}{TAIL}")
_rule("SUPABASE_KEY", "supabase", "sb_", rf"sb_secret_[A-Za-z0-9_\-]{{20,80}}{TAIL}")
_rule("PLANETSCALE_TOKEN", "planetscale", "pscale_", rf"pscale_(?:tkn|pw|oauth)_[A-Za-z0-9_=.\-]{{32,64}}{TAIL}")
_rule("PREFECT_API_KEY", "prefect", "pnu_", rf"pnu_[A-Za-z0-9]{{36}}{TAIL}")
_rule(
    "SOURCEGRAPH_TOKEN",
    "sourcegraph",
    "sgp_",
    rf"sgp_(?:(?:[a-fA-F0-9]{{16}}|local)_)?[a-fA-F0-9]{{40}}{TAIL}",
    random_enough,
)
_rule("INTRA42_CLIENT_SECRET", "intra42", "s-", rf"s-s4t2(?:ud|af)-[a-f0-9]{{64}}{TAIL}")
_rule("ONEPASSWORD_TOKEN", "onepassword", "ops_", rf"ops_eyJ[A-Za-z0-9+/]{{250,}}={{0,3}}{TAIL_B64}")
_1P_SECRET_KEY = r"A3-[A-Z0-9]{6}-(?:[A-Z0-9]{11}|[A-Z0-9]{6}-[A-Z0-9]{5})-[A-Z0-9]{5}-[A-Z0-9]{5}-[A-Z0-9]{5}"  # 1Password account secret key
_rule("ONEPASSWORD_TOKEN", "onepassword", "A3-", _1P_SECRET_KEY + TAIL)
_rule("INFRACOST_API_KEY", "infracost", "ico-", rf"ico-[A-Za-z0-9]{{32}}{TAIL}")
_rule("ADOBE_CLIENT_SECRET", "adobe", "p8e-", rf"p8e-[A-Za-z0-9]{{32}}{TAIL}")
_rule("SONAR_TOKEN", "sonar", "squ_ sqp_ sqa_", rf"sq[upa]_[A-Za-z0-9]{{40}}{TAIL}")
# Microsoft Entra ID (Azure AD) refresh tokens: version "0." or "1.", an "A" segment, ".Ag" and a
# long body (hundreds of base64url characters); a refresh token is a login that lasts for months.
_rule(
    "AZURE_ENTRA_REFRESH_TOKEN",
    "azure",
    "0. 1.",
    rf"[01]\.A[A-Za-z0-9_\-]{{50,}}(?:\.[0-9])?\.Ag[A-Za-z0-9_\-]{{250,}}(?:\.A[A-Za-z0-9_\-]{{200,}})?{TAIL}",
)
# Prefixed formats that gitleaks' rule set covers (config/gitleaks.toml), from each vendor's
# published key format; scripts/bench_dlp_rules.py measures them rule by rule.
_rule("CLOJARS_TOKEN", "clojars", "CLOJARS_", rf"CLOJARS_[a-z0-9]{{60}}{TAIL}", random_enough)
_rule("DUFFEL_TOKEN", "duffel", "duffel_", rf"duffel_(?:test|live)_[A-Za-z0-9_\-=]{{43}}{TAIL}", random_enough)
_rule(
    "FLUTTERWAVE_KEY",
    "flutterwave",
    "FLWSECK_ FLWSECK-",
    rf"FLWSECK(?:_TEST)?-(?:[a-h0-9]{{32}}-X|[a-h0-9]{{12}}){TAIL}",
    random_enough,
)
_rule("FRAMEIO_TOKEN", "frameio", "fio-", rf"fio-u-[A-Za-z0-9_\-=]{{64}}{TAIL}", random_enough)
_rule(
    "HARNESS_TOKEN",
    "harness",
    "pat. sat.",
    rf"(?:pat|sat)\.[A-Za-z0-9_\-]{{22}}\.[A-Za-z0-9]{{24}}\.[A-Za-z0-9]{{20}}{TAIL}",
    random_enough,
)
_rule("README_TOKEN", "readme", "rdme_", rf"rdme_[a-z0-9]{{70}}{TAIL}", random_enough)
_rule("SCALINGO_TOKEN", "scalingo", "tk-", rf"tk-us-[A-Za-z0-9_\-]{{48}}{TAIL}", random_enough)
_rule("SETTLEMINT_TOKEN", "settlemint", "sm_", rf"sm_(?:pat|aat|sat)_[A-Za-z0-9]{{16}}{TAIL}", random_enough)
_rule("SHIPPO_TOKEN", "shippo", "shippo_", rf"shippo_(?:live|test)_[a-fA-F0-9]{{40}}{TAIL}", random_enough)
_rule("OCTOPUS_DEPLOY_KEY", "octopus", "API-", rf"API-[A-Z0-9]{{26}}{TAIL}", random_enough)
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
_rule("AGE_SECRET_KEY", "age", "AGE-", rf"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{{58}}{TAIL}")

# Anything of these followed by 15 key characters may end a dispatch word. Literal searches run
# on Source.latin1 (bytes, one per character, so offsets are the text's): a bytes search is a
# memchr, while a str search in a text with any character above U+00FF walks 4-byte units.
# A separator counts only after what its candidates need there (checked in C, not in the Python
# loop): a letter or digit before "_" and "-" (a dispatch word ends so); before ".", one of the
# dispatch words that end in "." or what a dotted format (literalkeys.py) has around its ".". Without
# this, a text of dots or dashes made every character a trip through Python (~5 us each).
_AFTER_SEPARATOR = rb"(?=[A-Za-z0-9_\-.$+/]{15})"
# What the only rule of a "." word has right after the "." ("0.", "1.": Azure Entra refresh tokens;
# "v1.": Cloudflare): "1." and "v1." start every version number of prose.
_DOT_WORD_AFTER = {"0.": rb"A[A-Za-z0-9_\-]{50}", "1.": rb"A[A-Za-z0-9_\-]{50}", "v1.": rb"0-"}
assert all(
    [r.type for r in _BY_WORD[w]] == [t]
    for w, t in (
        ("0.", "AZURE_ENTRA_REFRESH_TOKEN"),
        ("1.", "AZURE_ENTRA_REFRESH_TOKEN"),
        ("v1.", "CLOUDFLARE_API_TOKEN"),
    )
), "a rule for 0. 1. or v1. changed: update _DOT_WORD_AFTER"
_DOT_BEFORE = [
    rb"(?<=(?<![A-Za-z0-9])"
    + re.escape(word[:-1].encode())
    + rb"\.)"
    + (rb"(?=" + _DOT_WORD_AFTER[word] + rb")" if word in _DOT_WORD_AFTER else b"")
    for word in sorted(w for w in _BY_WORD if w.endswith("."))
] + [rb"(?<=" + before.encode() + rb"\.)(?=" + after.encode() + rb")" for before, after in DOTTED_AROUND]
_SEPARATOR_RX = {
    # (the look-behind after the literal: a pattern that starts with one is tried at every
    # position, while one that starts with a literal is a memory search)
    "_": re.compile(rb"_(?<=[A-Za-z0-9]_)" + _AFTER_SEPARATOR),
    "-": re.compile(rb"-(?<=[A-Za-z0-9]-)" + _AFTER_SEPARATOR),
    # (every word and dotted format has a letter, digit, "_" or "-" before its ".": checked before
    # the alternatives, a run of dots costs one test per dot)
    ".": re.compile(rb"\.(?<=[A-Za-z0-9_\-]\.)" + _AFTER_SEPARATOR + rb"(?:" + b"|".join(_DOT_BEFORE) + rb")"),
}


def _accept(rule: Rule, value: str) -> bool:
    if is_placeholder(value) or hand_typed(value) or low_variety(value):
        return False
    return rule.check is None or rule.check(value)


# Every dispatch word is ASCII letters and digits, then its separator: the only word that can end
# at a separator starts where the run of letters and digits before it starts (one search and
# one lookup, instead of a lookup for every word length).
assert all(w[:-1].isascii() and w[:-1].isalnum() for w in _BY_WORD)
_RUN_BEFORE_RX = re.compile(r"(?<![A-Za-z0-9])[A-Za-z0-9]+\Z")
_LONGEST_RUN = max(map(len, _BY_WORD)) - 1


def _match_word(text: str, hits: Hits, p: int) -> int | None:
    """Try the rules of the dispatch word that ends at text[p]; the end of the key found."""
    run = _RUN_BEFORE_RX.search(text, max(0, p - _LONGEST_RUN), p)
    if run is None:
        return None  # no letter or digit before the separator, or more than any word has
    s = run.start()
    rules = _BY_WORD.get(text[s : p + 1])
    if rules is None or (s and text[s - 1] == "."):  # video_box.ico-7a38...png
        return None
    for rule in rules:
        m = rule.pattern.match(text, s)
        if m is not None and _accept(rule, m.group()):
            hits.add(s, m.end(), rule.type, rule.detector)
            return m.end()
    return None


def _scan_separator(text: str, raw: bytes, hits: Hits, sep: str) -> None:
    search = _SEPARATOR_RX[sep].search
    pos = 0
    while (m := search(raw, pos)) is not None:
        end = _match_word(text, hits, m.start())
        if end is None and sep == ".":
            end = match_dotted(text, hits, m.start())
        pos = m.start() + 1 if end is None else end


def detect_service_keys(src: Source, hits: Hits) -> None:
    text, raw = src.text, src.latin1
    for sep in "_-.":
        _scan_separator(text, raw, hits, sep)
    scan_literal_formats(src, hits)


SERVICE_KEY_TYPES = {r.type for rules in _BY_WORD.values() for r in rules} | LITERAL_KEY_TYPES
register_types(SECRET, *SERVICE_KEY_TYPES)

DETECTOR = Detector("service_keys", frozenset(SERVICE_KEY_TYPES), detect_service_keys)
