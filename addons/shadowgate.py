"""mitmdump -s addons/shadowgate.py — loads every shadowgate addon.

One path for every request: identify (catalog + wire format) -> decide (policy) -> act -> record.

    Logs         log lines as text or JSON, on the terminal or in a file that rotates
    Health       readiness and liveness through the proxy port (http://shadowgate.health/)
    TlsGate      decrypt catalogued AI hosts, pass the rest through, record what is not inspected
    Identify     provider, wire format, model, person and key fingerprint; the policy's decision
    Act          block, coach, redirect to the sanctioned gateway, rate-limit, inject headers
    Redact       DLP: secrets and personal data in prompts are redacted, blocked or logged
    Mcp          MCP tool calls on any decrypted host: audit, per-person server/tool allow-lists, DLP, injection screening
    Meter        stream taps and usage parsing; one ai_requests row per AI call
    Telemetry    OpenTelemetry GenAI spans and metrics over OTLP (off unless switched on), MCP tool calls too
"""

import sys
from pathlib import Path

# mitmproxy puts only this file's folder on sys.path; the package lives one level up.
_ROOT = str(Path(__file__).resolve().parent.parent)
if _ROOT not in sys.path:
    sys.path.insert(0, _ROOT)

from addons.act import Act  # noqa: E402
from addons.health import Health  # noqa: E402
from addons.identify import Identify  # noqa: E402
from addons.logs import Logs  # noqa: E402
from addons.mcp import Mcp  # noqa: E402
from addons.meter import Meter  # noqa: E402
from addons.redact import Redact  # noqa: E402
from addons.settings import ShadowgateSettings  # noqa: E402
from addons.telemetry import Telemetry  # noqa: E402
from addons.tlsgate import TlsGate  # noqa: E402

settings = ShadowgateSettings()
telemetry = Telemetry(settings)

addons = [
    Logs(),
    settings,
    Health(settings),
    TlsGate(settings),
    Identify(settings),
    Act(settings),
    Redact(settings),
    Mcp(settings, on_call=telemetry.mcp_call),
    Meter(settings),
    telemetry,
]
