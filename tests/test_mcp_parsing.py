"""Provider-hosted MCP servers (issue 14, section 5): an OpenAI Responses or Anthropic Messages
request that asks the provider to call an MCP server is checked against the `mcp:` policy (server
allow-list by host, tool globs) before it leaves, and refused with the provider's own 403. Runs
Identify and the MCP stage in-process (mitmproxy's taddons/tflow) with the shipped catalog."""

from __future__ import annotations

import asyncio
import gzip
import json
import threading
from typing import Any

import pytest
from mitmproxy import http
from mitmproxy.test import tflow
from mitmproxy.test import tutils

from shadowgate.flow import flow_record
from tests.unit.test_mcp import CORP
from tests.unit.test_mcp import POLICY
from tests.unit.test_mcp import load_pipeline
from tests.unit.test_mcp import run
from tests.unit.test_mcp import with_sni

OPENAI, ANTHROPIC = "api.openai.com", "api.anthropic.com"


@pytest.fixture
def pipeline(tmp_path):
    yield from load_pipeline(tmp_path, POLICY)


def call(
    pipeline, host: str, path: str, body: dict[str, Any] | bytes, content_encoding: str | None = None
) -> http.HTTPFlow:
    settings, identify, stage = pipeline
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = tutils.treq(host=host, port=443, scheme=b"https", method=b"POST", path=path.encode(), content=content)
    request.headers = http.Headers([(b"host", host.encode()), (b"content-type", b"application/json")])
    if content_encoding is not None:
        request.headers["content-encoding"] = content_encoding
    flow = with_sni(tflow.tflow(req=request), host)
    identify.requestheaders(flow)
    stage.requestheaders(flow)
    pending = identify.request(flow)
    if pending is not None:  # a large body: Identify parses it on a thread

        async def wait() -> None:
            await pending

        asyncio.run(wait())
    rec = flow_record(flow)
    assert rec is not None and rec.route is not None, "not identified as an AI API call"
    return run(stage, flow)


def responses(*tools: dict) -> dict:
    return {"model": "gpt-5", "input": "hi", "tools": list(tools)}


def messages(servers: list[dict], tools: list[dict] | None = None) -> dict:
    body: dict[str, Any] = {
        "model": "claude-sonnet-4-5",
        "max_tokens": 64,
        "messages": [{"role": "user", "content": "hi"}],
    }
    body["mcp_servers"] = servers
    if tools is not None:
        body["tools"] = tools
    return body


def corp_tool(**extra: Any) -> dict:
    return {"type": "mcp", "server_label": "corp", "server_url": f"https://{CORP}/mcp", **extra}


def refused(flow: http.HTTPFlow, rule: str) -> dict:
    assert flow.response is not None, "the request left with a refused MCP server"
    assert flow.response.status_code == 403
    body = json.loads(flow.response.content or b"")
    rec = flow_record(flow)
    assert rec is not None and (rec.decision.action, rec.decision.rule_id) == ("block", rule)
    return body


@pytest.mark.parametrize(
    ("tool", "rule"),
    [
        (corp_tool(allowed_tools=["echo", "delete_repo"]), "mcp:corp:tools"),
        (corp_tool(allowed_tools={"tool_names": ["delete_repo"]}), "mcp:corp:tools"),
        (corp_tool(), "mcp:corp:tools"),  # every tool, some of which are denied
        (corp_tool(allowed_tools={"read_only": True}), "mcp:corp:tools"),  # names left open
        ({"type": "mcp", "server_label": "x", "server_url": "https://mcp.evil.example/sse"}, "mcp:unlisted"),
        ({"type": "mcp", "server_label": "gmail", "connector_id": "connector_gmail"}, "mcp:unlisted"),
    ],
    ids=["denied-in-list", "denied-in-tool-names", "no-allowed-tools", "read-only-only", "unlisted-url", "connector"],
)
def test_openai_responses_hosted_mcp_is_refused_with_openais_error(pipeline, tool, rule):
    flow = call(pipeline, OPENAI, "/v1/responses", responses(tool))
    body = refused(flow, rule)
    assert rule in body["error"]["message"]


def test_openai_responses_allowed_tools_go_on(pipeline):
    body = responses(corp_tool(allowed_tools={"tool_names": ["echo"], "read_only": True}), {"type": "web_search"})
    flow = call(pipeline, OPENAI, "/v1/responses", body)
    assert flow.response is None
    assert json.loads(flow.request.content or b"") == body


