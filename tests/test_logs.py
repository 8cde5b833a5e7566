"""Log lines as JSON, in a file that rotates: a real mitmdump with every addon.

The shared proxy takes the log options at run time (proxy.options), as an operator's change would;
the first test and the last start their own, to see the start-up lines and a clean stop. The option
checks are in tests/unit/test_logs.py."""

from __future__ import annotations

import base64
import json
import re
import socket
import time

import httpx

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
TS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


def json_lines(text: str) -> list[dict]:
    lines = [json.loads(line) for line in text.splitlines()]
    for line in lines:
        assert TS.match(line["ts"]) and line["level"] and line["logger"] and "message" in line, line
    return lines


def new_connections(proxy, count: int) -> None:
    """Each call opens (and closes) one client connection: mitmproxy logs connect and disconnect."""
    for _ in range(count):
        with httpx.Client(proxy=proxy.url("logs")) as client:
            assert client.get("http://shadowgate.health/live").status_code == 200


def test_json_log_file_has_mitmproxys_lines_and_ours(fresh_proxy, tmp_path):
    log = tmp_path / "shadowgate.log"
    proxy = fresh_proxy("--set", "shadowgate_log_format=json", "--set", f"shadowgate_log_file={log}", watch_log=log)
    with proxy.client("logs") as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=BODY).status_code == 200
    assert len(proxy.rows("user_name = 'logs'", expect=1)) == 1
    assert proxy.stop() == 0
    lines = json_lines(log.read_text())
    messages = {line["message"] for line in lines}
    assert any(m.startswith("shadowgate: recording to ") for m in messages)  # ours (shadowgate.stages.settings)
    assert any("proxy listening at 127.0.0.1:" in m for m in messages)  # mitmproxy's own
    connects = [line for line in lines if line["message"] == "client connect"]
    assert connects and all(re.match(r"127\.0\.0\.1:\d+$", line["client"]) for line in connects)
    assert {line["logger"] for line in connects} == {"mitmproxy.proxy.server"}
    # The terminal keeps errors only: no connection chatter.
    assert "client connect" not in proxy.log()


def test_json_on_the_terminal(proxy):
    with proxy.options(shadowgate_log_format="json"):
        before = len(proxy.log())
        new_connections(proxy, 1)
    chatter = [line for line in proxy.log()[before:].splitlines() if "client connect" in line]
    assert chatter and all(json.loads(line)["message"] == "client connect" for line in chatter)


def test_structured_fields_join_the_row(proxy, tmp_path, monkeypatch):
    monkeypatch.delenv("SG_TEST_UNSET_GATEWAY_KEY", raising=False)
    policy = tmp_path / "policy.yaml"
    policy.write_text(
        "rules:\n"
        "  - id: to-gateway\n"
        "    match: {provider: openai}\n"
        "    action: redirect\n"
        "    gateway: {openai_base_url: 'https://llm.corp.test/v1', key_env: SG_TEST_UNSET_GATEWAY_KEY}\n"
    )
    log = tmp_path / "shadowgate.log"
    with proxy.options(shadowgate_policy=str(policy), shadowgate_log_format="json", shadowgate_log_file=str(log)):
        with proxy.client("fields") as client:
            assert client.post("https://api.openai.com/v1/chat/completions", json=BODY).status_code == 403
    [row] = proxy.rows("user_name = 'fields'", expect=1)
    [line] = [line for line in json_lines(log.read_text()) if line.get("event") == "gateway_key_missing"]
    assert line["level"] == "error" and line["logger"] == "shadowgate.stages.act"
    assert (line["request_id"], line["user"], line["host"], line["rule_id"]) == (
        row["request_id"],
        "fields",
        "api.openai.com",
        "to-gateway",
    )
    assert "SG_TEST_UNSET_GATEWAY_KEY" in line["message"]


def test_log_file_rotates_at_its_size(proxy, tmp_path):
    log = tmp_path / "shadowgate.log"
    with proxy.options(shadowgate_log_format="json", shadowgate_log_file=str(log),
                       shadowgate_log_max_bytes=4000, shadowgate_log_backups=2):  # fmt: skip
        new_connections(proxy, 40)
    files = [log, log.with_name("shadowgate.log.1"), log.with_name("shadowgate.log.2")]
    assert all(f.exists() for f in files) and not log.with_name("shadowgate.log.3").exists()
    for f in files:
        assert f.stat().st_size <= 4000, f
        json_lines(f.read_text())  # no line is cut between two files
    for f in files[1:]:
        assert f.stat().st_size > 3000, f  # rotated at the size, not before


def test_external_logrotate_renames_the_file(proxy, tmp_path):
    """max_bytes 0: logrotate's default (rename, then the proxy's next line creates a new file)."""
    log = tmp_path / "shadowgate.log"
    # The option changes go over one kept-alive connection: no connect or disconnect of theirs here.
    with proxy.options(shadowgate_log_file=str(log)):
        new_connections(proxy, 3)
        log.rename(log.with_name("shadowgate.log.1"))
        new_connections(proxy, 4)
        deadline = time.monotonic() + 10  # the last disconnect is logged a moment after the client closes
        while (log.read_text() + log.with_name("shadowgate.log.1").read_text()).count("] client disconnect") < 7:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    before = log.with_name("shadowgate.log.1").read_text()
    after = log.read_text()
    assert (before.count("] client connect"), after.count("] client connect")) == (3, 4)
    assert before.count("] client disconnect") + after.count("] client disconnect") == 7  # none lost
    # The text format: date, level, client, message (the new file may start with the last
    # connection's disconnect, logged after the rename).
    connects = [line for line in after.splitlines() if line.endswith("] client connect")]
    assert all(re.match(r"\d{4}-\d\d-\d\dT[\d:.]+Z INFO    \[127\.0\.0\.1:\d+\] client connect$", c) for c in connects)


def test_shutdown_with_clients_still_connected_logs_no_traceback(fresh_proxy):
    # Kept-alive clients are the normal state of a busy proxy; stopping it is not an error
    # (on Python 3.12.0-3.12.1 asyncio logged one CancelledError traceback per open connection).
    proxy = fresh_proxy()
    idle = [socket.create_connection(("127.0.0.1", proxy.port)) for _ in range(5)]
    busy = socket.create_connection(("127.0.0.1", proxy.port))
    busy.sendall(
        b"GET http://shadowgate.health/live HTTP/1.1\r\nHost: shadowgate.health\r\n"
        b"Proxy-Authorization: Basic " + base64.b64encode(b"logs:pw") + b"\r\n\r\n"
    )
    assert busy.recv(100).startswith(b"HTTP/1.1 200")
    try:
        assert proxy.stop() == 0
    finally:
        for s in [*idle, busy]:
            s.close()
    log = proxy.log()
    assert "Traceback" not in log and "CancelledError" not in log, log
