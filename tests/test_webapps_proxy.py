"""Chat web apps through a real mitmdump, driven by real headless Chromium.

A fake web-app upstream serves a small page at each app's origin (chatgpt.com, claude.ai,
gemini.google.com) and answers the apps' endpoints; the page's script makes the calls the apps
make (fetch with a JSON body, a FormData upload, a form-encoded XMLHttpRequest, a cross-origin PUT
of the file bytes after a CORS preflight, a telemetry beacon). The test checks what the page
sees, what reached the upstream, and the web_activity and ai_requests rows.
"""

from __future__ import annotations

import json
import ssl
import threading
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from pathlib import Path

import pytest

from tests.test_coach_browser import chromium  # noqa: F401  (the fixture)

AWS_KEY = "AKIAZ7Q3M5X2R3W4T5YB"
HOSTS = ("chatgpt.com", "claude.ai", "gemini.google.com", "files07.oaiusercontent.com")
POLICY = """\
dlp: {secrets: redact, pii: log}
rules:
  - {id: no-spreadsheets, match: {category: chat-web, activity: upload, file_type: [xlsx]}, action: block}
"""


class FakeWebApp:
    """The apps' origins on 127.0.0.1: a page for any GET, canned answers for the endpoints."""

    def __init__(self, test_ca, folder: Path) -> None:
        cert = test_ca.issue_cert(*HOSTS)
        cert_pem, key_pem = folder / "webapp-cert.pem", folder / "webapp-key.pem"
        cert.cert_chain_pems[0].write_to_path(str(cert_pem))
        cert.private_key_pem.write_to_path(str(key_pem))
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(str(cert_pem), str(key_pem))
        self.seen: list[tuple[str, str, str, bytes]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def setup(self) -> None:
                self.request = context.wrap_socket(self.request, server_side=True)
                super().setup()

            def log_message(self, *args) -> None:
                pass

            def _answer(self, status: int, body: bytes, content_type: str, extra: dict | None = None) -> None:
                self.send_response(status)
                self.send_header("content-type", content_type)
                self.send_header("content-length", str(len(body)))
                for k, v in (extra or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(body)

            def _cors(self) -> dict:
                return {
                    "access-control-allow-origin": self.headers.get("origin", "*"),
                    "access-control-allow-methods": "PUT, POST",
                    "access-control-allow-headers": "content-type, x-ms-blob-type, x-ms-version",
                }

            def do_GET(self) -> None:
                fake.seen.append(("GET", self.headers["host"], self.path, b""))
                self._answer(200, b"<!doctype html><title>app</title><p>fake app</p>", "text/html")

            def do_OPTIONS(self) -> None:
                fake.seen.append(("OPTIONS", self.headers["host"], self.path, b""))
                self._answer(204, b"", "text/plain", self._cors())

            def do_PUT(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                fake.seen.append(("PUT", self.headers["host"], self.path, body))
                self._answer(201, b"", "text/plain", self._cors())

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                host, path = self.headers["host"], self.path
                fake.seen.append(("POST", host, path, body))
                if path == "/backend-api/files":
                    name = json.loads(body)["file_name"]
                    url = f"https://files07.oaiusercontent.com/files/{name}/raw?sig=x"
                    return self._answer(
                        200, json.dumps({"file_id": "file-1", "upload_url": url}).encode(), "application/json"
                    )
                if path.endswith("/f/conversation"):
                    events = b'data: {"v": "Hello"}\n\ndata: {"v": " there"}\n\ndata: [DONE]\n\n'
                    return self._answer(200, events, "text/event-stream")
                if "StreamGenerate" in path:
                    return self._answer(200, b')]}\'\n\n12\n[["wrb.fr"]]\n', "application/json")
                self._answer(200, b"{}", "application/json")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def webapp(test_ca, tmp_path):
    fake = FakeWebApp(test_ca, tmp_path)
    yield fake
    fake.stop()


def run(browser, script: str):
    """An async script in the page; returns its value."""
    result = browser.call("Runtime.evaluate", expression=f"(async () => {{ {script} }})()", awaitPromise=True,
                          returnByValue=True)  # fmt: skip
    assert "exceptionDetails" not in result, result
    return result["result"].get("value")


CHATGPT_PROMPT = """
const body = (text) => JSON.stringify({action: "next", messages: [{id: "m1", author: {role: "user"},
  content: {content_type: "text", parts: [text]}, metadata: {}}], model: "auto", conversation_id: null});
const send = async (text) => {
  const r = await fetch("/backend-api/f/conversation", {method: "POST", body: body(text),
    headers: {"content-type": "application/json", "accept": "text/event-stream", "chatgpt-account-id": "ws-1"}});
  return [r.status, await r.text()];
};
"""


def test_chat_apps_in_chromium_count_prompts_scan_them_and_see_uploads(
    fresh_proxy,
    tmp_path,
    upstream,
    webapp,
    chromium,  # noqa: F811
) -> None:
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = fresh_proxy("--set", f"shadowgate_policy={policy}", proxyauth="", upstream_port=webapp.port)
    browser = chromium(proxy.port, proxy.ca_pem)

    browser.call("Page.navigate", url="https://chatgpt.com/_t/app.html")
    browser.wait_for("document.title === 'app'")
    # A prompt streams through; telemetry and anti-bot calls pass but count as nothing.
    ok = run(browser, CHATGPT_PROMPT + "return await send('plan the team offsite');")
    assert ok == [200, 'data: {"v": "Hello"}\n\ndata: {"v": " there"}\n\ndata: [DONE]\n\n']
    run(browser, """
        await fetch("/ces/v1/b", {method: "POST", body: '{"batch":[]}', headers: {"content-type": "text/plain"}});
        await fetch("/backend-api/sentinel/chat-requirements", {method: "POST", body: '{"p":"x"}'});
        return 1;""")  # fmt: skip
    # A planted secret never leaves: the page gets ChatGPT's own error shape, naming the type.
    blocked = run(browser, CHATGPT_PROMPT + f"return await send('deploy with aws_access_key_id={AWS_KEY}');")
    assert blocked[0] == 403 and "AWS_ACCESS_KEY" in json.loads(blocked[1])["detail"]
    assert all(AWS_KEY.encode() not in body for _, _, _, body in webapp.seen)
    # An upload: the announce names the file, a cross-origin PUT carries the bytes.
    put = run(browser, """
        const a = await fetch("/backend-api/files", {method: "POST", headers: {"content-type": "application/json"},
          body: JSON.stringify({file_name: "notes.txt", file_size: 12, use_case: "multimodal"})});
        const {upload_url} = await a.json();
        const p = await fetch(upload_url, {method: "PUT", body: "hello world\\n",
          headers: {"x-ms-blob-type": "BlockBlob", "x-ms-version": "2020-04-08", "content-type": "text/plain"}});
        const b = await fetch("/backend-api/files", {method: "POST", headers: {"content-type": "application/json"},
          body: JSON.stringify({file_name: "customers.xlsx", file_size: 4096, use_case: "multimodal"})});
        return [a.status, p.status, b.status];""")  # fmt: skip
    assert put == [200, 201, 403]  # the spreadsheet rule refuses the announce: its bytes never leave

    browser.call("Page.navigate", url="https://claude.ai/_t/app.html")
    browser.wait_for("document.title === 'app'")
    claude = run(browser, f"""
        const org = "0b9e0000-1111-2222-3333-444455556666", conv = "c0c00000-1111-2222-3333-444455556666";
        const form = new FormData();
        form.append("file", new Blob(["token aws_access_key_id={AWS_KEY}"], {{type: "text/plain"}}), "creds.txt");
        const up = await fetch(`/api/${{org}}/upload`, {{method: "POST", body: form}});
        const pr = await fetch(`/api/organizations/${{org}}/chat_conversations/${{conv}}/completion`, {{
          method: "POST", headers: {{"content-type": "application/json"}},
          body: JSON.stringify({{prompt: "summarise the meeting", attachments: [], files: []}})}});
        return [up.status, (await up.json()).error.type, pr.status];""")  # fmt: skip
    assert claude == [403, "permission_error", 200]

    browser.call("Page.navigate", url="https://gemini.google.com/_t/app.html")
    browser.wait_for("document.title === 'app'")
    gemini = run(browser, f"""
        const inner = JSON.stringify([["what is in {AWS_KEY}", 0, null, null, null, null, 0], ["en"], ["", "", ""]]);
        const body = "f.req=" + encodeURIComponent(JSON.stringify([null, inner])) + "&at=AJvL%3A1&";
        return await new Promise((resolve) => {{
          const x = new XMLHttpRequest();
          x.open("POST", "/_/BardChatUi/data/assistant.lamda.BardFrontendService/StreamGenerate?rt=c");
          x.setRequestHeader("content-type", "application/x-www-form-urlencoded;charset=utf-8");
          x.onload = () => resolve(x.status);
          x.send(body);
        }});""")  # fmt: skip
    assert gemini == 403

    rows = proxy.rows("true", expect=9, table="web_activity")
    found = [(r["endpoint"], r["activity"], r["decision"], r["dlp_action"], r["status_code"]) for r in rows]
    assert found == [
        ("chatgpt.prompt", "prompt", "allow", None, 200),
        ("chatgpt.prompt", "prompt", "allow", "block", 403),
        ("chatgpt.upload-announce", "upload", "allow", None, 200),
        ("chatgpt.upload-bytes", "upload", "allow", None, 201),
        ("chatgpt.upload-announce", "upload", "block", None, 403),
        ("claude.upload", "upload", "allow", "block", 403),
        ("claude.prompt", "prompt", "allow", None, 200),
        ("gemini-app.prompt", "prompt", "allow", "block", 403),
    ]
    assert [r["file_type"] for r in rows if r["activity"] == "upload"] == ["txt", "txt", "xlsx", "txt"]
    # Only the prompts are AI calls: telemetry, Sentinel and uploads add no ai_requests row.
    calls = proxy.rows("true", expect=4, table="ai_requests")
    assert [(c["provider"], c["path"], c["status_code"]) for c in calls] == [
        ("chatgpt", "/backend-api/f/conversation", 200),
        ("chatgpt", "/backend-api/f/conversation", 403),
        ("claude", "/api/organizations/0b9e0000-1111-2222-3333-444455556666/chat_conversations/"
                   "c0c00000-1111-2222-3333-444455556666/completion", 200),
        ("gemini-app", "/_/BardChatUi/data/assistant.lamda.BardFrontendService/StreamGenerate", 403),
    ]  # fmt: skip
    assert calls[0]["usage_estimated"] and calls[0]["operation"] == "chat"
    everything = b"".join(p.read_bytes() for p in proxy.db.parent.rglob("*.parquet")) + proxy.log().encode()
    assert AWS_KEY.encode() not in everything and b"plan the team offsite" not in everything