def test_the_hosted_check_reads_parsed_json_not_bytes(pipeline):
    raw = json.dumps(responses({"type": "mcp", "server_label": "x", "server_url": "https://mcp.evil.example/"}))
    escaped = ("\ufeff  " + raw.replace('"type": "mcp"', '"\\u0074ype": "\\u006dcp"')).encode()
    refused(call(pipeline, OPENAI, "/v1/responses", escaped), "mcp:unlisted")


@pytest.mark.parametrize(
    ("servers", "tools", "rule"),
    [
        ([{"type": "url", "url": "https://mcp.evil.example/mcp", "name": "evil"}], None, "mcp:unlisted"),
        ([{"type": "url", "url": f"https://{CORP}/mcp", "name": "corp"}], None, "mcp:corp:tools"),
        (
            [
                {
                    "type": "url",
                    "url": f"https://{CORP}/mcp",
                    "name": "corp",
                    "tool_configuration": {"allowed_tools": ["delete_x"]},
                }
            ],
            None,
            "mcp:corp:tools",
        ),
        (
            [{"type": "url", "url": f"https://{CORP}/mcp", "name": "corp"}],
            [{"type": "mcp_toolset", "mcp_server_name": "corp", "configs": {"delete_repo": {"enabled": False}}}],
            "mcp:corp:tools",  # enabled by default: every tool but one, not a list to check
        ),
    ],
    ids=["unlisted", "every-tool", "denied-in-allowed-tools", "toolset-enabled-by-default"],
)
def test_anthropic_mcp_connector_is_refused_with_anthropics_error(pipeline, servers, tools, rule):
    flow = call(pipeline, ANTHROPIC, "/v1/messages", messages(servers, tools))
    body = refused(flow, rule)
    assert body["type"] == "error" and body["error"]["type"] == "permission_error"
    assert rule in body["error"]["message"]


@pytest.mark.parametrize(
    ("servers", "tools"),
    [
        (
            [
                {
                    "type": "url",
                    "url": f"https://{CORP}/mcp",
                    "name": "corp",
                    "tool_configuration": {"allowed_tools": ["echo"]},
                }
            ],
            None,
        ),
        (
            [{"type": "url", "url": f"https://{CORP}/mcp", "name": "corp", "tool_configuration": {"enabled": False}}],
            None,
        ),
        (
            [{"type": "url", "url": f"https://{CORP}/mcp", "name": "corp"}],
            [
                {
                    "type": "mcp_toolset",
                    "mcp_server_name": "corp",
                    "default_config": {"enabled": False},
                    "configs": {"echo": {"enabled": True}, "delete_repo": {"enabled": False}},
                }
            ],
        ),
    ],
    ids=["allowed-tools", "tools-off", "toolset-opt-in"],
)
def test_anthropic_mcp_connector_with_allowed_tools_goes_on(pipeline, servers, tools):
    assert call(pipeline, ANTHROPIC, "/v1/messages", messages(servers, tools)).response is None


def test_observe_mode_records_what_it_would_refuse(tmp_path):
    for settings, identify, stage in load_pipeline(tmp_path, "mode: observe\n" + POLICY):
        flow = call((settings, identify, stage), OPENAI, "/v1/responses", responses(corp_tool()))
        rec = flow_record(flow)
        assert flow.response is None
        assert rec is not None and (rec.decision.action, rec.decision.rule_id) == ("would_block", "mcp:corp:tools")


def test_a_large_request_is_checked_off_the_event_loop(pipeline):
    body = responses({"type": "mcp", "server_label": "x", "server_url": "https://mcp.evil.example/"})
    body["input"] = "x" * 600_000  # past the inline parse size: parsed on a thread, not skipped
    refused(call(pipeline, OPENAI, "/v1/responses", body), "mcp:unlisted")


@pytest.mark.parametrize("coding", ["gzip, gzip", "x-gzip", "gzip,identity"])
def test_a_hosted_server_in_a_stacked_or_aliased_coding_is_still_checked(pipeline, coding):
    raw = json.dumps(responses(corp_tool(allowed_tools=["delete_repo"]))).encode()
    for _ in range(coding.count("gzip")):
        raw = gzip.compress(raw)
    flow = call(pipeline, OPENAI, "/v1/responses", raw, content_encoding=coding)
    refused(flow, "mcp:corp:tools")


