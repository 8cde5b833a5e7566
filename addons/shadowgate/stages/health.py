"""Health and readiness, answered by the proxy itself: `curl -x <proxy> http://shadowgate.health/`.

Load balancers and service managers ask through the proxy port they already use, so there is no
second listener to secure. /live says the event loop answers. /ready (the default) says every
configured control can work, with 503 and the reasons when one cannot: the catalog and the
fingerprint key are loaded; the writer can store rows (a probe file in its segments directory and
its last write); every enforced redirect rule has its gateway key. A proxy that answers every
redirected call with 403 because the key variable is unset is not ready. A SIEM destination that
fails (or a feed file that cannot be appended to) is a warning, or with shadowgate_siem_required a
problem: a SIEM outage shared by every instance must not take them all out of a balancer unless
the deployment says so. /metrics answers the same checks and the proxy's counters in the
Prometheus text format (events/metrics.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Awaitable
from pathlib import Path

from mitmproxy import ctx
from mitmproxy import http

from shadowgate.config.policy import Policy
from shadowgate.config.policy_check import gateway_problems
from shadowgate.events.metrics import CONTENT_TYPE
from shadowgate.events.metrics import Metrics
from shadowgate.events.metrics import exposition
from shadowgate.events.metrics import folder_bytes
from shadowgate.stages.settings import ShadowgateSettings

HEALTH_HOST = "shadowgate.health"
NO_POLICY_SOURCE = Policy().source


class Health:
    name = "shadowgate_health"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        self.metrics = Metrics()

    def running(self) -> None:
        record = self.settings.record
        if record is not None and self.metrics.row_submitted not in record.listeners:
            record.listeners.append(self.metrics.row_submitted)
        root = logging.getLogger()
        if self.metrics.logs not in root.handlers:
            root.addHandler(self.metrics.logs)

    def configure(self, updated: set[str]) -> None:
        if "shadowgate_policy" in updated:  # Settings, earlier in the chain, has put it in force
            self.metrics.policy_reloads += 1

    def done(self) -> None:
        logging.getLogger().removeHandler(self.metrics.logs)

    def requestheaders(self, flow: http.HTTPFlow) -> Awaitable[None] | None:
        # request.host, not pretty_host: no Host header parsing on every flow that is not ours.
        # Not an async hook: every other flow leaves without a coroutine made and awaited.
        if flow.request.host != HEALTH_HOST or flow.response is not None:
            return None
        if flow.request.path.startswith("/live"):
            flow.response = _json(200, {"status": "live"})
            return None
        if flow.request.path.startswith("/metrics"):
            return self._answer_metrics(flow)
        return self._answer_ready(flow)

    async def _problems(self) -> tuple[list[str], list[str]]:
        """Why the proxy is not ready (empty when it is), and what is broken without making it so."""
        settings = self.settings
        writer = settings.writer
        problems = []
        if settings.catalog is None:
            problems.append("catalog not loaded")
        if settings.fingerprinter is None:
            problems.append("fingerprint key not loaded")
        if writer is None:
            problems.append("no writer")
        else:
            # A thread: a stalled disk (NFS) must not stall the event loop with it.
            probe_error = await asyncio.to_thread(_probe_writable, writer.segments)
            if probe_error:
                problems.append(f"storage: {probe_error}")
            elif writer.last_error:
                problems.append(f"storage: {writer.last_error}")
        problems.extend(enforcement_problems(settings.policy))
        master = getattr(ctx, "master", None)  # absent in a bare unit test
        siem = master.addons.get("shadowgate_siem") if master is not None else None
        feed = getattr(siem, "feed", None)
        siem_problems = await asyncio.to_thread(feed.problems) if feed is not None else []
        if getattr(siem, "required", False):
            return problems + siem_problems, []
        return problems, siem_problems

    async def _answer_ready(self, flow: http.HTTPFlow) -> None:
        problems, warnings = await self._problems()
        settings = self.settings
        writer = settings.writer
        policy = settings.policy
        body = {
            "status": "ready" if not problems else "degraded",
            "problems": problems,
            "warnings": warnings,
            "policy": policy.source,
            "mode": policy_mode(policy),
            "rules": len(policy.rules),
            "rows_written": writer.rows_written if writer else 0,
            "rows_dropped": writer.rows_dropped if writer else 0,
            "rows_waiting": writer.backlog() if writer else 0,
        }
        flow.response = _json(200 if not problems else 503, body)

    async def _answer_metrics(self, flow: http.HTTPFlow) -> None:
        problems, _ = await self._problems()
        m = self.metrics
        writer = self.settings.writer
        if writer is not None and m.storage_due():
            m.set_storage_bytes(await asyncio.to_thread(folder_bytes, writer.segments))
        text = exposition(m, not problems, writer, ctx.master.addons)
        flow.response = http.Response.make(
            200, text.encode(), {"content-type": CONTENT_TYPE, "cache-control": "no-store"}
        )


def policy_mode(policy: Policy) -> str:
    """none: no policy loaded (observe everything, block nothing); observe; enforce."""
    if policy.source == NO_POLICY_SOURCE:
        return "none"
    return "observe" if policy.observe else "enforce"


def enforcement_problems(policy: Policy) -> list[str]:
    """What makes an enforced rule fail every call it matches. A redirect without its gateway
    key refuses each call with 403 (stages/act.py), which is an outage, not a control."""
    return [f"rule {rule.id}: {problem}" for rule, problem in gateway_problems(policy)]


def _probe_writable(folder: Path) -> str | None:
    """None when a file can be created in the folder (the writer makes it if missing)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".health-"):
            pass
    except OSError as e:
        return f"cannot write to {folder}: {os.strerror(e.errno) if e.errno else e}"
    return None


def _json(status: int, body: dict) -> http.Response:
    return http.Response.make(
        status, json.dumps(body).encode(), {"content-type": "application/json", "cache-control": "no-store"}
    )
