"""Run by tests/test_siem_alerts.py inside `unshare -rm` with a 1 MiB tmpfs mounted at argv[1]: the
SIEM feed's file against a disk that fills up half way through a write. Prints one JSON line."""

import datetime as dt
import json
import sys
import time
from pathlib import Path

from shadowgate.events.feed import EventFeed
from shadowgate.events.schema import alert_event
from shadowgate.events.transports import parse_destination
from shadowgate.storage.rows import AI_REQUESTS
from shadowgate.storage.rows import AiRequest
from shadowgate.storage.rows import AlertRow
from tests.diskfull import fill

folder = Path(sys.argv[1])
out = folder / "events.jsonl"
filler = folder / "filler"
fill(filler, leave=8192)  # 8 KiB free: less than the one write below

feed = EventFeed([parse_destination(f"json:{out}")], interval=0.05)
now = dt.datetime(2026, 12, 5, 12)
for n in range(100):  # ~50 KiB, queued before the thread starts: one write that fails half way
    feed.put(AI_REQUESTS.name, AiRequest(ts=now, request_id=f"r{n}", user_name=f"u{n}", host="api.deepseek.com",
                                         provider="deepseek", decision="block", rule_id="no-deepseek"))  # fmt: skip
alert = AlertRow(now, "dlp", "dlp_block", "u1|api.deepseek.com", "DLP block: u1", "u1", "api.deepseek.com")
feed.put_event(alert_event(alert, "a" * 32))
feed.start()
deadline = time.monotonic() + 10
while feed.last_error is None and time.monotonic() < deadline:
    time.sleep(0.02)
full = {
    "last_error": feed.last_error,
    "problems": feed.problems(),
    "size": out.stat().st_size if out.exists() else None,
    "waiting": len(feed.outlets[0].waiting),
}
filler.unlink()
feed.outlets[0].retry_at = 0  # skip the back-off pause
flushed = feed.flush(10)
feed.close()
lines = out.read_text(encoding="utf-8").splitlines()
parsed = [json.loads(line) for line in lines]  # raises on a torn line
after = {
    "flushed": flushed,
    "users": [e.get("user", {}).get("name") for e in parsed],
    "kinds": [e["event"]["kind"] for e in parsed],
    "sent": feed.sent,
    "lost": feed.lost,
    "last_error": feed.last_error,
}
print(json.dumps({"full": full, "after": after}))
