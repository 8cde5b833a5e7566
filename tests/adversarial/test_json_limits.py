"""JSON that Python's own json cannot parse must not turn the controls off (red-team finding F1).

Python 3.12's json raises for an integer of more than 4300 digits (sys.int_max_str_digits) and
for nesting past ~1000 levels; Go and JavaScript read both. Such a body used to be taken for text:
a `\\u`-escaped key passed DLP, the model was unknown (model rules and budgets skipped) and an MCP
call was "not MCP" (deny_tools skipped, no mcp_calls row). Now a long integer is read (kept as its
digits, never converted), and a body that looks like JSON but still does not parse (nested past
MAX_JSON_DEPTH) is refused while DLP, a model rule or an MCP policy needs it, with a row.
Everything goes through a real mitmdump to the fake upstream (HTTP, MCP) or the WebSocket one.
"""

from __future__ import annotations

import contextlib
import json
import re

import pytest
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

from tests.adversarial.test_realtime import ws_policy  # noqa: F401 (a fixture)
from tests.adversarial.test_realtime import ws_proxy  # noqa: F401
from tests.adversarial.test_realtime import ws_upstream  # noqa: F401
from tests.adversarial.wire import marker
from tests.support.wsclient import ws_ssl_context

AWS = "AKIA2OGYBAH6STMMNXNN"
ESCAPED = "".join(f"\\u{ord(c):04x}" for c in AWS)  # the same key, every letter a JSON \u escape
BIGINT = ',"pad":1' + "1" * 5000  # > sys.int_max_str_digits: Python's json raises; Go and JS read it
DEEP = ',"pad":' + "[" * 3000 + "]" * 3000  # > Python's recursion limit; Go (10,000) and V8 read it
BLOCK = "dlp: {secrets: block, pii: log}\n"
CHAT = "https://api.openai.com/v1/chat/completions"
JSON = {"content-type": "application/json"}
MCP_HEADERS = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
MCP_POLICY = "mcp:\n  servers:\n    - {id: gh, host: example.com, deny_tools: ['delete_*']}\n"


def _post(proxy, user, url, content: bytes, headers=None):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.post(
            url, content=content, headers={"x-attack": mark, "authorization": "Bearer sk-test", **(headers or {})}
        )
    return answer, mark


def _seen(upstream, mark):
    return [s for s in upstream.seen if s.headers.get("x-attack") == mark]


@pytest.mark.parametrize("breaker", [BIGINT, DEEP], ids=["bigint", "deep"])
def test_an_escaped_key_in_json_python_cannot_parse_is_not_sent(proxy_with, upstream, breaker):
    proxy = proxy_with(BLOCK)
    user = f"jl-dlp-{len(breaker)}"
    body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"key ' + ESCAPED + '"}]' + breaker + "}"
    answer, mark = _post(proxy, user, CHAT, body.encode(), JSON)
    assert _seen(upstream, mark) == [], "the \\u-escaped key reached the upstream unscanned"
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    if breaker is BIGINT:  # read: the key is found, the model known
        assert answer.status_code == 403 and "AWS" in answer.json()["error"]["message"]
        assert (row["model"], row["dlp_action"]) == ("gpt-4o-mini", "block")
        assert "AWS_ACCESS_KEY" in row["dlp_findings"]
    else:  # not read: refused in the provider's error shape, and the row says why
        assert row["decision"] == "block"
        assert answer.status_code == 400
        message = answer.json()["error"]["message"]
        assert "looks like JSON but the proxy cannot parse it" in message and "DLP must scan it" in message
        assert row["rule_id"] == "shadowgate:body-unparsed"
        assert "cannot parse" in row["inspect_note"]


@pytest.mark.parametrize("breaker", [BIGINT, DEEP], ids=["bigint", "deep"])
def test_a_model_rule_holds_for_json_python_cannot_parse(proxy_with, upstream, breaker):
    proxy = proxy_with("rules:\n  - {id: no-gpt4o, match: {model: 'gpt-4o*'}, action: block}\n")
    user = f"jl-model-{len(breaker)}"
    body = '{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]' + breaker + "}"
    answer, mark = _post(proxy, user, CHAT, body.encode(), JSON)
    assert _seen(upstream, mark) == [], "a blocked model reached the upstream"
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["decision"] == "block"
    if breaker is BIGINT:
        assert (answer.status_code, row["model"], row["rule_id"]) == (403, "gpt-4o", "no-gpt4o")
    else:
        assert answer.status_code == 400 and "policy rule 'no-gpt4o' matches on the model" in answer.text
        assert row["rule_id"] == "shadowgate:body-unparsed"


