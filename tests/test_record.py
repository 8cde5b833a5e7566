"""Record, end to end: SIGTERM loses no row; the database is readable while the proxy runs."""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

BODY = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


def test_sigterm_loses_no_completed_request(fresh_proxy):
    proxy = fresh_proxy()

    def burst(worker: int) -> int:
        with proxy.client(f"burst{worker}") as client:
            return sum(
                client.post("https://api.openai.com/v1/chat/completions", json=BODY).status_code == 200
                for _ in range(40)
            )

    with ThreadPoolExecutor(8) as pool:
        answered = sum(pool.map(burst, range(8)))
    assert answered == 320
    assert proxy.stop() == 0  # SIGTERM straight after the last response
    assert len(proxy.rows("user_name LIKE 'burst%'")) == 320


def test_database_is_readable_by_another_process_while_the_proxy_runs(proxy):
    with proxy.client("reader_check") as client:
        client.post("https://api.openai.com/v1/chat/completions", json=BODY)
    proxy.rows("user_name = 'reader_check'", expect=1)
    # A user's own duckdb session, read-write, next to the live proxy.
    code = (
        "import duckdb, sys; c = duckdb.connect(sys.argv[1]); "
        "print(c.execute(\"select count(*) from ai_requests where user_name = 'reader_check'\").fetchone()[0])"
    )
    out = subprocess.run([sys.executable, "-c", code, str(proxy.db)], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"
    assert proxy.alive()


def test_sigkill_loses_at_most_the_last_second_and_the_next_start_recovers(fresh_proxy, tmp_path):
    import signal

    db = tmp_path / "killed.duckdb"
    first = fresh_proxy(db=db)
    with first.client("before_kill") as client:
        for _ in range(20):
            assert client.post("https://api.openai.com/v1/chat/completions", json=BODY).status_code == 200
    # Rows are sealed at least once a second: wait until the writer's own clock sealed these 20.
    assert len(first.rows("user_name = 'before_kill'", expect=20, timeout=5, flush=False)) == 20
    with first.client("last_second") as client:
        client.post("https://api.openai.com/v1/chat/completions", json=BODY)
    first.process.send_signal(signal.SIGKILL)
    first.process.wait(10)
    second = fresh_proxy(db=db)
    assert len(second.rows("user_name = 'before_kill'", expect=20)) == 20
    with second.client("after_restart") as client:
        assert client.post("https://api.openai.com/v1/chat/completions", json=BODY).status_code == 200
    assert len(second.rows("user_name = 'after_restart'", expect=1)) == 1
