"""Class 4 (normalisation): a known-format key broken into 2-4 pieces by spaces or a line break,
in one string. The scanner joins the pieces of fixed-length formats (dlp/splitkeys.py); through
a real mitmdump the whole broken key is blocked or redacted, breaks included. What is not joined
(variable-length formats, five pieces, a prefix cut inside) is asserted too, so the documented
limit stays the real one."""

from __future__ import annotations

import json
import random
import string

import pytest

from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.dlp import redact
from tests.adversarial.wire import marker

_R = random.Random(14)
_ALNUM = string.ascii_letters + string.digits


def _random(n: int, alphabet: str = _ALNUM) -> str:
    return "".join(_R.choice(alphabet) for _ in range(n))


GITHUB = "ghp_" + _random(36)
GITHUB_PAT = "github_pat_" + _random(22) + "_" + _random(59)
ANTHROPIC = "sk-ant-api03-" + _random(93, _ALNUM + "_-") + "AA"
OPENAI = "sk-proj-" + _random(74, _ALNUM + "_-") + "T3BlbkFJ" + _random(74, _ALNUM + "_-")
AWS = "AKIA" + _random(16, string.ascii_uppercase + "234567")
KEYS = {"GITHUB_TOKEN": GITHUB, "GITHUB_PAT": GITHUB_PAT, "ANTHROPIC_API_KEY": ANTHROPIC, "OPENAI_API_KEY": OPENAI,
        "AWS_ACCESS_KEY": AWS}  # fmt: skip
TYPE_OF = {"GITHUB_PAT": "GITHUB_TOKEN"}
PREFIX_LENGTH = {"GITHUB_TOKEN": 4, "GITHUB_PAT": 11, "ANTHROPIC_API_KEY": 13, "OPENAI_API_KEY": 8, "AWS_ACCESS_KEY": 4}
SCANNER = Scanner()


def _cut(key: str, cuts: list[int], breaks: list[str]) -> str:
    pieces = [key[a:b] for a, b in zip([0, *cuts], [*cuts, len(key)], strict=True)]
    return pieces[0] + "".join(b + p for b, p in zip(breaks, pieces[1:], strict=True))


def _cases():
    for name, key in KEYS.items():
        n = len(key)
        yield name, _cut(key, [n // 2], ["\n"])
        yield name, _cut(key, [n // 3, 2 * n // 3], [" ", "  "])
        yield name, _cut(key, [n // 4, n // 2, 3 * n // 4], ["\r\n", " \n  ", " "])
        yield name, _cut(key, [PREFIX_LENGTH[name]], ["\n"])  # broken right after the prefix


@pytest.mark.parametrize(("name", "broken"), list(_cases()))
def test_a_key_broken_into_pieces_is_found_and_redacted_whole(name, broken):
    text = f"here is the key:\n{broken}\nplease keep it safe"
    [finding] = SCANNER.scan(text)
    assert finding.type == TYPE_OF.get(name, name) and text[finding.start : finding.end] == broken
    safe = redact(text, [finding], Placeholders().for_text(text))
    assert safe == f"here is the key:\n[{finding.type}_1]\nplease keep it safe"


@pytest.mark.parametrize(
    "text",
    [
        "Tokens start with ghp_ and AKIA; sk-proj- keys are longer",  # prefixes in prose
        "ghp_ is the prefix of a personal token, the rest is random",
        f"{GITHUB[:20]}\nthe rest is not here",  # a word where the key should go on
        f"{GITHUB[:20]}\n{GITHUB[20:]}extra",  # the last piece runs past the key's length
        f"{AWS[:10]} {AWS[10:]}ZZ",
        _cut(GITHUB, [8, 16, 24, 32], [" ", " ", " ", " "]),  # five pieces: not joined
        "ghp_abcd efgh ijkl mnop qrst uvwx yz01 2345 6789",  # filler, and more pieces than allowed
        f"{GITHUB[:20]} {GITHUB[20:]}".replace(GITHUB[20:], GITHUB[20:].lower()[:16]),  # a plain word
    ],
)
def test_what_only_looks_broken_is_not_joined(text):
    assert [f for f in SCANNER.scan(text) if f.detector == "split_key"] == []


def test_variable_length_formats_and_a_prefix_cut_inside_are_not_joined():
    stripe = "sk_live_" + _random(40)
    for broken in (f"{stripe[:20]}\n{stripe[20:]}", f"sk-ant-\napi03-{ANTHROPIC[13:]}"):
        assert [f for f in SCANNER.scan(f"key {broken} end") if f.detector == "split_key"] == []


def test_the_joined_pieces_of_documentation_filler_are_not_a_key():
    filler = "ghp_" + "abcdefghijklmnopqrstuvwxyz0123456789"
    assert SCANNER.scan(f"example {filler[:20]}\n{filler[20:]} end") == []


# --- Through a real proxy ----------------------------------------------------------------------

URL = "https://api.openai.com/v1/chat/completions"


def _send(proxy, tmp_path, user: str, policy: str, content: str):
    path = tmp_path / f"{user}.yaml"
    path.write_text(policy)
    mark = marker()
    with proxy.options(shadowgate_policy=str(path)), proxy.client(user) as client:
        answer = client.post(
            URL,
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
            headers={"x-attack": mark, "authorization": "Bearer sk-test"},
        )
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return answer, row, mark


@pytest.mark.parametrize(
    ("user", "broken", "type_"),
    [
        ("split-gh-newline", _cut(GITHUB, [17], ["\n"]), "GITHUB_TOKEN"),
        ("split-aws-spaces", _cut(AWS, [6, 12], [" ", " "]), "AWS_ACCESS_KEY"),
        ("split-openai-4", _cut(OPENAI, [40, 90, 130], ["\n", " ", "\r\n  "]), "OPENAI_API_KEY"),
    ],
)
def test_a_broken_key_is_blocked_through_the_proxy(proxy, upstream, tmp_path, user, broken, type_):
    answer, row, mark = _send(proxy, tmp_path, user, "dlp: {secrets: block}\n", f"debug with {broken} please")
    assert answer.status_code == 403 and type_ in answer.json()["error"]["message"]
    assert [s for s in upstream.seen if s.headers.get("x-attack") == mark] == []
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", f"{type_}:1")


def test_a_broken_key_is_redacted_whole_through_the_proxy(proxy, upstream, tmp_path):
    broken = _cut(ANTHROPIC, [30, 70], ["\n", "  "])
    answer, row, mark = _send(proxy, tmp_path, "split-redact", "dlp: {secrets: redact}\n", f"key {broken} end")
    [seen] = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    assert answer.status_code == 200
    assert json.loads(seen.body)["messages"][0]["content"] == "key [ANTHROPIC_API_KEY_1] end"
    assert ANTHROPIC[30:70].encode() not in seen.body and ANTHROPIC[70:].encode() not in seen.body
    assert (row["dlp_action"], row["dlp_findings"]) == ("redact", "ANTHROPIC_API_KEY:1")
