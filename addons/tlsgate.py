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

from addons.catalog import site_of
from addons.record import AI_REQUESTS
from addons.record import FlowRecord
from addons.record import Outcome
from addons.record import ai_request_row
from addons.settings import ShadowgateSettings

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
        host = host.lower()
        catalog = self.settings.catalog
        provider = catalog.match_host(host) if catalog else None
        client_ip = _client_ip(data.context.client)
        if self._is_pinned(client_ip, host):
            data.ignore_connection = True
            note = "client pins certificates: passed through"
        elif self.settings.policy.decrypts(host, provider is not None, self.settings.intercept_all):
            return
        else:
            data.ignore_connection = True
            note = "not decrypted by policy"
        if provider is not None:
            self._record_uninspected(data.context.client, host, note)

    def tls_failed_client(self, data: tls.TlsData) -> None:
        host = _server_host(data.context.client, data.context.server)
        if not host or not self.settings.catalog or not self.settings.catalog.match_host(host):
            return
        # A client that rejects our certificate pins its own: pass it through from now on
        # rather than break the app on every retry.
        self.pinned[(_client_ip(data.context.client), host)] = time.monotonic() + PINNED_PASSTHROUGH_SECONDS
        self._record_uninspected(data.context.client, host, "client rejected the proxy certificate")

    def _is_pinned(self, client_ip: str, host: str) -> bool:
        until = self.pinned.get((client_ip, host))
        if until is None:
            return False
        if until < time.monotonic():
            del self.pinned[(client_ip, host)]
            return False
        return True

    def _record_uninspected(self, client: connection.Client, host: str, note: str) -> None:
        settings = self.settings
        if settings.writer is None or settings.catalog is None:
            return
        client_ip = _client_ip(client)
        rec = FlowRecord(
            started=client.timestamp_start or time.time(),
            client_ip=client_ip,
            person=settings.directory.person(self.tunnel_users.get(client), client_ip),
            host=host,
            site=site_of(host),
            provider=settings.catalog.match_host(host),
            route=None,
            method="CONNECT",
            path="",
            inspected=False,
            inspect_note=note,
        )
        settings.writer.submit(AI_REQUESTS.name, ai_request_row(rec, Outcome()))


def _server_host(client: connection.Client, server: connection.Server) -> str | None:
    if client.sni:
        return client.sni.lower()
    if server.address:
        return str(server.address[0]).lower()
    return None


def _client_ip(client: connection.Client) -> str:
    ip = str(client.peername[0]) if client.peername else ""
    return ip.removeprefix("::ffff:")
