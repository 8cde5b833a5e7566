"""Class 3: WebSocket AI traffic (OpenAI Realtime, Gemini Live) is decided, scanned and recorded.

A real mitmdump in front of a test-only TLS WebSocket server (wsupstream.py); the clients are the
official openai SDK (realtime.connect) and the websockets library, both through the proxy.
"""

from __future__ import annotations

import base64
import contextlib
import json

import openai
import pytest
from websockets.exceptions import ConnectionClosed
from websockets.exceptions import InvalidStatus
from websockets.sync.client import connect

from tests.adversarial.wire import TlsClient
from tests.adversarial.wire import open_tunnel
from tests.adversarial.wsupstream import WsUpstream
from tests.conftest import TEST_HOSTS
from tests.support.wsclient import ws_ssl_context

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
GEMINI_URL = "wss://generativelanguage.googleapis.com/ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent?key=g-test"


@pytest.fixture(scope="module")
def ws_upstream(test_ca, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ws")
    cert = test_ca.issue_cert(*TEST_HOSTS, "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(folder / "cert.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    server = WsUpstream(str(folder / "cert.pem"), str(folder / "key.pem"))
    yield server
    server.stop()


@pytest.fixture
def ws_proxy(proxy, ws_upstream):
    """The session proxy, sending upstream traffic to the WebSocket server for the test."""
    with proxy.options(test_upstream_port=ws_upstream.port):
        yield proxy


@pytest.fixture
def ws_policy(ws_proxy, tmp_path):
    """ws_policy(text): ws_proxy with this policy until the test ends."""
    with contextlib.ExitStack() as stack:

        def apply(text: str):
            path = tmp_path / "policy.yaml"
            path.write_text(text)
            return stack.enter_context(ws_proxy.options(shadowgate_policy=str(path)))

        yield apply


def _sdk(proxy, user: str) -> openai.OpenAI:
    return openai.OpenAI(api_key="sk-test-realtime", http_client=proxy.sdk_http(user))


def _realtime(proxy, user: str, model: str = "gpt-realtime"):
    return _sdk(proxy, user).realtime.connect(
        model=model, websocket_connection_options={"proxy": proxy.url(user), "ssl": ws_ssl_context(proxy)}
    )


def _say(connection, text: str) -> None:
    connection.conversation.item.create(
        item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    )
    connection.response.create()


def _until(connection, kind: str) -> list:
    events = []
    for event in connection:
        events.append(event)
        if event.type == kind:
            return events
    return events


def test_openai_realtime_session_is_one_row_with_summed_usage(ws_proxy, ws_upstream):
    proxy = ws_proxy
    with _realtime(proxy, "rt-user") as connection:
        for text in ("first question", "second question"):
            _say(connection, text)
            assert _until(connection, "response.done")[-1].type == "response.done"
    [row] = proxy.rows("user_name = 'rt-user'", expect=1)
    assert (row["provider"], row["wire_format"], row["operation"], row["model"]) == (
        "openai",
        "openai-realtime",
        "realtime",
        "gpt-realtime",
    )
    assert (row["input_tokens"], row["output_tokens"], row["cached_input_tokens"]) == (20, 10, 4)
    assert row["status_code"] == 101 and row["latency_ms"] > 0 and row["path"] == "/v1/realtime"
    assert any("first question" in m for m in ws_upstream.received)


def test_blocked_provider_upgrade_is_refused_before_the_provider(ws_policy, ws_upstream):
    proxy = ws_policy("rules:\n  - id: no-openai\n    match: {provider: openai}\n    action: block\n")
    before = len(ws_upstream.upgrades)
    with pytest.raises(InvalidStatus) as refused:
        connect(
            "wss://api.openai.com/v1/realtime?model=gpt-realtime",
            proxy=proxy.url("rt-blocked"),
            ssl=ws_ssl_context(proxy),
        )
    assert refused.value.response.status_code == 403
    assert b"no-openai" in refused.value.response.body
    assert len(ws_upstream.upgrades) == before
    [row] = proxy.rows("user_name = 'rt-blocked'", expect=1)
    assert (row["decision"], row["rule_id"], row["status_code"], row["model"]) == (
        "block",
        "no-openai",
        403,
        "gpt-realtime",
    )


def test_a_model_rule_applies_to_the_url_and_to_session_update(ws_policy, ws_upstream):
    policy = "rules:\n  - id: no-big-realtime\n    match: {provider: openai, model: 'gpt-realtime-big*'}\n    action: block\n"
    proxy = ws_policy(policy)
    with pytest.raises(InvalidStatus):
        connect(
            "wss://api.openai.com/v1/realtime?model=gpt-realtime-big",
            proxy=proxy.url("rt-model"),
            ssl=ws_ssl_context(proxy),
        )
    # Allowed at the upgrade, then switched to the blocked model: nothing more reaches the provider.
    with _realtime(proxy, "rt-switch", model="gpt-realtime") as connection:
        connection.session.update(session={"type": "realtime", "model": "gpt-realtime-big"})
        _say(connection, "after the switch")
        assert "no-big-realtime" in _until(connection, "error")[-1].error.message
    assert not any("after the switch" in m for m in ws_upstream.received)
    [row] = proxy.rows("user_name = 'rt-switch'", expect=1)
    assert (row["decision"], row["model"]) == ("block", "gpt-realtime-big")


def test_a_model_rule_applies_to_the_transcription_model_a_session_update_names(ws_policy, ws_upstream):
    # The session's own model is allowed; the transcription runs another one (red-team F44).
    policy = "rules:\n  - {id: no-transcribe, match: {model: 'gpt-4o-transcribe*'}, action: block}\n"
    proxy = ws_policy(policy)
    with _realtime(proxy, "rt-transcribe", model="gpt-realtime") as connection:
        transcription = {"model": "gpt-4o-transcribe"}
        connection.session.update(session={"type": "realtime", "audio": {"input": {"transcription": transcription}}})
        _say(connection, "after the transcription switch")
        assert "no-transcribe" in _until(connection, "error")[-1].error.message
    assert not any("after the transcription switch" in m for m in ws_upstream.received)
    [row] = proxy.rows("user_name = 'rt-transcribe'", expect=1)
    assert (row["decision"], row["rule_id"], row["model"]) == ("block", "no-transcribe", "gpt-realtime")


@pytest.mark.parametrize(
    "split",
    ["parts", "instructions-and-tool", "tool-schema-signature"],
)
def test_dlp_reads_a_messages_strings_joined_and_outside_the_prompt(ws_policy, ws_upstream, split):
    # The API path's scan: a key cut across two parts of one item, or across the instructions
    # and a tool description, and a key in a tool schema's `signature` property (red-team F51).
    proxy = ws_policy("dlp:\n  secrets: block\n")
    head, tail = AWS_KEY[:10], AWS_KEY[10:]
    user = f"rt-split-{split}"
    with _realtime(proxy, user) as connection:
        if split == "parts":
            connection.conversation.item.create(
                item={
                    "type": "message",
                    "role": "user",
                    "content": [
                        {"type": "input_text", "text": f"my key is {head}"},
                        {"type": "input_text", "text": f"{tail} thanks"},
                    ],
                }
            )
        elif split == "instructions-and-tool":
            tool = {"type": "function", "name": "f", "description": f"{tail} ok", "parameters": {"type": "object"}}
            connection.session.update(session={"type": "realtime", "instructions": f"key {head}", "tools": [tool]})
        else:
            schema = {
                "type": "object",
                "properties": {"signature": {"type": "string", "description": f"use {AWS_KEY}"}},
            }
            tool = {"type": "function", "name": "sign", "description": "signs", "parameters": schema}
            connection.session.update(session={"type": "realtime", "tools": [tool]})
        assert "AWS" in _until(connection, "error")[-1].error.message
    assert not any(tail in m for m in ws_upstream.received)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["dlp_action"] == "block" and "AWS_ACCESS_KEY" in row["dlp_findings"]


def test_dlp_redacts_and_blocks_client_text_frames(ws_policy, ws_upstream):
    policy = "dlp:\n  secrets: block\n  pii: redact\n"
    proxy = ws_policy(policy)
    with _realtime(proxy, "rt-dlp") as connection:
        _say(connection, "mail me at jane.doe@example.com")
        assert _until(connection, "response.done")[-1].type == "response.done"
        _say(connection, f"my key is {AWS_KEY}")
        errors = [e for e in _until(connection, "response.done") if e.type == "error"]
        if not errors:  # the refusal is injected; it may come after the provider's answer
            errors = [e for e in _until(connection, "error") if e.type == "error"]
        assert errors and "AWS" in errors[0].error.message
    assert any("[EMAIL_1]" in m for m in ws_upstream.received)
    assert not any("jane.doe@example.com" in m or AWS_KEY in m for m in ws_upstream.received)
    [row] = proxy.rows("user_name = 'rt-dlp'", expect=1)
    assert row["dlp_action"] == "block" and "EMAIL:1" in row["dlp_findings"] and "AWS" in row["dlp_findings"]


def test_gemini_live_session_model_usage_and_dlp(ws_policy, ws_upstream):
    proxy = ws_policy("dlp:\n  pii: redact\n")
    with connect(GEMINI_URL, proxy=proxy.url("live-user"), ssl=ws_ssl_context(proxy)) as ws:
        ws.send(json.dumps({"setup": {"model": "models/gemini-live-2.5-flash"}}))
        assert "setupComplete" in json.loads(ws.recv(5))
        for _ in range(2):
            ws.send(
                json.dumps(
                    {
                        "clientContent": {
                            "turns": [{"role": "user", "parts": [{"text": "call +1 415 555 0100 or bob@example.org"}]}],
                            "turnComplete": True,
                        }
                    }
                )
            )
            assert "usageMetadata" in json.loads(ws.recv(5))
    assert not any("bob@example.org" in m for m in ws_upstream.received)
    [row] = proxy.rows("user_name = 'live-user'", expect=1)
    assert (row["provider"], row["wire_format"], row["model"]) == ("gemini-api", "gemini-live", "gemini-live-2.5-flash")
    assert (row["input_tokens"], row["output_tokens"]) == (14, 6)
    assert row["dlp_action"] == "redact"


def test_an_upgrade_to_another_protocol_never_becomes_a_raw_tunnel(ws_proxy, ws_upstream):
    """mitmproxy relays a 101 that is not a WebSocket as raw TCP; on an AI host it is refused."""
    proxy = ws_proxy
    sock, status = open_tunnel(proxy.port, "api.openai.com:443", user="tunneller")
    assert status == 200
    client = TlsClient(sock, proxy.ssl_context(), "api.openai.com")
    client.handshake()
    client.send(b"GET /v1/tunnel HTTP/1.1\r\nHost: api.openai.com\r\nUpgrade: x-tunnel\r\nConnection: Upgrade\r\n\r\n")
    client.send(b"SECRET-PAYLOAD-THROUGH-THE-TUNNEL")
    answer = client.receive(timeout=3)
    assert b"SECRET-PAYLOAD" not in answer
    assert not any("SECRET-PAYLOAD" in m for m in ws_upstream.received)
    [row] = proxy.rows("user_name = 'tunneller'", expect=1)
    assert (row["decision"], row["error_type"], row["path"]) == ("block", "not a WebSocket: refused", "/v1/tunnel")


def _escaped(text: str) -> str:
    """text as JSON \\u escapes: only a JSON reading of the message shows it."""
    return "".join(f"\\u{ord(c):04x}" for c in text)


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_a_bom_prefixed_json_event_is_read_as_json(ws_policy, ws_upstream, binary):
    """A byte order mark before the JSON (in a text or a binary message) is skipped by JSON readers
    that take bytes: the event is read, scanned and decided as the same event without it."""
    proxy = ws_policy(
        "dlp:\n  secrets: block\nrules:\n  - id: no-big-realtime\n"
        "    match: {provider: openai, model: 'gpt-realtime-big*'}\n    action: block\n"
    )

    def send(ws, event: str) -> None:
        data = "\ufeff" + event
        ws.send(data.encode() if binary else data)

    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "my key is KEY"}]}
    event = json.dumps({"type": "conversation.item.create", "item": item}).replace("KEY", _escaped(AWS_KEY))
    user = f"rt-bom-{'bin' if binary else 'text'}"
    with connect(
        "wss://api.openai.com/v1/realtime?model=gpt-realtime", proxy=proxy.url(user), ssl=ws_ssl_context(proxy)
    ) as ws:
        assert json.loads(ws.recv(5))["type"] == "session.created"
        send(ws, event)
        refused = json.loads(ws.recv(5))
        assert refused["type"] == "error" and "AWS" in refused["error"]["message"]
        # The model a BOM-prefixed session.update names is decided too.
        send(ws, json.dumps({"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime-big"}}))
        ws.send(
            json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {**item, "content": [{"type": "input_text", "text": "after the switch"}]},
                }
            )
        )
        with contextlib.suppress(TimeoutError, ConnectionClosed):
            while True:
                ws.recv(2)
    assert not any(AWS_KEY in m or _escaped(AWS_KEY) in m for m in ws_upstream.received)
    assert not any("after the switch" in m for m in ws_upstream.received)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert (row["decision"], row["model"], row["dlp_action"]) == ("block", "gpt-realtime-big", "block")


