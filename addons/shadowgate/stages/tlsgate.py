"""Identify, at the TLS layer: decrypt AI hosts, pass everything else through untouched.

The decision is ours (in tls_clienthello), not mitmproxy's ignore_hosts, because ignore_hosts
suppresses the hook and an AI host that is passed through must still be seen. Such a connection
is recorded from its SNI/CONNECT host as not inspected, so blind spots show up in reports.
Clients that pin certificates fail the handshake once; the host then passes through for that
client, and the failure is recorded too.
"""

from __future__ import annotations

import time
import weakref
from collections.abc import MutableMapping

from mitmproxy import connection
from mitmproxy import http
from mitmproxy import tls

from shadowgate.stages.settings import ShadowgateSettings

PINNED_PASSTHROUGH_SECONDS = 3600.0


class TlsGate:
    name = "shadowgate_tlsgate"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        # Proxy-auth users of CONNECT tunnels, for connections we never decrypt.
        self.tunnel_users: MutableMapping[connection.Client, str] = weakref.WeakKeyDictionary()
        # (client ip, host) -> until when to pass through, after the client rejected our cert.
        self.pinned: dict[tuple[str, str], float] = {}

    def http_connect(self, flow: http.HTTPFlow) -> None:
        auth = flow.metadata.get("proxyauth")
        if auth:
            self.tunnel_users[flow.client_conn] = auth[0]

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if data.ignore_connection:
            return
        host = data.client_hello.sni or _server_host(data.context.client, data.context.server)
        if not host:
            return
        settings = self.settings
        facts = settings.connection_facts(host, data.context.client, self.tunnel_users.get(data.context.client))
        if self._is_pinned(facts.client_ip or "", facts.host):
            data.ignore_connection = True
            note = "client pins certificates: passed through"
        elif settings.policy.decrypts(facts.host, facts.provider is not None, settings.intercept_all, facts):
            return
        else:
            data.ignore_connection = True
            note = "not decrypted by policy"
        if facts.provider is not None:
            settings.record_connection(facts, note)

    def tls_failed_client(self, data: tls.TlsData) -> None:
        host = _server_host(data.context.client, data.context.server)
        settings = self.settings
        if not host or not settings.catalog or not settings.catalog.match_host(host):
            return
        facts = settings.connection_facts(host, data.context.client, self.tunnel_users.get(data.context.client))
        # A client that rejects our certificate pins its own: pass it through from now on
        # rather than break the app on every retry.
        self.pinned[(facts.client_ip or "", facts.host)] = time.monotonic() + PINNED_PASSTHROUGH_SECONDS
        settings.record_connection(facts, "client rejected the proxy certificate")

    def _is_pinned(self, client_ip: str, host: str) -> bool:
        until = self.pinned.get((client_ip, host))
        if until is None:
            return False
        if until < time.monotonic():
            del self.pinned[(client_ip, host)]
            return False
        return True


def _server_host(client: connection.Client, server: connection.Server) -> str | None:
    if client.sni:
        return client.sni.lower()
    if server.address:
        return str(server.address[0]).lower()
    return None
