"""A real full disk for tests: a small tmpfs in a user and mount namespace of our own (`unshare
-rm`, no root needed), a script run inside it, and a helper that fills it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def run_on_small_disk(script: str, tmp_path: Path) -> dict:
    """Runs tests/<script> with a 1 MiB tmpfs mounted at its first argument; its last stdout line, as JSON."""
    mount = tmp_path / "small"
    mount.mkdir()
    command = f'mount -t tmpfs -o size=1m tmpfs "{mount}" && exec "{sys.executable}" tests/{script} "{mount}"'
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PYTHONPATH": str(ROOT)})  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def fill(path: Path, leave: int = 0) -> None:
    """Takes every free byte of the disk into the file `path`, but `leave` bytes (rounded to pages)."""
    reserve = path.with_name(path.name + ".reserve")
    if leave:
        reserve.write_bytes(b"\0" * leave)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError:
        pass
    os.close(fd)
    reserve.unlink(missing_ok=True)
