"""Chat-app bodies the proxy used to read otherwise than the app's server (red-team F1, F35).

F1: ChatGPT's prompt endpoint took a JSON body Python's json refuses (an integer of more than
4300 digits, which Node and Go read) for text, where a value behind JSON escapes is not found:
`p\\u0061ssword: ...` passed. It is now read as the API path reads it (a long integer kept as its
digits), and a body that looks like JSON but still does not parse (nested past the depth limit)
is refused while DLP needs it (rule shadowgate:body-unparsed), on an unlisted endpoint too.
F35: a Claude prompt in `x-gzip` or stacked `gzip, gzip` went through unread (mitmproxy's decoder
knows one coding per header); it is now decoded as on the API path, and a coding that cannot be
undone is refused while DLP is on. Each test goes through a real mitmdump to the fake upstream
and checks what reached it, what the client got and the web_activity row.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
PASSWORD = "p\\u0061ssword: Xq9!vB7#tL2@pR5z"  # found by its name, which the escape hides from a text scan
BIGINT = ',"pad":1' + "1" * 5000  # > sys.int_max_str_digits: Python's json raises, Node and Go read it
DEEP = ',"pad":' + "[" * 3000 + "]" * 3000  # nested past MAX_JSON_DEPTH
BLOCK = "dlp: {secrets: block, pii: log}\n"
CHATGPT = "https://chatgpt.com/backend-api/f/conversation"
CLAUDE = (
    "https://claude.ai/api/organizations/12345678-1234-1234-1234-123456789abc/chat_conversations/"
    "87654321-4321-4321-4321-cba987654321/completion"
)


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(BLOCK)


def _chatgpt_body(text: str, extra: str = "") -> bytes:
    message = {"id": "m1", "author": {"role": "user"}, "content": {"content_type": "text", "parts": ["@@"]}}
    body = json.dumps({"action": "next", "messages": [message], "model": "auto"}).replace('"@@"', json.dumps(text))
    return (body[:-1].replace("\\\\u", "\\u") + extra + "}").encode()


def _send(proxy, upstream, user: str, url: str, content: bytes, headers: dict[str, str] | None = None):
    """(the client's answer, what the upstream got of this request, the web_activity rows)."""
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            url, content=content, headers={"x-attack": mark, "content-type": "application/json", **(headers or {})}
        )
    seen = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    return answer, seen


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table="web_activity")
    return row


def test_an_escaped_password_in_a_body_with_a_long_integer_is_found(gate, upstream):
    body = _chatgpt_body("my " + PASSWORD, BIGINT)
    assert PASSWORD.encode() in body  # the escape is in the body as sent, not undone by json.dumps
    answer, seen = _send(gate, upstream, "wc-f1-bigint", CHATGPT, body)
    assert seen == [], "the escaped password reached ChatGPT"
    assert answer.status_code == 403 and "PASSWORD" in answer.json()["detail"]
    row = _row(gate, "wc-f1-bigint")
    assert (row["endpoint"], row["parse_status"], row["dlp_action"], row["dlp_findings"]) == (
        "chatgpt.prompt", "ok", "block", "PASSWORD:1"
    )  # fmt: skip


def test_a_clean_prompt_with_a_long_integer_is_read_and_sent(gate, upstream):
    body = _chatgpt_body("what is the capital of France?", BIGINT)
    answer, seen = _send(gate, upstream, "wc-f1-clean", CHATGPT, body)
    assert answer.status_code != 403 and [s.body for s in seen] == [body]
    row = _row(gate, "wc-f1-clean")
    assert (row["parse_status"], row["text_chars"], row["dlp_action"]) == ("ok", 30, None)


def test_a_prompt_nested_past_the_depth_limit_is_refused_unread(gate, upstream):
    body = _chatgpt_body("my " + PASSWORD, DEEP)
    answer, seen = _send(gate, upstream, "wc-f1-deep", CHATGPT, body)
    assert seen == [] and answer.status_code == 400  # as on the API path: a body the proxy cannot parse
    assert "cannot parse" in answer.json()["detail"]  # in ChatGPT's own error shape
    row = _row(gate, "wc-f1-deep")
    assert (row["endpoint"], row["parse_status"], row["decision"], row["rule_id"]) == (
        "chatgpt.prompt", "unparsed", "block", "shadowgate:body-unparsed"
    )  # fmt: skip


