"""Test harness addon: change a running proxy's options, as mitmweb's options API does.

A request to http://options.sg-test/ with an `x-sg-options` header holding a JSON object
{name: value} applies the values with ctx.options.update: every addon's configure() runs, exactly
as for a change at run time, and an OptionsError rolls the change back. The answer is 200 with the
previous values (to restore them) or 400 with the error. Only the test harness loads this script
(start_proxy), so that one proxy can serve tests that need different options instead of one
mitmdump start (~3 s) each.

An `x-sg-environ` header ({name: value, or null to remove}) sets the proxy's environment first,
for what the proxy reads from it when it uses it (a gateway key) or when its options change
(OpenTelemetry's OTEL_* variables); the answer's "environ" holds the previous values. Start-up's
own reading of the environment is not replayed: a test of that starts a proxy of its own.

http://options.sg-test/flush seals every row submitted so far, as the writer's one-second clock
would a moment later (the same path: SegmentWriter.flush, which shutdown and the unit tests use),
so that a test reading rows need not wait for the clock.
"""

from __future__ import annotations

import asyncio
import json
import os

from mitmproxy import ctx
from mitmproxy import exceptions
from mitmproxy import http

CONTROL_HOST = "options.sg-test"
HEADER = "x-sg-options"
ENVIRON_HEADER = "x-sg-environ"


class OptionControl:
    name = "sg_test_option_control"

    async def requestheaders(self, flow: http.HTTPFlow) -> None:
        if flow.request.host != CONTROL_HOST or flow.response is not None:
            return
        if flow.request.path == "/flush":
            flow.response = _json(200, {"flushed": await _flush_rows()})
            return
        environ = json.loads(flow.request.headers.get(ENVIRON_HEADER, "{}"))
        previous_environ = {name: os.environ.get(name) for name in environ}
        _set_environ(environ)
        try:
            values = json.loads(flow.request.headers.get(HEADER, "{}"))
            previous = {name: getattr(ctx.options, name) for name in values}
            ctx.options.update(**values)
        except (exceptions.OptionsError, AttributeError, KeyError, ValueError) as e:
            _set_environ(previous_environ)
            flow.response = _json(400, {"error": str(e)})
            return
        flow.response = _json(200, {"previous": previous, "environ": previous_environ})


async def _flush_rows() -> bool:
    """Seal what the shadowgate writer holds, off the event loop (the writer thread does it)."""
    writer = getattr(ctx.master.addons.get("shadowgate_record"), "writer", None)
    if writer is None:
        return False
    return await asyncio.to_thread(writer.flush)


def _set_environ(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


def _json(status: int, body: dict) -> http.Response:
    return http.Response.make(status, json.dumps(body).encode(), {"content-type": "application/json"})


addons = [OptionControl()]
