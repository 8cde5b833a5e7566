"""MCP: text carried in a `blob` whose mimeType says text, through a real mitmdump.

A resource (or an embedded resource in a tool result) may come as base64 `blob` with
`mimeType: text/plain`; the client hands the model its text. DLP scanned results as prompts are
scanned, passing `blob`s by as media, so a secret in such a blob reached the model. Now the blob
is decoded and scanned; it cannot be redacted in place, so a finding to redact refuses the result.
"""

from __future__ import annotations

import gzip
import json

import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tests.adversarial.test_mcp_loop import corp_policy
from tests.adversarial.test_mcp_loop import proxy_before
from tests.test_mcp import CORP
from tests.test_mcp import RESULT_SECRET
from tests.test_mcp import calls
from tests.test_mcp import run

POLICY = corp_policy("{secrets: redact}")


def _server() -> MCPServer:
    server = MCPServer("files", version="1.0")

    @server.resource("file:///notes.txt", mime_type="text/plain")
    def notes() -> bytes:  # the SDK sends bytes as a base64 blob
        return b"\x01\x02 ops notes: the deploy token is " + RESULT_SECRET.encode()

    @server.tool()
    def store(document: str) -> str:
        return "stored"

    @server.resource("file:///readme.txt", mime_type="text/plain")
    def readme() -> bytes:
        return b"nothing secret here"

    return server


@pytest.mark.parametrize("json_response", [True, False], ids=["json", "sse"])
def test_a_secret_in_a_text_blob_refuses_the_result(tmp_path, upstream, test_ca, json_response):
    with proxy_before(tmp_path, upstream, test_ca, _server, POLICY, json_response) as proxy:

        async def body(client: Client) -> tuple[str, bytes]:
            with pytest.raises(MCPError) as refused:
                await client.read_resource("file:///notes.txt")
            clean = await client.read_resource("file:///readme.txt")
            return str(refused.value), clean.contents[0].blob

        refused, clean = run(proxy, CORP, body)
        assert "GITHUB_TOKEN" in refused and RESULT_SECRET not in refused
        assert clean  # a text blob without findings passes as it came
        rows = calls(proxy, "method = 'resources/read'", 2)
        blocked = [r for r in rows if r["decision"] == "block"]
        assert len(blocked) == 1 and blocked[0]["dlp_findings"] == "GITHUB_TOKEN:1"
        assert blocked[0]["rule_id"] == "mcp:corp:dlp"


def test_a_secret_behind_escapes_in_a_json_string_argument_refuses_the_call(tmp_path, upstream, test_ca):
    """A tool argument that is a JSON document: the tool parses it, so `\\u0067hp_...` is the
    token to it; no redaction reaches inside the escapes, so the call is refused."""
    document = '{"note": "deploy", "token": "' + "".join(f"\\u{ord(c):04x}" for c in RESULT_SECRET) + '"}'
    with proxy_before(tmp_path, upstream, test_ca, _server, POLICY, True) as proxy:

        async def body(client: Client) -> tuple[str, str]:
            with pytest.raises(MCPError) as refused:
                await client.call_tool("store", {"document": document})
            plain = await client.call_tool("store", {"document": '{"note": "say \\"hi\\""}'})
            return str(refused.value), plain.content[0].text

        refused, plain = run(proxy, CORP, body)
        assert "GITHUB_TOKEN" in refused and plain == "stored"
        [row] = calls(proxy, "tool_name = 'store' AND decision = 'block'", 1)
        assert (row["rule_id"], row["dlp_findings"]) == ("mcp:corp:dlp", "GITHUB_TOKEN:1")


async def _gzip_endpoint(request: Request) -> Response:
    """A server that compresses its answer though the client (the proxy) asked for identity."""
    call = json.loads(await request.body())
    answer = {
        "jsonrpc": "2.0",
        "id": call["id"],
        "result": {"content": [{"type": "text", "text": f"token {RESULT_SECRET}"}]},
    }
    body = gzip.compress(json.dumps(answer).encode())
    return Response(body, headers={"content-type": "application/json", "content-encoding": "gzip"})


def test_a_compressed_answer_is_read_not_passed_unread(tmp_path, upstream, test_ca):
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "echo", "arguments": {"text": "x"}}}
    with proxy_before(
        tmp_path, upstream, test_ca, _server, POLICY, True, [Route("/gz", _gzip_endpoint, methods=["POST"])]
    ) as proxy:
        with proxy.client("gz-user") as client:
            answer = client.post(
                f"https://{CORP}/gz", json=call, headers={"accept": "application/json, text/event-stream"}
            )
        assert answer.status_code == 200
        assert answer.json()["result"]["content"][0]["text"] == "token [GITHUB_TOKEN_1]"
        [row] = calls(proxy, "user_name = 'gz-user'", 1)
        assert (row["dlp_action"], row["dlp_findings"]) == ("redact", "GITHUB_TOKEN:1")
