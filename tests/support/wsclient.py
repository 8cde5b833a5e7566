"""TLS for the websockets library's sync client in tests.

The sync client reads in a thread: when the socket turns readable it calls a blocking `recv()`.
Over TLS 1.3 the proxy sends its session tickets after the handshake, so that thread wakes for a
ticket, finds no application data and stays blocked inside OpenSSL's read while the main thread
writes the upgrade request on the same SSL object, which OpenSSL does not allow from two threads.
Now and then the request never reaches the proxy: the client times out waiting for the 101 and
then hangs joining its reader (seen in CI: a 300 s timeout with the reader inside ssl.read). Over
TLS 1.2 the tickets come within the handshake, so the reader waits in select() instead. The proxy
side is unchanged: mitmproxy still offers 1.3 to every other client.
"""

from __future__ import annotations

import ssl


def ws_ssl_context(proxy) -> ssl.SSLContext:
    """The proxy's client context (it trusts the proxy's CA), capped at TLS 1.2 (see above)."""
    context = proxy.ssl_context()
    context.maximum_version = ssl.TLSVersion.TLSv1_2
    return context
