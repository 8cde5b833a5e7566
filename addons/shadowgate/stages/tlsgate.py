"""Identify, at the TLS layer: decrypt AI hosts, pass everything else through untouched.

The decision is ours (in tls_clienthello), not mitmproxy's ignore_hosts, because ignore_hosts
suppresses the hook and an AI host that is passed through must still be seen. Such a connection
is recorded from its SNI/CONNECT host as not inspected, so blind spots show up in reports.

Three ways around inspection are closed here:
  - Pinning. A client that rejects our certificate with a certificate alert (unknown_ca,
    bad_certificate, certificate_unknown) may pass through for a few minutes, for that client,
    user and host only, and only when the policy would allow the host anyway and DLP is off.
    Any other failed handshake (an empty record, a hang-up) changes nothing. Every rejection and
    every pass-through is a row (inspected = false).
  - Bytes that are not TLS. mitmproxy relays whatever it does not recognise as TLS or HTTP as raw
    TCP, so a ClientHello cut after its first byte, an odd record-layer version or any other
    framing became an unexamined tunnel. For a host we would decrypt, and for everything inside a
    decrypted connection, the proxy waits until the bytes are TLS or HTTP and otherwise closes
    the connection (recorded as refused).
  - Names that do not agree: host names are normalised (case, trailing dot) before matching, so
    "API.OPENAI.COM." is the catalogued host it names. Request-level agreement is hostagree.py.
  - No name at all: TLS to an IP literal without SNI is decrypted (unless the policy's
    passthrough names the IP), so the Host header inside is judged, not relayed unread.
"""

from __future__ import annotations

import logging
import re
import time
import weakref
from collections.abc import MutableMapping

from mitmproxy import connection
from mitmproxy import exceptions
from mitmproxy import http
from mitmproxy import tls
from mitmproxy.net.tls import starts_like_tls_record
from mitmproxy.proxy import commands
from mitmproxy.proxy import events
from mitmproxy.proxy import layer
from mitmproxy.proxy.layers import modes
from mitmproxy.proxy.layers.tls import HTTP_ALPNS
from mitmproxy.proxy.layers.tls import parse_client_hello

from shadowgate.config.catalog import normalise_host
from shadowgate.config.policy import ALLOW
from shadowgate.config.policy import BLOCK
from shadowgate.config.policy import PASSTHROUGH
from shadowgate.config.policy import Decision
from shadowgate.config.policy import Facts
from shadowgate.enforce.hosts import is_ip
from shadowgate.stages.settings import ShadowgateSettings

log = logging.getLogger(__name__)

# Long enough for an app's retries after its first rejection, short enough that one rejection
# is not an afternoon without inspection.
PINNED_PASSTHROUGH_SECONDS = 300.0
# OpenSSL's text for a received certificate alert ("tlsv1 alert unknown ca", "sslv3 alert bad
# certificate", "sslv3 alert certificate unknown"). Only these mean "the client does not trust
# the certificate"; a hang-up or an unparsable record means nothing of the kind.
_CERTIFICATE_ALERT = re.compile(r"alert (unknown ca|bad certificate|certificate unknown)", re.IGNORECASE)
# How much of a request line to wait for before an undecided stream counts as not HTTP.
MAX_UNDECIDED_BYTES = 16 * 1024
_HTTP_PREFIX = re.compile(rb"[A-Za-z]{1,20}( [\x21-\x7e]*( [\x21-\x7e]*\r?)?)?")

NOT_TLS_RULE = "shadowgate:not-tls-or-http"
PINNED_BLOCKED_RULE = "shadowgate:pinned-not-exempt"


class RefusedLayer(layer.Layer):
    """Closes the client connection without ever opening one upstream."""

    def _handle_event(self, event: events.Event) -> layer.CommandGenerator[None]:
        if isinstance(event, events.Start):
            yield commands.CloseConnection(self.context.client)


