"""Small things a newcomer trips over (issue 18): --version, and a closed pipe is not a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from shadowgate import __version__

SHADOWGATE = str(Path(sys.executable).parent / "shadowgate")


def test_version_prints_the_installed_version():
    done = subprocess.run([SHADOWGATE, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == f"shadowgate {__version__}"
    assert __version__ != "0.0.0+unknown"


def test_a_reader_that_leaves_early_gets_no_traceback(tmp_path):
    # `shadowgate catalog match - | head -1` on a long list: the reader leaves after one line.
    hosts = tmp_path / "hosts.txt"
    hosts.write_text("\n".join(f"api{i}.openai.com" for i in range(20000)))
    with hosts.open("rb") as stdin:
        process = subprocess.Popen(
            [SHADOWGATE, "catalog", "match", "-"], stdin=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
    assert process.stdout and process.stderr
    assert process.stdout.readline().startswith(b"api0.openai.com")
    process.stdout.close()
    err = process.stderr.read()
    assert process.wait(timeout=60) in (0, 141)
    assert b"Traceback" not in err and b"BrokenPipe" not in err
