"""Measurement plugin: real mitmdump launches, test seconds and a timeline per test file.

    uv run python -m pytest -p tests.support.count_boots [tests ...]   (writes boots.json, or $BOOTS_OUT)
    uv run python -m tests.support.count_boots [boots.json]            (sums up the run's files)
    PYTHONPATH=. PYTEST_ADDOPTS="-p tests.support.count_boots" BOOTS_OUT=/tmp/boots.json .ci/run

Counts the mitmdump processes this pytest process starts (start_proxy, whether exec'd or forked by
tests/support/mitmdump_forkserver.py, and any direct Popen), not
those a started command starts in turn (`shadowgate proxy`, scripts/soak.py, the wheel's demo).
Each xdist worker writes its own file (boots.json.gw0, ...) with, per test file, the wall-clock
span in which it ran (from its first test's start to its last test's end), and the worker's CPU
seconds (its own and its waited children's: the fork server and through it every mitmdump, the
commands and browsers it started). The summary shows when each worker ran out of work, which is
what a schedule (tests/support/schedule.py) can change.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from tests.support.forked import ForkServer

_current_file = ["?"]
_boots: defaultdict[str, int] = defaultdict(int)
_seconds: defaultdict[str, float] = defaultdict(float)
_spans: dict[str, list[float]] = {}
_cpu: defaultdict[str, float] = defaultdict(float)  # this process's and its waited children's
_cpu_mark = [0.0]
_session_start = [time.time()]
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


def pytest_sessionstart(session):
    _session_start[0] = time.time()


def pytest_runtest_logstart(nodeid, location):
    name = nodeid.split("::")[0]
    _current_file[0] = name
    _cpu_mark[0] = _cpu_seconds()
    _spans.setdefault(name, [time.time(), time.time()])


def pytest_runtest_logfinish(nodeid, location):
    _cpu[nodeid.split("::")[0]] += _cpu_seconds() - _cpu_mark[0]
    span = _spans.get(nodeid.split("::")[0])
    if span is not None:
        span[1] = time.time()


def pytest_runtest_logreport(report):
    _seconds[report.nodeid.split("::")[0]] += report.duration


def _cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def pytest_sessionfinish(session):
    # The fork server is this process's child: stop it now so that its CPU seconds (and its
    # mitmdumps') count among the waited children's (it is stopped at exit otherwise).
    from tests.support import forked

    if forked._server is not None:
        forked._server.close()
    files = sorted(set(_boots) | set(_seconds))
    totals = {
        f: {
            "boots": _boots.get(f, 0),
            "seconds": round(_seconds.get(f, 0.0), 1),
            "cpu": round(_cpu.get(f, 0.0), 1),
            "span": [round(t - _session_start[0], 1) for t in _spans.get(f, [0.0, 0.0])],
        }
        for f in files
    }
    result = {"started": _session_start[0], "ended": time.time(), "cpu": round(_cpu_seconds(), 1), "files": totals}
    out_path = os.environ.get("BOOTS_OUT", "boots.json")
    if worker := os.environ.get("PYTEST_XDIST_WORKER"):  # one file per xdist worker
        out_path = f"{out_path}.{worker}"
    with open(out_path, "w") as out:
        json.dump(result, out, indent=1)


def summarize(base: str = "boots.json") -> str:
    """The run's figures from boots.json (one process) or boots.json.gw* (xdist workers)."""
    where = Path(base)
    paths = sorted(where.parent.glob(f"{where.name}.gw*")) or [where]
    runs = {p.suffix.lstrip(".") if p != where else "main": json.loads(p.read_text()) for p in paths}
    start = min(r["started"] for r in runs.values())
    lines = []
    files = {}
    for worker, run in runs.items():
        offset = run["started"] - start
        spans = [f["span"] for f in run["files"].values()]
        last = max((s[1] for s in spans), default=0.0) + offset
        lines.append(
            f"{worker}: {len(run['files'])} files, tests ended at {last:.0f} s, session ended at"
            f" {run['ended'] - start:.0f} s, {run['cpu']:.0f} s of CPU,"
            f" {sum(f['boots'] for f in run['files'].values())} mitmdump starts"
        )
        files.update({name: dict(f, worker=worker, offset=offset) for name, f in run["files"].items()})
    lines.append(
        f"all: {sum(f['seconds'] for f in files.values()):.0f} s of tests,"
        f" {sum(r['cpu'] for r in runs.values()):.0f} s of CPU in the workers,"
        f" {sum(f['boots'] for f in files.values())} mitmdump starts"
    )
    lines.append(
        "slowest files: test seconds, CPU seconds (the worker's and the commands it waited for, not"
        " the forked mitmdumps'), mitmdump starts, worker, span in the run:"
    )
    for name, f in sorted(files.items(), key=lambda kv: -kv[1]["seconds"])[:30]:
        began, ended = (t + f["offset"] for t in f["span"])
        lines.append(
            f"  {f['seconds']:6.1f} s {f.get('cpu', 0):6.1f} s {f['boots']:3d}  {f['worker']}"
            f"  {began:5.0f}-{ended:5.0f}  {name}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    print(summarize(*sys.argv[1:]))
