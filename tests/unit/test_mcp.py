"""The MCP stage's request hook in-process (mitmproxy's taddons/tflow): a tools/call the policy
denies is refused however the JSON is written, because the proxy judges the parsed JSON and not
the first bytes (issue 14, section 5). tests/test_mcp.py shows the same policy on a real proxy."""

from __future__ import annotations

import asyncio
import gzip
import inspect
import json

import pytest
from mitmproxy import http
from mitmproxy.test import taddons
from mitmproxy.test import tflow
from mitmproxy.test import tutils

from shadowgate.stages.identify import METADATA_KEY as AI_METADATA_KEY
from shadowgate.stages.identify import Identify
from shadowgate.stages.mcp import Mcp
from shadowgate.stages.settings import ShadowgateSettings

CORP = "mcp.corp.example"
POLICY = f"""
mcp:
  servers:
    - id: corp
      host: {CORP}
      deny_tools: ["delete_*"]
"""
DENIED = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "delete_repo", "arguments": {}}}
ALLOWED = {"jsonrpc": "2.0", "id": 8, "method": "tools/call", "params": {"name": "echo", "arguments": {"t": "hi"}}}


@pytest.fixture
def mcp_stage(tmp_path):
    """The settings and MCP addons loaded with the policy above, no database."""
    settings = ShadowgateSettings()
    stage = Mcp(settings)
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    with taddons.context(settings, stage) as tctx:
        tctx.configure(settings, confdir=str(tmp_path / "conf"), shadowgate_policy=str(policy))
        yield stage


def post(
    body: bytes,
    *,
    content_type: str | None = "application/json",
    method: str = "POST",
    path: str = "/mcp",
    headers: dict[str, str] | None = None,
) -> http.HTTPFlow:
    fields = [(b"host", CORP.encode())]
    if content_type is not None:
        fields.append((b"content-type", content_type.encode()))
    fields += [(k.encode(), v.encode()) for k, v in (headers or {}).items()]
    request = tutils.treq(
        host=CORP, port=443, scheme=b"https", method=method.encode(), path=path.encode(), content=body
    )
    request.headers = http.Headers(fields)
    return with_sni(tflow.tflow(req=request), CORP)


def with_sni(flow: http.HTTPFlow, host: str) -> http.HTTPFlow:
    flow.client_conn.sni = host  # what the stage names the server by
    return flow


def run(stage: Mcp, flow: http.HTTPFlow) -> http.HTTPFlow:
    pending = stage.request(flow)
    if inspect.isawaitable(pending):

        async def wait() -> None:
            await pending

        asyncio.run(wait())
    return flow


def refusal(flow: http.HTTPFlow) -> dict:
    """The JSON-RPC error the proxy answered with (the request never left)."""
    assert flow.response is not None, "forwarded unaudited"
    return json.loads(flow.response.content or b"")


def assert_denied(flow: http.HTTPFlow) -> None:
    answer = refusal(flow)
    assert flow.response is not None and flow.response.status_code == 200
    assert answer["id"] == 7 and answer["error"]["code"] == -32001
    assert "mcp:corp:tools" in answer["error"]["message"]


COMPACT = json.dumps(DENIED).encode()


@pytest.mark.parametrize(
    ("body", "content_type"),
    [
        (b" \r\n\t" * 40 + COMPACT, "application/json"),  # whitespace past any head check
        (COMPACT.replace(b'"jsonrpc"', b'"\\u006asonrpc"'), "application/json"),
        (COMPACT.replace(b'"method"', b'"\\u006dethod"'), "application/json"),
        (b"\xef\xbb\xbf" + COMPACT, "application/json"),  # UTF-8 BOM
        (COMPACT.decode().encode("utf-16"), "application/json"),  # BOM, then UTF-16
        (COMPACT.decode().encode("utf-16-le"), "application/json"),  # no BOM: JSON's detection
        (COMPACT.decode().encode("utf-32"), "application/json"),
        (COMPACT, "application/json; charset=utf-16"),  # the Python SDK and Go ignore the charset
        (COMPACT.replace(b"delete_repo", b"delete_repo\xff"), "application/json"),  # not UTF-8
        (COMPACT, "text/plain"),
        (COMPACT, None),
        (COMPACT, "application/x-www-form-urlencoded"),
    ],
    ids=[
        "leading-whitespace",
        "escaped-jsonrpc-key",
        "escaped-method-key",
        "utf8-bom",
        "utf16-bom",
        "utf16le-no-bom",
        "utf32",
        "utf16-charset-on-utf8-body",
        "invalid-utf8",
        "text-plain",
        "no-content-type",
        "form-content-type",
    ],
)
def test_denied_tool_is_refused_however_the_json_is_written(mcp_stage, body, content_type):
    assert_denied(run(mcp_stage, post(body, content_type=content_type)))


