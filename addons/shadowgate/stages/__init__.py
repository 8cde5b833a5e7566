"""The mitmproxy addons, in pipeline order: identify -> decide -> act -> record.

    UnknownOptions  a --set name or config.yaml key that no addon declares stops start-up
    Logs         log lines as text or JSON, on the terminal or in a file that rotates
    Settings     the core shadowgate_* options; the loaded catalog, policy, attribution map and price list
    Health       readiness and liveness through the proxy port (http://shadowgate.health/)
    McpApproval  the approver's page for a held MCP call, through the proxy port (mcp.approval)
    TlsGate      identify: decrypt catalogued AI hosts, pass the rest through, record what is not inspected
    Identify     identify: provider, wire format, model, person, key fingerprint
    HostAgreement identify: CONNECT target, SNI, Host/:authority and URL must agree (strictest or refuse)
    WebApps      identify: chat web apps' requests by the catalog's web_apps endpoints (activity, account, files)
    RealtimeSetup identify: the model and hosted MCP tools of Realtime sessions minted over HTTP (WebRTC, SIP)
    Uploads      identify: OpenAI uploads beyond one request: an Upload's part boundaries, unread batch files
    Decide       decide: the policy's rules, then the budgets; reloads a changed policy file
    Realtime     decide..record: WebSocket AI sessions (OpenAI Realtime, Gemini Live): policy, DLP, one row
    Act          act: block, coach, redirect to the sanctioned gateway, rate-limit, inject headers
    WebAppsDlp   act: DLP on chat web apps' prompts and uploads, app-shaped refusals, refused visits
    Redact       act: DLP on prompts (redact, block or log)
    Screen       act: prompt-injection screening of prompts and tool results (flag or block)
    Mcp          act: MCP tool calls on any decrypted host (allow-lists, DLP, injection screening)
    Answer       record: inspects a buffered answer (secrets, personal data, exfiltration links)
    Meter        record: stream taps and usage parsing; the outcome of each AI call
    AnswerStream record: chains the answer inspection into Meter's stream tap (log, redact or cut)
    StreamUsage  act: asks a Chat Completions stream for its usage (include_usage), drops the extra
                 chunk from the answer; last of the stream transforms, so placed after AnswerStream
    Record       record: the one place rows are submitted; the writer, pricing, storage chores
    Siem         record: every decision that matters to a SIEM (JSON lines, RFC 5424 syslog, CEF)
    Alerts       record: the policy's alerts (new app, DLP block, ...) by webhook, e-mail or syslog
    Telemetry    record: OpenTelemetry GenAI spans and metrics over OTLP (off unless switched on)

The order matters: mitmproxy calls each hook on the addons in list order, as in
mitmproxy.addons.default_addons(). Record's configure() opens the writer after Settings has
loaded the configuration it prices and counts with.
"""

from __future__ import annotations

from typing import Any


def default_addons() -> list[Any]:
    from shadowgate.mcp.approval import Approvals
    from shadowgate.stages.act import Act
    from shadowgate.stages.answer import Answer
    from shadowgate.stages.answer import AnswerStream
    from shadowgate.stages.approval import McpApproval
    from shadowgate.stages.decide import Decide
    from shadowgate.stages.health import Health
    from shadowgate.stages.hostagree import HostAgreement
    from shadowgate.stages.identify import Identify
    from shadowgate.stages.logs import Logs
    from shadowgate.stages.mcp import Mcp
    from shadowgate.stages.meter import Meter
    from shadowgate.stages.realtime import Realtime
    from shadowgate.stages.realtime_setup import RealtimeSetup
    from shadowgate.stages.record import Record
    from shadowgate.stages.redact import Redact
    from shadowgate.stages.screen import Screen
    from shadowgate.stages.settings import ShadowgateSettings
    from shadowgate.stages.siem import Alerts
    from shadowgate.stages.siem import Siem
    from shadowgate.stages.stream_usage import StreamUsage
    from shadowgate.stages.telemetry import Telemetry
    from shadowgate.stages.tlsgate import TlsGate
    from shadowgate.stages.unknown_options import UnknownOptions
    from shadowgate.stages.uploads import Uploads
    from shadowgate.stages.webapps import WebApps
    from shadowgate.stages.webapps import WebAppsDlp

    settings = ShadowgateSettings()
    decide = Decide(settings)
    record = Record(settings, decide)
    telemetry = Telemetry(settings)
    siem = Siem(settings, record)
    webapps = WebApps(settings)
    act = Act(settings, decide)
    approvals = Approvals()
    return [
        UnknownOptions(),
        Logs(),
        settings,
        Health(settings),
        McpApproval(settings, approvals),
        TlsGate(settings),
        Identify(settings),
        HostAgreement(settings),
        webapps,
        RealtimeSetup(settings),
        Uploads(settings),
        decide,
        Realtime(settings, decide, record),
        act,
        WebAppsDlp(settings, decide, webapps, act),
        Redact(settings),
        Screen(settings),
        Mcp(settings, on_call=telemetry.mcp_call, approvals=approvals),
        Answer(settings),
        Meter(settings, record),
        AnswerStream(settings),
        StreamUsage(settings),
        record,
        siem,
        Alerts(settings, record, siem, telemetry, approvals),
        telemetry,
    ]


__all__ = ["default_addons"]
