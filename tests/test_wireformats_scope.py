"""DLP scope over a request body (wireformats.scope, .bodyscan, .multipart): every string the
model, a tool or the provider reads, split values, encoded payloads, multipart and JSON lines."""

from __future__ import annotations

import base64
import json
import time

import pytest

from shadowgate.dlp import Placeholders
from shadowgate.dlp import Scanner
from shadowgate.wireformats.bodyscan import BodyScan
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.multipart import parse_multipart

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
TOKEN = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R9s"
EMAIL = "jane.doe@customer-corp.com"
SCANNER = Scanner()


def body_scan(action: str = "redact", metadata: bool = False) -> BodyScan:
    return BodyScan(SCANNER.scan, lambda _: action, Placeholders().placeholder, time.thread_time() + 5, metadata)


def scanned(body, **kwargs) -> tuple[str, BodyScan]:
    scan = body_scan(**kwargs)
    return json.dumps(scan.json(body)), scan


@pytest.mark.parametrize(
    "body",
    [
        {"tools": [{"type": "function", "function": {"name": "f", "description": f"mail {EMAIL}"}}]},
        {"tools": [{"name": "f", "input_schema": {"properties": {"x": {"default": AWS_KEY}}}}]},  # Anthropic
        {"response_format": {"type": "json_schema", "json_schema": {"schema": {"description": TOKEN}}}},
        {"text": {"format": {"type": "json_schema", "schema": {"enum": [EMAIL]}}}},  # Responses
        {"messages": [{"role": "user", "name": EMAIL, "content": "hi"}]},
        {"messages": [{"role": "user", "content": "hi"}], "tool_choice": {"x": {AWS_KEY: 1}}},  # an object key
        {"input": [{"type": "input_image", "image_url": f"https://evil.example/i.png?k={TOKEN}"}]},
        {"messages": [{"content": [{"type": "document", "source": {"type": "text", "data": f"memo {EMAIL}"}}]}]},
        {"input": [{"type": "input_file", "file_url": f"https://evil.example/f?{AWS_KEY}"}]},
        {"model": "gpt-4o", "generationConfig": {"responseSchema": {"title": TOKEN}}},
    ],
)
def test_every_string_the_provider_reads_is_scanned(body):
    out, scan = scanned(body)
    assert AWS_KEY not in out and TOKEN not in out and EMAIL not in out
    assert sum(scan.counts.values()) == 1


@pytest.mark.parametrize("media", ["text/plain", "application/json", "image/png"])
def test_base64_text_is_decoded_scanned_and_re_encoded_whatever_it_claims(media):
    data = base64.b64encode(f"notes: key {AWS_KEY}\n".encode()).decode()
    body = {"input": [{"role": "user", "content": [
        {"type": "input_file", "filename": "a.txt", "file_data": f"data:{media};base64,{data}"},
        {"type": "document", "source": {"type": "base64", "media_type": media, "data": data}},
    ]}]}  # fmt: skip
    out, scan = scanned(body)
    assert scan.counts == {"AWS_ACCESS_KEY": 2}
    parts = json.loads(out)["input"][0]["content"]
    decoded = [base64.b64decode(parts[0]["file_data"].split(",", 1)[1]), base64.b64decode(parts[1]["source"]["data"])]
    assert decoded == [b"notes: key [AWS_ACCESS_KEY_1]\n"] * 2


def test_binary_media_is_not_read_as_text():
    png = base64.b64encode(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40).decode()
    body = {"messages": [{"content": [{"type": "image", "source": {"type": "base64", "data": png}}]}]}
    out, scan = scanned(body)
    assert not scan.counts and json.loads(out) == body


