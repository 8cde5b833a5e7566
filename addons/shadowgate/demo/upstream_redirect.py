"""Demo and test addon: every upstream connection goes to the local fake upstream.

Only the TCP destination changes; SNI and Host stay what the client asked for, so the proxy's
real TLS verification runs against the fake's certificate (signed by the demo/test CA).
The address is put back once connected, so mitmproxy still finds and reuses the connection for
the next request to the same host, as it would in production.
"""

from mitmproxy import ctx


class UpstreamRedirect:
    def load(self, loader):
        loader.add_option("test_upstream_port", int, 0, "Port of the fake upstream on 127.0.0.1.")

    def server_connect(self, data):
        if ctx.options.test_upstream_port:
            data.server.metadata_original_address = data.server.address
            data.server.address = ("127.0.0.1", ctx.options.test_upstream_port)

    def server_connected(self, data):
        original = getattr(data.server, "metadata_original_address", None)
        if original is not None:
            # mitmproxy forbids this on an open connection; the socket is already connected to
            # the fake, so only the bookkeeping used to match connections for reuse changes.
            object.__setattr__(data.server, "address", original)


addons = [UpstreamRedirect()]
