"""MCP over WebSocket (issue 14): the tool policy, DLP, approval and records of the HTTP
transports hold for JSON-RPC carried in WebSocket messages, through a real mitmdump.

The official SDK's client and server talk over a WebSocket (tests/support/mcp_ws.py); raw frames
cut by hand try fragmentation, batches, leading whitespace, escaped and case-folded keys, binary
messages and other encodings against a recording server that runs whatever JSON it reads.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from mcp import Client
from mcp.shared.exceptions import MCPError
from mcp.types import Implementation

from tests.conftest import Proxy
from tests.conftest import start_proxy
from tests.support.mcp_ws import CONTINUATION
from tests.support.mcp_ws import TEXT
from tests.support.mcp_ws import RawWebSocket
from tests.support.mcp_ws import recording_route
from tests.support.mcp_ws import sdk_route
from tests.support.mcp_ws import ws_transport
from tests.support.receivers import Webhook
from tests.support.receivers import wait_for
from tests.test_mcp import ARG_SECRET
from tests.test_mcp import CARD
from tests.test_mcp import CORP
from tests.test_mcp import _mcp_server
from tests.test_mcp import calls
from tests.test_mcp import mcp_server

RECEIVED: list[Any] = []  # what the recording server got, message by message


def _policy(webhook: str) -> str:
    return f"""
dlp: {{secrets: redact, pii: log, types: {{CREDIT_CARD: block}}}}
alerts:
  destinations:
    approvers: {{webhook: "{webhook}"}}
mcp:
  approval: {{notify: [approvers], timeout: 5s}}
  servers:
    - id: corp
      host: {CORP}
      deny_tools: ["delete_*"]
      approve_tools: ["big"]