class TlsGate:
    name = "shadowgate_tlsgate"

    def __init__(self, settings: ShadowgateSettings) -> None:
        self.settings = settings
        # Proxy-auth users of CONNECT tunnels, for connections we never decrypt.
        self.tunnel_users: MutableMapping[connection.Client, str] = weakref.WeakKeyDictionary()
        # (client ip, proxy user, host) -> until when to pass through, after a certificate alert.
        self.pinned: dict[tuple[str, str, str], float] = {}

    def http_connect(self, flow: http.HTTPFlow) -> None:
        auth = flow.metadata.get("proxyauth")
        if auth:
            self.tunnel_users[flow.client_conn] = auth[0]

    # --- what the bytes in a tunnel are ---------------------------------------------------------

    def next_layer(self, nextlayer: layer.NextLayer) -> None:
        """Never let a connection we would inspect become a raw TCP relay.

        Runs before mitmproxy's NextLayer addon (scripts come first in the chain). Raising
        AddonHalt keeps NextLayer from deciding on too few bytes: mitmproxy then waits for more.
        """
        if nextlayer.layer is not None:
            return
        context = nextlayer.context
        client, server = context.client, context.server
        if client.transport_protocol != "tcp" or not server.address or not context.layers:
            return
        if isinstance(context.layers[0], modes.ReverseProxy):
            return  # the reverse-proxy spec fixes the protocol
        if client.tls and client.alpn in HTTP_ALPNS:
            return  # decrypted and HTTP by ALPN: NextLayer picks HTTP whatever the bytes
        inside_tls = bool(client.tls)
        host = _server_host(client, server)
        data = nextlayer.data_client()
        relevant = inside_tls or (host is not None and self._inspected_host(host, client))
        if not inside_tls and data[:1] == b"\x16":
            # Looks like TLS. Wait for its first three bytes on any host (a ClientHello cut after
            # one byte must not become raw TCP); an unusual record-layer version is refused where
            # its SNI, read leniently, names a host we inspect.
            if data in (b"\x16", b"\x16\x03"):
                raise exceptions.AddonHalt()
            if not starts_like_tls_record(data) and not relevant:
                sni = lenient_sni(data)
                if sni is _INCOMPLETE and len(data) < MAX_UNDECIDED_BYTES:
                    raise exceptions.AddonHalt()
                if isinstance(sni, str):
                    host = normalise_host(sni)
                    relevant = self._inspected_host(host, client)
        if not relevant:
            return
        verdict = "refuse" if nextlayer.data_server() else classify_first_bytes(data)
        if verdict == "pass":
            return
        if verdict == "wait" and len(data) < MAX_UNDECIDED_BYTES:
            raise exceptions.AddonHalt()
        nextlayer.layer = RefusedLayer(context)
        what = "inside a decrypted connection" if inside_tls else "in a CONNECT tunnel"
        log.warning(
            "shadowgate: refused a connection to %s: %d bytes %s that are neither TLS nor HTTP", host, len(data), what
        )
        if host:
            facts = self._facts(host, client)
            if facts.provider is not None:
                self.settings.record_connection(
                    facts,
                    "not TLS or HTTP: refused",
                    Decision(BLOCK, NOT_TLS_RULE, "the connection was neither TLS nor HTTP"),
                )

    def _inspected_host(self, host: str, client: connection.Client) -> bool:
        settings = self.settings
        facts = self._facts(host, client)
        return facts.provider is not None or settings.decrypts(facts)

    # --- TLS ------------------------------------------------------------------------------------

    def tls_clienthello(self, data: tls.ClientHelloData) -> None:
        if data.ignore_connection:
            return
        client, server = data.context.client, data.context.server
        sni = data.client_hello.sni
        # The SNI and the CONNECT target may name different hosts (an SNI of a harmless site on a
        # tunnel to an AI host, ECH's outer name): decrypt when either is a host we inspect.
        names = [
            n
            for n in (
                normalise_host(sni) if sni else None,
                normalise_host(str(server.address[0])) if server.address else None,
            )
            if n
        ]
        if not names:
            return
        host = next((n for n in names if self._inspected_host(n, client)), names[0])
        settings = self.settings
        facts = self._facts(host, data.context.client)
        key = self._pin_key(facts, data.context.client)
        if self._is_pinned(key):
            if self._may_pass_pinned(facts):
                data.ignore_connection = True
                settings.record_connection(facts, "client pins certificates: passed through")
                return
            # Decrypt anyway: the pinned client fails again, which is the refusal it must get.
            settings.record_connection(
                facts, "client pins certificates: not exempt, refused",
                Decision(BLOCK, PINNED_BLOCKED_RULE, "pinned clients pass through only to allowed hosts with DLP off"),
            )  # fmt: skip
            return
        if settings.decrypts(facts):
            settings.record_sighting(facts, decrypted=True)
            return
        if _nameless(sni) and is_ip(host) and not settings.policy.passthrough.get(host):
            # TLS to an IP literal that names no host: only the Host header inside says which
            # service it is for, so it is decrypted, never a blind tunnel (the upstream is then
            # verified against the IP, which a provider's certificate does not name: fails
            # closed). The policy's passthrough list exempts an IP that must stay untouched.
            log.info("shadowgate: decrypting TLS without a host name to %s", host)
            return
        data.ignore_connection = True
        if facts.provider is not None:
            # A passthrough rule is the decision, recorded with its id; the passthrough: list is no rule.
            rule = settings.policy.decide_connection(facts)
            passed = rule if rule is not None and rule.action == PASSTHROUGH else None
            settings.record_connection(facts, "not decrypted by policy", passed)
        else:
            settings.record_sighting(facts, decrypted=False)

    def tls_failed_client(self, data: tls.TlsData) -> None:
        host = _server_host(data.context.client, data.context.server)
        settings = self.settings
        if not host or not settings.catalog or not settings.catalog.match_host(host):
            return
        facts = self._facts(host, data.context.client)
        error = data.conn.error or ""
        if not _CERTIFICATE_ALERT.search(error):
            log.info(
                "shadowgate: client TLS handshake to %s failed without a certificate alert (%s): not treated as pinning",
                host,
                error[:120],
            )
            return
        settings.record_connection(facts, "client rejected the proxy certificate")
        if self._may_pass_pinned(facts):
            self.pinned[self._pin_key(facts, data.context.client)] = time.monotonic() + PINNED_PASSTHROUGH_SECONDS
            log.warning("shadowgate: %s rejected the proxy certificate for %s; passing it through for %d s",
                        facts.user or facts.client_ip, host, PINNED_PASSTHROUGH_SECONDS)  # fmt: skip

    def _may_pass_pinned(self, facts: Facts) -> bool:
        """A pinned client passes through only where inspection would change nothing it must:
        no DLP, screening or MCP policy, no budget that may count its calls, and a plain allow,
        not one that adds headers (tenant restrictions) to its requests (red-team F49)."""
        policy = self.settings.policy
        if policy.dlp is not None or policy.injection is not None or policy.responses is not None:
            return False
        if policy.mcp is not None:
            return False  # an MCP server on this host (or an unlisted one) is judged per call
        if any(b.match.needs_request or b.match.check(facts) is None for b in policy.budgets):
            return False
        decision = policy.decide_connection(facts)
        if decision is None:
            return False  # a rule on the model or wire format needs the decrypted request
        if decision.rule is not None and decision.rule.headers:
            return False
        return not decision.enforced or decision.action in (ALLOW, PASSTHROUGH)

    def _pin_key(self, facts: Facts, client: connection.Client) -> tuple[str, str, str]:
        return (facts.client_ip or "", self.tunnel_users.get(client) or "", facts.host)

    def _is_pinned(self, key: tuple[str, str, str]) -> bool:
        until = self.pinned.get(key)
        if until is None:
            return False
        if until < time.monotonic():
            del self.pinned[key]
            return False
        return True

    def _facts(self, host: str, client: connection.Client) -> Facts:
        return self.settings.connection_facts(normalise_host(host), client, self.tunnel_users.get(client))


