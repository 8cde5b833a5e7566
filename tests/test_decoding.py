import gzip
import zlib

import brotli
import pytest

from shadowgate.wireformats.decoding import StreamDecoder

try:
    from compression import zstd
except ImportError:
    from backports import zstd

PLAIN = b"data: " + b"hello world " * 2000 + b"\n\n"


@pytest.mark.parametrize(
    "encoding, encoded",
    [
        ("gzip", gzip.compress(PLAIN)),
        ("deflate", zlib.compress(PLAIN)),
        (
            "deflate",
            zlib.compress(PLAIN, wbits=-15)
            if False
            else (lambda c: c.compress(PLAIN) + c.flush())(zlib.compressobj(wbits=-15)),
        ),
        ("br", brotli.compress(PLAIN)),
        ("zstd", zstd.compress(PLAIN)),
        ("", PLAIN),
        ("identity", PLAIN),
    ],
)
@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_decodes_across_any_chunk_boundary(encoding, encoded, chunk):
    decoder = StreamDecoder(encoding)
    out = b"".join(decoder.decode(encoded[i : i + chunk]) for i in range(0, len(encoded), chunk))
    assert out == PLAIN and not decoder.failed


@pytest.mark.parametrize("encoding", ["gzip", "br", "zstd", "deflate", "compress"])
def test_garbage_turns_decoding_off_without_raising(encoding):
    decoder = StreamDecoder(encoding)
    decoder.decode(b"\x00garbage" * 10)
    decoder.decode(b"more")
    assert decoder.failed


def test_truncated_gzip_yields_what_it_can():
    data = gzip.compress(PLAIN)[:-20]
    decoder = StreamDecoder("gzip")
    assert PLAIN.startswith(decoder.decode(data))
