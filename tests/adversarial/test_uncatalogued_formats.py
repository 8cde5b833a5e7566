"""Red-team F31, F32: AI hosts whose requests no wire format describes, through a real mitmdump.

F31: a service the catalog lists without `wire_formats` (Bedrock Agents, ElevenLabs, an
OpenAI-compatible relay, a chat web app without a `web_apps` entry, a coding assistant) had its
bodies forwarded unscanned. F32: a host under the policy's `inspect` (an internal model server)
had the native APIs of llama.cpp, TGI, KoboldCpp and Triton forwarded with no row and no scan.
Each such request with a body is now an unknown endpoint, recorded and DLP-scanned in every
string; the relay is read by its shape. The policy redacts secrets; each test asserts what
reached the fake upstream, what the client got and the row written.
"""

from __future__ import annotations

import gzip
import json

import pytest

from tests.adversarial.wire import marker

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
REDACTED = b"[AWS_ACCESS_KEY_1]"
MODEL_SERVER = "llm.internal.test"
POLICY = f"""\
inspect: [{MODEL_SERVER}]
dlp: {{secrets: redact, pii: log}}
rules:
  - {{id: no-blocked-model, match: {{model: 'blocked-model*'}}, action: block}}
"""


@pytest.fixture(scope="module")
def gate(module_proxy_with):
    """The session proxy with this module's policy (and a database of its own) until its last test."""
    return module_proxy_with(POLICY)


def _send(proxy, user: str, method: str, url: str, content: bytes | None = None, headers: dict | None = None):
    mark = marker()
    with proxy.client(user) as client:
        answer = client.request(method, url, content=content, headers={"x-attack": mark, **(headers or {})})
    return answer, mark


def _post_json(proxy, user: str, url: str, body: object):
    return _send(proxy, user, "POST", url, json.dumps(body).encode(), {"content-type": "application/json"})


def _seen(upstream, mark: str):
    return [s for s in upstream.seen if s.headers.get("x-attack") == mark]


def _row(proxy, user: str) -> dict:
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    return row


@pytest.mark.parametrize(
    ("user", "url", "body", "provider", "model"),
    [
        # (InvokeAgent names an agent, a model by reference judged as any model: test_catalog_routes.py)
        ("bedrock-agents", "https://bedrock-agent-runtime.us-east-1.amazonaws.com/knowledgebases/KB1/retrieve",
         {"retrievalQuery": {"text": f"please find: aws key {AWS_KEY}"}}, "aws-bedrock-agents", None),
        ("elevenlabs-tts", "https://api.elevenlabs.io/v1/text-to-speech/voice1",
         {"text": f"read out {AWS_KEY}", "model_id": "eleven_multilingual_v2"}, "elevenlabs", "eleven_multilingual_v2"),
        ("notebooklm", "https://notebooklm.google.com/api/chat",
         {"messages": [{"role": "user", "content": f"my aws key is {AWS_KEY} please keep it"}]}, "notebooklm", None),
        # a key as an object key, and in a string nested deep in a shape nobody catalogued
        ("deep-and-keys", "https://api.elevenlabs.io/v1/projects/p1/chapters",
         {"chapters": [{"meta": {AWS_KEY: "x", "notes": ["a", {"t": f"k={AWS_KEY}"}]}}]}, "elevenlabs", None),
    ],
)  # fmt: skip
def test_services_without_wire_formats_are_scanned_and_recorded(gate, upstream, user, url, body, provider, model):
    answer, mark = _post_json(gate, user, url, body)
    [seen] = _seen(upstream, mark)
    assert AWS_KEY.encode() not in seen.body and REDACTED in seen.body
    assert answer.status_code in (200, 404)  # sent on: the fake upstream answers some paths
    row = _row(gate, user)
    assert (row["provider"], row["model"], row["operation"]) == (provider, model, None)
    assert (row["dlp_action"], row["dlp_findings"]) == ("redact", f"AWS_ACCESS_KEY:{body_keys(body)}")


def body_keys(body: object) -> int:
    return json.dumps(body).count(AWS_KEY)


def test_an_openai_compatible_relay_is_read_by_its_shape(gate, upstream):
    body = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": f"why does {AWS_KEY} fail?"}]}
    answer, mark = _post_json(gate, "relay", "https://gptunnel.ru/v1/chat/completions", body)
    [seen] = _seen(upstream, mark)
    assert json.loads(seen.body)["messages"][0]["content"] == "why does [AWS_ACCESS_KEY_1] fail?"
    assert answer.status_code == 200
    row = _row(gate, "relay")
    assert (row["provider"], row["wire_format"], row["operation"], row["model"]) == (
        "gptunnel",
        "openai-chat",
        "chat",
        "gpt-4o-mini",
    )
    assert row["dlp_action"] == "redact" and row["input_tokens"]  # metered like OpenAI's


@pytest.mark.parametrize(
    ("user", "url", "body"),
    [
        ("relay-rule", "https://gptunnel.ru/v1/chat/completions",
         {"model": "blocked-model-1", "messages": [{"role": "user", "content": "hi"}]}),
        ("agents-rule", "https://bedrock-agent-runtime.us-east-1.amazonaws.com/agents/AG1/x",
         {"modelId": "blocked-model-2", "inputText": "hi"}),
        ("server-rule", f"https://{MODEL_SERVER}/completion", {"model": "blocked-model-3", "prompt": "hi"}),
    ],
)  # fmt: skip
def test_a_model_the_body_names_meets_the_model_rules(gate, upstream, user, url, body):
    answer, mark = _post_json(gate, user, url, body)
    assert answer.status_code == 403 and _seen(upstream, mark) == []
    row = _row(gate, user)
    assert (row["model"], row["decision"], row["rule_id"]) == (
        body.get("model") or body["modelId"],
        "block",
        "no-blocked-model",
    )


