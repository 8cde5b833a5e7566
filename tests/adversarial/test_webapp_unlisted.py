"""Chat-app endpoints the catalog does not list (red team F5), through a real mitmdump.

A request to ChatGPT or Claude that matches none of the catalog's web_apps endpoints (memories,
project docs, a conversation's PATCHed title) used to be scanned only in strings with a space,
so `{"content": "aws_access_key_id=AKIA..."}` reached the app unscanned, with no row. Every
string of 8 characters or more is now scanned for secrets; personal data still only in
text-like strings, so the apps' ids and telemetry neither flag nor break the app. Each test
asserts what reached the fake upstream, what the client got and the web_activity row.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import marker

AWS = "AKIA2OGYBAH6STMMNXNN"
GHP = "ghp_R7mK2pX9vL4qW8nT3yB6cF1hJ5sD0gA2eZ4u"
ORG = "0f6a3c1e-5b7d-4e2a-9c8f-1d2e3f4a5b6c"


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with("dlp: {secrets: block, pii: block}\n")


def _send(proxy, upstream, user: str, method: str, url: str, body: dict):
    """(the client's answer, what the upstream got of this request, the web_activity rows)."""
    mark = marker()
    with proxy.client(user) as client:
        answer = client.request(
            method,
            url,
            content=json.dumps(body).encode(),
            headers={"x-attack": mark, "content-type": "application/json"},
        )
    seen = [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    return answer, seen


def _rows(proxy, user: str, expect: int | None = 1) -> list[dict]:
    return proxy.rows(f"user_name = '{user}'", expect=expect, table="web_activity", timeout=10 if expect else 2)


@pytest.mark.parametrize(
    ("user", "method", "url", "body", "found"),
    [
        ("f5-memories", "POST", "https://chatgpt.com/backend-api/memories",
         {"content": f"aws_access_key_id={AWS}"}, "AWS_ACCESS_KEY:1"),
        ("f5-memories-bare", "POST", "https://chatgpt.com/backend-api/memories", {"content": AWS}, "AWS_ACCESS_KEY:1"),
        ("f5-title", "PATCH", "https://chatgpt.com/backend-api/conversation/abc", {"title": AWS}, "AWS_ACCESS_KEY:1"),
        ("f5-claude-doc", "POST", f"https://claude.ai/api/organizations/{ORG}/projects/p1/docs",
         {"file_name": "a.txt", "content": f"token={GHP}"}, "GITHUB_TOKEN:1"),
        ("f5-key-name", "POST", "https://chatgpt.com/backend-api/settings", {GHP: True}, "GITHUB_TOKEN:1"),
    ],
)  # fmt: skip
def test_a_secret_without_a_space_on_an_unlisted_endpoint_is_refused(gate, upstream, user, method, url, body, found):
    answer, seen = _send(gate, upstream, user, method, url, body)
    assert seen == [], "the key reached the chat app unscanned"
    assert answer.status_code == 403 and "company policy does not allow" in answer.text
    [row] = _rows(gate, user)
    assert (row["endpoint"], row["parse_status"], row["dlp_action"], row["dlp_findings"], row["status_code"]) == (
        "unmatched", "unparsed", "block", found, 403
    )  # fmt: skip


def test_a_secret_logged_on_an_unlisted_endpoint_passes_with_a_row(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: log, pii: log}\n")
    body = {"content": f"aws_access_key_id={AWS}"}
    answer, seen = _send(proxy, upstream, "f5-log", "POST", "https://chatgpt.com/backend-api/memories", body)
    # Forwarded as it came (the fake app answers 404 to a path it does not serve).
    assert answer.status_code != 403 and [json.loads(s.body) for s in seen] == [body]
    [row] = _rows(proxy, "f5-log")
    assert (row["endpoint"], row["dlp_action"], row["dlp_findings"]) == ("unmatched", "log", "AWS_ACCESS_KEY:1")


def test_ids_tokens_and_the_users_own_email_in_telemetry_pass_without_a_row(gate, upstream):
    """Personal data in strings that are not text (the signed-in user in every telemetry batch),
    ids and anti-bot tokens: no finding, so nothing refused and no row."""
    body = {
        "events": [{"event": "page_view", "user_email": "jane.doe@customer-corp.com", "id": "6f1c2a3e-1b2c-4d5e"}],
        "p": f"gAAAAAB{AWS}eyJhbGciOi",
        "session": "d41d8cd98f00b204e9800998ecf8427e",
    }
    answer, seen = _send(gate, upstream, "f5-telemetry", "POST", "https://chatgpt.com/ces/v1/t", body)
    assert answer.status_code != 403 and len(seen) == 1
    assert _rows(gate, "f5-telemetry", expect=None) == []


def test_personal_data_in_text_on_an_unlisted_endpoint_is_still_refused(gate, upstream):
    body = {"content": "please remember that my email is jane.doe@customer-corp.com"}
    answer, seen = _send(gate, upstream, "f5-pii-text", "POST", "https://chatgpt.com/backend-api/memories", body)
    assert seen == [] and answer.status_code == 403
    [row] = _rows(gate, "f5-pii-text")
    assert (row["dlp_action"], row["dlp_findings"]) == ("block", "EMAIL:1")


def test_a_scan_that_runs_out_of_time_on_an_unlisted_endpoint_fails_closed(proxy_with, upstream):
    """The scan used to raise out of the hook, and mitmproxy forwards the request of a hook that raised."""
    proxy = proxy_with("dlp: {secrets: block, budget_ms: 0.000001}\n")
    body = {"content": "x" * 5000, "more": [f"line {i} of the note" for i in range(200)]}
    answer, seen = _send(proxy, upstream, "f5-timeout", "POST", "https://chatgpt.com/backend-api/memories", body)
    assert seen == [] and answer.status_code == 403 and "fails closed" in answer.text
    [row] = _rows(proxy, "f5-timeout")
    assert (row["endpoint"], row["dlp_action"], row["status_code"]) == ("unmatched", "error", 403)


MULTIPART_UPLOADS = {
    # A file part (project knowledge, a GPT's knowledge file): in no form field (red-team F47).
    "claude-project-doc": (f"https://claude.ai/api/organizations/{ORG}/project_docs", "form-data",
                           'name="file"; filename="notes.txt"', "text/plain"),
    "chatgpt-notes": ("https://chatgpt.com/backend-api/notes", "form-data",
                      'name="file"; filename="notes.csv"', "text/csv"),
    # multipart/mixed: a text part without a field name.
    "chatgpt-mixed": ("https://chatgpt.com/backend-api/notes", "mixed", "", "text/plain"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(MULTIPART_UPLOADS))
def test_a_file_sent_multipart_to_an_unlisted_endpoint_is_scanned(gate, upstream, case):
    url, subtype, disposition, part_type = MULTIPART_UPLOADS[case]
    head = f"Content-Disposition: form-data; {disposition}\r\n" if disposition else ""
    body = (f"--mpb\r\n{head}Content-Type: {part_type}\r\n\r\nowner,key\r\nops,aws {AWS}\r\n--mpb--\r\n").encode()
    mark = marker()
    user = f"f47-{case}"
    with gate.client(user) as client:
        answer = client.post(
            url, content=body, headers={"x-attack": mark, "content-type": f"multipart/{subtype}; boundary=mpb"}
        )
    assert answer.status_code == 403, answer.text[:200]
    assert not [s for s in upstream.seen if s.headers.get("x-attack") == mark]
    [row] = _rows(gate, user)
    assert (row["endpoint"], row["dlp_action"], row["dlp_findings"]) == ("unmatched", "block", "AWS_ACCESS_KEY:1")
