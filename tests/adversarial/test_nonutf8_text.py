"""Text that is not UTF-8, in a file upload or a base64 file payload (red-team F18), through a real
mitmdump.

The proxy used to decide a file part or a base64 payload was binary when its bytes were not
UTF-8: one stray 0xFF byte, a Windows-1252 CSV (`José;AKIA...`, what Excel writes on Western
Windows), Shift_JIS or GB18030 text, UTF-16/32 without a byte-order mark, UTF-16 with one whose
first character is not Latin. All are text to the server that stores the file, so each went out
unscanned. Binary is now what a known signature with binary bytes after it, or many control
bytes, says is binary; text in any encoding is read (UTF-8 with each other byte kept, and as
Windows-1252), and a binary blob without a signature has its printable runs scanned.

Each test asserts what reached the fake upstream, what the client got and the row written.
"""

from __future__ import annotations

import base64
import os

import pytest

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
EMAIL = "jane.doe@customer-corp.com"
POLICY = "dlp: {secrets: block, pii: redact}\n"
CJK = "\u65e5\u672c\u8a9e\u306e\u30e1\u30e2"

HIDDEN = {
    "one-ff-byte": f"notes: aws key {AWS}\n".encode() + b"\xff",
    "ff-byte-first": b"\xff" + f"notes: aws key {AWS}\n".encode(),
    "cp1252-csv": f"name;key\r\nJos\u00e9;{AWS}\r\n".encode("cp1252"),
    "shift-jis": f"{CJK} aws key {AWS}\n".encode("shift_jis"),
    "gb18030": f"{CJK} aws key {AWS}\n".encode("gb18030"),
    "utf16le-no-bom": f"{CJK} aws key {AWS}".encode("utf-16-le"),
    "utf16be-no-bom": f"{CJK} aws key {AWS}".encode("utf-16-be"),
    "utf32le-no-bom": f"{CJK} aws key {AWS}".encode("utf-32-le"),
    "utf16-bom-cjk-first": b"\xff\xfe" + f"{CJK} aws key {AWS}".encode("utf-16-le"),
    # Control bytes make it binary without a signature: its printable runs are still read.
    "control-padded": b"\x01\x02\x03" * 200 + f" key {AWS} ".encode() + b"\xff",
    # A signature in front of text is not binary.
    "png-signature-then-text": b"\x89PNG\r\n\x1a\n" + f"notes: aws key {AWS}\n".encode() * 20 + b"\xff",
}
PNG = b"\x89PNG\r\n\x1a\n" + os.urandom(4096)


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _post(proxy, upstream, user: str, url: str, **kw):
    """(the client's answer, what the upstream got of this request, the row)."""
    mark = marker()
    headers = {"x-attack": mark, "authorization": "Bearer sk-test", "x-api-key": "sk-ant-test"}
    with proxy.client(user) as client:
        answer = client.post(url, headers=headers, **kw)
    seen = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return answer, seen, row


def _upload(proxy, upstream, user: str, data: bytes, media_type: str = "text/plain"):
    files = {"file": ("notes.txt", data, media_type)}
    return _post(proxy, upstream, user, "https://api.openai.com/v1/files", files=files, data={"purpose": "assistants"})


@pytest.mark.parametrize("case", list(HIDDEN))
def test_a_text_file_part_that_is_not_utf8_is_scanned(gate, upstream, case):
    answer, seen, row = _upload(gate, upstream, f"nu8-{case}", HIDDEN[case])
    assert answer.status_code == 403 and seen == []
    assert row["dlp_action"] == "block" and "AWS_ACCESS_KEY" in row["dlp_findings"]


def test_a_part_is_read_in_its_declared_charset(gate, upstream):
    utf7 = "+" + base64.b64encode(AWS.encode("utf-16-be")).decode().rstrip("=") + "-"
    answer, seen, row = _upload(gate, upstream, "nu8-utf7-part", f"key {utf7}".encode(), "text/plain; charset=utf-7")
    assert answer.status_code == 403 and seen == [] and row["dlp_action"] == "block"


def test_a_binary_file_passes_as_it_is(gate, upstream):
    answer, seen, row = _upload(gate, upstream, "nu8-png", PNG, "image/png")
    assert answer.status_code == 200 and len(seen) == 1 and PNG in seen[0].body
    assert row["dlp_findings"] is None


def test_a_cp1252_file_is_redacted_with_its_other_bytes_kept(gate, upstream):
    data = f"name;mail\r\nJos\u00e9;{EMAIL}\r\n".encode("cp1252") + b"\x80 \xff"
    answer, seen, row = _upload(gate, upstream, "nu8-redact", data)
    assert answer.status_code == 200 and len(seen) == 1
    assert b"name;mail\r\nJos\xe9;[EMAIL_1]\r\n\x80 \xff" in seen[0].body and EMAIL.encode() not in seen[0].body
    assert row["dlp_action"] == "redact"


def _payloads(data: bytes) -> dict[str, tuple[str, dict]]:
    """Base64 file payloads that do not declare text, in each format's official shape."""
    b64 = base64.b64encode(data).decode()
    return {
        "responses-input-file": (
            "https://api.openai.com/v1/responses",
            {"model": "gpt-4o-mini", "input": [{"role": "user", "content": [
                {"type": "input_file", "filename": "notes.txt", "file_data": f"data:application/octet-stream;base64,{b64}"},
                {"type": "input_text", "text": "summarise"}]}]},
        ),
        "chat-file-data": (
            "https://api.openai.com/v1/chat/completions",
            {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": [
                {"type": "file", "file": {"filename": "notes.txt", "file_data": b64}}]}]},
        ),
        "anthropic-document": (
            "https://api.anthropic.com/v1/messages",
            {"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": b64}},
                {"type": "text", "text": "summarise"}]}]},
        ),
    }  # fmt: skip


@pytest.mark.parametrize("shape", list(_payloads(b"")))
@pytest.mark.parametrize("case", ["one-ff-byte", "cp1252-csv", "utf16-bom-cjk-first"])
def test_a_base64_payload_that_is_not_utf8_is_scanned(gate, upstream, shape, case):
    data = HIDDEN[case] + b" padding" * 600  # past the size under which the base64 itself is scanned
    url, body = _payloads(data)[shape]
    answer, seen, row = _post(gate, upstream, f"nu8-b64-{shape}-{case}", url, json=body)
    assert answer.status_code == 403 and seen == []
    assert row["dlp_action"] == "block" and "AWS_ACCESS_KEY" in row["dlp_findings"]


def test_a_binary_base64_payload_passes(gate, upstream):
    url, body = _payloads(PNG)["anthropic-document"]
    answer, seen, row = _post(gate, upstream, "nu8-b64-png", url, json=body)
    assert answer.status_code == 200 and len(seen) == 1 and row["dlp_findings"] is None