def test_a_prompt_nested_past_the_depth_limit_passes_when_dlp_is_off(proxy_with, upstream):
    proxy = proxy_with("rules: []\n")
    body = _chatgpt_body("hello", DEEP)
    answer, seen = _send(proxy, upstream, "wc-f1-deep-nodlp", CHATGPT, body)
    assert answer.status_code != 403 and len(seen) == 1


def test_an_unlisted_endpoint_nested_past_the_depth_limit_is_refused(gate, upstream):
    body = ('{"content":"' + PASSWORD + '"' + DEEP + "}").encode()
    answer, seen = _send(gate, upstream, "wc-f1-unlisted", "https://chatgpt.com/backend-api/memories", body)
    assert seen == [] and answer.status_code == 403 and "cannot parse" in answer.text
    row = _row(gate, "wc-f1-unlisted")
    assert (row["endpoint"], row["dlp_action"], row["status_code"]) == ("unmatched", "error", 403)


def test_a_utf16_prompt_is_read(gate, upstream):
    body = json.dumps({"prompt": f"my aws key is {AWS}", "timezone": "UTC", "attachments": [], "files": []})
    answer, seen = _send(gate, upstream, "wc-utf16", CLAUDE, body.encode("utf-16"))
    assert seen == [] and answer.status_code == 403
    row = _row(gate, "wc-utf16")
    assert (row["endpoint"], row["parse_status"], row["dlp_findings"]) == ("claude.prompt", "ok", "AWS_ACCESS_KEY:1")


def _gzip_twice(data: bytes) -> bytes:
    return gzip.compress(gzip.compress(data))


@pytest.mark.parametrize(
    ("coding", "encode"), [("x-gzip", gzip.compress), ("gzip, gzip", _gzip_twice), ("GZIP", gzip.compress)]
)
def test_a_claude_prompt_in_a_stacked_or_aliased_coding_is_read(gate, upstream, coding, encode):
    user = "wc-f35-" + coding.replace(", ", "-").lower()
    body = json.dumps({"prompt": f"my aws key is {AWS} keep it", "timezone": "UTC", "attachments": [], "files": []})
    answer, seen = _send(gate, upstream, user, CLAUDE, encode(body.encode()), {"content-encoding": coding})
    assert seen == [], f"the {coding} prompt reached Claude unread"
    assert answer.status_code == 403 and answer.json()["error"]["type"] == "permission_error"
    row = _row(gate, user)
    assert (row["endpoint"], row["parse_status"], row["dlp_findings"]) == ("claude.prompt", "ok", "AWS_ACCESS_KEY:1")


def test_a_clean_x_gzip_prompt_is_forwarded_as_sent(gate, upstream):
    body = gzip.compress(json.dumps({"prompt": "hello there", "attachments": [], "files": []}).encode())
    answer, seen = _send(gate, upstream, "wc-f35-clean", CLAUDE, body, {"content-encoding": "x-gzip"})
    assert answer.status_code != 403 and len(seen) == 1
    assert _row(gate, "wc-f35-clean")["text_chars"] == len("hello there")


@pytest.mark.parametrize(
    ("coding", "content"),
    [("x-custom", b'{"prompt": "hi"}'), ("gzip", b"\x1f\x8b\x08\x00 not really gzip")],
    ids=["unknown-coding", "corrupt-gzip"],
)
def test_a_prompt_whose_coding_cannot_be_undone_is_refused(gate, upstream, coding, content):
    user = f"wc-f35-bad-{coding}"
    answer, seen = _send(gate, upstream, user, CLAUDE, content, {"content-encoding": coding})
    assert seen == [] and answer.status_code == 403 and "cannot be read" in answer.text
    row = _row(gate, user)
    assert (row["endpoint"], row["parse_status"], row["dlp_action"]) == ("claude.prompt", "error", "error")


def test_an_unlisted_endpoint_in_x_gzip_is_read(gate, upstream):
    body = gzip.compress(json.dumps({"content": f"aws_access_key_id={AWS}"}).encode())
    url = "https://chatgpt.com/backend-api/memories"
    answer, seen = _send(gate, upstream, "wc-f35-unlisted", url, body, {"content-encoding": "x-gzip"})
    assert seen == [] and answer.status_code == 403
    row = _row(gate, "wc-f35-unlisted")
    assert (row["endpoint"], row["dlp_findings"]) == ("unmatched", "AWS_ACCESS_KEY:1")