def test_a_long_integer_passes_byte_for_byte_and_is_recorded(proxy_with, upstream):
    """Read, not refused: a body with a long integer is the upstream's business, the row knows its model."""
    proxy = proxy_with(BLOCK)
    body = ('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hello"}]' + BIGINT + "}").encode()
    answer, mark = _post(proxy, "jl-long-ok", CHAT, body, JSON)
    assert answer.status_code == 200
    [seen] = _seen(upstream, mark)
    assert seen.body == body
    [row] = proxy.rows("user_name = 'jl-long-ok'", expect=1)
    assert (row["decision"], row["model"], row["inspect_note"]) == ("allow", "gpt-4o-mini", None)


def test_redaction_writes_a_long_integer_back_digit_for_digit(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: redact}\n")
    body = '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"key ' + AWS + '"}]' + BIGINT + "}"
    answer, mark = _post(proxy, "jl-long-redact", CHAT, body.encode(), JSON)
    assert answer.status_code == 200
    [seen] = _seen(upstream, mark)
    assert AWS.encode() not in seen.body
    assert re.search(rb'"pad": ?1{5001}}$', seen.body), "the number as it came, not a string"
    [row] = proxy.rows("user_name = 'jl-long-redact'", expect=1)
    assert (row["model"], row["dlp_action"]) == ("gpt-4o-mini", "redact")


def test_deep_json_without_a_control_that_needs_it_passes_with_a_note(proxy_with, upstream):
    proxy = proxy_with("rules:\n  - {id: fine, match: {provider: anthropic}, action: block}\n")
    # 600 levels: past the proxy's MAX_JSON_DEPTH (512), within what the (Python) fake upstream reads.
    deep = ',"pad":' + "[" * 600 + "]" * 600
    body = ('{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]' + deep + "}").encode()
    answer, mark = _post(proxy, "jl-deep-ok", CHAT, body, JSON)
    assert answer.status_code == 200 and len(_seen(upstream, mark)) == 1
    [row] = proxy.rows("user_name = 'jl-deep-ok'", expect=1)
    assert row["decision"] == "allow" and "cannot parse" in row["inspect_note"]


def test_an_escaped_key_in_a_text_body_is_found(proxy_with, upstream):
    """What stays text (no JSON look) is scanned with its JSON escapes undone as well."""
    proxy = proxy_with(BLOCK)
    answer, mark = _post(proxy, "jl-text", CHAT, f"key {ESCAPED} please".encode(), {"content-type": "text/plain"})
    assert _seen(upstream, mark) == [] and answer.status_code == 403


@pytest.mark.parametrize("breaker", [BIGINT, DEEP], ids=["bigint", "deep"])
def test_an_escaped_key_in_json_inside_a_string_python_cannot_parse_is_found(proxy_with, upstream, breaker):
    """Function-call arguments are a JSON document inside a string, parsed by the tool that runs."""
    proxy = proxy_with(BLOCK)
    arguments = '{"q":"key ' + ESCAPED + '"' + breaker + "}"
    call = {"id": "c1", "type": "function", "function": {"name": "search", "arguments": arguments}}
    body = {"model": "gpt-4o-mini", "messages": [{"role": "assistant", "tool_calls": [call]}]}
    answer, mark = _post(proxy, f"jl-nested-{len(breaker)}", CHAT, json.dumps(body).encode(), JSON)
    assert _seen(upstream, mark) == [] and answer.status_code == 403
    assert "AWS" in answer.json()["error"]["message"]


def test_a_json_string_body_is_read_as_json_and_redacted(proxy_with, upstream):
    proxy = proxy_with("dlp: {secrets: redact}\n")
    body = f'"key {ESCAPED} please"'.encode()  # a JSON string as the whole body: its escapes undone
    answer, mark = _post(proxy, "jl-str-redact", CHAT, body, JSON)
    [seen] = _seen(upstream, mark)
    assert seen.body == b'"key [AWS_ACCESS_KEY_1] please"'


