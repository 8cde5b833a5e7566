"""The xdist schedule's list of slow files names files that exist (a renamed file would silently
lose its place at the front of the queue)."""

from __future__ import annotations

from pathlib import Path

from tests.support.schedule import SLOW_FILES
from tests.support.schedule import missing

ROOT = Path(__file__).resolve().parents[2]


def test_every_slow_file_exists():
    assert missing(ROOT) == []
    assert len(set(SLOW_FILES)) == len(SLOW_FILES)
