"""Health and readiness, answered by the proxy itself: `curl -x <proxy> http://shadowgate.health/`.

Load balancers and service managers ask through the proxy port they already use, so there is no
second listener to secure. /live says the event loop answers; /ready (the default) also says the
writer is storing rows and the policy and catalog are loaded, with 503 when it is not.
"""

from __future__ import annotations

import json

from mitmproxy import http

from shadowgate.stages.settings import ShadowgateSettings

HEALTH_HOST = "shadowgate.health"


class Health:
    name = "shadowgate_health"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings

    def requestheaders(self, flow: http.HTTPFlow) -> None:
        # request.host, not pretty_host: no Host header parsing on every flow that is not ours.
        if flow.request.host != HEALTH_HOST or flow.response is not None:
            return
        if flow.request.path.startswith("/live"):
            flow.response = _json(200, {"status": "live"})
            return
        settings = self.settings
        writer = settings.writer
        problems = []
        if settings.catalog is None:
            problems.append("catalog not loaded")
        if writer is None:
            problems.append("no writer")
        elif writer.last_error:
            problems.append(f"storage: {writer.last_error}")
        body = {
            "status": "ready" if not problems else "degraded",
            "problems": problems,
            "policy": settings.policy.source,
            "mode": "observe" if settings.policy.observe else "enforce",
            "rules": len(settings.policy.rules),
            "rows_written": writer.rows_written if writer else 0,
            "rows_dropped": writer.rows_dropped if writer else 0,
            "rows_waiting": writer.backlog() if writer else 0,
        }
        flow.response = _json(200 if not problems else 503, body)


def _json(status: int, body: dict) -> http.Response:
    return http.Response.make(
        status, json.dumps(body).encode(), {"content-type": "application/json", "cache-control": "no-store"}
    )
