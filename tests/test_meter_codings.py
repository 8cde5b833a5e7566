"""Meter reads the usage of a buffered answer whatever content codings the provider applied,
even when the request asked for none (accept-encoding: identity)."""

from __future__ import annotations

import gzip
import json
import zlib

import brotli
import pytest
from mitmproxy import http

from shadowgate.stages.meter import decoded_body

try:
    from compression import zstd
except ImportError:  # before Python 3.14: the backport mitmproxy ships
    from backports import zstd

BODY = json.dumps({"usage": {"prompt_tokens": 7, "completion_tokens": 3}}).encode()
CODERS = {
    "gzip": gzip.compress,
    "x-gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": zstd.compress,
}


def answer(codings: str, raw: bytes) -> http.Response:
    response = http.Response.make(200, b"", {"content-type": "application/json"})
    response.headers["content-encoding"] = codings  # after make(), which sets the body through it
    response.raw_content = raw
    return response


@pytest.mark.parametrize(
    "codings", ["gzip", "x-gzip", "deflate", "br", "zstd", "gzip, br", "gzip, gzip", "zstd, gzip", "identity"]
)
def test_every_coding_and_stack_is_undone(codings):
    data = BODY
    for name in (c.strip() for c in codings.split(",")):
        data = CODERS.get(name, lambda b: b)(data)  # applied in the order the header lists them
    response = answer(codings, data)
    assert decoded_body(response) == BODY


def test_a_body_that_lies_about_its_coding_comes_back_as_it_came():
    response = answer("gzip, br", BODY)
    assert decoded_body(response) == BODY