def test_a_secret_split_across_adjacent_strings_is_found_and_redacted_in_place():
    body = {"messages": [
        {"role": "user", "content": [{"type": "text", "text": f"key {AWS_KEY[:9]}"}, {"type": "text", "text": AWS_KEY[9:]}]},
        {"role": "user", "content": TOKEN[:20]},
        {"role": "user", "content": TOKEN[20:] + " thanks"},
    ]}  # fmt: skip
    out, scan = scanned(body)
    messages = json.loads(out)["messages"]
    assert [p["text"] for p in messages[0]["content"]] == ["key [AWS_ACCESS_KEY_1]", ""]
    assert [m["content"] for m in messages[1:]] == ["[GITHUB_TOKEN_1]", " thanks"]
    assert scan.split == 2 and scan.counts == {"AWS_ACCESS_KEY": 1, "GITHUB_TOKEN": 1}


def test_a_split_secret_blocks_under_block():
    body = {"messages": [{"role": "user", "content": AWS_KEY[:10]}, {"role": "user", "content": AWS_KEY[10:]}]}
    _, scan = scanned(body, action="block")
    assert scan.actions == {"block"} and scan.split == 1


def test_metadata_and_user_are_scanned_only_when_the_operator_says_so():
    body = {"user": EMAIL, "metadata": {"ticket": AWS_KEY}, "messages": [{"role": "user", "content": "hi"}]}
    out, scan = scanned(body)
    assert not scan.counts and json.loads(out) == body
    out, scan = scanned(body, metadata=True)
    assert EMAIL not in out and AWS_KEY not in out and scan.counts == {"EMAIL": 1, "AWS_ACCESS_KEY": 1}


def test_a_key_that_cannot_be_renamed_in_place_makes_the_request_unredactable():
    body = {"tool_choice": {AWS_KEY: 1, "[AWS_ACCESS_KEY_1]": 2}}
    _, scan = scanned(body)
    assert scan.unredactable


def _multipart(*parts: tuple[str, str | None, bytes]) -> tuple[bytes, str]:
    out = b""
    for name, filename, data in parts:
        disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--XyZ\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + data + b"\r\n"
    return out + b"--XyZ--\r\n", "multipart/form-data; boundary=XyZ"


def test_multipart_jsonl_and_text_parts_are_scanned_and_rebuilt_around_binary_parts():
    line = {"custom_id": "1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}}  # fmt: skip
    binary = bytes(range(256))
    content, content_type = _multipart(
        ("purpose", None, b"batch"),
        ("file", "batch.jsonl", (json.dumps(line) + "\n" + json.dumps(line)).encode()),
        ("note", None, f"for {EMAIL}".encode()),
        ("image", "x.bin", binary),
    )
    scan = body_scan()
    cleaned = scan.content(content, content_type, None)
    assert cleaned is not None and AWS_KEY.encode() not in cleaned and EMAIL.encode() not in cleaned
    parts = parse_multipart(cleaned, content_type)
    assert [cleaned[p.start : p.end] for p in (parts[0], parts[3])] == [b"batch", binary]
    lines = cleaned[parts[1].start : parts[1].end].decode().split("\n")
    assert [json.loads(x)["body"]["messages"][0]["content"] for x in lines] == ["key [AWS_ACCESS_KEY_1]"] * 2
    assert scan.counts == {"AWS_ACCESS_KEY": 2, "EMAIL": 1}


@pytest.mark.parametrize(
    "content, content_type",
    [
        (b"--XyZ\r\n\r\nno close delimiter", "multipart/form-data; boundary=XyZ"),
        (b"anything", "multipart/form-data"),
        (
            b"--XyZ\r\nContent-Transfer-Encoding: base64\r\n\r\naGk=\r\n--XyZ--\r\n",
            "multipart/form-data; boundary=XyZ",
        ),
    ],
)
def test_a_multipart_body_that_does_not_parse_cannot_be_read(content, content_type):
    with pytest.raises(UndecodableBody):
        body_scan().content(content, content_type, None)


def test_a_plain_text_body_is_scanned_as_text():
    cleaned = body_scan().content(f"summarise: {EMAIL}".encode(), "text/plain", None)
    assert cleaned == b"summarise: [EMAIL_1]"
