"""Requests per minute count the calls that run a model (round-6b G15).

An app that counts a prompt's tokens before each Claude call (`/v1/messages/count_tokens`: free,
no generation) or uploads a few files used up its requests_per_minute before its one real call.
Token counts, uploads and other bookkeeping neither count toward the window nor meet it.
"""

from __future__ import annotations

import json

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

POLICY = "budgets:\n  - {id: rpm, per: user, requests_per_minute: 3}\n"
HEADERS = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
MESSAGE = {"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "Summarise the notes."}]}


def test_token_counts_and_uploads_do_not_use_up_requests_per_minute(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    count = json.dumps(MESSAGE).encode()
    for _ in range(4):
        answer, mark = post_marked(
            proxy, "rpm-counts", count, "https://api.anthropic.com/v1/messages/count_tokens", headers=HEADERS
        )
        assert answer.status_code != 429 and reached(upstream, mark), answer.text[:200]
    upload = (
        b'--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nuser_data\r\n'
        b'--b\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n\r\nnotes\r\n--b--\r\n'
    )
    for _ in range(4):
        answer, mark = post_marked(
            proxy, "rpm-counts", upload, "https://api.openai.com/v1/files", "multipart/form-data; boundary=b"
        )
        assert answer.status_code != 429 and reached(upstream, mark), answer.text[:200]
    call = json.dumps({**MESSAGE, "max_tokens": 256}).encode()
    for _ in range(3):
        answer, mark = post_marked(proxy, "rpm-counts", call, "https://api.anthropic.com/v1/messages", headers=HEADERS)
        assert answer.status_code == 200 and reached(upstream, mark), answer.text[:200]
    # The model calls still count: the fourth of the minute is refused.
    answer, mark = post_marked(proxy, "rpm-counts", call, "https://api.anthropic.com/v1/messages", headers=HEADERS)
    assert answer.status_code == 429 and not reached(upstream, mark), answer.text[:200]
