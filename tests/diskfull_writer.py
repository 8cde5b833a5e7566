"""Run by tests/test_store.py inside `unshare -rm` with a small tmpfs mounted at argv[1]: the
segment writer against a full disk. Prints one JSON line of what it saw."""

import datetime as dt
import json
import logging
import sys
from pathlib import Path

from shadowgate.storage.store import SegmentWriter
from shadowgate.storage.store import Table
from tests.diskfull import fill

folder = Path(sys.argv[1])
T = Table("things", (("ts", "TIMESTAMP"), ("name", "VARCHAR"), ("n", "BIGINT")))
errors: list[str] = []


class Collect(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        if record.levelno >= logging.ERROR:
            errors.append(record.getMessage())


logging.getLogger("shadowgate.storage.store").addHandler(Collect())
writer = SegmentWriter(folder / "x.duckdb", [T], flush_interval=0.05)
writer.start()
filler = folder / "filler"
fill(filler)
now = dt.datetime(2026, 11, 28, 12)
for n in range(100):
    writer.submit("things", (now, "spooled while the disk is full", n))
    if n % 10 == 9:
        writer.flush()  # ten write attempts against the full disk
full = {
    "last_error": writer.last_error,
    "backlog": writer.backlog(),
    "written": writer.rows_written,
    "errors_logged": len(errors),
}
filler.unlink()
writer.flush()
writer.close()
import duckdb  # noqa: E402

con = duckdb.connect(str(folder / "x.duckdb"), read_only=True)
rows = con.execute("SELECT count(*), count(DISTINCT n) FROM things WHERE day > '1970-01-01'").fetchone()
con.close()
print(
    json.dumps(
        {
            "full": full,
            "after": {
                "rows": rows,
                "written": writer.rows_written,
                "dropped": writer.rows_dropped,
                "last_error": writer.last_error,
                "errors": errors,
            },
        }
    )
)