def test_a_body_that_is_another_call_in_the_content_types_charset_is_refused(mcp_stage):
    # The TypeScript SDK decodes with the charset (iconv-lite knows UTF-7: "+AGQ-" is "d"); the
    # Python SDK reads UTF-8. One server runs delete_repo, the other a tool the policy allows.
    body = COMPACT.replace(b"delete_repo", b"+AGQ-elete_repo")
    assert body.decode("utf-7") == COMPACT.decode()
    flow = run(mcp_stage, post(body, content_type="application/json; charset=utf-7"))
    assert flow.response is not None and flow.response.status_code == 400
    assert "mcp:ambiguous" in refusal(flow)["error"]["message"]


@pytest.mark.parametrize("method", ["PUT", "PATCH", "DELETE"])
def test_denied_tool_is_refused_whatever_the_http_method(mcp_stage, method):
    assert_denied(run(mcp_stage, post(COMPACT, method=method, headers={"mcp-session-id": "s1"})))


def test_a_body_over_the_parse_limit_is_parsed_off_the_loop_not_passed(mcp_stage):
    mcp_stage.settings.max_parse_bytes = 1024
    padded = dict(DENIED, params={"name": "delete_repo", "arguments": {"pad": "x" * 600_000}})
    assert_denied(run(mcp_stage, post(json.dumps(padded).encode())))


def test_a_request_without_the_jsonrpc_member_is_audited_in_an_mcp_session(mcp_stage):
    # A server that never checks "jsonrpc" runs it; on an MCP session it is judged like any call.
    bare = {k: v for k, v in DENIED.items() if k != "jsonrpc"}
    assert_denied(run(mcp_stage, post(json.dumps(bare).encode(), headers={"mcp-session-id": "s1"})))
    wrong_version = dict(DENIED, jsonrpc="1.0")
    assert_denied(run(mcp_stage, post(json.dumps(wrong_version).encode(), path="/rpc")))


def test_denied_tool_in_a_batch_is_refused(mcp_stage):
    body = json.dumps([ALLOWED, DENIED]).encode()
    flow = run(mcp_stage, post(b"\xef\xbb\xbf\n" + body))
    assert flow.response is None  # the allowed element goes on; the denied one as a ping
    sent = json.loads(flow.request.content or b"")
    assert [m["method"] for m in sent] == ["tools/call", "ping"]
    assert sent[0]["params"]["name"] == "echo"


@pytest.mark.parametrize(
    "body",
    [
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","NAME":"delete_repo"}}',
        '{"jsonrpc":"2.0","id":7,"method":"ping","METHOD":"tools/call","params":{"name":"delete_repo"}}',
        '{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"echo","nam\u0065":"x","Name":"delete_x"}}',
        '{"j\u017fonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_repo"}}',
    ],
    ids=["NAME-in-params", "METHOD", "Name-in-params", "long-s-jsonrpc"],
)
def test_member_names_a_go_server_folds_are_refused(mcp_stage, body):
    # Go's encoding/json matches member names case-insensitively (with Unicode folding): the
    # server could run the tool the upper-case member names while the proxy checked the other.
    flow = run(mcp_stage, post(body.encode()))
    assert flow.response is not None and flow.response.status_code == 400
    answer = refusal(flow)
    assert answer["error"]["code"] == -32600 and "mcp:ambiguous" in answer["error"]["message"]


@pytest.mark.parametrize(
    "batch",
    [
        # The proxy keeps one call per id: the later one hid the earlier from approval and DLP.
        [DENIED, dict(ALLOWED, id=7)],
        [dict(ALLOWED, id=7), DENIED],
        # A tools/call without an id is a notification to the protocol; a lax server runs it.
        [{k: v for k, v in DENIED.items() if k != "id"}],
        {k: v for k, v in DENIED.items() if k != "id"},
    ],
    ids=["repeated-id-denied-first", "repeated-id-denied-last", "id-less-call-in-batch", "id-less-call"],
)
def test_a_batch_with_a_repeated_id_or_an_id_less_call_is_refused(mcp_stage, batch):
    flow = run(mcp_stage, post(json.dumps(batch).encode(), headers={"mcp-session-id": "s1"}))
    assert flow.response is not None and flow.response.status_code == 400
    assert "mcp:ambiguous" in refusal(flow)["error"]["message"]


def test_a_batch_whose_ids_differ_only_in_type_is_not_ambiguous(mcp_stage):
    # 7 and "7" are different JSON-RPC ids: the batch is judged call by call.
    flow = run(mcp_stage, post(json.dumps([dict(ALLOWED, id="7"), dict(ALLOWED, id=7)]).encode()))
    assert flow.response is None


def test_a_tool_call_without_a_string_name_is_refused_where_tools_are_ruled(mcp_stage):
    for params in ({"name": ["delete_repo"]}, {"arguments": {}}):
        flow = run(mcp_stage, post(json.dumps(dict(DENIED, params=params)).encode()))
        assert "mcp:corp:tools" in refusal(flow)["error"]["message"]


