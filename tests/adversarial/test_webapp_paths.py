"""Chat-app endpoints on a respelled path are the endpoints the app's server routes (red-team F54).

The apps sit behind a CDN that normalises a URL before the origin routes it: it decodes
`%63onversation`, resolves `./` and `x/../`, collapses `//`. The web-app catalog matched the path
as sent, so a personal ChatGPT prompt on `/backend-api/f/%63onversation`, or a Claude prompt on
`/api/organizations/<corp>/../<personal>/...`, was no endpoint: forwarded, no account rule, no
row; Codex on `/backend-api/codex/%72esponses` escaped model rules and metering; a Claude upload
on `/api/<org>/./upload` was no upload. The catalog now matches every reading of the path the
API path matches (config/requestpath.py), and reads the org from the server's reading. Through
a real mitmdump, with the request line sent as written (a client library would normalise it):
what reached the upstream, what the client got, and the row.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import http1_request
from tests.adversarial.wire import marker
from tests.adversarial.wire import open_tunnel
from tests.test_webapps_paths import CONVERSATION
from tests.test_webapps_paths import CORP
from tests.test_webapps_paths import PERSONAL
from tests.test_webapps_paths import RESPELLED_CHATGPT_PROMPTS

AWS = "AKIA2OGYBAH6STMMNXNN"
POLICY = (
    f"accounts:\n  claude: {{org_ids: [{CORP}]}}\n  chatgpt: {{workspace_ids: [{CORP}]}}\n"
    "dlp: {secrets: block, pii: log}\n"
    "rules:\n"
    "  - {id: only-corp, match: {category: chat-web, account: [personal, other-workspace, anonymous]}, action: block}\n"
    "  - {id: no-gpt5, match: {model: 'gpt-5*'}, action: block}\n"
)
CHATGPT_PROMPT = json.dumps(
    {"action": "next", "model": "auto", "messages": [{"author": {"role": "user"}, "content": {"parts": ["hi"]}}]}
).encode()


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _send(proxy, upstream, user: str, host: str, target: str, body: bytes, headers: dict[str, str] | None = None):
    """(status the client got, requests that reached the upstream) of one request whose target
    is sent exactly as written, in a tunnel."""
    mark = marker()
    sock, status = open_tunnel(proxy.port, f"{host}:443", user=user)
    assert status == 200
    tls = TlsClient(sock, proxy.ssl_context(), host)
    tls.handshake()
    request = http1_request(host, target, body, {"x-attack": mark, **(headers or {})})
    if headers and "Content-Type" in headers:
        request = request.replace(b"Content-Type: application/json\r\n", b"", 1)
    tls.send(request)
    answer = tls.receive()
    assert answer.startswith(b"HTTP/1.1 "), answer[:200]
    return int(answer.split(b" ", 2)[1]), [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str, table: str = "web_activity") -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1, table=table)
    return row


def _refused(proxy, upstream, user: str, host: str, target: str, body: bytes, headers=None, table="web_activity"):
    """The row of a request the proxy must refuse: a 403, and nothing reached the upstream."""
    status, seen = _send(proxy, upstream, user, host, target, body, headers)
    assert (status, seen) == (403, []), f"{target!r} reached {host}"
    return _row(proxy, user, table)


@pytest.mark.parametrize("target", RESPELLED_CHATGPT_PROMPTS.values(), ids=RESPELLED_CHATGPT_PROMPTS.keys())
def test_a_personal_chatgpt_prompt_on_a_respelled_path_meets_the_account_rule(gate, upstream, target):
    user = f"wp-f54-chatgpt-{marker()[:8]}"
    row = _refused(gate, upstream, user, "chatgpt.com", target, CHATGPT_PROMPT)
    assert (row["endpoint"], row["activity"], row["account_kind"], row["decision"], row["rule_id"]) == (
        "chatgpt.prompt", "prompt", "personal", "block", "only-corp"
    )  # fmt: skip


def test_a_corporate_chatgpt_prompt_on_a_respelled_path_is_forwarded_and_counted(gate, upstream):
    user = "wp-f54-chatgpt-corp"
    status, seen = _send(
        gate, upstream, user, "chatgpt.com", "/backend-api/x/../f/%63onversation", CHATGPT_PROMPT,
        {"ChatGPT-Account-Id": CORP},
    )  # fmt: skip
    assert status != 403 and [s.path for s in seen] == ["/backend-api/x/../f/%63onversation"]  # never rewritten
    row = _row(gate, user)
    assert (row["endpoint"], row["account_kind"], row["decision"], row["text_chars"]) == (
        "chatgpt.prompt", "corporate", "allow", 2
    )  # fmt: skip


@pytest.mark.parametrize(
    "org",
    [f"{CORP}/../{PERSONAL}", f"{CORP}/%2e%2e/{PERSONAL}", f"/{PERSONAL}", f"{PERSONAL};{CORP}"],
    ids=["dotdot", "escaped-dotdot", "double-slash", "param"],
)
def test_a_claude_prompt_is_judged_by_the_org_the_server_reads(gate, upstream, org):
    """The personal org's fingerprint is the one the plain personal path records."""
    tail = f"/chat_conversations/{CONVERSATION}/completion"
    body = json.dumps({"prompt": "hi", "attachments": []}).encode()
    plain_user, user = f"wp-f54-claude-plain-{marker()[:8]}", f"wp-f54-claude-{marker()[:8]}"
    plain = _refused(gate, upstream, plain_user, "claude.ai", f"/api/organizations/{PERSONAL}{tail}", body)
    row = _refused(gate, upstream, user, "claude.ai", f"/api/organizations/{org}{tail}", body)
    assert (row["endpoint"], row["account_kind"], row["decision"], row["rule_id"]) == (
        "claude.prompt", "other-workspace", "block", "only-corp"
    )  # fmt: skip
    assert row["account_fingerprint"] == plain["account_fingerprint"]
    assert row["conversation_fingerprint"] == plain["conversation_fingerprint"]


