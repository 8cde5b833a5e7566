"""Faults and odd input: traffic keeps flowing, the proxy stays up, nothing is lost silently."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import time

import httpx
import pytest

from shadowgate.demo.fakeupstream import load_cases

CASES = load_cases()
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
STREAM_CASE = CASES["openai-chat-stream-usage"]


def post_case(client, case, **headers):
    req = case["request"]
    return client.post(
        f"https://{case['host']}{req['path']}", json=req["body"], headers={"x-fake-case": case["name"], **headers}
    )


def test_storage_failure_keeps_traffic_flowing_and_recovers(proxy, tmp_path):
    db = tmp_path / "down.duckdb"
    today = time.strftime("day=%Y-%m-%d", time.gmtime())
    blocked = db.with_name("down.segments") / "ai_requests" / today
    blocked.parent.mkdir(parents=True)
    blocked.write_text("a file where the day's folder should be: every write fails")
    before = len(proxy.log())
    with proxy.options(shadowgate_db=str(db)):  # a database of its own, at run time
        with proxy.client("disk_down") as client:
            codes = [client.post("https://api.openai.com/v1/chat/completions", json=CHAT).status_code for _ in range(5)]
        assert codes == [200] * 5
        deadline = time.monotonic() + 10
        while "cannot write ai_requests segment" not in proxy.log()[before:]:
            assert time.monotonic() < deadline
            time.sleep(0.2)
        assert proxy.log()[before:].count("cannot write ai_requests segment") == 1  # reported once, not per request
        blocked.unlink()
        found = dataclasses.replace(proxy, db=db).rows("user_name = 'disk_down'", expect=5)
        assert len(found) == 5  # spooled, then written
        assert "storage recovered" in proxy.log()[before:]


def test_corrupt_database_file_does_not_stop_the_proxy(proxy, tmp_path):
    db = tmp_path / "corrupt.duckdb"
    db.write_bytes(b"this is not a duckdb file" * 100)
    before = len(proxy.log())
    with proxy.options(shadowgate_db=str(db)):  # switched at run time: opened as at start-up
        with proxy.client("corrupt") as client:
            assert client.post("https://api.openai.com/v1/chat/completions", json=CHAT).status_code == 200
        assert "cannot open" in proxy.log()[before:]
        segments = db.with_name("corrupt.segments") / "ai_requests"
        deadline = time.monotonic() + 10
        while not any(p.parent.name != "day=1970-01-01" for p in segments.glob("*/*.parquet")):
            assert time.monotonic() < deadline
            time.sleep(0.2)
    assert proxy.alive()


def test_upstream_reset_mid_stream_is_passed_on_and_recorded(proxy):
    with proxy.client("reset_user") as client:
        with pytest.raises(httpx.RemoteProtocolError):
            post_case(client, STREAM_CASE, **{"x-fake-fault": "reset-after-2"}).read()
    [row] = proxy.rows("user_name = 'reset_user'", expect=1)
    assert row["error_type"] is not None and row["streaming"] is True
    assert proxy.alive()


def test_upstream_5xx_reaches_the_client_unchanged(proxy):
    with proxy.client("five_hundred") as client:
        r = client.post("https://api.openai.com/v1/chat/completions", json=CHAT, headers={"x-fake-fault": "500"})
    assert r.status_code == 500 and r.json() == {"error": {"message": "upstream broke", "type": "server_error"}}
    [row] = proxy.rows("user_name = 'five_hundred'", expect=1)
    assert row["status_code"] == 500 and row["error_type"] == "server_error" and row["usage_estimated"] is False


def test_truncated_gzip_response_is_recorded_and_the_proxy_survives(proxy):
    case = CASES["openai-chat-cached-reasoning"]
    with proxy.client("trunc_gzip") as client:
        r = post_case(client, case, **{"x-fake-fault": "truncated-gzip"})
    assert r.status_code == 502  # mitmproxy's answer when the upstream hangs up mid-body
    [row] = proxy.rows("user_name = 'trunc_gzip'", expect=1)
    assert row["error_type"] is not None
    assert proxy.alive()


def test_http2_clients_are_metered(proxy):
    curl = shutil.which("curl")
    assert curl, "curl is needed for this test"
    req = STREAM_CASE["request"]
    out = subprocess.run(
        [
            curl,
            "-sS",
            "--http2",
            "-w",
            "\n%{http_version}",
            "-x",
            proxy.url("h2_user"),
            "--cacert",
            str(proxy.ca_pem),
            "-H",
            "content-type: application/json",
            "-H",
            f"x-fake-case: {STREAM_CASE['name']}",
            "--data-binary",
            json.dumps(req["body"]),
            f"https://{STREAM_CASE['host']}{req['path']}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout.rstrip().endswith("\n2") and "data:" in out.stdout, out.stderr
    [row] = proxy.rows("user_name = 'h2_user'", expect=1)
    assert row["input_tokens"] == STREAM_CASE["expect"]["response"]["usage"]["input_tokens"]


def test_expect_100_continue_and_giant_headers(proxy, tmp_path):
    curl = shutil.which("curl")
    assert curl, "curl is needed for this test"
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x" * 2_000_000}]}))
    out = subprocess.run(
        [
            curl,
            "-sS",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "-x",
            proxy.url("expect100"),
            "--cacert",
            str(proxy.ca_pem),
            "-H",
            "Expect: 100-continue",
            "-H",
            "content-type: application/json",
            "--data-binary",
            f"@{body}",
            "https://api.openai.com/v1/chat/completions",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.stdout == "200", out.stderr
    proxy.rows("user_name = 'expect100'", expect=1)
    with proxy.client("giant") as client:
        r = client.post("https://api.openai.com/v1/chat/completions", json=CHAT, headers={"x-giant": "a" * 60_000})
    assert r.status_code in (200, 400, 431)
    assert proxy.alive()


def test_websocket_upgrade_to_an_ai_host_does_not_break_the_proxy(proxy):
    with proxy.client("ws_user") as client:
        r = client.get(
            "https://api.openai.com/v1/realtime",
            headers={
                "connection": "Upgrade",
                "upgrade": "websocket",
                "sec-websocket-version": "13",
                "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==",
            },
        )
    assert r.status_code == 404  # the fake provider has no realtime API: the answer comes through
    assert proxy.alive()
