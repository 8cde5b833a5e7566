"""Issue 14 (DLP, odd encodings): a key written as escapes that no parser on the way undoes, as HTML
character references, as hex or as base32, in a chat prompt through a real mitmdump.

The prompt string the proxy reads (after JSON decoding) holds the literal text `\\x41KIA...`,
`\\u0041KIA...`, `&#65;KIA...`, `414b4941...`: a model reads the key, so DLP must. In block mode
nothing may reach the upstream and the row says block with the finding; in redact mode the
upstream must receive neither the key nor its encoded form.
"""

from __future__ import annotations

import base64
import json
import random
import string

import pytest

R = random.Random(1415)
ALNUM = string.ascii_letters + string.digits
ANTHROPIC = "sk-ant-api03-" + "".join(R.choice(ALNUM) for _ in range(93)) + "AA"
AWS = "AKIA" + "".join(R.choice(string.ascii_uppercase + "234567") for _ in range(16))


def _each(key: str, form: str) -> str:
    return "".join(form % ord(c) for c in key)


# name -> (what the prompt holds, the part of it redaction replaces, the finding type)
ENCODED = {
    "x_escape_first": ("\\x41" + AWS[1:], None, "AWS_ACCESS_KEY"),
    "u_escape_first": ("\\u0041" + AWS[1:], None, "AWS_ACCESS_KEY"),
    "x_escapes": (_each(ANTHROPIC, "\\x%02x"), None, "ANTHROPIC_API_KEY"),
    "u_escapes": (_each(ANTHROPIC, "\\u%04x"), None, "ANTHROPIC_API_KEY"),
    "u_brace_escapes": (_each(AWS, "\\u{%x}"), None, "AWS_ACCESS_KEY"),
    "octal_escapes": (_each(AWS, "\\%03o"), None, "AWS_ACCESS_KEY"),
    "dashes_escaped": (ANTHROPIC.replace("-", "\\x2d"), None, "ANTHROPIC_API_KEY"),
    "html_decimal_first": ("&#65;" + AWS[1:], None, "AWS_ACCESS_KEY"),
    "html_hex_first": ("&#x41;" + AWS[1:], None, "AWS_ACCESS_KEY"),
    "html_all": (_each(ANTHROPIC, "&#%d;"), None, "ANTHROPIC_API_KEY"),
    "html_named": (ANTHROPIC.replace("-", "&hyphen;"), None, "ANTHROPIC_API_KEY"),
    "hex": (ANTHROPIC.encode().hex(), None, "ANTHROPIC_API_KEY"),
    "hex_upper": (AWS.encode().hex().upper(), None, "AWS_ACCESS_KEY"),
    "hex_0x": ("0x" + AWS.encode().hex(), AWS.encode().hex(), "AWS_ACCESS_KEY"),
    "hex_wrapped": (
        "\n".join(ANTHROPIC.encode().hex()[i : i + 60] for i in range(0, 2 * len(ANTHROPIC), 60)),
        None,
        "ANTHROPIC_API_KEY",
    ),
    "base32": (base64.b32encode(ANTHROPIC.encode()).decode(), None, "ANTHROPIC_API_KEY"),
    "base32_lower_unpadded": (base64.b32encode(AWS.encode()).decode().rstrip("=").lower(), None, "AWS_ACCESS_KEY"),
}


def _send(proxy, upstream, tmp_path, user: str, policy: str, prompt: str, raw: bytes | None = None):
    """The chat request with this prompt (or this raw body) through the proxy under this policy:
    the response and what reached the upstream."""
    path = tmp_path / "policy.yaml"
    path.write_text(policy)
    chat = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": prompt}]}
    body = json.dumps(chat).encode() if raw is None else raw
    with proxy.options(shadowgate_policy=str(path)):
        before = len(upstream.seen)
        with proxy.client(user) as client:
            response = client.post(
                "https://api.openai.com/v1/chat/completions",
                headers={"authorization": "Bearer sk-test", "content-type": "application/json"},
                content=body,
            )
    return response, upstream.seen[before:]


def _prompt(hidden: str) -> str:
    return f"please debug this call, it uses\n{hidden}\nthanks"


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_an_encoded_key_is_blocked_when_secrets_block(proxy, upstream, tmp_path, name):
    hidden, _, type_ = ENCODED[name]
    user = f"escapes_block_{name}"
    response, seen = _send(proxy, upstream, tmp_path, user, "dlp: {secrets: block}\n", _prompt(hidden))
    assert response.status_code == 403 and type_ in response.text
    assert seen == []  # nothing reached the provider
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"], row["status_code"]) == (f"{type_}:1", "block", 403)


@pytest.mark.parametrize("name", sorted(ENCODED))
def test_an_encoded_key_is_redacted_before_the_provider_sees_it(proxy, upstream, tmp_path, name):
    hidden, replaced, type_ = ENCODED[name]
    user = f"escapes_redact_{name}"
    response, [seen] = _send(proxy, upstream, tmp_path, user, "dlp: {secrets: redact, pii: log}\n", _prompt(hidden))
    assert response.status_code == 200
    sent = json.loads(seen.body)["messages"][0]["content"]
    assert sent == _prompt(hidden.replace(replaced or hidden, f"[{type_}_1]"))
    key = ANTHROPIC if type_ == "ANTHROPIC_API_KEY" else AWS
    assert key[8:] not in seen.body.decode() and key[8:] not in sent  # neither the key...
    assert (replaced or hidden) not in sent  # ...nor its encoded form
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"]) == (f"{type_}:1", "redact")


def test_a_json_escape_the_parser_undoes_is_found_as_the_key(proxy, upstream, tmp_path):
    """The control: `\\u0041` written as a JSON escape in the body is the letter A after parsing,
    so the plain detector finds the key itself and redacts exactly it."""
    user = "escapes_json_escape"
    body = '{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "id \\u0041' + AWS[1:] + ' ok"}]}'
    response, [seen] = _send(proxy, upstream, tmp_path, user, "dlp: {secrets: redact}\n", "", body.encode())
    assert response.status_code == 200
    assert json.loads(seen.body)["messages"][0]["content"] == "id [AWS_ACCESS_KEY_1] ok"
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"]) == ("AWS_ACCESS_KEY:1", "redact")