def classify_first_bytes(data: bytes) -> str:
    """'pass' (TLS or an HTTP request line), 'wait' (could still become one) or 'refuse'.

    Mirrors what mitmproxy's NextLayer accepts as TLS (0x16 0x03 0x00-0x03) and as HTTP (a
    request line up to its line break); anything else it would relay as raw TCP.
    """
    if starts_like_tls_record(data):
        return "pass"
    if data in (b"\x16", b"\x16\x03"):
        return "wait"
    first_line_end = data.find(b"\n")
    if first_line_end == -1:
        return "wait" if _HTTP_PREFIX.fullmatch(data) else "refuse"
    space = data.find(b" ")
    if len(data) >= 3 and data[:3].isalpha() and -1 < space < first_line_end and not data.startswith(b"SSH"):
        return "pass"
    return "refuse"


_INCOMPLETE = object()


def lenient_sni(data: bytes) -> str | None | object:
    """The SNI of a ClientHello whose record headers carry any 0x03xx version; _INCOMPLETE
    while more records are needed, None when there is none or the bytes are no ClientHello."""
    patched = bytearray(data)
    offset = 0
    while offset + 5 <= len(patched):
        if patched[offset] != 0x16 or patched[offset + 1] != 0x03:
            break
        patched[offset + 1 : offset + 3] = b"\x03\x01"
        offset += 5 + int.from_bytes(patched[offset + 3 : offset + 5], "big")
    try:
        hello = parse_client_hello(bytes(patched))
    except ValueError:
        return None
    return _INCOMPLETE if hello is None else hello.sni


def _nameless(sni: str | None) -> bool:
    """No SNI, or one that is an IP literal (RFC 6066 forbids it; it names no host either)."""
    return not sni or is_ip(normalise_host(sni))


def _server_host(client: connection.Client, server: connection.Server) -> str | None:
    if client.sni:
        return normalise_host(client.sni)
    if server.address:
        return normalise_host(str(server.address[0]))
    return None
