"""A mitmproxy addon for benchmarks: how often the garbage collector ran and how long it paused.

    mitmdump ... -s scripts/gc_probe.py --set gc_probe_out=/tmp/gc.json

At exit (done) it writes {"frozen_objects": n, "generations": {generation: {"collections": n,
"total_ms": t, "max_ms": m}}} to gc_probe_out. A collection stops the event loop, so max_ms is a
latency spike every request in flight pays. scripts/bench_overhead.py --gc-probe loads it into
both proxies, so plain mitmdump is the baseline.
"""

from __future__ import annotations

import gc
import json
import time

from mitmproxy import ctx


class GcProbe:
    def __init__(self) -> None:
        self.stats = {g: {"collections": 0, "total_ms": 0.0, "max_ms": 0.0} for g in range(3)}
        self._started = 0.0
        gc.callbacks.append(self._on_gc)

    def _on_gc(self, phase: str, info: dict) -> None:
        if phase == "start":
            self._started = time.perf_counter()
            return
        ms = (time.perf_counter() - self._started) * 1000
        s = self.stats[info["generation"]]
        s["collections"] += 1
        s["total_ms"] += ms
        s["max_ms"] = max(s["max_ms"], ms)

    def load(self, loader) -> None:
        loader.add_option("gc_probe_out", str, "", "Write the garbage collector's figures here at exit.")

    def done(self) -> None:
        gc.callbacks.remove(self._on_gc)
        if ctx.options.gc_probe_out:
            with open(ctx.options.gc_probe_out, "w") as f:
                json.dump({"frozen_objects": gc.get_freeze_count(), "generations": self.stats}, f)


addons = [GcProbe()]
