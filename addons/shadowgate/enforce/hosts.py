"""The names one request goes by, and which of them the policy must judge it by.

A request through the proxy names its destination up to four times: the CONNECT target (where
the TCP connection goes), the TLS SNI (the certificate the upstream must show), the HTTP `Host`
header or HTTP/2 `:authority` (the virtual host a server or CDN routes by), and for an HTTP/1
absolute-form request line inside a tunnel, that URL's authority (which RFC 9112 §3.2.2 tells a
server to prefer over Host). A client controls all four. When they disagree, any one of them may
be the service that really answers (domain fronting, HTTP/2 connection reuse), so the request is
judged by the strictest of them, or refused outright (shadowgate_host_mismatch=refuse).

IP literals are left out of the comparison when a name is present: an IP cannot be compared with
a name without DNS, and the upstream certificate is verified against the SNI, which binds the
connection to that name. But a request to an IP literal that names a host (plain HTTP in
`CONNECT 203.0.113.7:80`, an absolute-form `http://203.0.113.7/`, TLS without SNI) is identified
and judged by that host (identity_host): the server behind the IP routes by it. An IP is judged
only when it is the only thing the request names.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass

from mitmproxy import http
from mitmproxy.net.http import url

from shadowgate.config.catalog import normalise_host

MISMATCH_MODES = ("strictest", "refuse")
# A URL's start when it is one every URL parser reads alike: http(s), "//", an authority of host
# name or IP characters with an optional port, then a path, query or fragment (or nothing).
_PLAIN_URL = re.compile(
    r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<host>[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{1,5}))?(?:[/?#]|$)"
)
_URL_SCHEMES = frozenset({"http", "https"})
# A Host header or :authority: one host name, IPv4 or bracketed IPv6 address, an optional port.
_AUTHORITY = re.compile(r"(?:[A-Za-z0-9_.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")
# Only digits, hex digits with 0x, and dots: what inet_aton reads as IPv4, never a host name.
_LEGACY_IPV4 = re.compile(r"(0[xX][0-9a-fA-F]*|[0-9]+)(\.(0[xX][0-9a-fA-F]*|[0-9]+)){0,3}")


@dataclass(frozen=True, slots=True)
class RequestNames:
    connect: str | None  # the CONNECT target, or the address the request is sent to
    sni: str | None
    authority: str | None  # Host header, or :authority for HTTP/2 and HTTP/3
    target: str | None  # the authority of an absolute-form request line or HTTP/2 `:path`
    host_header: str | None = None  # an HTTP/2 or HTTP/3 `host` header beside `:authority`

    def hosts(self) -> list[str]:
        """The distinct names, the one a server routes by first (target, Host, SNI, CONNECT)."""
        named = [h for h in (self.target, self.authority, self.host_header, self.sni, self.connect) if h]
        names = [h for h in named if not is_ip(h)] or named
        return list(dict.fromkeys(names))

    def agree(self) -> bool:
        return len(self.hosts()) <= 1

    def describe(self) -> str:
        parts = (
            ("connect", self.connect),
            ("sni", self.sni),
            ("host", self.authority),
            ("host_header", self.host_header),
            ("target", self.target),
        )
        return " ".join(f"{k}={v}" for k, v in parts if v)


def request_names(flow: http.HTTPFlow) -> RequestNames:
    request = flow.request
    authority = request.host_header
    target = host_header = None
    if request.is_http2 or request.is_http3:
        # mitmproxy keeps a `:path` that is not origin-form as the path and sends it on as an
        # absolute-form request line, whose host RFC 9112 §3.2.2 tells a server to prefer
        # (red-team F16); a `host` header beside `:authority` is one more name a front may take.
        if not request.path.startswith("/") and request.path != "*":
            target = plain_url_host(request.path)  # None for one malformed_names refuses
        if request.authority and (extra := request.headers.get("host")):
            host_header = _host_of(extra)
    elif request.authority:
        target = _host_of(request.authority)
    return RequestNames(
        connect=normalise_host(request.host) if request.host else None,
        sni=normalise_host(flow.client_conn.sni) if flow.client_conn.sni else None,
        authority=_host_of(authority) if authority else None,
        target=target,
        host_header=host_header,
    )


def malformed_names(request: http.Request) -> str | None:
    """Why a request names its host in a way servers read differently, or None (red-team F16).

    RFC 9112 §3.2 requires a 400 for more than one Host header or an invalid one, but a front
    that keeps the last value (a dict of headers) routes `Host: allowed` + `Host: blocked` to the
    blocked one; `Host: a, b` and `Host: a@b` are read as either name. An HTTP/2 `:path` must be
    origin-form (RFC 9113 §8.3.1): an absolute one is accepted only as a URL every parser reads
    alike (its host is then one of the names that must agree)."""
    hosts = request.headers.get_all("host")
    if len(hosts) > 1:
        return "more than one Host header"
    values = [*hosts, *([request.authority] if (request.is_http2 or request.is_http3) and request.authority else [])]
    if any(not _AUTHORITY.fullmatch(v) for v in values):
        return "a Host or :authority that is not one host[:port]"
    path = request.path
    if (request.is_http2 or request.is_http3) and not path.startswith("/") and path != "*":
        if plain_url_host(path) is None:
            return "an HTTP/2 :path that is neither origin-form nor a plain absolute URL"
    return None


def identity_host(flow: http.HTTPFlow) -> str:
    """The host a request is identified by: its SNI, else its CONNECT target or URL host, unless
    that is an IP literal and the request names a host (Host, :authority, absolute URL): then
    that name. Without this a blocked provider reached by its IP was "unknown" and allowed."""
    host = (flow.client_conn.sni or flow.request.host).lower()
    if is_ip(normalise_host(host)):
        named = request_names(flow).hosts()
        if named and not is_ip(named[0]):
            return named[0]
    return host


def is_ip(host: str) -> bool:
    """An IP literal, including the legacy IPv4 spellings the resolver still accepts
    (2130706433, 127.1, 0x7f.0.0.1): a CONNECT to them reaches that address all the same."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        if not host or not _LEGACY_IPV4.fullmatch(host):
            return False
        try:
            socket.inet_aton(host)
        except OSError:
            return False
    return True


def plain_url_host(text: object) -> str | None:
    """The host of an http(s) URL every parser reads alike, or None when parsers may differ.

    Python's urlsplit and a WHATWG parser (browsers, Node's `new URL`, fetch, the TypeScript MCP
    SDK) disagree on some URLs: `https://evil.example\\@listed.example/` is listed.example to
    urlsplit and evil.example to WHATWG, which reads `\\` as `/` (red-team F36); WHATWG drops tabs
    and newlines, skips extra slashes (`https:///evil.example`), reads `https:evil.example`,
    percent-decodes and IDNA-maps the host. A URL an allow-list judges must have one reading, so
    any with userinfo, a backslash, whitespace or control characters, another scheme, or a host
    that is not plain ASCII name or IP characters gets None: the caller refuses it."""
    if not isinstance(text, str) or "\\" in text:
        return None
    if any(c <= " " or c == "\x7f" for c in text):
        return None
    m = _PLAIN_URL.match(text)
    if m is None or m.group("scheme").lower() not in _URL_SCHEMES:
        return None
    host = normalise_host(m.group("host"))
    port = m.group("port")
    if not host or host.startswith(".") or ".." in host or (port is not None and not 0 < int(port) < 65536):
        return None
    return host


def _host_of(authority: str) -> str:
    try:
        host, _ = url.parse_authority(authority, check=False)
    except ValueError:
        host = authority
    return normalise_host(host)