"""


@pytest.fixture(scope="module")
def hook() -> Iterator[Webhook]:
    with Webhook() as receiver:
        yield receiver


@pytest.fixture(scope="module")
def ws_proxy(tmp_path_factory, upstream, test_ca, hook) -> Iterator[Proxy]:
    folder = tmp_path_factory.mktemp("mcp-ws")
    routes = [sdk_route("/ws", _mcp_server), recording_route("/raw", RECEIVED)]
    with mcp_server(folder, test_ca, json_response=False, routes=routes) as port:
        policy = folder / "policy.yaml"
        policy.write_text(_policy(hook.url))
        proxy = start_proxy(
            folder / "proxy", upstream, test_ca, "--set", f"shadowgate_policy={policy}", upstream_port=port
        )
        yield proxy
        proxy.stop()


def sdk(proxy: Proxy, user: str, body) -> Any:
    async def main() -> Any:
        transport = ws_transport(f"wss://{CORP}/ws", proxy.url(user), proxy.ssl_context())
        agent = Implementation(name="ws-agent", version="1.0")
        async with Client(transport, mode="legacy", cache=None, client_info=agent) as client:
            return await body(client)

    return asyncio.run(asyncio.wait_for(main(), 30))


def test_the_sdk_over_websocket_gets_the_same_policy_dlp_and_rows(ws_proxy):
    async def body(client: Client) -> tuple:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        echoed = (await client.call_tool("echo", {"text": f"key {ARG_SECRET}"})).content[0].text
        with pytest.raises(MCPError) as denied:
            await client.call_tool("delete_repo", {"name": "prod"})
        with pytest.raises(MCPError) as carded:
            await client.call_tool("echo", {"text": f"card {CARD}"})
        after = (await client.call_tool("echo", {"text": "still here"})).content[0].text
        return tools, echoed, str(denied.value), str(carded.value), after

    tools, echoed, denied, carded, after = sdk(ws_proxy, "wanda", body)
    assert "delete_repo" not in tools and "echo" in tools  # tools/list filtered
    assert echoed == "key [AWS_ACCESS_KEY_1]"  # the server only saw the placeholder
    assert "mcp:corp:tools" in denied and "mcp:corp:dlp" in carded and CARD not in carded
    assert after == "still here"
    rows = calls(ws_proxy, "user_name = 'wanda'", 6)
    assert all(r["transport"] == "websocket" for r in rows), rows
    by = {(r["method"], r["tool_name"], r["decision"]): r for r in rows}
    assert ("tools/list", None, "filter") in by
    assert by[("tools/call", "delete_repo", "block")]["rule_id"] == "mcp:corp:tools"
    assert by[("initialize", None, "allow")]["client_name"] == "ws-agent"
    redacted = [r for r in rows if r["dlp_action"] == "redact"]
    assert redacted and redacted[0]["dlp_findings"] == "AWS_ACCESS_KEY:1" and redacted[0]["server_name"] == "corp-tools"
    assert [r for r in rows if r["dlp_action"] == "block"][0]["rule_id"] == "mcp:corp:dlp"
    assert all(r["latency_ms"] is not None and r["is_error"] is not None for r in rows)


def test_a_held_call_over_websocket_waits_without_stalling_the_connection(ws_proxy, hook):
    pool = concurrent.futures.ThreadPoolExecutor(1)

    async def body(client: Client) -> tuple:
        held = asyncio.create_task(client.call_tool("big", {"n": 3}))
        await asyncio.sleep(0.5)
        # The connection keeps flowing both ways while the call waits.
        echoed = (await client.call_tool("echo", {"text": "meanwhile"})).content[0].text
        return echoed, (await held).content[0].text

    pending = pool.submit(sdk, ws_proxy, "xena", body)
    link = wait_for(lambda: next((b["link"] for b in list(hook.bodies) if b["fields"]["user"] == "xena"), None), 15)
    with httpx.Client(proxy=ws_proxy.url("sam"), timeout=10) as browser:
        time.sleep(1)
        assert browser.post(link + "?decision=approve").status_code == 200
    assert pending.result(20) == ("meanwhile", "xxx")
    [row] = calls(ws_proxy, "user_name = 'xena' AND tool_name = 'big'", 1)
    assert (row["decision"], row["approver"], row["transport"]) == ("approved", "sam", "websocket")


DENIED = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "delete_repo", "arguments": {"n": 1}}}


def raw(ws_proxy: Proxy, user: str, mcp: bool = True) -> RawWebSocket:
    return RawWebSocket(ws_proxy.port, CORP, "/raw", ws_proxy.ssl_context(), user, mcp)


def ran(marker: str) -> list[Any]:
    return [m for m in RECEIVED if marker in (m if isinstance(m, str) else m.decode("utf-8", "replace"))]


@pytest.mark.parametrize(
    "variant",
    ["fragmented", "leading_whitespace", "escaped_keys", "binary", "binary_utf16", "no_jsonrpc_member", "case_folded"],
)
def test_a_denied_call_never_reaches_the_server_however_the_message_is_written(ws_proxy, variant):
    marker = f"m{variant}"
    call = {**DENIED, "params": {"name": "delete_repo", "arguments": {"n": marker}}}
    text = json.dumps(call)
    ws = raw(ws_proxy, f"raw-{variant}")
    try:
        if variant == "fragmented":
            data = text.encode()
            ws.frame(TEXT, data[:10], fin=False)
            ws.frame(CONTINUATION, data[10:30], fin=False)
            ws.frame(CONTINUATION, data[30:], fin=True)
        elif variant == "leading_whitespace":
            ws.send("\r\n\t   " + text)
        elif variant == "escaped_keys":
            ws.send(text.replace('"method"', '"\\u006dethod"').replace('"name"', '"n\\u0061me"'))
        elif variant == "binary":
            ws.send(text.encode())
        elif variant == "binary_utf16":
            ws.send(text.encode("utf-16"))
        elif variant == "no_jsonrpc_member":
            ws.send(json.dumps({k: v for k, v in call.items() if k != "jsonrpc"}))
        elif variant == "case_folded":
            ws.send(text.replace('"method"', '"METHOD"'))
        answer = ws.receive()
        assert answer["error"]["code"] in (-32001, -32600), answer
        assert answer["id"] in (7, None)
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 8, "method": "ping"}))
        assert ws.receive() == {"jsonrpc": "2.0", "id": 8, "result": {}}  # the connection still works
    finally:
        ws.close()
    assert not ran(marker), f"the denied call reached the server: {ran(marker)}"


def test_a_batch_is_decided_element_by_element(ws_proxy):
    ws = raw(ws_proxy, "raw-batch")
    try:
        batch = [
            {
                "jsonrpc": "2.0",
                "id": 1,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"t": "mbatch-ok"}},
            },
            {**DENIED, "id": 2, "params": {"name": "delete_repo", "arguments": {"n": "mbatch-denied"}}},
            {
                "jsonrpc": "2.0",
                "id": 3,
                "method": "tools/call",
                "params": {"name": "echo", "arguments": {"t": ARG_SECRET}},
            },
        ]
        ws.send(json.dumps(batch))
        answers = {a["id"]: a for a in ws.receive()}
    finally:
        ws.close()
    assert "mbatch-ok" in answers[1]["result"]["content"][0]["text"]
    assert answers[2]["error"]["code"] == -32001 and "delete_repo" in answers[2]["error"]["message"]
    assert "[AWS_ACCESS_KEY_1]" in answers[3]["result"]["content"][0]["text"]
    [sent] = ran("mbatch-ok")
    assert "mbatch-denied" not in sent and '"method": "ping"' in sent.replace('"method":"ping"', '"method": "ping"')
    assert ARG_SECRET not in sent
    rows = calls(ws_proxy, "user_name = 'raw-batch'", 3)
    assert sorted(r["decision"] for r in rows) == ["allow", "allow", "block"]


def test_a_batch_whose_calls_share_an_id_is_refused_whole(ws_proxy):
    # The proxy pairs calls and answers by id: with two calls under id 7, one was checked and the
    # other went on unchecked (a denied tool, or arguments DLP never saw).
    ws = raw(ws_proxy, "raw-dupid")
    try:
        echo = {
            "jsonrpc": "2.0",
            "id": 7,
            "method": "tools/call",
            "params": {"name": "echo", "arguments": {"t": "mdup-echo"}},
        }
        denied = {**DENIED, "params": {"name": "delete_repo", "arguments": {"n": "mdup-denied"}}}
        ws.send(json.dumps([denied, echo]))
        refused = ws.receive()
    finally:
        ws.close()
    assert refused["error"]["code"] == -32600 and "mcp:ambiguous" in refused["error"]["message"]
    assert not ran("mdup-denied") and not ran("mdup-echo")


def test_json_that_is_not_json_rpc_passes_and_text_that_is_no_json_is_refused_on_an_mcp_server(ws_proxy):
    ws = raw(ws_proxy, "raw-plain", mcp=False)
    try:
        ws.send('{"type": "mplain-hello"}')  # JSON, but no request: not ours
        ws.send("mplain just text")  # on a listed MCP server: a lax server might still run it
        refused = ws.receive()
        ws.send(json.dumps({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
        assert ws.receive()["id"] == 9
    finally:
        ws.close()
    assert refused["error"]["code"] == -32600 and "mcp:ambiguous" in refused["error"]["message"]
    assert ran("mplain-hello") == ['{"type": "mplain-hello"}'] and not ran("mplain just text")


def test_a_long_message_is_parsed_off_the_loop_and_still_refused(ws_proxy):
    padding = " " * 300_000
    ws = raw(ws_proxy, "raw-long")
    try:
        ws.send(padding + json.dumps({**DENIED, "params": {"name": "delete_repo", "arguments": {"n": "mlong"}}}))
        assert ws.receive()["error"]["code"] == -32001
    finally:
        ws.close()
    assert not ran("mlong")
