"""A key cut across a chat app's prompt strings (red-team F40), through a real mitmdump.

The chat-app scan read each text field and each other string on its own, so an AWS key id cut in
two across ChatGPT's `content.parts`, across two user messages or across two Claude attachments,
or cut in three strings of under 8 characters each on an endpoint the catalog does not list
(`/backend-api/memories`), reached the app with no finding. The apps join those strings into the
model's input, as the API does; the API path scans a body's prompt text joined, and its other
strings joined without the structure between them. The chat-app scan now does the same (the same
code: BodyScan.pieces). Each test asserts what reached the fake upstream, what the client got and
the web_activity row.
"""

from __future__ import annotations

import json
import uuid

import pytest

from tests.adversarial.test_webapp_fields import AWS
from tests.adversarial.test_webapp_fields import CHATGPT
from tests.adversarial.test_webapp_fields import CLAUDE
from tests.adversarial.test_webapp_fields import _chatgpt
from tests.adversarial.test_webapp_fields import _claude
from tests.adversarial.test_webapp_fields import _row
from tests.adversarial.test_webapp_fields import _send
from tests.adversarial.test_webapp_fields import rewriting_catalog

MEMORIES = "https://chatgpt.com/backend-api/memories"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with("dlp: {secrets: block, pii: block}\n")


def _with_parts(*parts: str) -> dict:
    body = _chatgpt()
    body["messages"][0]["content"]["parts"][1:] = list(parts)
    return body


def _in_two_user_messages() -> dict:
    body = _with_parts("my key is " + AWS[:10])
    second = {"id": str(uuid.uuid4()), "author": {"role": "user"}, "content": {"content_type": "text", "parts": []}}
    second["content"]["parts"] = [AWS[10:] + " thanks"]
    body["messages"].append(second)
    return body


def _with_many_strings(body: dict) -> dict:
    """Hundreds of strings beside the prompt: the scan runs on a thread (JOINED_INLINE_STRINGS)."""
    body["client_contextual_info"] = {f"k{i}": "v" for i in range(300)}
    return body


@pytest.mark.parametrize(
    ("user", "body"),
    [
        ("f40-parts", _with_parts(AWS[:10], AWS[10:])),
        ("f40-parts-words", _with_parts("my key is " + AWS[:10], AWS[10:] + " thanks")),
        ("f40-parts-three", _with_parts(AWS[:7], AWS[7:14], AWS[14:])),
        ("f40-two-messages", _in_two_user_messages()),
        ("f40-parts-on-a-thread", _with_many_strings(_with_parts(AWS[:10], AWS[10:]))),
    ],
)
def test_a_key_cut_across_chatgpt_prompt_strings_is_refused(gate, upstream, user, body):
    answer, seen = _send(gate, upstream, user, CHATGPT, body)
    assert seen == [], "the key cut across ChatGPT's prompt strings reached chatgpt.com"
    assert answer.status_code == 403 and "AWS_ACCESS_KEY" in answer.json()["detail"]
    row = _row(gate, user)
    assert (row["endpoint"], row["parse_status"], row["decision"], row["dlp_action"], row["dlp_findings"]) == (
        "chatgpt.prompt", "ok", "allow", "block", "AWS_ACCESS_KEY:1"
    )  # fmt: skip


def test_a_key_cut_across_two_claude_attachments_is_refused(gate, upstream):
    body = _claude("summarise")
    body["attachments"] = [{"extracted_content": AWS[:10]}, {"extracted_content": AWS[10:]}]
    answer, seen = _send(gate, upstream, "f40-claude", CLAUDE, body)
    assert seen == [], "the key cut across two attachments reached claude.ai"
    assert answer.status_code == 403 and answer.json()["error"]["type"] == "permission_error"
    row = _row(gate, "f40-claude")
    assert (row["endpoint"], row["dlp_action"], row["dlp_findings"]) == ("claude.prompt", "block", "AWS_ACCESS_KEY:1")


@pytest.mark.parametrize(
    ("user", "notes"),
    [
        ("f40-unlisted-short", [AWS[:7], AWS[7:14], AWS[14:]]),
        ("f40-unlisted-halves", [AWS[:10], AWS[10:]]),
        # Hundreds of short strings: the joins run on a thread (JOINED_INLINE_STRINGS), as thoroughly.
        ("f40-unlisted-many", [*(f"n{i}" for i in range(400)), AWS[:10], AWS[10:]]),
    ],
)
def test_a_key_cut_across_the_strings_of_an_unlisted_endpoint_is_refused(gate, upstream, user, notes):
    answer, seen = _send(gate, upstream, user, MEMORIES, {"notes": notes})
    assert seen == [], "the key cut across short strings reached chatgpt.com"
    assert answer.status_code == 403 and "company policy does not allow" in answer.text
    row = _row(gate, user)
    assert (row["endpoint"], row["parse_status"], row["dlp_action"], row["dlp_findings"], row["status_code"]) == (
        "unmatched", "unparsed", "block", "AWS_ACCESS_KEY:1", 403
    )  # fmt: skip


def test_prompt_parts_and_short_strings_without_a_key_pass(gate, upstream):
    answer, seen = _send(gate, upstream, "f40-clean", CHATGPT, _with_parts("AKIA starts", "an AWS key id, right?"))
    assert answer.status_code != 403 and len(seen) == 1
    row = _row(gate, "f40-clean")
    assert (row["dlp_findings"], row["dlp_action"]) == (None, None)
    notes = {"notes": ["AKIA", "2OGYBA", "holiday"], "ids": ["4f1c2a3e", "1b2c", "4d5e"]}
    answer, seen = _send(gate, upstream, "f40-clean-unlisted", MEMORIES, notes)
    assert answer.status_code != 403 and [json.loads(s.body) for s in seen] == [notes]


@pytest.fixture(scope="module")
def rewriting(module_proxy_with, tmp_path_factory):
    path = rewriting_catalog(tmp_path_factory.mktemp("catalog"))
    return module_proxy_with("dlp: {secrets: redact, pii: log}\n", shadowgate_providers=str(path))


def test_a_key_cut_across_parts_is_redacted_where_it_lies_where_the_endpoint_takes_it(rewriting, upstream):
    """As on the API path: the placeholder in the first piece, the rest of the value emptied."""
    body = _with_parts("my key is " + AWS[:10], AWS[10:] + " thanks")
    answer, seen = _send(rewriting, upstream, "f40-redact", CHATGPT, body)
    assert answer.status_code != 403 and len(seen) == 1
    sent = json.loads(seen[0].body)
    assert sent["messages"][0]["content"]["parts"][1:] == ["my key is [AWS_ACCESS_KEY_1]", " thanks"]
    assert AWS[:10].encode() not in seen[0].body and AWS[10:].encode() not in seen[0].body
    row = _row(rewriting, "f40-redact")
    assert (row["dlp_action"], row["dlp_findings"]) == ("redact", "AWS_ACCESS_KEY:1")