@pytest.mark.parametrize(
    "target",
    ["/backend-api/codex/%72esponses", "/backend-api/codex/./responses", "/backend-api/x/../codex/responses"],
    ids=["escape", "dot", "dotdot"],
)
def test_codex_on_a_respelled_path_meets_model_rules_and_is_metered(gate, upstream, target):
    body = json.dumps(
        {"model": "gpt-5-codex", "instructions": "x", "stream": False,
         "input": [{"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}]}
    ).encode()  # fmt: skip
    user = f"wp-f54-codex-{marker()[:8]}"
    row = _refused(gate, upstream, user, "chatgpt.com", target, body, {"ChatGPT-Account-Id": CORP}, "ai_requests")
    assert (row["model"], row["wire_format"], row["decision"], row["rule_id"]) == (
        "gpt-5-codex", "openai-responses", "block", "no-gpt5"
    )  # fmt: skip


@pytest.mark.parametrize("target", [f"/api/{CORP}/./upload", f"/api/{CORP}/%75pload", f"/api/x/../{CORP}/upload"])
def test_a_claude_upload_on_a_respelled_path_is_scanned_as_an_upload(gate, upstream, target):
    body = (
        b'--BBB\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\naws " + AWS.encode() + b"\r\n--BBB--\r\n"
    )
    user = f"wp-f54-upload-{marker()[:8]}"
    headers = {"Content-Type": "multipart/form-data; boundary=BBB"}
    row = _refused(gate, upstream, user, "claude.ai", target, body, headers)
    assert (row["endpoint"], row["activity"], row["account_kind"], row["file_type"], row["dlp_findings"]) == (
        "claude.upload", "upload", "corporate", "txt", "AWS_ACCESS_KEY:1"
    )  # fmt: skip


def test_a_respelled_path_that_reads_as_no_endpoint_is_still_scanned(gate, upstream):
    user = "wp-f54-unlisted"
    body = json.dumps({"content": f"aws_access_key_id={AWS}"}).encode()
    target = "/backend-api/f/conversation/../../memories"
    row = _refused(gate, upstream, user, "chatgpt.com", target, body, {"ChatGPT-Account-Id": CORP})
    assert (row["endpoint"], row["dlp_findings"]) == ("unmatched", "AWS_ACCESS_KEY:1")