@pytest.mark.parametrize("where", ["client-content", "media-chunks"])
def test_gemini_live_text_sent_as_inline_data_is_scanned(ws_policy, ws_upstream, where):
    """Text in a base64 part whose mimeType says text/plain: the model reads it, so DLP does."""
    proxy = ws_policy("dlp:\n  secrets: block\n")
    data = base64.b64encode(b"\x01\x02 notes: the key is " + AWS_KEY.encode()).decode()
    part = {"mimeType": "text/plain", "data": data}
    if where == "client-content":
        event = {"clientContent": {"turns": [{"role": "user", "parts": [{"inlineData": part}]}], "turnComplete": True}}
    else:
        event = {"realtimeInput": {"mediaChunks": [part]}}
    user = f"live-inline-{where}"
    with connect(GEMINI_URL, proxy=proxy.url(user), ssl=ws_ssl_context(proxy)) as ws:
        ws.send(json.dumps({"setup": {"model": "models/gemini-live-2.5-flash"}}))
        assert "setupComplete" in json.loads(ws.recv(5))
        ws.send(json.dumps(event))
        refused = json.loads(ws.recv(5))
        assert "AWS" in json.dumps(refused) and "error" in refused
    assert not any(data in m for m in ws_upstream.received)
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["dlp_action"] == "block" and "AWS" in row["dlp_findings"]
