"""Measurement plugin: real mitmdump launches and test seconds per test file.

    uv run python -m pytest -p tests.support.count_boots [tests ...]   (writes boots.json, or $BOOTS_OUT)

Counts the mitmdump processes this pytest process starts (start_proxy, whether exec'd or forked by
tests/support/mitmdump_forkserver.py, and any direct Popen), not
those a started command starts in turn (`shadowgate proxy`, scripts/soak.py, the wheel's demo).
"""

from __future__ import annotations

import json
import os
import subprocess
from collections import defaultdict

from tests.support.forked import ForkServer

_current_file = ["?"]
_boots: defaultdict[str, int] = defaultdict(int)
_seconds: defaultdict[str, float] = defaultdict(float)
_popen_init = subprocess.Popen.__init__


def _counting_init(self, args, *rest, **kwargs):
    program = args[0] if isinstance(args, (list, tuple)) else str(args).split()[0]
    if os.path.basename(str(program)) == "mitmdump":
        _boots[_current_file[0]] += 1
    return _popen_init(self, args, *rest, **kwargs)


subprocess.Popen.__init__ = _counting_init  # type: ignore[method-assign]
_fork_start = ForkServer.start


def _counting_fork(self, args, *rest, **kwargs):
    _boots[_current_file[0]] += 1
    return _fork_start(self, args, *rest, **kwargs)


ForkServer.start = _counting_fork  # type: ignore[method-assign]


def pytest_runtest_logstart(nodeid, location):
    _current_file[0] = nodeid.split("::")[0]


def pytest_runtest_logreport(report):
    _seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_sessionfinish(session):
    files = sorted(set(_boots) | set(_seconds))
    totals = {f: {"boots": _boots.get(f, 0), "seconds": round(_seconds.get(f, 0.0), 1)} for f in files}
    out_path = os.environ.get("BOOTS_OUT", "boots.json")
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # one file per xdist worker
        out_path = f"{out_path}.{worker}"
    with open(out_path, "w") as out:
        json.dump(totals, out, indent=1)
