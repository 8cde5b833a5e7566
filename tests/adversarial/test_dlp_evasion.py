"""Class 4 (DLP normalisation): a key hidden from the patterns but not from the model.

A real mitmdump with a DLP policy, an OpenAI-shaped chat request through it to the fake upstream,
the key written with zero-width characters, soft hyphens, fullwidth or Cyrillic letters, a
ligature before it, or base64 / percent-encoded. Asserts what reached the upstream and the row.
"""

from __future__ import annotations

import base64
import json
import random
import string
from urllib.parse import quote

import pytest

R = random.Random(1414)
ALNUM = string.ascii_letters + string.digits
KEY = "sk-ant-api03-" + "".join(R.choice(ALNUM) for _ in range(93)) + "AA"


def _fullwidth(s: str) -> str:
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in s)


def _tags(s: str) -> str:
    """Each character as its Unicode tag twin (U+E0041 for "A"): invisible, read by a model (red-team F38)."""
    return "".join(chr(0xE0000 + ord(c)) for c in s)


EVASIONS = {
    "zero_width": KEY[:8] + "\u200b" + KEY[8:50] + "\u2060\u200d" + KEY[50:],
    "soft_hyphens": "\u00ad".join(KEY[i : i + 9] for i in range(0, len(KEY), 9)),
    "fullwidth": _fullwidth(KEY),
    "homoglyph": "ѕk-аnt" + KEY[6:],  # Cyrillic dze and a
    "base64": base64.b64encode(f"my key {KEY}".encode()).decode(),
    "percent": quote(f"my key {KEY}", safe="").replace("-", "%2D"),
    "tags": _tags(KEY),
    "tags_after_visible_prefix": KEY[:13] + _tags(KEY[13:]),
}


def _policy(tmp_path, text: str):
    path = tmp_path / "policy.yaml"
    path.write_text(text)
    return str(path)


def _chat(proxy, user: str, content: str):
    with proxy.client(user) as client:
        return client.post(
            "https://api.openai.com/v1/chat/completions",
            headers={"authorization": "Bearer sk-test"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": content}]},
        )


@pytest.mark.parametrize("name", sorted(EVASIONS))
def test_an_obfuscated_key_is_redacted_before_the_provider_sees_it(proxy, upstream, tmp_path, name):
    hidden = EVASIONS[name]
    prompt = f"ﬁx this ﬂaky call, it uses {hidden} — thanks"
    user = f"evasion_{name}"
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: redact, pii: log}\n")):
        before = len(upstream.seen)
        response = _chat(proxy, user, prompt)
    assert response.status_code == 200
    [seen] = upstream.seen[before:]
    sent = json.loads(seen.body)["messages"][0]["content"]
    assert sent == "ﬁx this ﬂaky call, it uses [ANTHROPIC_API_KEY_1] — thanks"
    assert KEY[20:60] not in seen.body.decode() and hidden not in sent
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"]) == ("ANTHROPIC_API_KEY:1", "redact")


def _selectors(data: bytes) -> str:
    """Bytes as variation selectors after an emoji ("emoji smuggling", red-team F38)."""
    return "😀" + "".join(chr(0xFE00 + b) if b < 16 else chr(0xE0100 + b - 16) for b in data)


