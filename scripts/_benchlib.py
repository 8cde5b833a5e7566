"""mitmdump -s scripts/_benchlib.py: addons/demo/upstream_redirect.py, but upstream connections get reused.

The demo addon rewrites server.address in server_connect. mitmproxy then never finds that
connection again for the next request on the same client connection (GetHttpConnection looks
for an open server connection whose address is still the one the client asked for, here
api.openai.com:443), so every request opens a new upstream TCP+TLS connection, and because the
old ones stay open, the sixth request on one client connection waits forever on mitmproxy's
limit of 5 connections per address and client connection (ConnectionHandler.max_conns).

This addon redirects the same way and puts the original address back once the TCP connection is
up (the TLS handshake uses server.sni, which never changed), so a kept-alive tunnel reuses its
upstream connection the way it does against the real api.openai.com. Benchmark use only.
"""

from mitmproxy import ctx


class ReusableUpstreamRedirect:
    def __init__(self):
        self._originals: dict[int, tuple[str, int]] = {}

    def load(self, loader):
        loader.add_option("test_upstream_port", int, 0, "Port of the fake upstream on 127.0.0.1.")

    def server_connect(self, data):
        if ctx.options.test_upstream_port:
            self._originals[id(data.server)] = data.server.address
            data.server.address = ("127.0.0.1", ctx.options.test_upstream_port)

    def server_connected(self, data):
        original = self._originals.pop(id(data.server), None)
        if original is not None:
            # Server.__setattr__ refuses address changes on an open connection; this one only
            # restores the value the HTTP layer matches on. peername keeps the real endpoint.
            object.__setattr__(data.server, "address", original)

    def server_connect_error(self, data):
        self._originals.pop(id(data.server), None)


addons = [ReusableUpstreamRedirect()]
