"""Identify, end to end: look-alike hosts, unknown endpoints by shape, bad bodies."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest
from mitmproxy.proxy.layers.http import HttpRequestHeadersHook
from mitmproxy.proxy.layers.http import HttpRequestHook
from mitmproxy.test import taddons
from mitmproxy.test import tflow
from mitmproxy.test import tutils

from shadowgate.flow import flow_record
from shadowgate.stages.identify import Identify
from shadowgate.stages.settings import ShadowgateSettings

CHAT = {"model": "llama-3.1-8b", "messages": [{"role": "user", "content": "hello"}]}


def test_look_alike_hosts_are_not_ai_and_pass_through_untouched(proxy, upstream):
    # These hosts are not decrypted: the client must see the upstream's own certificate, so a
    # client that trusts only the proxy's CA fails, and one that trusts the upstream's succeeds.
    for host in ("api.openai.com.evil.example", "notopenai.com"):
        with httpx.Client(proxy=proxy.url("lookalike"), verify=proxy.test_ssl_context(), timeout=10) as client:
            response = client.post(f"https://{host}/v1/chat/completions", json=CHAT)
        assert response.status_code == 200
        with httpx.Client(proxy=proxy.url("lookalike"), verify=proxy.proxy_only_ssl_context(), timeout=10) as client:
            with pytest.raises(httpx.ConnectError):
                client.post(f"https://{host}/v1/chat/completions", json=CHAT)
    assert proxy.rows("user_name = 'lookalike'", timeout=1.5) == []


@pytest.mark.parametrize("how", ["policy-inspect", "intercept-all"])
def test_unknown_host_speaking_a_known_wire_format_is_discovered(proxy_with, how):
    if how == "policy-inspect":
        proxy = proxy_with("inspect:\n  - llm.internal.test\n")
    else:
        proxy = proxy_with(shadowgate_intercept="all")
    with proxy.client("vllm_user") as client:
        ok = client.post("https://llm.internal.test/v1/chat/completions", json=CHAT)
        not_ai = client.post("https://llm.internal.test/v1/chat/completions", json={"hello": "world"})
        page = client.get("https://llm.internal.test/_fake/bytes?size=10")
    assert ok.status_code == 200 and not_ai.status_code == 200 and page.status_code == 200
    rows = proxy.rows("user_name = 'vllm_user'", expect=2 if how == "policy-inspect" else 1)
    if how == "policy-inspect":
        # A host the operator listed is an AI host: a body no wire format describes is an unknown
        # endpoint, recorded (and scanned), not "not AI" (red-team F32). The page GET is not a call.
        row, unknown = rows
        assert (unknown["provider"], unknown["wire_format"], unknown["model"]) == ("unknown", None, None)
    else:
        [row] = rows
    assert row["provider"] == "unknown"
    assert row["host"] == "llm.internal.test"
    assert row["site"] == "internal.test"
    assert row["wire_format"] == "openai-chat"
    assert row["model"] == "llama-3.1-8b"
    assert row["cost_usd"] is None  # an unknown endpoint has no price, and none is made up


@pytest.mark.parametrize(
    "name, body, headers",
    [
        ("garbage", b"{not json at all", {"content-type": "application/json"}),
        ("wrongtype", json.dumps(CHAT).encode(), {"content-type": "text/plain"}),
        ("empty", b"", {"content-type": "application/json"}),
        ("binary", bytes(range(256)) * 64, {"content-type": "application/octet-stream"}),
        ("badutf8", b'{"model": "\xff\xfe", "messages": []}', {"content-type": "application/json"}),
        ("gzipgarbage", b"\x1f\x8b\x08\x00garbage", {"content-type": "application/json", "content-encoding": "gzip"}),
    ],
)
def test_bad_bodies_still_go_through_and_are_recorded(proxy, upstream, name, body, headers):
    user = f"bad_{name}"
    before = len(upstream.seen)
    with proxy.client(user) as client:
        response = client.post("https://api.openai.com/v1/chat/completions", content=body, headers=headers)
    assert response.status_code == 200
    assert upstream.seen[before:] and upstream.seen[-1].body == body  # forwarded byte for byte
    [row] = proxy.rows(f"user_name = '{user}'", expect=1)
    assert row["provider"] == "openai" and row["status_code"] == 200
    assert row["request_bytes"] == len(body)
    assert proxy.alive()


def test_fifty_megabyte_body_goes_through(proxy, upstream):
    body = json.dumps(
        {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * (50 * 1024 * 1024)}]}
    ).encode()
    with proxy.client("big_body") as client:
        response = client.post(
            "https://api.openai.com/v1/chat/completions", content=body, headers={"content-type": "application/json"}
        )
    assert response.status_code == 200
    assert len(upstream.seen[-1].body) == len(body)
    [row] = proxy.rows("user_name = 'big_body'", expect=1)
    assert row["request_bytes"] == len(body)
    assert row["status_code"] == 200
    assert proxy.alive()


def test_large_download_from_an_ai_host_is_streamed_not_buffered(proxy):
    with proxy.client("download") as client:
        with client.stream("GET", "https://api.openai.com/_fake/bytes?size=30000000") as response:
            size = sum(len(b) for b in response.iter_bytes())
    assert size == 30_000_000
    assert proxy.alive()


def test_a_get_whose_body_only_shows_at_its_end_is_recorded(tmp_path):
    # Over HTTP/2 no header has to announce a body: a GET to an AI host looks like a page fetch
    # at requestheaders, and only its body says it is a call. It is recorded, not ignored.
    settings = ShadowgateSettings()
    identify = Identify(settings)
    body = json.dumps(CHAT).encode()

    def flow(content: bytes):
        request = tutils.treq(
            host="api.openai.com", port=443, scheme=b"https", method=b"GET", path=b"/v1/chat/completions",
            headers=(), content=content,
        )  # fmt: skip
        f = tflow.tflow(req=request)
        f.client_conn.sni = "api.openai.com"
        return f

    async def main():
        with taddons.context(settings, identify) as tctx:
            tctx.configure(settings, shadowgate_fingerprint_key=str(tmp_path / "fp.key"))
            with_body, without = flow(body), flow(b"")
            for f in (with_body, without):
                await tctx.master.addons.handle_lifecycle(HttpRequestHeadersHook(f))
                assert flow_record(f) is None  # nothing announced a body
                await tctx.master.addons.handle_lifecycle(HttpRequestHook(f))
            return flow_record(with_body), flow_record(without)

    rec, none = asyncio.run(main())
    assert none is None
    assert (rec.host, rec.provider.id, rec.method, rec.route) == ("api.openai.com", "openai", "GET", None)
    assert rec.request_bytes == len(body)
