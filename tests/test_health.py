"""Health and readiness through the proxy port, and several instances as one."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import duckdb
import httpx

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_ready_and_live(proxy):
    with httpx.Client(proxy=proxy.url("health")) as client:
        ready = client.get("http://shadowgate.health/")
        live = client.get("http://shadowgate.health/live")
    assert ready.status_code == 200 and ready.json()["status"] == "ready"
    assert ready.json()["mode"] == "none" and ready.json()["rows_dropped"] == 0  # no policy: observe everything
    assert live.json() == {"status": "live"}


def test_storage_failure_makes_the_proxy_not_ready(proxy, tmp_path):
    today = time.strftime("day=%Y-%m-%d", time.gmtime())
    blocked = tmp_path / "health.segments" / "ai_requests" / today
    blocked.parent.mkdir(parents=True)
    blocked.write_text("not a folder")
    # A database of its own, switched at run time; switching back writes the waiting row.
    with proxy.options(shadowgate_db=str(tmp_path / "health.duckdb")):
        with proxy.client("health_fail") as client:
            client.post("https://api.openai.com/v1/chat/completions", json=BODY)
        with httpx.Client(proxy=proxy.url("health")) as client:
            deadline = time.monotonic() + 10
            while (r := client.get("http://shadowgate.health/")).status_code != 503:
                assert time.monotonic() < deadline
                time.sleep(0.2)
        assert r.json()["status"] == "degraded" and r.json()["rows_waiting"] >= 1
        blocked.unlink()


def test_three_instances_on_one_data_directory_count_exactly(proxy, fresh_proxy, tmp_path, upstream):
    import json

    usage = upstream.pick("POST", "/v1/chat/completions", json.dumps(BODY).encode())["expect"]["response"]["usage"]
    shared = tmp_path / "shared.duckdb"
    # The shared proxy is the first instance (its database switched at run time; switching back
    # closes its writer, which seals its last rows); two more start on the same file.
    with proxy.options(shadowgate_db=str(shared)):
        instances = [proxy, fresh_proxy(db=shared), fresh_proxy(db=shared)]

        def load(index: int) -> int:
            instance = instances[index % 3]
            with instance.client(f"scale{index}") as client:
                return sum(
                    client.post("https://api.openai.com/v1/chat/completions", json=BODY).status_code == 200
                    for _ in range(30)
                )

        with ThreadPoolExecutor(9) as pool:
            answered = sum(pool.map(load, range(9)))
        assert answered == 270
        for instance in instances[1:]:
            assert instance.stop() == 0
    con = duckdb.connect(str(shared), read_only=True)
    try:
        total, users, tokens = con.execute(
            "SELECT count(*), count(DISTINCT user_name), sum(input_tokens + output_tokens) FROM ai_requests WHERE user_name LIKE 'scale%'"
        ).fetchone()
        files = con.execute(
            "SELECT count(DISTINCT filename) FROM read_parquet(?, filename = true)",
            [str(shared.with_name("shared.segments") / "ai_requests" / "*" / "*.parquet")],
        ).fetchone()[0]
    finally:
        con.close()
    assert (total, users) == (270, 9)
    assert tokens == 270 * (usage["input_tokens"] + usage["output_tokens"])
    assert files >= 3  # each instance sealed its own segments
