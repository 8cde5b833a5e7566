"""Unit tests for the pure pieces the adversarial classes rely on: first-byte classification,
lenient SNI reading and the names a request goes by."""

from __future__ import annotations

import ssl

import pytest
from mitmproxy.test import tflow

from shadowgate.enforce.hosts import RequestNames
from shadowgate.enforce.hosts import request_names
from shadowgate.stages.tlsgate import _INCOMPLETE
from shadowgate.stages.tlsgate import classify_first_bytes
from shadowgate.stages.tlsgate import lenient_sni


def _client_hello(sni: str) -> bytes:
    context = ssl.create_default_context()
    obj = context.wrap_bio(ssl.MemoryBIO(), out := ssl.MemoryBIO(), server_hostname=sni)
    with pytest.raises(ssl.SSLWantReadError):
        obj.do_handshake()
    return out.read()


@pytest.mark.parametrize(
    ("data", "verdict"),
    [
        (b"\x16", "wait"),
        (b"\x16\x03", "wait"),
        (b"\x16\x03\x01\x02\x00", "pass"),
        (b"\x16\x03\x05\x02\x00", "refuse"),  # record-layer version mitmproxy does not call TLS
        (b"\x80\x2e\x01\x03\x01", "refuse"),  # SSLv2-style hello
        (b"P", "wait"),
        (b"POST /v1/chat/completions HTT", "wait"),
        (b"POST /v1/chat/completions HTTP/1.1\r\n", "pass"),
        (b"SSH-2.0-OpenSSH_9.6\r\n", "refuse"),
        (b"\x00\x01garbage", "refuse"),
        (b"hello\nworld", "refuse"),  # a line break before any space: not a request line
    ],
)
def test_classify_first_bytes(data, verdict):
    assert classify_first_bytes(data) == verdict


def test_lenient_sni_reads_odd_record_versions_and_waits_for_the_rest():
    hello = bytearray(_client_hello("api.openai.com"))
    hello[1:3] = b"\x03\x05"
    assert lenient_sni(bytes(hello)) == "api.openai.com"
    assert lenient_sni(bytes(hello[:40])) is _INCOMPLETE
    assert lenient_sni(b"\x16\x03\x05\x00\x04\x01\x00\x00\x00") is None  # a ClientHello too short to parse


@pytest.mark.parametrize(
    ("names", "hosts"),
    [
        (RequestNames("api.openai.com", "api.openai.com", "api.openai.com", None), ["api.openai.com"]),
        (RequestNames("10.1.2.3", "api.openai.com", "api.openai.com", None), ["api.openai.com"]),
        (RequestNames("10.1.2.3", None, None, None), ["10.1.2.3"]),
        (
            RequestNames("api.openai.com", "api.openai.com", "api.anthropic.com", None),
            ["api.anthropic.com", "api.openai.com"],
        ),
        (
            RequestNames("a.example", "b.example", "c.example", "d.example"),
            ["d.example", "c.example", "b.example", "a.example"],
        ),
    ],
)
def test_request_names_put_the_routing_name_first_and_drop_ips_beside_names(names, hosts):
    assert names.hosts() == hosts


def test_request_names_from_a_flow_normalise_case_port_and_trailing_dot():
    flow = tflow.tflow()
    flow.request.host = "api.openai.com"
    flow.request.headers["host"] = "API.OpenAI.com.:443"
    flow.client_conn.sni = "api.openai.com."
    assert request_names(flow).agree()
    flow.request.headers["host"] = "api.anthropic.com"
    assert request_names(flow).describe() == "connect=api.openai.com sni=api.openai.com host=api.anthropic.com"
