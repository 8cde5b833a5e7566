"""The coach flow in real headless Chromium, through a real mitmdump whose CA it trusts."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
POLICY = """\
rules:
  - id: coach-chatgpt
    match: {provider: chatgpt}
    action: coach
    message: ChatGPT is not approved for customer data.
    alternative: https://chat.corp.test
    coach: {minutes: 30}
"""


def spki_hash(ca_pem: Path) -> str:
    # mitmproxy signs every leaf with its CA key pair, so pinning that key trusts exactly the proxy.
    cert = x509.load_pem_x509_certificate(ca_pem.read_bytes())
    der = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


class DevTools:
    def __init__(self, ws_url: str) -> None:
        from websockets.sync.client import connect

        self.ws = connect(ws_url, max_size=None, legacy=True)
        self.next_id = 0

    def call(self, method: str, **params):
        self.next_id += 1
        self.ws.send(json.dumps({"id": self.next_id, "method": method, "params": params}))
        while True:
            message = json.loads(self.ws.recv(timeout=30))
            if message.get("id") == self.next_id:
                return message.get("result", {})

    def evaluate(self, expression: str):
        return self.call("Runtime.evaluate", expression=expression, returnByValue=True)["result"].get("value")

    def wait_for(self, expression: str, timeout: float = 20.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = self.evaluate(expression)
            if value:
                return value
            time.sleep(0.1)
        raise AssertionError(
            f"timed out waiting for {expression}: {self.evaluate('document.documentElement.outerHTML')}"
        )


@pytest.fixture
def chromium(tmp_path):
    assert CHROMIUM, "chromium is not installed (.ci/run installs it)"
    processes = []

    def start(proxy_port: int, ca_pem: Path) -> DevTools:
        profile = tmp_path / "profile"
        process = subprocess.Popen(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                f"--user-data-dir={profile}",
                "--remote-debugging-port=0",
                f"--proxy-server=http://127.0.0.1:{proxy_port}",
                "--proxy-bypass-list=<-loopback>",
                f"--ignore-certificate-errors-spki-list={spki_hash(ca_pem)}",
                "about:blank",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        processes.append(process)
        port_file = profile / "DevToolsActivePort"
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text().strip():
            assert time.monotonic() < deadline and process.poll() is None, "chromium did not start"
            time.sleep(0.1)
        port = int(port_file.read_text().split()[0])
        import httpx

        pages = httpx.get(f"http://127.0.0.1:{port}/json/list", trust_env=False).json()
        page = next(p for p in pages if p["type"] == "page")
        devtools = DevTools(page["webSocketDebuggerUrl"])
        devtools.call("Page.enable")
        return devtools

    yield start
    for process in processes:
        process.kill()
        process.wait()


def test_coach_interstitial_click_continue_then_pass(fresh_proxy, tmp_path, upstream, chromium):
    policy = tmp_path / "policy.yaml"
    policy.write_text(POLICY)
    proxy = fresh_proxy("--set", f"shadowgate_policy={policy}", proxyauth="")
    browser = chromium(proxy.port, proxy.ca_pem)

    browser.call("Page.navigate", url="https://chatgpt.com/")
    assert browser.wait_for("document.title") == "Before you continue"
    text = browser.evaluate("document.body.innerText")
    assert "ChatGPT is not approved for customer data." in text and "https://chat.corp.test" in text
    before = len(upstream.seen)

    browser.evaluate("document.getElementById('continue').click()")
    # After "continue" the proxy sends the browser back to the page, which now reaches ChatGPT.
    browser.wait_for("document.body && document.body.innerText.includes('no fake case')")
    assert browser.evaluate("location.href") == "https://chatgpt.com/"
    assert any(s.host == "chatgpt.com" and s.path == "/" for s in upstream.seen[before:])

    browser.call("Page.navigate", url="https://chatgpt.com/c/123")
    browser.wait_for("document.body && document.body.innerText.includes('no fake case')")
    assert any(s.path == "/c/123" for s in upstream.seen[before:])  # still allowed: no second page

    events = proxy.rows(expect=1, table="policy_events")
    assert [(e["event"], e["user_name"], e["provider"], e["rule_id"]) for e in events] == [
        ("coach_continue", "127.0.0.1", "chatgpt", "coach-chatgpt")
    ]
