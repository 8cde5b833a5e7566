"""An OTLP/HTTP receiver for the tests: a local HTTP server that decodes what exporters send.

POST /v1/traces and /v1/metrics bodies (gzip/deflate undone) are kept raw, for byte searches,
and decoded as ExportTraceServiceRequest / ExportMetricsServiceRequest protobufs. mode="hang"
accepts each request and never answers: a collector that is up but stuck.
"""

from __future__ import annotations

import gzip
import socket
import threading
import time
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler
from http.server import ThreadingHTTPServer
from typing import Any

from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceResponse
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

SPAN_KIND_CLIENT = 3
STATUS_CODE_ERROR = 2


class OtlpReceiver:
    def __init__(self, mode: str = "ok") -> None:
        assert mode in ("ok", "hang")
        self.mode = mode
        self.raw: list[bytes] = []  # every body, decompressed
        self.trace_headers: list[dict[str, str]] = []  # the HTTP headers of traces[i]
        self.traces: list[ExportTraceServiceRequest] = []
        self.metric_requests: list[ExportMetricsServiceRequest] = []
        self.hits = 0
        self._lock = threading.Lock()
        self._release = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("content-length") or 0))
                with receiver._lock:
                    receiver.hits += 1
                if receiver.mode == "hang":
                    receiver._release.wait(120)
                    return
                encoding = (self.headers.get("content-encoding") or "").lower()
                if encoding == "gzip":
                    body = gzip.decompress(body)
                elif encoding == "deflate":
                    body = zlib.decompress(body)
                if self.path == "/v1/traces":
                    request, reply = ExportTraceServiceRequest.FromString(body), ExportTraceServiceResponse()
                elif self.path == "/v1/metrics":
                    request, reply = ExportMetricsServiceRequest.FromString(body), ExportMetricsServiceResponse()
                else:
                    self.send_error(404)
                    return
                with receiver._lock:
                    receiver.raw.append(body)
                    if self.path == "/v1/traces":
                        receiver.traces.append(request)
                        receiver.trace_headers.append({k.lower(): v for k, v in self.headers.items()})
                    else:
                        receiver.metric_requests.append(request)
                payload = reply.SerializeToString()
                self.send_response(200)
                self.send_header("content-type", "application/x-protobuf")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> OtlpReceiver:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        self._server.shutdown()
        self._server.server_close()

    def spans(self) -> list[dict]:
        """Every span received: name, kind, times, status, attributes, resource attributes."""
        with self._lock:
            requests = list(self.traces)
        found = []
        for index, request in enumerate(requests):
            for resource_spans in request.resource_spans:
                resource = attributes(resource_spans.resource.attributes)
                for scope_spans in resource_spans.scope_spans:
                    for span in scope_spans.spans:
                        found.append(
                            {
                                "name": span.name,
                                "kind": span.kind,
                                "start_ns": span.start_time_unix_nano,
                                "end_ns": span.end_time_unix_nano,
                                "status": span.status.code,
                                "attributes": attributes(span.attributes),
                                "resource": resource,
                                "scope": scope_spans.scope.name,
                                "schema_url": scope_spans.schema_url,
                                "request_index": index,  # into traces and trace_headers
                            }
                        )
        return found

    def metrics(self) -> dict[str, list[dict]]:
        """Metric name -> every data point received: attributes, kind, value or count/sum/bounds."""
        with self._lock:
            requests = list(self.metric_requests)
        found: dict[str, list[dict]] = {}
        for request in requests:
            for resource_metrics in request.resource_metrics:
                for scope_metrics in resource_metrics.scope_metrics:
                    for metric in scope_metrics.metrics:
                        points = found.setdefault(metric.name, [])
                        kind = metric.WhichOneof("data")
                        for point in getattr(metric, kind).data_points:
                            entry = {"kind": kind, "unit": metric.unit, "attributes": attributes(point.attributes)}
                            if kind == "histogram":
                                entry.update(count=point.count, sum=point.sum, bounds=tuple(point.explicit_bounds))
                            else:
                                entry["value"] = (
                                    point.as_double if point.WhichOneof("value") == "as_double" else point.as_int
                                )
                            points.append(entry)
        return found

    def wait_for(self, predicate: Callable[[OtlpReceiver], Any], timeout: float = 15.0) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            result = predicate(self)
            if result or time.monotonic() > deadline:
                return result
            time.sleep(0.1)


def attributes(key_values) -> dict[str, Any]:
    return {kv.key: any_value(kv.value) for kv in key_values}


def any_value(value) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return tuple(any_value(v) for v in value.array_value.values)
    if kind == "kvlist_value":
        return attributes(value.kvlist_value.values)
    return getattr(value, kind) if kind else None


def refused_endpoint() -> str:
    """An http://127.0.0.1 URL on a port nothing listens on: connections are refused."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"
