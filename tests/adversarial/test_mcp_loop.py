"""A large MCP tool result must not stall everyone else's traffic (issue 14, security review).

mitmproxy runs every connection of a process on one event loop: a tool result that is screened
and scanned on it holds up every other user's request for as long as the scan takes. Here an
official-SDK MCP server answers a tools/call with ~0.4 MB of number groups (twice: as text and as structuredContent) (slow to scan: every
group is a candidate for several detectors) while plain requests go through the same proxy; each
of them must answer in a small part of the time the scan itself takes. On each transport the
answer can come by: a JSON body, an SSE stream (the result its last event), a WebSocket message.

The bound is relative (the scan's own CPU time, measured in this process on the same text), so
it holds on a loaded machine, where both grow. On the code before the fix a plain request that
arrived during the scan waited for all of it.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp import Client
from mcp.server.mcpserver import MCPServer

from shadowgate.config.policy import load_policy
from shadowgate.dlp import Placeholders
from shadowgate.mcp.screening import screen
from shadowgate.stages.redact import scan_json
from shadowgate.stages.redact import shared_scanner
from tests.adversarial.test_mcp_websocket import sdk
from tests.conftest import Proxy
from tests.conftest import start_proxy
from tests.support.mcp_ws import sdk_route
from tests.test_mcp import CORP
from tests.test_mcp import mcp_server
from tests.test_mcp import run

SECRET = "ghp_Zx9Qm2Lr7Tb4Vn8Kc1Wd5Hs3Jf6Gy0Pa2Ee7"
# Number groups: slow for the scanner (a card, phone, account or ID candidate at every step).
BULK = " ".join(str(4_000_000_000 + i * 7919) for i in range(36_000))
LIVE = "http://shadowgate.health/live"


def corp_policy(dlp: str) -> str:
    """A policy with this `dlp:` section that lists the test MCP server."""
    return f"dlp: {dlp}\nmcp:\n  servers:\n    - id: corp\n      host: {CORP}\n"


POLICY = corp_policy("{secrets: redact, pii: log, budget_ms: 120000}")


def _server() -> MCPServer:
    server = MCPServer("bulk-tools", version="1.0")

    @server.tool()
    def bulk() -> str:
        return f"{BULK} the key is {SECRET}"

    return server


def _scan_seconds() -> float:
    """The CPU time of the result's checks (screening and DLP) on this machine, now."""
    policy = Path(__file__).with_name("_loop_policy.yaml")
    try:
        policy.write_text(POLICY)
        dlp = load_policy(policy).dlp
    finally:
        policy.unlink(missing_ok=True)
    assert dlp is not None
    text = f"{BULK} the key is {SECRET}"
    # What the SDK answers: the text twice, as content and as structuredContent.
    result = {"content": [{"type": "text", "text": text}], "structuredContent": {"result": text}, "isError": False}
    shared_scanner()
    started = time.thread_time()
    screen(result)
    scan_json(result, shared_scanner(), Placeholders(), dlp, is_text=True)
    return time.thread_time() - started


@pytest.fixture(params=["json", "sse", "websocket"])
def bulk_proxy(request, tmp_path, upstream, test_ca) -> Iterator[tuple[Proxy, str]]:
    routes = [sdk_route("/ws", _server)] if request.param == "websocket" else None
    with proxy_before(tmp_path, upstream, test_ca, _server, POLICY, request.param == "json", routes) as proxy:
        yield proxy, request.param


@contextlib.contextmanager
def proxy_before(
    folder: Path,
    upstream,
    test_ca,
    make: Callable[[], MCPServer],
    policy: str,
    json_response: bool,
    routes: list | None = None,
) -> Iterator[Proxy]:
    """A proxy with this policy in front of the SDK's MCP server that make() builds."""
    with mcp_server(folder, test_ca, json_response=json_response, make=make, routes=routes) as port:
        path = folder / "policy.yaml"
        path.write_text(policy)
        proxy = start_proxy(
            folder / "proxy", upstream, test_ca, "--set", f"shadowgate_policy={path}", upstream_port=port
        )
        try:
            yield proxy
        finally:
            proxy.stop()


def _plain_latencies(proxy: Proxy, stop: threading.Event, out: list[float]) -> None:
    """Plain requests through the same proxy, one after another: the proxy's own /live, which
    answers from the event loop and waits for no upstream (the MCP server shares this process)."""
    with httpx.Client(proxy=proxy.url("bob"), timeout=60) as client:
        client.get(LIVE).raise_for_status()  # the connection is open before the clock runs
        while not stop.is_set():
            started = time.perf_counter()
            client.get(LIVE).raise_for_status()
            out.append(time.perf_counter() - started)
            time.sleep(0.01)


def test_a_large_tool_result_is_checked_off_the_event_loop(bulk_proxy):
    proxy, transport = bulk_proxy
    scan = _scan_seconds()
    assert scan > 0.2, f"the result must take long enough to scan to show a stall ({scan:.3f} s)"

    async def body(client: Client) -> str:
        result = await client.call_tool("bulk", {})
        return result.content[0].text

    latencies: list[float] = []
    stop = threading.Event()
    plain = threading.Thread(target=_plain_latencies, args=(proxy, stop, latencies))
    plain.start()
    try:
        time.sleep(0.3)
        before = len(latencies)
        started = time.perf_counter()
        text = sdk(proxy, "alice", body) if transport == "websocket" else run(proxy, CORP, body)
        call = time.perf_counter() - started
    finally:
        stop.set()
        plain.join(60)
    during = latencies[before:]
    assert text.endswith("the key is [GITHUB_TOKEN_1]") and SECRET not in text  # the scan did run
    assert len(during) >= 3, during
    worst = max(during)
    print(
        f"{transport}: scan {scan:.3f} s CPU, call {call:.3f} s, plain requests during it: {len(during)}, worst {worst:.3f} s"
    )
    # On the loop, a request arriving during the scan waited for the rest of it: up to `scan`.
    assert worst < scan / 2, f"a plain request waited {worst:.3f} s while a {scan:.3f} s scan ran"
