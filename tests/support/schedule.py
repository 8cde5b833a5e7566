"""The order in which the two xdist workers take the test files: the longest first.

xdist's loadfile hands out whole files as workers ask for them, by default the files with the
most tests first, which puts a slow file with one or two tests (the soak, the wheel) last: one
worker then runs it alone while the other has finished. Handing out the longest files first
(longest-processing-time-first scheduling) ends both workers within about one short file of each
other. SLOW_FILES are the files that took longest, in that order; the others follow in their
collection order. The seconds are each file's test seconds in a clean-clone `.ci/run` with
`PYTHONPATH=. PYTEST_ADDOPTS="-p tests.support.count_boots"` (two workers, 5 December 2026, shared machine; the
summary: `uv run python -m tests.support.count_boots`); a file missing here only loses its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

SLOW_FILES = (
    "tests/test_telemetry.py",  # 48 s
    "tests/test_console.py",  # 33 s
    "tests/test_mcp_approve.py",  # 31 s
    "tests/test_act.py",  # 27 s
    "tests/test_soak.py",  # 27 s
    "tests/test_mcp.py",  # 25 s
    "tests/test_security.py",  # 22 s
    "tests/test_report_delivery.py",  # 21 s
    "tests/test_wheel.py",  # 19 s
    "tests/test_report.py",  # 18 s
    "tests/adversarial/test_ws_encodings.py",  # 15 s
    "tests/test_webapps_proxy.py",  # 15 s
    "tests/test_webapps_stage.py",  # 13 s
    "tests/test_unknown_options.py",  # 12 s
    "tests/test_dlp.py",  # 12 s
    "tests/test_meter.py",  # 12 s
    "tests/test_redact.py",  # 8 s
    "tests/adversarial/test_realtime_screening.py",  # 8 s
    "tests/test_wireformats.py",  # 8 s
    "tests/test_record.py",  # 8 s
    "tests/test_startup_side_effects.py",  # 7 s
    "tests/test_proxyauth.py",  # 7 s
    "tests/test_cli.py",  # 6 s
    "tests/test_logs.py",  # 6 s
    "tests/test_budgets_instances.py",  # 6 s
    "tests/test_health.py",  # 5 s
    "tests/test_screening.py",  # 5 s
    "tests/test_siem_alerts.py",  # 4 s
    "tests/test_webapps_report.py",  # 4 s
    "tests/test_deploy.py",  # 4 s
    "tests/test_store.py",  # 4 s
    "tests/test_coach_instances.py",  # 4 s
)


def slowest_files_first(items: list[pytest.Item], root: Path) -> None:
    """Reorder `items` in place: the SLOW_FILES' tests first, in that order, each file's own
    order kept (a stable sort, so module fixtures and parameters stay grouped)."""
    rank = {name: i for i, name in enumerate(SLOW_FILES)}

    def key(item: pytest.Item) -> int:
        return rank.get(_relative(item, root), len(SLOW_FILES))

    items.sort(key=key)


def missing(root: Path, names: Sequence[str] = SLOW_FILES) -> list[str]:
    return [name for name in names if not (root / name).is_file()]


def _relative(item: pytest.Item, root: Path) -> str:
    try:
        return item.path.relative_to(root).as_posix()
    except ValueError:
        return str(item.path)