def test_allowed_tool_goes_on_untouched(mcp_stage):
    body = b"\xef\xbb\xbf  " + json.dumps(ALLOWED).encode()
    flow = run(mcp_stage, post(body, content_type="text/plain"))
    assert flow.response is None and flow.request.content == body


@pytest.mark.parametrize(
    "body",
    [b"not json at all", b'{"method": "tools/call", "params": {"name": "delete_repo"}}', b"\x00\xff\xfe" * 50],
)
def test_bodies_that_are_not_mcp_go_on_untouched(mcp_stage, body):
    # Off an MCP path, session or listed host, JSON without a "jsonrpc" member is someone else's API.
    fields = [(b"host", b"api.example.com"), (b"content-type", b"application/json")]
    request = tutils.treq(host="api.example.com", port=443, method=b"POST", path=b"/api/v2/messages", content=body)
    request.headers = http.Headers(fields)
    flow = run(mcp_stage, with_sni(tflow.tflow(req=request), "api.example.com"))
    assert flow.response is None and flow.request.content == body


COPILOT = "api.githubcopilot.com"  # a catalogued provider's host that also serves GitHub's MCP server


def load_pipeline(tmp_path, policy_text: str):
    """Identify (with the shipped catalog) before the MCP stage, as in default_addons()."""
    settings = ShadowgateSettings()
    identify, stage = Identify(settings), Mcp(settings)
    policy = tmp_path / "policy.yaml"
    policy.write_text(policy_text)
    with taddons.context(settings, identify, stage) as tctx:
        tctx.configure(settings, confdir=str(tmp_path / "conf"), shadowgate_policy=str(policy))
        yield settings, identify, stage


@pytest.fixture
def pipeline(tmp_path):
    yield from load_pipeline(tmp_path, POLICY.replace(CORP, COPILOT))


def through_pipeline(identify: Identify, stage: Mcp, flow: http.HTTPFlow) -> http.HTTPFlow:
    identify.requestheaders(flow)
    stage.requestheaders(flow)
    assert not flow.request.stream, "streamed past the policy"
    pending = identify.request(flow)
    assert pending is None
    return run(stage, flow)


def test_an_mcp_server_on_a_provider_host_is_audited(pipeline):
    settings, identify, stage = pipeline
    flow = post(COMPACT, path="/mcp/", headers={"mcp-session-id": "s1"})
    flow.request.host = flow.client_conn.sni = COPILOT
    assert_denied(through_pipeline(identify, stage, flow))
    assert flow.metadata[AI_METADATA_KEY].route is None  # Identify saw the host, not an API call


def test_a_large_mcp_body_on_a_provider_host_is_buffered_and_audited(pipeline):
    settings, identify, stage = pipeline
    settings.max_parse_bytes = 1024
    padded = json.dumps(dict(DENIED, params={"name": "delete_repo", "arguments": {"pad": "x" * 4096}})).encode()
    flow = post(padded, path="/mcp/", headers={"mcp-session-id": "s1", "content-length": str(len(padded))})
    flow.request.host = flow.client_conn.sni = COPILOT
    assert_denied(through_pipeline(identify, stage, flow))


def test_an_mcp_request_asks_for_an_uncompressed_answer(mcp_stage):
    flow = post(json.dumps(ALLOWED).encode(), headers={"accept-encoding": "gzip, br, zstd"})
    mcp_stage.requestheaders(flow)
    run(mcp_stage, flow)
    assert flow.response is None and flow.request.headers["accept-encoding"] == "identity"


@pytest.mark.parametrize(
    "body",
    [
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call", /* lenient */ "params":{"name":"delete_repo"}}',
        b'{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"delete_repo",},}',
    ],
    ids=["comment", "trailing-commas"],
)
def test_a_body_on_an_mcp_session_that_is_not_json_is_refused(mcp_stage, body):
    # A strict server refuses it too; a lenient one (JSON5, comments allowed) would run the call.
    flow = run(mcp_stage, post(body, headers={"mcp-session-id": "s1"}))
    assert flow.response is not None and flow.response.status_code == 400
    assert "mcp:ambiguous" in refusal(flow)["error"]["message"]


def test_a_denied_call_in_stacked_content_codings_is_refused(mcp_stage):
    body = gzip.compress(gzip.compress(json.dumps(DENIED).encode()))
    assert_denied(run(mcp_stage, post(body, headers={"content-encoding": "gzip, gzip"})))


def test_an_mcp_body_no_decoder_reads_is_refused(mcp_stage):
    flow = run(mcp_stage, post(b"\x1f\x8bjunk", headers={"content-encoding": "gzip", "mcp-session-id": "s1"}))
    assert flow.response is not None and flow.response.status_code == 400
