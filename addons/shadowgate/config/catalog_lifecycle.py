"""What happened to an AI service: renamed, acquired, being shut down or gone, with the page that says so.

A provider entry in providers.yaml may carry

    lifecycle:
      status: retired               # renamed | acquired | retiring | retired
      date: 2025-05-30              # optional: when it took (or takes) effect, or was announced
      by: Cognition                 # optional: who took the service or its team over
      successor: gemini-app         # optional: the catalog id of the service that replaces it
      source: https://...           # required: the vendor's (or new owner's) own announcement

The entry keeps its hosts and is still matched: traffic to a retired service's hosts is worth
seeing (a stale integration, a lookalike squatting an abandoned domain, data sent to a company
that changed hands). The status is shown by `shadowgate catalog show|stats` and in the weekly
report's apps table; it is not scored in the risk level, which stays the documented facts table.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shadowgate.config.catalog_facts import URL
from shadowgate.config.yamlfile import ConfigError
from shadowgate.config.yamlfile import line_of
from shadowgate.config.yamlfile import line_of_key

STATUSES = {
    "renamed": "the service goes on under another name or host",
    "acquired": "the vendor, or its team, joined another company (`by`); the service may go on or wind down",
    "retiring": "the vendor announced the service's end; it may still answer",
    "retired": "the service ended; its hosts may still answer, redirect or be re-registered",
}
KEYS = ("status", "date", "by", "successor", "source")


@dataclass(frozen=True, slots=True)
class Lifecycle:
    status: str
    source: str
    date: datetime.date | None = None
    by: str | None = None
    successor: str | None = None

    def describe(self) -> str:
        """One line for a report cell: 'acquired by Cognition, 2025-07-14', 'renamed, 2024-02-08, now gemini-app'."""
        parts = [f"acquired by {self.by}" if self.by and self.status == "acquired" else self.status]
        if self.by and self.status != "acquired":
            parts.append(f"owned by {self.by}")
        if self.date:
            parts.append(self.date.isoformat())
        if self.successor:
            parts.append(f"{'now' if self.status == 'renamed' else 'replaced by'} {self.successor}")
        return ", ".join(parts)


def load_lifecycle(path: str | Path, raw: Any, pid: str, default_line: int | None) -> Lifecycle:
    """Validate a provider's `lifecycle` mapping (that a successor is catalogued is checked per file)."""
    line = line_of(raw, default_line)
    if not isinstance(raw, dict):
        raise ConfigError(path, line, f"provider {pid!r}: 'lifecycle' must be a mapping")

    def fail(key: str, reason: str) -> ConfigError:
        return ConfigError(path, line_of_key(raw, key) or line, f"provider {pid!r}: lifecycle.{key} {reason}")

    if unknown := [key for key in raw if key not in KEYS]:
        raise ConfigError(
            path,
            line_of_key(raw, unknown[0]) or line,
            f"provider {pid!r}: lifecycle: unknown keys {sorted(map(str, unknown))} (expected {list(KEYS)})",
        )
    status = raw.get("status")
    if status not in STATUSES:
        raise fail("status", f"must be one of {list(STATUSES)}")
    source = raw.get("source")
    if not isinstance(source, str) or not URL.fullmatch(source):
        raise fail("source", "must be the https URL of the announcement (every lifecycle fact needs one)")
    date = raw.get("date")
    if date is not None and (not isinstance(date, datetime.date) or isinstance(date, datetime.datetime)):
        raise fail("date", "must be a date, YYYY-MM-DD")
    texts = {}
    for key in ("by", "successor"):
        value = raw.get(key)
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise fail(key, "must be a non-empty string")
        texts[key] = value.strip() if isinstance(value, str) else None
    if texts["successor"] == pid:
        raise fail("successor", "names the entry itself")
    return Lifecycle(status=status, source=source, date=date, by=texts["by"], successor=texts["successor"])