def test_an_escaped_key_in_a_text_body_cannot_be_redacted_so_it_is_refused(proxy_with, upstream):
    """Redact mode: the escapes are not the key's letters, so there is nothing to replace in place:
    refused, and the row says block, not redact (the original bytes never go out after a redaction)."""
    proxy = proxy_with("dlp: {secrets: redact}\n")
    body = f"key {ESCAPED} please".encode()
    answer, mark = _post(proxy, "jl-text-redact", CHAT, body, {"content-type": "text/plain"})
    assert _seen(upstream, mark) == [] and answer.status_code == 403
    [row] = proxy.rows("user_name = 'jl-text-redact'", expect=1)
    assert row["dlp_action"] == "block" and "AWS_ACCESS_KEY" in row["dlp_findings"]


@pytest.mark.parametrize("breaker", [BIGINT, DEEP], ids=["bigint", "deep"])
def test_an_mcp_denied_tool_in_json_python_cannot_parse_is_refused(proxy_with, upstream, breaker):
    proxy = proxy_with(MCP_POLICY)
    user = f"jl-mcp-{len(breaker)}"
    body = (
        '{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"delete_repo","arguments":{}}' + breaker + "}"
    )
    answer, mark = _post(proxy, user, "https://example.com/mcp", body.encode(), MCP_HEADERS)
    assert _seen(upstream, mark) == [], "a denied MCP tool call reached the server"
    if breaker is BIGINT:  # read: decided and recorded as the call it is
        [call] = proxy.rows(f"user_name = '{user}'", expect=1, table="mcp_calls")
        assert (call["tool_name"], call["decision"]) == ("delete_repo", "block")
    else:  # not read, on the first request of a session: refused as ambiguous, and recorded
        assert answer.status_code == 400 and "mcp:ambiguous" in answer.json()["error"]["message"]
        [call] = proxy.rows(f"user_name = '{user}'", expect=1, table="mcp_calls")
        assert (call["method"], call["decision"], call["rule_id"]) == ("(unread)", "block", "mcp:ambiguous")


# --- Realtime WebSocket frames ------------------------------------------------------------------


def _refused_event(proxy, user: str, event: str) -> dict:
    """Send one client event on a Realtime session; the error event the proxy answers with."""
    url = "wss://api.openai.com/v1/realtime?model=gpt-realtime"
    with connect(url, proxy=proxy.url(user), ssl=ws_ssl_context(proxy)) as ws:
        assert json.loads(ws.recv(5))["type"] == "session.created"
        ws.send(event)
        refused = json.loads(ws.recv(5))
        assert refused["type"] == "error"
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            ws.recv(1)
    return refused


@pytest.mark.parametrize("breaker", [BIGINT, DEEP], ids=["bigint", "deep"])
def test_a_realtime_frame_python_cannot_parse_is_not_sent(ws_policy, ws_upstream, breaker):  # noqa: F811
    proxy = ws_policy(BLOCK)
    user = f"jl-ws-{len(breaker)}"
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "my key is KEY"}]}
    event = json.dumps({"type": "conversation.item.create", "item": item})[:-1] + breaker + "}"
    event = event.replace("KEY", ESCAPED)
    refused = _refused_event(proxy, user, event)
    assert ("AWS" if breaker is BIGINT else "does not parse") in refused["error"]["message"]
    assert not any(ESCAPED in m or AWS in m for m in ws_upstream.received), "the frame reached the provider"
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["dlp_action"] == ("block" if breaker is BIGINT else "error")


@pytest.mark.parametrize("breaker", [BIGINT, DEEP], ids=["bigint", "deep"])
def test_a_realtime_model_switch_python_cannot_parse_is_judged(ws_policy, ws_upstream, breaker):  # noqa: F811
    """No DLP, no screen: only a model rule, which a session.update the proxy cannot parse could dodge."""
    proxy = ws_policy(
        "rules:\n  - {id: no-big, match: {provider: openai, model: 'gpt-realtime-big*'}, action: block}\n"
    )
    user = f"jl-ws-model-{len(breaker)}"
    tag = marker()
    update = {
        "type": "session.update",
        "session": {"type": "realtime", "model": "gpt-realtime-big", "instructions": tag},
    }
    event = json.dumps(update)[:-1] + breaker + "}"
    refused = _refused_event(proxy, user, event)
    assert not any(tag in m for m in ws_upstream.received), "the model switch reached the provider"
    if breaker is DEEP:
        assert "no-big" in refused["error"]["message"] and "does not parse" in refused["error"]["message"]
    else:
        [row] = proxy.rows(f"user_name = '{user}'", expect=1)
        assert (row["decision"], row["model"]) == ("block", "gpt-realtime-big")