def _interleaved(hidden: str, cover: str) -> str:
    """Each hidden character after a character of an innocent cover text (red-team F66)."""
    return "".join(c + h for c, h in zip(cover * (len(hidden) // len(cover) + 1), hidden, strict=False))


_EMOJI_BYTES = [KEY.encode()[i : i + 3] for i in range(0, len(KEY), 3)]
GLUED = {
    "tags_glued": "here:" + _tags(KEY) + "thanks",
    "selectors": "look " + _selectors(KEY.encode()) + " ok",
    "tags_interleaved": _interleaved(_tags(KEY), "Have a lovely day, see you at the standup tomorrow! "),
    "selectors_three_per_emoji": "".join(_selectors(chunk) for chunk in _EMOJI_BYTES),
    "selectors_joined": "\U0001f600" + "\u200d".join(_selectors(KEY.encode())[1:]),
    # A tag inside a visible key, which a reader does not see and a model reads past (red-team F75).
    "tag_inside_a_visible_key": f"my key {KEY[:20]}{_tags('x')}{KEY[20:]}",
    "tag_after_every_character": "my key " + "".join(c + _tags("z") for c in KEY),
    # Round 5 (red-team F90): glued to the word after, an emoji's own invisible characters mixed in.
    "tags_then_visible": "my key " + _tags(KEY[:30]) + KEY[30:],
    "tags_interleaved_with_a_flag": _interleaved(_tags(KEY[:40]), "Great work team ")
    + " \U0001f3f4"
    + _tags("gbeng")
    + "\U000e007f "
    + _interleaved(_tags(KEY[40:]), "see you soon, have fun "),
    "selectors_with_hearts": "".join(_selectors(chunk) + "\u2764\ufe0f" for chunk in _EMOJI_BYTES),
}


@pytest.mark.parametrize(
    "name",
    [
        "zero_width",
        "base64",
        "tags_glued",
        "selectors",
        "tags_interleaved",
        "selectors_three_per_emoji",
        "selectors_joined",
        "tag_inside_a_visible_key",
        "tag_after_every_character",
        "tags_then_visible",
        "tags_interleaved_with_a_flag",
        "selectors_with_hearts",
    ],
)
def test_an_obfuscated_key_is_blocked_when_secrets_block(proxy, upstream, tmp_path, name):
    user = f"evasion_block_{name}"
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: block}\n")):
        before = len(upstream.seen)
        response = _chat(proxy, user, GLUED.get(name) or f"here: {EVASIONS[name]}")
    assert response.status_code == 403 and "ANTHROPIC_API_KEY" in response.text
    assert len(upstream.seen) == before
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"], row["status_code"]) == ("ANTHROPIC_API_KEY:1", "block", 403)


AWS_KEY_ID = "AKIA2OGYBAH6STMMNXNN"


@pytest.mark.parametrize(
    "text",
    [
        f"GET /api/keys/{AWS_KEY_ID}/rotate HTTP/1.1",
        f"see https://console.example.net/iam/users/{AWS_KEY_ID}",
        "png " + base64.b64encode(bytes(range(256)) * 4).decode() + "/" + AWS_KEY_ID,
    ],
    ids=["request-line", "url-path", "after-base64"],
)
def test_an_aws_key_id_after_a_slash_is_found(proxy, upstream, tmp_path, text):
    # "/" and "+" are base64's, so a key after them was never one: a key in a path was not (red-team F46).
    user = f"aws_after_slash_{len(text)}"
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: block}\n")):
        before = len(upstream.seen)
        response = _chat(proxy, user, text)
    assert response.status_code == 403 and "AWS_ACCESS_KEY" in response.text, response.text[:200]
    assert len(upstream.seen) == before


def _key_body(der_head: str, size: int) -> str:
    """A private key's base64 body (its DER head, then key bytes), wrapped at 64 as in a PEM file."""
    data = bytes.fromhex(der_head) + bytes(R.randrange(256) for _ in range(size))
    text = base64.b64encode(data).decode()
    return "\n".join(text[i : i + 64] for i in range(0, len(text), 64))


PKCS8_RSA = _key_body("308204be020100300d06092a864886f70d0101010500048204a8", 1192)
KEY_BODIES = {
    "pkcs8-body": PKCS8_RSA,
    "pkcs1-body": _key_body("308204a40201000282010100", 1100),
    "sec1-ec-body": _key_body("30770201010420", 100),
    "openssh-body": _key_body(b"openssh-key-v1\0\0\0\0\x04none\0\0\0\x04none".hex(), 300),
    "four-dash-armour": f"----BEGIN PRIVATE KEY----\n{PKCS8_RSA}\n----END PRIVATE KEY----",
    # Round 4 (red-team F71): other sizes and curves, whose DER heads differ.
    "pkcs1-rsa1024-body": _key_body("3082025c02010002818100", 580),
    "sec1-p521-body": _key_body("3081dc0201010442", 200),
    "sec1-secp256k1-body": _key_body("30740201010420", 100),
    "pkcs8-p384-body": _key_body("3081b6020100301006072a8648ce3d020106052b81040022", 150),
    "pkcs8-x25519-body": _key_body("302e020100300506032b656e04220420", 32),
    "putty-ppk": "PuTTY-User-Key-File-3: ssh-ed25519\nEncryption: none\nComment: ops\nPublic-Lines: 2\n"
    "AAAAC3NzaC1lZDI1NTE5AAAAIGv3\nQ2hlY2s=\nPrivate-Lines: 1\nAAAAIH3c8b9Xc0Tz1JqY6dVf2Lk0pQm8rN4sT7uW9xY2zA5B\n"
    "Private-MAC: 4f2a\n",
}


@pytest.mark.parametrize("name", list(KEY_BODIES))
def test_a_private_key_without_its_armour_is_found(proxy, upstream, tmp_path, name):
    # The BEGIN/END lines left out of a pasted key file, or written with four dashes (red-team F60).
    user = f"key_body_{name}"
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: block}\n")):
        before = len(upstream.seen)
        response = _chat(proxy, user, f"why does this key fail?\n{KEY_BODIES[name]}\n")
    assert response.status_code == 403 and "PRIVATE_KEY" in response.text, response.text[:200]
    assert len(upstream.seen) == before


