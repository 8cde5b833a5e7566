"""Demo and test addon: every upstream connection goes to the local fake upstream.

Only the TCP destination changes; SNI and Host stay what the client asked for, so the proxy's
real TLS verification runs against the fake's certificate (signed by the test CA).
"""

from mitmproxy import ctx


class UpstreamRedirect:
    def load(self, loader):
        loader.add_option("test_upstream_port", int, 0, "Port of the fake upstream on 127.0.0.1.")

    def server_connect(self, data):
        if ctx.options.test_upstream_port:
            data.server.address = ("127.0.0.1", ctx.options.test_upstream_port)


addons = [UpstreamRedirect()]
