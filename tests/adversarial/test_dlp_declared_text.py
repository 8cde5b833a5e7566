"""Class 4: prompt text carried as a base64 payload that declares itself text, through a real mitmdump.

Gemini `inlineData` with `mimeType: text/plain`, an Anthropic base64 `document` with
`media_type: text/plain`, OpenAI `file_data` and `image_url` data URLs of a text type, in each
format's official shape. The model reads such a payload as text; the proxy used to decide from
the bytes whether it was text, so a few control characters or one byte that is not UTF-8 in a
long payload made it "binary" and left it unscanned. A declared text payload is now read as text
whatever its bytes, and one whose base64 does not decode is refused (DLP fails closed).
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.adversarial import test_dlp_scope
from tests.adversarial.wire import marker

TOKEN = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R9s"
EMAIL = "jane.doe@customer-corp.com"
GEMINI = "https://generativelanguage.googleapis.com/v1beta/models/gemini-2.5-flash:generateContent"
ANTHROPIC = "https://api.anthropic.com/v1/messages"
OPENAI = "https://api.openai.com/v1/chat/completions"
RESPONSES = "https://api.openai.com/v1/responses"

# Ways to make a text file look binary to a judge of bytes: control characters, and one byte
# that is not UTF-8 in a file too long to be scanned raw.
gate = test_dlp_scope.gate
# Base64 of the token with a stray character in it: Python's b64decode (validate=False) and
# other lenient decoders skip it and read the token.
_B64 = base64.b64encode(f"token {TOKEN}".encode()).decode()
JUNK = _B64[:10] + "!" + _B64[10:]  # the same proxy set-up: secrets block, personal data redact

HIDES = {
    "controls": b"\x01\x02" * 40 + f"ops notes\ntoken: {TOKEN}\n".encode(),
    "latin1": "caf\xe9 menu\n".encode("latin-1") + f"token: {TOKEN}\n".encode() + b"ok " * 2000,
}


def _post(proxy, upstream, user: str, url: str, body: dict):
    """(the client's answer, what the upstream got of this request)."""
    mark = marker()
    headers = {"x-attack": mark, "authorization": "Bearer sk-test", "x-api-key": "sk-ant-test", "x-goog-api-key": "g"}
    with proxy.client(user) as client:
        answer = client.post(url, json=body, headers=headers)
    return answer, [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def _bodies(data: bytes) -> dict[str, tuple[str, dict]]:
    """Each format's official shape for a text file (mime type text/plain, or text/csv)."""
    return {
        "gemini": (
            GEMINI,
            {"contents": [{"role": "user", "parts": [
                {"text": "summarise the file"}, {"inlineData": {"mimeType": "text/plain", "data": _b64(data)}}]}]},
        ),
        "anthropic": (
            ANTHROPIC,
            {"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "text/plain", "data": _b64(data)}},
                {"type": "text", "text": "summarise"}]}]},
        ),
        "openai-file": (
            OPENAI,
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"filename": "n.csv", "file_data": f"data:text/csv;base64,{_b64(data)}"}}]}]},
        ),
        "openai-image-url": (
            OPENAI,
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
                {"type": "image_url", "image_url": {"url": f"data:text/plain;base64,{_b64(data)}"}}]}]},
        ),
        "responses-input-file": (
            RESPONSES,
            {"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": "n.txt", "file_data": f"data:text/plain;base64,{_b64(data)}"}]}]},
        ),
    }  # fmt: skip


@pytest.mark.parametrize("hide", sorted(HIDES))
@pytest.mark.parametrize("shape", sorted(_bodies(b"")))
def test_a_secret_in_a_declared_text_payload_is_blocked(gate, upstream, shape, hide):
    url, body = _bodies(HIDES[hide])[shape]
    user = f"declared-{shape}-{hide}"
    answer, seen = _post(gate, upstream, user, url, body)
    assert answer.status_code == 403 and "GITHUB_TOKEN" in answer.text, answer.text[:300]
    assert seen == []
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "GITHUB_TOKEN:1")


def test_a_declared_text_payload_is_redacted_and_reencoded(gate, upstream):
    text = f"owner: {EMAIL}\n".encode("utf-16")  # with a BOM: the file's own encoding is kept
    url, body = _bodies(text)["gemini"]
    answer, [seen] = _post(gate, upstream, "declared-redact", url, body)
    assert answer.status_code == 200
    part = json.loads(seen.body)["contents"][0]["parts"][1]["inlineData"]
    assert part["mimeType"] == "text/plain"
    assert base64.b64decode(part["data"]).decode("utf-16") == "owner: [EMAIL_1]\n"
    [row] = gate.rows("user_name = 'declared-redact'", expect=1)
    assert (row["dlp_action"], row["dlp_findings"]) == ("redact", "EMAIL:1")


def test_base64_with_a_stray_character_is_read_as_a_lenient_decoder_reads_it(gate, upstream):
    body = {"contents": [{"role": "user", "parts": [{"inlineData": {"mimeType": "text/plain", "data": JUNK}}]}]}
    answer, seen = _post(gate, upstream, "declared-junk", GEMINI, body)
    assert answer.status_code == 403 and "GITHUB_TOKEN" in answer.text and seen == []
    [row] = gate.rows("user_name = 'declared-junk'", expect=1)
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "GITHUB_TOKEN:1")


def _escaped(text: str) -> str:
    return "".join(f"\\u{ord(c):04x}" for c in text)


def test_a_secret_escaped_inside_a_json_string_argument_is_blocked(gate, upstream):
    """Function-call arguments are a JSON document in a string: the tool parses it, so
    `\\u0067hp_...` is the token to it, though no scan of the string as it stands sees it."""
    arguments = '{"repo": "corp/app", "token": "' + _escaped(TOKEN) + '"}'
    body = {"model": "gpt-4o-mini", "messages": [
        {"role": "user", "content": "push it"},
        {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function",
                                              "function": {"name": "push", "arguments": arguments}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"}]}  # fmt: skip
    answer, seen = _post(gate, upstream, "nested-escaped", OPENAI, body)
    assert answer.status_code == 403 and "GITHUB_TOKEN" in answer.text and seen == []
    [row] = gate.rows("user_name = 'nested-escaped'", expect=1)
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "GITHUB_TOKEN:1")


def test_a_value_to_redact_that_only_escapes_show_refuses_the_request(gate, upstream):
    """Responses function_call_output: redaction cannot reach inside the escapes, so it refuses;
    a value readable as it stands (even beside escaped quotes) is redacted as usual, once."""
    hidden = '{"owner": "' + _escaped(EMAIL) + '"}'
    body = {"model": "gpt-4o-mini", "input": [{"type": "function_call_output", "call_id": "c1", "output": hidden}]}
    answer, seen = _post(gate, upstream, "nested-redact", RESPONSES, body)
    assert answer.status_code == 403 and seen == []
    visible = json.dumps({"note": 'say "hi"', "owner": EMAIL})
    body = {"model": "gpt-4o-mini", "input": [{"type": "function_call_output", "call_id": "c1", "output": visible}]}
    answer, [seen] = _post(gate, upstream, "nested-visible", RESPONSES, body)
    assert answer.status_code == 200
    assert json.loads(json.loads(seen.body)["input"][0]["output"]) == {"note": 'say "hi"', "owner": "[EMAIL_1]"}
    [row] = gate.rows("user_name = 'nested-visible'", expect=1)
    assert (row["dlp_action"], row["dlp_findings"]) == ("redact", "EMAIL:1")
