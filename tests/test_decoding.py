import base64
import gzip
import json
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
        ("gzip", gzip.compress(PLAIN, mtime=0)),
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
    data = gzip.compress(PLAIN, mtime=0)[:-20]
    decoder = StreamDecoder("gzip")
    assert PLAIN.startswith(decoder.decode(data))


# --- whole request bodies: what the upstream reads, or refused ----------------------------------

BODY = b'{"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}'


@pytest.mark.parametrize(
    "header, encoded",
    [
        ("x-gzip", gzip.compress(BODY, mtime=0)),  # RFC 9110's alias of gzip
        ("gzip, gzip", gzip.compress(gzip.compress(BODY, mtime=0), mtime=0)),
        ("GZIP , br", brotli.compress(gzip.compress(BODY, mtime=0))),  # br applied last, undone first
        ("identity, deflate", zlib.compress(BODY)),
        ("zstd", zstd.compress(BODY)),
        ("", BODY),
    ],
)
def test_decode_body_undoes_stacked_and_aliased_codings(header, encoded):
    from shadowgate.wireformats.decoding import decode_body

    assert decode_body(encoded, header) == BODY


@pytest.mark.parametrize(
    "header, encoded",
    [
        ("compress", BODY),  # registered, but nothing here decodes LZW
        ("rot13", BODY),
        ("gzip", BODY),  # not gzip at all
        ("gzip", gzip.compress(BODY, mtime=0)[:-4]),  # truncated
        ("gzip", gzip.compress(BODY, mtime=0) + b"{}"),  # bytes after the member the upstream may read
        ("br", brotli.compress(BODY)[:-1]),
        ("deflate", zlib.compress(b"0" * (80 * 1024 * 1024))),  # expands past the cap
    ],
)
def test_decode_body_refuses_what_it_cannot_read(header, encoded):
    from shadowgate.wireformats.decoding import UndecodableBody
    from shadowgate.wireformats.decoding import decode_body

    with pytest.raises(UndecodableBody):
        decode_body(encoded, header)


@pytest.mark.parametrize("codec", ["utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be"])
def test_json_in_any_rfc_8259_encoding_is_parsed(codec):
    from shadowgate.wireformats import parse_json_body

    value = {"messages": [{"role": "user", "content": "grüße"}]}
    assert parse_json_body(json.dumps(value, ensure_ascii=False).encode(codec)) == value


def test_json_that_is_no_unicode_is_read_as_lenient_readers_read_it():
    # Node reads stray bytes as replacement characters: the model in such a body is judged (F14).
    from shadowgate.wireformats import parse_json_body

    assert parse_json_body(b'{"a": "\xff\xfe\xfd"}') == {"a": "\ufffd" * 3}


# --- read_text: the text DLP reads in a file's bytes (red-team F18) ------------------------------

AWS = "AKIA2OGYBAH6STMMNXNN"
CJK = "\u65e5\u672c\u8a9e\u306e\u30e1\u30e2"


@pytest.mark.parametrize(
    "data",
    [
        f"key {AWS}".encode() + b"\xff",
        f"Jos\u00e9;{AWS}".encode("cp1252"),
        f"{CJK} {AWS}".encode("shift_jis"),
        f"{CJK} {AWS}".encode("gb18030"),
        f"{CJK} {AWS}".encode("utf-16-le"),
        f"{CJK} {AWS}".encode("utf-16-be"),
        f"{CJK} {AWS}".encode("utf-32-be"),
        b"\xff\xfe" + f"{CJK} {AWS}".encode("utf-16-le"),
        b"\xfe\xff" + f"{CJK} {AWS}".encode("utf-16-be"),
        b"\x89PNG\r\n\x1a\n" + f"key {AWS}\n".encode() * 10 + b"\xff",
    ],
)
def test_text_in_any_encoding_is_read_and_written_back_byte_for_byte(data):
    from shadowgate.wireformats.decoding import read_text

    reading = read_text(data)
    assert reading is not None and reading.redactable
    assert AWS in reading.text and reading.encode(reading.text) == data


def test_binary_is_what_a_signature_with_binary_bytes_or_many_controls_says():
    from shadowgate.wireformats.decoding import read_text

    noise = bytes(range(256)) * 64
    assert read_text(b"\x89PNG\r\n\x1a\n" + noise) is None
    assert read_text(b"PK\x03\x04" + noise) is None
    blob = read_text(noise + f" {AWS} ".encode() + noise)  # no signature: its printable runs are read
    assert blob is not None and not blob.redactable and AWS in blob.text


def test_a_declared_charset_is_read_first_and_the_bytes_own_reading_too():
    from shadowgate.wireformats.decoding import read_text

    utf7 = ("key +" + base64.b64encode(AWS.encode("utf-16-be")).decode().rstrip("=") + "-").encode()
    reading = read_text(utf7, "utf-7")
    assert reading is not None and AWS in reading.text and reading.also == (utf7.decode(),)
    assert read_text(b"plain", "no-such-charset") == read_text(b"plain")


def test_the_declared_charset_of_a_content_type():
    from shadowgate.wireformats.multipart import declared_charset

    assert declared_charset('text/plain; charset="UTF-7"') == "utf-7"
    assert declared_charset("text/plain") is None
    assert declared_charset("text/plain; charset=utf-8; charset=utf-7") is None
