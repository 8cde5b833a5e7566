"""A local HTTPS server that answers like the AI providers do, from addons/shadowgate/demo/cases/*.json.

It picks the fixture case by the `x-fake-case` header when a test names one, else by path and
the request's stream flag. Streams go out with chunked transfer encoding, one SSE event (or
NDJSON line, or event-stream frame group) per chunk, with an optional delay between chunks, so
tests can prove the proxy passes the first chunk on before the stream ends.

Extra routes for tests of the proxy itself:
  /_fake/sse?events=N&interval_ms=M   N OpenAI chat chunks, M ms apart, then usage and [DONE]
  /_fake/bytes?size=N                 N bytes of application/octet-stream
  /_fake/echo                         the request body back, as JSON {"size": ..}
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import socket
import ssl
import threading
import time
import zlib
from dataclasses import dataclass
from dataclasses import field
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from urllib.parse import parse_qs
from urllib.parse import urlsplit

from shadowgate.resources import DEMO_CASES

# The same fixtures the tests use: documented responses of each provider.
FIXTURES = DEMO_CASES


def load_cases() -> dict[str, dict]:
    return {c["name"]: c for c in (json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json")))}


def case_body(case: dict) -> bytes:
    response = case["response"]
    if response.get("body_base64") is not None:
        return base64.b64decode(response["body_base64"])
    if response.get("body_json") is not None:
        return json.dumps(response["body_json"]).encode()
    return (response.get("body_text") or "").encode()


def split_stream(body: bytes, content_type: str) -> list[bytes]:
    """One chunk per event, the way providers flush them."""
    if "eventstream" in content_type:
        chunks, i = [], 0
        while i + 4 <= len(body):
            total = int.from_bytes(body[i : i + 4], "big")
            chunks.append(body[i : i + total])
            i += total
        return chunks or [body]
    separator = b"\n\n" if "event-stream" in content_type else b"\n"
    parts = body.split(separator)
    chunks = [p + separator for p in parts[:-1]]
    if parts[-1]:
        chunks.append(parts[-1])
    return [c for c in chunks if c]


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    host: str


@dataclass
class FakeUpstream:
    cert_pem: str
    key_pem: str
    cases: dict[str, dict] = field(default_factory=load_cases)
    seen: list[Seen] = field(default_factory=list)

    def start(self) -> FakeUpstream:
        upstream = self

        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert_pem, self.key_pem)

        class Handler(_Handler):
            fake = upstream
            tls = context

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.server.request_queue_size = 128
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def pick(self, method: str, path: str, body: bytes) -> dict | None:
        """The first successful case for this endpoint whose stream flags match the request's.

        The model in a path (Gemini, Bedrock) is a wildcard, so an SDK may ask for any model.
        """
        try:
            wanted = _stream_flags(json.loads(body or b"{}"), path)
        except ValueError:
            wanted = _stream_flags(None, path)
        endpoint = _endpoint(path.split("?", 1)[0])
        for case in self.cases.values():
            req = case["request"]
            if (
                req["method"] == method
                and _endpoint(req["path"]) == endpoint
                and case["response"]["status"] == 200
                and _stream_flags(req.get("body"), f"{req['path']}?{req.get('query') or ''}") == wanted
            ):
                return case
        return None


def _endpoint(path: str) -> str:
    path = re.sub(r"^/v1(?:beta\d*|alpha\d*)?/", "/v1/", path)  # Gemini serves v1 and v1beta alike
    return re.sub(r"/models?/[^/:]+", "/models/*", path)


def _stream_flags(body: object, path: str) -> tuple[bool, bool, bool]:
    sse = "alt=sse" in path
    if not isinstance(body, dict):
        return (False, False, sse)
    options = body.get("stream_options")
    return (bool(body.get("stream")), bool(isinstance(options, dict) and options.get("include_usage")), sse)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeUpstream
    tls: ssl.SSLContext
    protocol_version = "HTTP/1.1"

    def setup(self) -> None:
        # Handshake in this connection's own thread: a TLS-wrapped listening socket would do it
        # in the accept loop, where one slow handshake stalls every new connection.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.request = self.tls.wrap_socket(self.request, server_side=True)
        super().setup()

    def log_message(self, *args) -> None:  # keep pytest output clean
        pass

    def _read_body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            body = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return body
                body += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def _handle(self) -> None:
        body = self._read_body()
        self.fake.seen.append(
            Seen(
                self.command,
                self.path,
                {k.lower(): v for k, v in self.headers.items()},
                body,
                self.headers.get("host", ""),
            )
        )
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if url.path == "/_fake/sse":
            return self._synthetic_sse(int(query.get("events", ["64"])[0]), int(query.get("interval_ms", ["20"])[0]))
        if url.path == "/_fake/bytes":
            size = int(query.get("size", ["0"])[0])
            return self._send(200, {"content-type": "application/octet-stream"}, [b"x" * size])
        if url.path.startswith("/_fake/echo/") and url.path.endswith("/chat/completions"):
            return self._echo_chat(body)
        if url.path == "/_fake/echo":
            return self._send(200, {"content-type": "application/json"}, [json.dumps({"size": len(body)}).encode()])
        name = self.headers.get("x-fake-case")
        case = self.fake.cases.get(name) if name else self.fake.pick(self.command, self.path, body)
        if case is None:
            return self._send(
                404, {"content-type": "application/json"}, [b'{"error":{"message":"no fake case","type":"not_found"}}']
            )
        response = case["response"]
        payload = case_body(case)
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        content_type = headers.get("content-type", "")
        streamed = any(t in content_type for t in ("event-stream", "ndjson", "eventstream")) or (
            re.search(r":stream", case["request"]["path"]) is not None
        )
        chunks = split_stream(payload, content_type) if streamed else [payload]
        delay = float(self.headers.get("x-fake-delay-ms") or 0) / 1000
        fault = self.headers.get("x-fake-fault", "")
        if fault == "500":
            return self._send(
                500,
                {"content-type": "application/json"},
                [b'{"error":{"message":"upstream broke","type":"server_error"}}'],
            )
        if fault == "truncated-gzip":
            whole = gzip.compress(payload)
            self.send_response(response["status"])
            self.send_header("content-type", content_type)
            self.send_header("content-encoding", "gzip")
            self.send_header("content-length", str(len(whole)))
            self.end_headers()
            self.wfile.write(whole[: len(whole) // 2])  # then hang up: the body is cut short
            self.wfile.flush()
            self.close_connection = True
            return None
        if fault.startswith("reset-after-"):
            chunks = chunks[: int(fault.removeprefix("reset-after-"))]
        self._send(
            response["status"],
            headers,
            chunks,
            delay,
            self.headers.get("x-fake-encoding"),
            reset=fault.startswith("reset-after-"),
        )

    def _echo_chat(self, body: bytes) -> None:
        """An OpenAI chat model that repeats the last user message, in pieces when streaming."""
        request = json.loads(body or b"{}")
        said = request["messages"][-1]["content"]
        answer = f"You said: {said}"
        usage = {"prompt_tokens": len(said) // 4 + 1, "completion_tokens": len(answer) // 4 + 1}
        usage["total_tokens"] = usage["prompt_tokens"] + usage["completion_tokens"]
        if not request.get("stream"):
            reply = {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "model": request.get("model"),
                "choices": [{"index": 0, "message": {"role": "assistant", "content": answer}, "finish_reason": "stop"}],
                "usage": usage,
            }
            return self._send(200, {"content-type": "application/json"}, [json.dumps(reply).encode()])

        # x-fake-newline: crlf ends lines with CRLF, as some servers do (the SSE spec allows it).
        newline = b"\r\n" if self.headers.get("x-fake-newline") == "crlf" else b"\n"

        def event(data: dict | str) -> bytes:
            return b"data: " + (data if isinstance(data, str) else json.dumps(data)).encode() + newline + newline

        base = {"id": "chatcmpl-echo", "object": "chat.completion.chunk", "model": request.get("model")}
        # One word per event, each event cut in two chunks mid-way, so a placeholder arrives
        # split across chunks; or, with x-fake-split: 3, three characters per event, the way a
        # tokenizer cuts a placeholder over several events.
        size = int(self.headers.get("x-fake-split") or 0)
        words = (
            [answer[i : i + size] for i in range(0, len(answer), size)]
            if size
            else [w + " " for w in answer.split(" ")]
        )
        chunks = []
        for word in words:
            data = event({**base, "choices": [{"index": 0, "delta": {"content": word}, "finish_reason": None}]})
            middle = data.index(b'"content": "') + len('"content": "') + len(word.encode()) // 2
            chunks += [data[:middle], data[middle:]]
        chunks.append(event({**base, "choices": [], "usage": usage}) + event("[DONE]"))
        self._send(200, {"content-type": "text/event-stream"}, chunks, 0.001)

    def _synthetic_sse(self, events: int, interval_ms: int) -> None:
        def chunk(i: int) -> bytes:
            data = {
                "id": "chatcmpl-synthetic",
                "object": "chat.completion.chunk",
                "model": "gpt-4o-mini-2024-07-18",
                "choices": [{"index": 0, "delta": {"content": f"tok{i} "}, "finish_reason": None}],
            }
            return b"data: " + json.dumps(data).encode() + b"\n\n"

        usage = {
            "id": "chatcmpl-synthetic",
            "object": "chat.completion.chunk",
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [],
            "usage": {"prompt_tokens": 11, "completion_tokens": events, "total_tokens": 11 + events},
        }
        chunks = [chunk(i) for i in range(events)]
        chunks.append(b"data: " + json.dumps(usage).encode() + b"\n\ndata: [DONE]\n\n")
        self._send(
            200,
            {"content-type": "text/event-stream"},
            chunks,
            interval_ms / 1000,
            self.headers.get("x-fake-encoding"),
            stamp=True,
        )

    def _send(
        self,
        status: int,
        headers: dict[str, str],
        chunks: list[bytes],
        delay: float = 0.0,
        encoding: str | None = None,
        stamp: bool = False,
        reset: bool = False,
    ) -> None:
        self.send_response(status)
        for name, value in headers.items():
            if name not in ("content-length", "transfer-encoding", "content-encoding"):
                self.send_header(name, value)
        compressor = None
        if encoding == "gzip":
            compressor = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            self.send_header("content-encoding", "gzip")
        single = len(chunks) == 1 and delay == 0 and compressor is None
        if single:
            self.send_header("content-length", str(len(chunks[0])))
        else:
            self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        if single:
            self.wfile.write(chunks[0])
            self.wfile.flush()
            return
        for i, data in enumerate(chunks):
            if i and delay:
                time.sleep(delay)
            if stamp:  # lets a test measure when the proxy passed each chunk on
                data = data.replace(b"tok", f"{time.time():.6f}|tok".encode(), 1) if b"tok" in data else data
            if compressor is not None:
                data = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
            if data:
                self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
                self.wfile.flush()
        if reset:  # die mid-stream, without the terminating chunk
            self.close_connection = True
            self.request.shutdown(socket.SHUT_RDWR)
            return
        if compressor is not None:
            tail = compressor.flush()
            if tail:
                self.wfile.write(f"{len(tail):x}\r\n".encode() + tail + b"\r\n")
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data)