def test_a_form_body_is_scanned_as_text(gate, upstream):
    answer, mark = _send(
        gate,
        "form",
        "POST",
        "https://api.elevenlabs.io/v1/sound-generation",
        f"text=deploy+with+{AWS_KEY}&duration=3".encode(),
        {"content-type": "application/x-www-form-urlencoded"},
    )
    [seen] = _seen(upstream, mark)
    assert seen.body == b"text=deploy+with+%5BAWS_ACCESS_KEY_1%5D&duration=3"  # re-encoded; the rest as sent
    assert _row(gate, "form")["dlp_action"] == "redact"


def test_a_multipart_body_is_scanned_part_by_part(gate, upstream):
    content = (
        b'--b0\r\nContent-Disposition: form-data; name="model_id"\r\n\r\nscribe_v1\r\n'
        b'--b0\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n'
        b"Content-Type: text/plain\r\n\r\nkey " + AWS_KEY.encode() + b"\r\n--b0--\r\n"
    )
    answer, mark = _send(
        gate,
        "multipart",
        "POST",
        "https://api.elevenlabs.io/v1/speech-to-text",
        content,
        {"content-type": "multipart/form-data; boundary=b0"},
    )
    [seen] = _seen(upstream, mark)
    assert AWS_KEY.encode() not in seen.body and b"key " + REDACTED in seen.body
    assert b'name="model_id"\r\n\r\nscribe_v1\r\n' in seen.body
    assert _row(gate, "multipart")["dlp_action"] == "redact"


def test_a_binary_body_that_cannot_be_rewritten_is_refused(gate, upstream):
    """A coding assistant's Connect/protobuf body: the key is readable in it, but a redaction
    cannot be written back into protobuf bytes, so the request is refused."""
    message = b"\n\x28aws_access_key_id=" + AWS_KEY.encode() + b"\x12\x02\xff\xfe"
    content = b"\x00" + len(message).to_bytes(4, "big") + message
    answer, mark = _send(
        gate,
        "connect-proto",
        "POST",
        "https://api2.cursor.sh/aiserver.v1.ChatService/StreamUnifiedChatWithTools",
        content,
        {"content-type": "application/connect+proto"},
    )
    assert answer.status_code == 403 and _seen(upstream, mark) == []
    row = _row(gate, "connect-proto")
    assert (row["provider"], row["dlp_action"], row["dlp_findings"]) == ("cursor", "block", "AWS_ACCESS_KEY:1")


def test_a_body_that_cannot_be_decoded_fails_closed(gate, upstream):
    content = json.dumps({"inputText": f"key {AWS_KEY}"}).encode()
    answer, mark = _send(
        gate,
        "undecodable",
        "POST",
        "https://bedrock-agent-runtime.us-east-1.amazonaws.com/agents/AG1/agentAliases/AL1/sessions/s1/text",
        gzip.compress(content)[:-6],
        {"content-type": "application/json", "content-encoding": "gzip"},
    )
    assert answer.status_code == 403 and "DLP fails closed" in answer.text
    assert _seen(upstream, mark) == []
    assert _row(gate, "undecodable")["dlp_action"] == "error"


def test_page_loads_on_a_chat_app_without_an_entry_leave_no_row(gate, upstream):
    for path in ("/", "/static/app.js", "/notebook/n1"):
        answer, mark = _send(gate, "page-loads", "GET", f"https://notebooklm.google.com{path}")
        assert len(_seen(upstream, mark)) == 1
    answer, mark = _post_json(gate, "page-loads-telemetry", "https://notebooklm.google.com/log", {"event": "view"})
    assert len(_seen(upstream, mark)) == 1
    assert gate.rows("user_name = 'page-loads-telemetry'", expect=1)  # a POST is recorded, clean
    assert gate.rows("user_name = 'page-loads'", timeout=0.5) == []


# --- F32: native APIs of self-hosted model servers on an inspected host -------------------------


@pytest.mark.parametrize(
    ("user", "path", "body", "model"),
    [
        ("llama-cpp", "/completion", {"prompt": f"aws key {AWS_KEY}", "n_predict": 64}, None),
        ("llama-cpp-infill", "/infill", {"input_prefix": f"key = '{AWS_KEY}'", "input_suffix": ""}, None),
        ("tgi", "/generate", {"inputs": f"aws key {AWS_KEY}", "parameters": {"max_new_tokens": 20}}, None),
        ("koboldcpp", "/api/v1/generate", {"prompt": f"aws key {AWS_KEY}", "max_length": 50}, None),
        ("triton", "/v2/models/llama/generate", {"text_input": f"aws key {AWS_KEY}"}, "llama"),  # the model its path names
        ("named-model", "/v1/engines/run", {"model": "llama3", "input": f"aws key {AWS_KEY}"}, "llama3"),
    ],
)  # fmt: skip
def test_an_inspected_model_servers_native_api_is_scanned_and_recorded(gate, upstream, user, path, body, model):
    answer, mark = _post_json(gate, user, f"https://{MODEL_SERVER}{path}", body)
    [seen] = _seen(upstream, mark)
    assert AWS_KEY.encode() not in seen.body and REDACTED in seen.body
    row = _row(gate, user)
    assert (row["host"], row["provider"], row["model"]) == (MODEL_SERVER, "unknown", model)
    assert (row["dlp_action"], row["dlp_findings"]) == ("redact", "AWS_ACCESS_KEY:1")


def test_an_inspected_hosts_requests_without_a_body_leave_no_row(gate, upstream):
    answer, mark = _send(gate, "health", "GET", f"https://{MODEL_SERVER}/health")
    assert len(_seen(upstream, mark)) == 1
    assert gate.rows("user_name = 'health'", timeout=0.5) == []
