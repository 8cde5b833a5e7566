"""The declared `charset` of a request body (red-team F14), through a real mitmdump.

The proxy read a JSON body as UTF-8 (or UTF-16/32 as RFC 8259 detects it) whatever charset its
Content-Type declared. Express/body-parser decodes a `utf-*` charset with iconv-lite, UTF-7
included, and aiohttp or Spring any charset: `"+AEEASwBJAEE...-"` is a key to them, `"+AGc-pt-4o"`
the model gpt-4o. A declared charset outside the UTF/ASCII/Latin-1 family that reads the bytes
as other text than the proxy checks (or that the proxy does not know) now makes the body unread:
refused (415, rule shadowgate:body-charset) while DLP or a model rule needs it, allowed when no
control does. One that reads the same text (an ASCII body declared Shift_JIS) passes.

Each test asserts what reached the fake upstream, what the client got and the row written.
"""

from __future__ import annotations

import base64
import json

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
CHAT = "https://api.openai.com/v1/chat/completions"
DLP = "dlp: {secrets: block, pii: log}\n"
NO_GPT4O = "rules:\n  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block}\n"


def _utf7(text: str) -> str:
    return "+" + base64.b64encode(text.encode("utf-16-be")).decode().rstrip("=") + "-"


def _post(proxy, upstream, user: str, body: bytes, content_type: str):
    """(the client's answer, what the upstream got of this request, the row)."""
    mark = marker()
    headers = {"x-attack": mark, "authorization": "Bearer sk-test", "content-type": content_type}
    with proxy.client(user) as client:
        answer = client.post(CHAT, content=body, headers=headers)
    seen = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return answer, seen, row


def _chat(model: str, content: str) -> bytes:
    # Written by hand: json.dumps would escape the non-ASCII characters the tests need as bytes.
    return ('{"model":"' + model + '","messages":[{"role":"user","content":"' + content + '"}]}').encode()


def test_a_utf7_key_is_refused(proxy_with, upstream):
    proxy = proxy_with(DLP)
    answer, seen, row = _post(proxy, upstream, "cs-utf7", _chat("gpt-4o-mini", "key " + _utf7(AWS)),
                              "application/json; charset=utf-7")  # fmt: skip
    assert answer.status_code == 415 and seen == [] and "charset" in answer.text
    assert (row["decision"], row["rule_id"]) == ("block", "shadowgate:body-charset")


def test_a_utf7_model_name_is_refused_under_a_model_rule(proxy_with, upstream):
    proxy = proxy_with(NO_GPT4O)
    answer, seen, row = _post(proxy, upstream, "cs-utf7-model", _chat(_utf7("g") + "pt-4o", "hi"),
                              "application/json; charset=UTF-7")  # fmt: skip
    assert answer.status_code == 415 and seen == [] and row["rule_id"] == "shadowgate:body-charset"


def test_an_ebcdic_body_and_an_unknown_charset_are_refused(proxy_with, upstream):
    proxy = proxy_with(DLP)
    body = _chat("gpt-4o-mini", "key " + AWS)
    for user, data, charset in (("cs-cp037", body.decode().encode("cp037"), "cp037"), ("cs-unknown", body, "x-mine")):
        answer, seen, row = _post(proxy, upstream, user, data, f"application/json; charset={charset}")
        assert answer.status_code == 415 and seen == [] and row["rule_id"] == "shadowgate:body-charset"


def test_a_charset_that_reads_the_same_text_passes_and_is_scanned(proxy_with, upstream):
    proxy = proxy_with(DLP)
    answer, seen, row = _post(
        proxy, upstream, "cs-sjis", _chat("gpt-4o-mini", "hello"), "application/json; charset=shift_jis"
    )
    assert answer.status_code == 200 and len(seen) == 1 and row["model"] == "gpt-4o-mini"
    answer, seen, row = _post(proxy, upstream, "cs-latin1", _chat("gpt-4o-mini", f"caf\u00e9 {AWS}").decode().encode("latin-1"),
                              "application/json; charset=iso-8859-1")  # fmt: skip
    assert answer.status_code == 403 and seen == [] and row["dlp_action"] == "block"


def test_no_control_needs_the_body_so_it_passes(proxy_with, upstream):
    proxy = proxy_with(None)
    answer, seen, row = _post(
        proxy, upstream, "cs-free", _chat("gpt-4o-mini", "key " + _utf7("x")), "application/json; charset=utf-7"
    )
    assert answer.status_code == 200 and len(seen) == 1 and row["decision"] == "allow"


def test_the_model_of_a_body_that_is_not_utf8_is_judged(proxy_with, upstream):
    # Node's JSON reader reads a stray byte as a replacement character: the model is gpt-4o.
    proxy = proxy_with(NO_GPT4O)
    body = json.dumps({"model": "gpt-4o", "messages": [{"role": "user", "content": "hi"}]}).encode()
    answer, seen, row = _post(proxy, upstream, "cs-ff-model", body.replace(b'"hi"', b'"hi\xff"'), "application/json")
    assert answer.status_code == 403 and seen == [] and row["model"] == "gpt-4o"