def test_a_key_ending_in_a_few_tag_characters_is_found(proxy, upstream, tmp_path):
    # The visible part alone (AKIA and 14 characters) is no key; two tags finish it (round 5
    # re-read: short tag runs were left to the scattered reading, which needs eight).
    text = f"my key {AWS_KEY_ID[:-2]}{_tags(AWS_KEY_ID[-2:])} thanks"
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: block}\n")):
        before = len(upstream.seen)
        response = _chat(proxy, "aws_short_tag_tail", text)
    assert response.status_code == 403 and "AWS_ACCESS_KEY" in response.text, response.text[:200]
    assert len(upstream.seen) == before


# A key cut across messages so that one piece is itself personal data by its shape (W4T5YB is a
# UK postcode): the joined key is the value, the piece is no postcode (red-team F124).
POSTCODE_CUTS = [["AKIAZ7Q", "3M5X2R3", "W4T5YB"], ["AKIAP", "FT7V4SE", "H2KVJ72C"]]


def _post_messages(proxy, user: str, texts: list[str]):
    with proxy.client(user) as client:
        return client.post(
            "https://api.openai.com/v1/chat/completions",
            headers={"authorization": "Bearer sk-test"},
            json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": text} for text in texts]},
        )


@pytest.mark.parametrize("pieces", POSTCODE_CUTS, ids=["W4T-5YB", "H2-KVJ"])
def test_a_key_cut_around_a_postcode_shaped_piece_is_redacted_whole(proxy, upstream, tmp_path, pieces):
    user = "evasion_postcode_" + pieces[-1].lower()
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: redact, pii: redact}\n")):
        before = len(upstream.seen)
        response = _post_messages(proxy, user, pieces)
    assert response.status_code == 200
    [seen] = upstream.seen[before:]
    sent = [m["content"] for m in json.loads(seen.body)["messages"]]
    assert sent == ["[AWS_ACCESS_KEY_1]", "", ""]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["dlp_findings"], row["dlp_action"]) == ("AWS_ACCESS_KEY:1", "redact")


@pytest.mark.parametrize("pieces", POSTCODE_CUTS, ids=["W4T-5YB", "H2-KVJ"])
def test_a_key_cut_around_a_postcode_shaped_piece_is_blocked(proxy, upstream, tmp_path, pieces):
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: block, pii: log}\n")):
        before = len(upstream.seen)
        response = _post_messages(proxy, "evasion_postcode_block", pieces)
    assert response.status_code == 403 and len(upstream.seen) == before


def test_a_postcode_next_to_a_key_in_another_message_is_still_a_postcode(proxy, upstream, tmp_path):
    """The key gives way to nothing it does not cover: a whole key in one message and a postcode
    in the next are two findings, each redacted where it is."""
    user = "evasion_postcode_apart"
    with proxy.options(shadowgate_policy=_policy(tmp_path, "dlp: {secrets: redact, pii: redact}\n")):
        before = len(upstream.seen)
        response = _post_messages(proxy, user, ["key AKIAZ7Q3M5X2R3W4T5YB", "ship to W4T 5YB"])
    assert response.status_code == 200
    [seen] = upstream.seen[before:]
    sent = [m["content"] for m in json.loads(seen.body)["messages"]]
    assert sent == ["key [AWS_ACCESS_KEY_1]", "ship to [UK_POSTCODE_1]"]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert sorted(row["dlp_findings"].split(",")) == ["AWS_ACCESS_KEY:1", "UK_POSTCODE:1"]
