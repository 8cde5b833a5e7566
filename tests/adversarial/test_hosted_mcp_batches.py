"""Class 5: a provider-hosted MCP server named inside a batch is checked like one in a call
(red-team F43).

A Message Batch runs each request's `params`, an OpenAI Batch runs each line of its input file:
a `mcp_servers` / `tools: [{type: mcp}]` there makes the provider call that server exactly as in a
plain call, which the `mcp:` allow-list refused while the batch went through. A real mitmdump, the
fake upstream; each test asserts what reached it, the answer and the row.
"""

from __future__ import annotations

import json

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached

POLICY = "mcp:\n  unlisted: block\n  servers:\n    - {id: gh, host: github-mcp.corp.example}\n"
HI = [{"role": "user", "content": "hi"}]


def _anthropic_params(url: str) -> dict:
    return {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": HI,
            "mcp_servers": [{"type": "url", "url": url, "name": "srv"}]}  # fmt: skip


def _batch(url: str) -> bytes:
    clean = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": HI}
    requests = [{"custom_id": "a", "params": clean}, {"custom_id": "b", "params": _anthropic_params(url)}]
    return json.dumps({"requests": requests}).encode()


def test_an_unlisted_server_in_a_message_batch_is_refused(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    url = "https://api.anthropic.com/v1/messages/batches"
    answer, mark = post_marked(proxy, "hosted-batch", _batch("https://evil-mcp.example/sse"), url)
    assert answer.status_code == 403, answer.text[:200]
    assert "mcp:unlisted" in answer.text
    assert not reached(upstream, mark)
    [row] = proxy.rows("user_name = 'hosted-batch'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "mcp:unlisted")
    # The listed server in a batch passes.
    answer, mark = post_marked(proxy, "hosted-batch-ok", _batch("https://github-mcp.corp.example/sse"), url)
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)


def _input_file(server_url: str) -> tuple[bytes, str]:
    tool = {"type": "mcp", "server_label": "x", "server_url": server_url, "require_approval": "never"}
    line = {"custom_id": "1", "method": "POST", "url": "/v1/responses",
            "body": {"model": "gpt-4.1", "input": "hi", "tools": [tool]}}  # fmt: skip
    body = (
        '--b\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nbatch\r\n'
        '--b\r\nContent-Disposition: form-data; name="file"; filename="in.jsonl"\r\n\r\n'
        + json.dumps(line) + "\n\r\n--b--\r\n"
    )  # fmt: skip
    return body.encode(), "multipart/form-data; boundary=b"


def test_an_unlisted_server_in_a_batch_input_file_is_refused(proxy_with, upstream):
    proxy = proxy_with(POLICY)
    body, content_type = _input_file("https://evil-mcp.example/sse")
    answer, mark = post_marked(proxy, "hosted-file", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 403, answer.text[:200]
    assert not reached(upstream, mark)
    [row] = proxy.rows("user_name = 'hosted-file'", expect=1)
    assert (row["decision"], row["rule_id"]) == ("block", "mcp:unlisted")
    body, content_type = _input_file("https://github-mcp.corp.example/sse")
    answer, mark = post_marked(proxy, "hosted-file-ok", body, "https://api.openai.com/v1/files", content_type)
    assert answer.status_code == 200, answer.text[:200]
    assert reached(upstream, mark)
