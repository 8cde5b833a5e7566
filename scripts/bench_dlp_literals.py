"""The literal searches of a DLP scan: one pass per literal (before), against one pass for all of them.

    uv run python scripts/bench_dlp_literals.py          # the passes, the stdlib alternation, ahocorasick-rs

    # with compiled multi-literal searches, in a venv outside the repository (not dependencies):
    uv venv /tmp/dlpdep --python "$(readlink -f .venv/bin/python)"
    uv pip install --python /tmp/dlpdep/bin/python ahocorasick-rs pyahocorasick hyperscan google-re2  # ahocorasick-rs: a dependency now
    PYTHONPATH=addons /tmp/dlpdep/bin/python scripts/bench_dlp_literals.py

The literals are the ones the detectors search for in a Source view (credential keywords and
context words in the lower-case view; key-format literals, webhook hosts, markers in the Latin-1
view), as the detector modules register them (model.needles). The scan itself now uses the
ahocorasick-rs pass (Source.occurrences); the other rows are what it was chosen over. Each line is CPU ms (time.process_time, best of 25) to
find every occurrence of all of them, overlapping, on the clean prompts joined (50 KB) and the
labelled documents joined (664 KB) of tests/fixtures/dlp/. A library that is not installed is
reported as such. Figures and the decision they inform: docs/dlp-accuracy.md (fifth round).
"""

from __future__ import annotations

import importlib.util
import re
import time
from collections.abc import Callable

from shadowgate.dlp import scanner  # noqa: F401  (imports every detector: each registers its literals)
from shadowgate.dlp.evaluation import load
from shadowgate.dlp.model import _NEEDLES
from shadowgate.dlp.model import Source

LOWER = list(_NEEDLES["lower"])
RAW = list(_NEEDLES["latin1"])


def best(run: Callable[[], object], runs: int = 25) -> float:
    times = []
    for _ in range(runs):
        t = time.process_time()
        run()
        times.append(time.process_time() - t)
    return min(times) * 1000


def find_all(view: bytes, needle: bytes) -> list[int]:
    out = []
    at = view.find(needle)
    while at >= 0:
        out.append(at)
        at = view.find(needle, at + 1)
    return out


def searches(lower: bytes, raw: bytes) -> dict[str, Callable[[], object] | str]:
    out: dict[str, Callable[[], object] | str] = {
        "before: a bytes.find pass per literal": lambda: (
            [find_all(lower, k) for k in LOWER],
            [find_all(raw, k) for k in RAW],
        ),
    }
    one_lower = re.compile(b"|".join(map(re.escape, LOWER)))
    one_raw = re.compile(b"|".join(map(re.escape, RAW)))
    out["stdlib re, one alternation per view"] = lambda: (one_lower.findall(lower), one_raw.findall(raw))
    missing = "not installed (see the docstring)"
    if importlib.util.find_spec("ahocorasick"):
        import ahocorasick

        automata = []
        for words in (LOWER, RAW):
            automaton = ahocorasick.Automaton()
            for w in words:
                automaton.add_word(w.decode("latin-1"), w)
            automaton.make_automaton()
            automata.append(automaton)
        lower_s, raw_s = lower.decode("latin-1"), raw.decode("latin-1")
        out["pyahocorasick"] = lambda: (list(automata[0].iter(lower_s)), list(automata[1].iter(raw_s)))
    else:
        out["pyahocorasick"] = missing
    import ahocorasick_rs  # a runtime dependency since issue 16's speed round: what the scan uses

    rs_lower, rs_raw = ahocorasick_rs.BytesAhoCorasick(LOWER), ahocorasick_rs.BytesAhoCorasick(RAW)
    out["ahocorasick-rs (the scan's)"] = lambda: (
        rs_lower.find_matches_as_indexes(lower, overlapping=True),
        rs_raw.find_matches_as_indexes(raw, overlapping=True),
    )
    if importlib.util.find_spec("hyperscan"):
        import hyperscan

        def database(words: list[bytes]) -> hyperscan.Database:
            db = hyperscan.Database()
            db.compile(
                expressions=[re.escape(w) for w in words],
                ids=list(range(len(words))),
                elements=len(words),
                flags=[hyperscan.HS_FLAG_SOM_LEFTMOST] * len(words),
            )
            return db

        hs_lower, hs_raw = database(LOWER), database(RAW)

        def hyperscan_scan() -> list[tuple[int, int]]:
            found: list[tuple[int, int]] = []
            on_match = lambda i, start, end, flags, ctx: found.append((start, i)) and None  # noqa: E731
            hs_lower.scan(lower, match_event_handler=on_match)
            hs_raw.scan(raw, match_event_handler=on_match)
            return found

        out["hyperscan"] = hyperscan_scan
    else:
        out["hyperscan"] = missing
    if importlib.util.find_spec("re2"):
        import re2

        options = re2.Options()
        options.encoding = re2.Options.Encoding.LATIN1
        re2_lower = re2.compile(b"|".join(map(re.escape, LOWER)), options)
        re2_raw = re2.compile(b"|".join(map(re.escape, RAW)), options)
        out["google-re2, one alternation per view"] = lambda: (
            list(re2_lower.finditer(lower)),
            list(re2_raw.finditer(raw)),
        )
    else:
        out["google-re2, one alternation per view"] = missing
    return out


def main() -> int:
    docs, clean = load("corpus.jsonl"), load("clean.jsonl")
    print(f"{len(LOWER)} words in the lower-case view, {len(RAW)} literals in the Latin-1 view")
    for name, text in (
        ("clean prompts joined", "\n\n".join(d.text for d in clean)),
        ("labelled documents joined", "\n\n".join(d.text for d in docs)),
    ):
        src = Source(text)
        print(f"{name} ({len(text.encode()) / 1000:.0f} KB), CPU ms:")
        for label, run in searches(src.lower, src.latin1).items():
            print(f"  {label:40} {run if isinstance(run, str) else f'{best(run):8.3f}'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
