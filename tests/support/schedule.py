"""The order in which the two xdist workers take the test files: the longest first.

xdist's loadfile hands out whole files as workers ask for them, by default the files with the
most tests first, which puts a slow file with one or two tests (the soak, the wheel) last: one
worker then runs it alone while the other has finished. Handing out the longest files first
(longest-processing-time-first scheduling) ends both workers within about one short file of each
other. SLOW_FILES are the files that took longest, in that order; the others follow in their
collection order. The seconds are from `uv run python -m pytest -q -n 0 -p tests.support.count_boots`
(one process, 5 December 2026); a file missing here only loses its place in the queue.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

SLOW_FILES = (
    "tests/test_telemetry.py",  # 38 s
    "tests/test_mcp_approve.py",  # 29 s
    "tests/test_soak.py",  # 27 s, one test
    "tests/test_act.py",  # 21 s
    "tests/test_console.py",  # 19 s
    "tests/test_webapps_stage.py",  # 18 s
    "tests/test_report.py",  # 16 s
    "tests/test_wheel.py",  # 16 s
    "tests/test_budgets_instances.py",  # 16 s
    "tests/test_webapps_proxy.py",  # 15 s
    "tests/test_unknown_options.py",  # 13 s
    "tests/test_report_delivery.py",  # 13 s
    "tests/test_mcp.py",  # 12 s
    "tests/test_security.py",  # 11 s
    "tests/unit/test_mcp.py",  # 10 s
    "tests/test_dlp.py",  # 10 s
    "tests/test_meter.py",  # 9 s
    "tests/test_startup_side_effects.py",  # 9 s
    "tests/test_record.py",  # 8 s
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