def test_a_body_no_decoder_reads_is_refused_under_an_mcp_policy(pipeline):
    flow = call(pipeline, OPENAI, "/v1/responses", b"\x1f\x8bnot really gzip", content_encoding="gzip, br")
    assert "cannot be read" in refused(flow, "mcp:unreadable")["error"]["message"]


APPROVE_POLICY = f"""
alerts:
  destinations:
    approvers: {{webhook: "http://127.0.0.1:9/hook"}}
mcp:
  approval: {{notify: [approvers]}}
  servers:
    - id: corp
      host: {CORP}
      approve_tools: ["merge_*"]
    - id: ops
      host: ops.mcp.example
      approve_arguments: ["(?i)prod"]
"""


@pytest.fixture
def approve_pipeline(tmp_path):
    yield from load_pipeline(tmp_path, APPROVE_POLICY)


@pytest.mark.parametrize(
    ("body", "rule"),
    [
        (responses(corp_tool(allowed_tools=["echo", "merge_pr"])), "mcp:corp:approval"),
        (responses(corp_tool()), "mcp:corp:approval"),  # every tool: some need approval
        (messages([{"type": "url", "url": f"https://{CORP}/mcp", "name": "corp"}]), "mcp:corp:approval"),
        (
            responses(
                {
                    "type": "mcp",
                    "server_label": "ops",
                    "server_url": "https://ops.mcp.example/mcp",
                    "allowed_tools": ["status"],
                }
            ),
            "mcp:ops:approval",
        ),  # arguments decide: never visible
    ],  # fmt: skip
    ids=["listed-tool", "every-tool", "anthropic-every-tool", "argument-rule"],
)
def test_hosted_calls_that_would_need_approval_are_refused_saying_why(approve_pipeline, body, rule):
    host, path = (ANTHROPIC, "/v1/messages") if "mcp_servers" in body else (OPENAI, "/v1/responses")
    message = json.dumps(refused(call(approve_pipeline, host, path, body), rule))
    assert "cannot be held" in message and "provider calls the server itself" in message


def test_hosted_calls_of_tools_that_need_no_approval_go_on(approve_pipeline):
    flow = call(approve_pipeline, OPENAI, "/v1/responses", responses(corp_tool(allowed_tools=["echo"])))
    assert flow.response is None


def _big_answer(rpc_id: int) -> bytes:
    return json.dumps(
        {"jsonrpc": "2.0", "id": rpc_id, "result": {"content": [{"type": "text", "text": "x" * 70_000}]}}
    ).encode()


def test_the_sse_tap_checks_a_large_event_on_a_thread_and_keeps_the_order():
    from shadowgate.mcp.taps import SseTap

    seen: list[str] = []

    def on_message(msg: dict, size: int) -> dict | None:
        seen.append(threading.current_thread().name)
        return {"jsonrpc": "2.0", "id": msg["id"], "result": {"replaced": size > 64 * 1024}}

    async def main() -> list[bytes]:
        tap = SseTap(on_message, limit=1 << 20)
        out = list(tap(b"data: " + _big_answer(1) + b"\n\n"))
        out += tap(b": after\n\n")  # held behind the large event until its work is done
        if tap.end():  # the body ends while the work runs: the stream-end hook awaits it
            await tap.finish()
        assert not tap.end()
        return out + tap(b"")

    out = asyncio.run(main())
    assert b"".join(out) == b'data: {"jsonrpc":"2.0","id":1,"result":{"replaced":true}}\n\n: after\n\n'
    assert seen == ["MainThread"]  # answered on the loop; parsed and checked on worker threads


def test_a_chunked_json_answer_is_checked_on_a_thread_at_its_end():
    from shadowgate.mcp.taps import JsonTap

    async def main() -> list[bytes]:
        tap = JsonTap(lambda msg, size: {"jsonrpc": "2.0", "id": msg["id"], "result": {}}, limit=1 << 20)
        assert tap(_big_answer(2)) == []
        assert tap.end()
        await tap.finish()
        return tap(b"")

    assert asyncio.run(main()) == [b'{"jsonrpc":"2.0","id":2,"result":{}}']


def test_the_stream_end_hook_is_installed_once():
    from mitmproxy.proxy.layers.http import HttpStream

    from shadowgate.mcp.taps import wait_for_taps_at_stream_end

    wait_for_taps_at_stream_end()
    wrapped = HttpStream.state_stream_response_body
    wait_for_taps_at_stream_end()
    assert HttpStream.state_stream_response_body is wrapped and wrapped.shadowgate_wrapped
