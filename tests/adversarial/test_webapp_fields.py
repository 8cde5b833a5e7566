"""Chat-app prompt fields the catalog's text paths do not name (red-team F33).

Once the catalog's text path found the prompt, nothing else of the body was scanned, but the apps
send the model more: Claude's completion carries the user's custom style (`personalized_styles[].
prompt`) with every message, and ChatGPT's conversation body can carry a client-written assistant
message. A decoy prompt with the key in those passed. Now the style is a text path, and every
other string of the body (object keys too) is scanned as an unlisted endpoint's body is: secrets
in every string of 8 characters or more, personal data in text-like ones. A redaction is written
back in the text paths only; a redacting finding elsewhere refuses the request. Through a real
mitmdump: what reached the upstream, what the client got and the web_activity row.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
FIXTURES = Path(__file__).parent.parent / "fixtures" / "webapps"
CLAUDE = (
    "https://claude.ai/api/organizations/12345678-1234-1234-1234-123456789abc/chat_conversations/"
    "87654321-4321-4321-4321-cba987654321/completion"
)
CHATGPT = "https://chatgpt.com/backend-api/f/conversation"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with("dlp: {secrets: block, pii: block}\n")


def _send(proxy, upstream, user: str, url: str, body: dict, headers: dict[str, str] | None = None):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            url,
            content=json.dumps(body).encode(),
            headers={"x-attack": mark, "content-type": "application/json", **(headers or {})},
        )
    return answer, [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table="web_activity")
    return row


def _chatgpt(user_text: str = "hello") -> dict:
    body = json.loads((FIXTURES / "chatgpt-prompt.json").read_text())["request"]["json"]
    body["messages"][0]["content"]["parts"][1] = user_text
    return body


def _claude(prompt: str = "hello", style: str = "Be concise and formal.") -> dict:
    return {
        "prompt": prompt, "parent_message_uuid": "00000000-0000-4000-8000-000000000000", "timezone": "UTC",
        "attachments": [], "files": [], "rendering_mode": "messages",
        "personalized_styles": [{"type": "custom", "key": "s1", "name": "Mine", "prompt": style}],
    }  # fmt: skip


def test_a_key_in_claudes_style_prompt_is_refused(gate, upstream):
    answer, seen = _send(gate, upstream, "wf-f33-style", CLAUDE, _claude(style=f"my aws key is {AWS} keep it"))
    assert seen == [], "the key in the style prompt (sent to the model with every message) reached Claude"
    assert answer.status_code == 403 and answer.json()["error"]["type"] == "permission_error"
    row = _row(gate, "wf-f33-style")
    assert (row["endpoint"], row["dlp_action"], row["dlp_findings"]) == ("claude.prompt", "block", "AWS_ACCESS_KEY:1")


def _with_assistant_message(body: dict) -> dict:
    assistant = {
        "id": "aaa0",
        "author": {"role": "assistant"},
        "content": {"content_type": "text", "parts": [f"noted: {AWS}"]},
    }
    body["messages"].insert(0, assistant)
    return body


def _with_other_field(body: dict) -> dict:
    body["conversation_mode"]["kind"] = f"aws_access_key_id={AWS}"
    return body


def _with_key_as_name(body: dict) -> dict:
    body["client_contextual_info"] = {AWS: True}
    return body


@pytest.mark.parametrize("plant", [_with_assistant_message, _with_other_field, _with_key_as_name])
def test_a_key_beside_a_decoy_chatgpt_prompt_is_refused(gate, upstream, plant):
    user = "wf-f33-" + plant.__name__.removeprefix("_with_")
    answer, seen = _send(gate, upstream, user, CHATGPT, plant(_chatgpt()))
    assert seen == [] and answer.status_code == 403 and "AWS_ACCESS_KEY" in answer.json()["detail"]
    row = _row(gate, user)
    assert (row["endpoint"], row["parse_status"], row["dlp_findings"]) == ("chatgpt.prompt", "ok", "AWS_ACCESS_KEY:1")


def test_a_clean_prompt_with_its_ids_and_metadata_passes_with_personal_data_blocked(gate, upstream):
    """The body's ids, tokens, model and settings are scanned too: none of them may flag."""
    body = _chatgpt("Summarise the attached quarterly report")
    body["client_contextual_info"] = {"is_dark_mode": True, "time_since_loaded": 42, "page_height": 911}
    body["websocket_request_id"] = "4f1c2a3e-1b2c-4d5e-9f8a-0b1c2d3e4f5a"
    answer, seen = _send(gate, upstream, "wf-f33-clean", CHATGPT, body)
    assert answer.status_code != 403 and len(seen) == 1
    row = _row(gate, "wf-f33-clean")
    assert (row["dlp_findings"], row["dlp_action"]) == (None, None)


def test_an_email_in_a_text_like_field_beside_the_prompt_is_refused(gate, upstream):
    body = _claude(style="always sign my letters as jane.doe@customer-corp.com please")
    answer, seen = _send(gate, upstream, "wf-f33-email", CLAUDE, body)
    assert seen == [] and answer.status_code == 403
    assert _row(gate, "wf-f33-email")["dlp_findings"] == "EMAIL:1"


def rewriting_catalog(folder: Path) -> Path:
    """The catalog with ChatGPT's prompt endpoint marked as proven to take a rewritten body."""
    text = (Path(__file__).parent.parent.parent / "providers.yaml").read_text()
    marked = text.replace(
        "        refuse: {status: 403, json: {detail: '{message}'}}\n",
        "        refuse: {status: 403, json: {detail: '{message}'}}\n        rewrite_ok: true\n",
        1,
    )
    assert marked != text
    path = folder / "providers.yaml"
    path.write_text(marked)
    return path


@pytest.fixture(scope="module")
def rewriting(module_proxy_with, tmp_path_factory):
    path = rewriting_catalog(tmp_path_factory.mktemp("catalog"))
    return module_proxy_with("dlp: {secrets: redact, pii: log}\n", shadowgate_providers=str(path))


def test_a_key_in_the_prompt_is_redacted_where_the_endpoint_takes_it(rewriting, upstream):
    answer, seen = _send(rewriting, upstream, "wf-f33-redact", CHATGPT, _chatgpt(f"aws_access_key_id={AWS}"))
    assert answer.status_code != 403 and len(seen) == 1
    sent = json.loads(seen[0].body)
    assert sent["messages"][0]["content"]["parts"][1] == "aws_access_key_id=[AWS_ACCESS_KEY_1]"
    assert AWS.encode() not in seen[0].body
    assert _row(rewriting, "wf-f33-redact")["dlp_action"] == "redact"


def test_a_key_outside_the_text_paths_cannot_be_redacted_so_it_is_refused(rewriting, upstream):
    body = _with_other_field(_chatgpt(f"aws_access_key_id={AWS}"))
    answer, seen = _send(rewriting, upstream, "wf-f33-redact-elsewhere", CHATGPT, body)
    assert seen == [] and answer.status_code == 403
    row = _row(rewriting, "wf-f33-redact-elsewhere")
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "AWS_ACCESS_KEY:2")
