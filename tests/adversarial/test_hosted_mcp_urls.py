"""Class 5: a provider-hosted MCP server URL names one host to every parser (red-team F36).

`https://evil.example\\@github-mcp.corp.example/sse` was the listed host to Python's urlsplit and
evil.example to a WHATWG parser (browsers, Node's `new URL`, the TypeScript MCP SDK), which the
provider's MCP client may be. A URL that parsers may read as different hosts (userinfo, a
backslash, tabs and newlines, extra or missing slashes, another scheme, an escaped or non-ASCII
host) is refused whatever the allow-list says; a plain URL of the listed host still goes through.
A real mitmdump, the fake upstream; each test asserts what reached it, the answer and the row.
"""

from __future__ import annotations

import json

import pytest

from tests.adversarial.calls import post_marked
from tests.adversarial.calls import reached
from tests.adversarial.wire import marker

POLICY = "mcp:\n  unlisted: block\n  servers:\n    - {id: gh, host: github-mcp.corp.example}\n"
LISTED = "github-mcp.corp.example"
RESPONSES = "https://api.openai.com/v1/responses"
MESSAGES = "https://api.anthropic.com/v1/messages"
SPELLINGS = {
    "backslash-userinfo": f"https://evil.example\\@{LISTED}/sse",  # WHATWG: host evil.example
    "backslash-path": f"https://{LISTED}\\@evil.example/sse",
    "userinfo": f"https://evil.example@{LISTED}/sse",
    "userinfo-port": f"https://{LISTED}:443@evil.example/sse",
    "tab-in-host": f"https://evil.exam\tple@{LISTED}/sse",
    "newline": f"https://{LISTED}\n/sse",
    "leading-space": f" https://{LISTED}/sse",
    "three-slashes": "https:///evil.example/sse",  # WHATWG skips the extra slash
    "no-slashes": "https:evil.example/sse",  # WHATWG: https://evil.example/
    "percent-host": "https://github-mcp%2Ecorp.example/sse",  # WHATWG decodes it
    "fullwidth-host": "https://ｅvil.example/sse",  # WHATWG maps it (IDNA)
    "other-scheme": f"ws://{LISTED}/sse",
    "no-scheme": f"//{LISTED}/sse",
}


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    return module_proxy_with(POLICY)


def _responses(url: str) -> bytes:
    tool = {
        "type": "mcp",
        "server_label": "x",
        "server_url": url,
        "require_approval": "never",
        "allowed_tools": ["search"],
    }
    return json.dumps({"model": "gpt-4o-mini", "input": "hi", "tools": [tool]}).encode()


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


@pytest.mark.parametrize("url", list(SPELLINGS.values()), ids=list(SPELLINGS))
def test_a_server_url_parsers_may_read_otherwise_is_refused(gate, upstream, url):
    user = f"hmu-{list(SPELLINGS.values()).index(url)}"
    answer, mark = post_marked(gate, user, _responses(url), RESPONSES)
    assert not reached(upstream, mark)
    assert answer.status_code == 403
    assert answer.json()["error"]["message"].startswith("shadowgate:")
    row = _row(gate, user)
    assert (row["decision"], row["rule_id"]) == ("block", "mcp:server-url")


def test_the_listed_server_by_a_plain_url_goes_through(gate, upstream):
    answer, mark = post_marked(gate, "hmu-ok", _responses("HTTPS://GitHub-MCP.corp.example:443/sse?q=a@b#x"), RESPONSES)
    assert reached(upstream, mark)
    assert answer.status_code == 200
    assert _row(gate, "hmu-ok")["decision"] == "allow"


def test_an_anthropic_mcp_connector_url_with_a_backslash_is_refused(gate, upstream):
    mark = marker()
    body = {"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "hi"}],
            "mcp_servers": [{"type": "url", "url": f"https://evil.example\\@{LISTED}/sse", "name": "gh",
                             "tool_configuration": {"allowed_tools": ["search"]}}]}  # fmt: skip
    with gate.client("hmu-anthropic") as client:
        answer = client.post(
            MESSAGES,
            content=json.dumps(body).encode(),
            headers={"content-type": "application/json", "x-api-key": "sk-ant-test", "x-attack": mark},
        )
    assert not reached(upstream, mark)
    assert answer.status_code == 403
    assert answer.json()["type"] == "error"  # Anthropic's error shape
    assert _row(gate, "hmu-anthropic")["rule_id"] == "mcp:server-url"
