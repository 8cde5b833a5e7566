"""Class 2b and 2d: requests the DLP decision never saw, through a real mitmdump.

Endpoints no route knew (files, batches, count_tokens, next month's endpoint), bodies in forms
the parser did not read (multipart JSONL, plain text, UTF-16 JSON, stacked content codings), and
GitHub Copilot's unversioned paths. The policy redacts secrets; each test asserts what reached
the fake upstream, what the client got and the row written.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.adversarial.wire import marker

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
POLICY = "dlp: {secrets: redact, pii: log}\n"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    """The session proxy with this module's policy (and a database of its own) until its last test."""
    return module_proxy_with(POLICY)


def _post(proxy, user: str, url: str, content: bytes, headers: dict[str, str]):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            url, content=content, headers={"x-attack": mark, "authorization": "Bearer sk-test", **headers}
        )
    return answer, mark


def _seen(upstream, mark: str):
    return [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


def test_a_batch_file_upload_is_scanned_line_by_line(gate, upstream):
    line = {"custom_id": "r1", "method": "POST", "url": "/v1/chat/completions",
            "body": {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"deploy with {AWS_KEY}"}]}}  # fmt: skip
    content = (
        b'--b0\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        b'--b0\r\nContent-Disposition: form-data; name="file"; filename="batch.jsonl"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + json.dumps(line).encode() + b"\r\n--b0--\r\n"
    )
    answer, mark = _post(
        gate, "files", "https://api.openai.com/v1/files", content, {"content-type": "multipart/form-data; boundary=b0"}
    )
    [seen] = _seen(upstream, mark)
    assert AWS_KEY.encode() not in seen.body and b"[AWS_ACCESS_KEY_1]" in seen.body
    assert b'name="purpose"\r\n\r\nbatch\r\n' in seen.body  # the other parts pass byte for byte
    assert answer.status_code == 200 and answer.json()["object"] == "file"
    row = _row(gate, "files")
    assert (row["operation"], row["dlp_action"], row["dlp_findings"]) == ("upload_file", "redact", "AWS_ACCESS_KEY:1")


@pytest.mark.parametrize(
    ("user", "url", "body"),
    [
        ("count-tokens", "https://api.anthropic.com/v1/messages/count_tokens",
         {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}),
        ("msg-batches", "https://api.anthropic.com/v1/messages/batches",
         {"requests": [{"custom_id": "a", "params": {"model": "claude-sonnet-4-5", "max_tokens": 9,
                                                     "messages": [{"role": "user", "content": f"key {AWS_KEY}"}]}}]}),
        ("next-month", "https://api.openai.com/v1/agents/run",
         {"model": "gpt-next", "task": {"goal": f"use {AWS_KEY}"}}),
        ("assistants", "https://api.openai.com/v1/threads/thread_1/messages",
         {"role": "user", "content": f"key {AWS_KEY}"}),
    ],
)  # fmt: skip
def test_endpoints_no_route_knew_are_scanned_and_recorded_with_their_model(gate, upstream, user, url, body):
    answer, mark = _post(gate, user, url, json.dumps(body).encode(), {"content-type": "application/json"})
    [seen] = _seen(upstream, mark)
    assert AWS_KEY.encode() not in seen.body and b"[AWS_ACCESS_KEY_1]" in seen.body
    assert answer.status_code in (200, 404)
    row = _row(gate, user)
    assert row["dlp_action"] == "redact"
    expected_model = {"count-tokens": "claude-sonnet-4-5", "msg-batches": "claude-sonnet-4-5", "next-month": "gpt-next"}
    assert row["model"] == expected_model.get(user)


def test_a_plain_text_body_to_an_unknown_endpoint_is_scanned(gate, upstream):
    answer, mark = _post(
        gate, "plain", "https://api.openai.com/v1/notes", f"remember {AWS_KEY}".encode(), {"content-type": "text/plain"}
    )
    [seen] = _seen(upstream, mark)
    assert seen.body == b"remember [AWS_ACCESS_KEY_1]"
    assert _row(gate, "plain")["dlp_action"] == "redact"


CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"why does {AWS_KEY} fail?"}]}


@pytest.mark.parametrize(
    ("user", "content", "encoding"),
    [
        ("utf16", json.dumps(CHAT).encode("utf-16"), None),
        ("utf32be", json.dumps(CHAT).encode("utf-32-be"), None),
        ("gzip-gzip", gzip.compress(gzip.compress(json.dumps(CHAT).encode(), mtime=0), mtime=0), "gzip, gzip"),
        ("x-gzip", gzip.compress(json.dumps(CHAT).encode(), mtime=0), "x-gzip"),
    ],
)
def test_bodies_in_any_encoding_the_upstream_reads_are_decoded_and_scanned(gate, upstream, user, content, encoding):
    headers = {"content-type": "application/json", **({"content-encoding": encoding} if encoding else {})}
    answer, mark = _post(gate, user, "https://api.openai.com/v1/chat/completions", content, headers)
    [seen] = _seen(upstream, mark)
    body = gzip.decompress(seen.body) if seen.headers.get("content-encoding") == "gzip" else seen.body
    assert json.loads(body)["messages"][0]["content"] == "why does [AWS_ACCESS_KEY_1] fail?"
    assert "," not in seen.headers.get("content-encoding", "")  # never a coding the body no longer has
    assert answer.status_code == 200
    row = _row(gate, user)
    assert (row["model"], row["dlp_action"]) == ("gpt-4o-mini", "redact")


@pytest.mark.parametrize(
    ("user", "content", "encoding"),
    [
        ("lzw", json.dumps(CHAT).encode(), "compress"),
        ("fake-gzip", json.dumps(CHAT).encode(), "gzip"),
        ("gzip-tail", gzip.compress(json.dumps(CHAT).encode()) + json.dumps(CHAT).encode(), "gzip"),
    ],
)
def test_a_body_that_cannot_be_decoded_fails_closed(gate, upstream, user, content, encoding):
    headers = {"content-type": "application/json", "content-encoding": encoding}
    answer, mark = _post(gate, user, "https://api.openai.com/v1/chat/completions", content, headers)
    assert answer.status_code == 403 and "DLP fails closed" in answer.json()["error"]["message"]
    assert _seen(upstream, mark) == []
    assert _row(gate, user)["dlp_action"] == "error"


def test_a_broken_multipart_upload_fails_closed(gate, upstream):
    content = b'--b0\r\nContent-Disposition: form-data; name="file"\r\n\r\n' + AWS_KEY.encode()  # no close delimiter
    answer, mark = _post(
        gate,
        "broken-mp",
        "https://api.openai.com/v1/files",
        content,
        {"content-type": "multipart/form-data; boundary=b0"},
    )
    assert answer.status_code == 403 and _seen(upstream, mark) == []


@pytest.mark.parametrize(
    ("user", "url", "case", "stream"),
    [
        ("copilot-responses", "https://api.githubcopilot.com/responses", "github-copilot-responses", False),
        ("copilot-chat", "https://api.business.githubcopilot.com/chat/completions", "github-copilot-chat-stream", True),
    ],
)
def test_github_copilot_calls_are_metered_like_openai_ones(gate, upstream, user, url, case, stream):
    from shadowgate.demo.fakeupstream import load_cases

    expect = load_cases()[case]["expect"]
    body = load_cases()[case]["request"]["body"]
    answer, mark = _post(gate, user, url, json.dumps(body).encode(), {"content-type": "application/json"})
    assert answer.status_code == 200 and _seen(upstream, mark)
    row = _row(gate, user)
    assert (row["provider"], row["operation"], row["streaming"]) == ("github-copilot", "chat", stream)
    assert row["model"] == expect["request"]["model"]
    usage = expect["response"]["usage"]
    assert (row["input_tokens"], row["output_tokens"]) == (usage["input_tokens"], usage["output_tokens"])
    assert not row["usage_estimated"]
