"""The AWS event-stream codec (wireformats/eventstream.py): bytes back byte for byte, messages
re-encoded with valid CRCs, and what cannot be read marked so (never silently parsed)."""

from __future__ import annotations

import base64
import json
import random
import zlib

from shadowgate.wireformats.eventstream import EventStreamCodec
from shadowgate.wireformats.eventstream import decode_event_stream_headers
from shadowgate.wireformats.eventstream import encode_message
from shadowgate.wireformats.eventstream import encode_string_headers
from shadowgate.wireformats.eventstream import exception_message
from shadowgate.wireformats.framing import EventStreamDecoder

HEADERS = {":event-type": "contentBlockDelta", ":content-type": "application/json", ":message-type": "event"}


def _message(payload: dict, headers: dict[str, str] = HEADERS) -> bytes:
    return encode_message(encode_string_headers(headers), json.dumps(payload).encode())


def _chunk(model_event: dict) -> bytes:
    envelope = {"bytes": base64.b64encode(json.dumps(model_event).encode()).decode(), "p": "abc"}
    return _message(envelope, {**HEADERS, ":event-type": "chunk"})


def _feed(codec: EventStreamCodec, data: bytes, cuts: list[int]) -> list:
    out, start = [], 0
    for cut in [*cuts, len(data)]:
        out += codec.feed(data[start:cut])
        start = cut
    return out + codec.finish()


def test_any_cut_gives_the_stream_back_byte_for_byte():
    messages = [_message({"delta": {"text": f"piece {i}"}}) for i in range(20)]
    # garbage before, between two messages (the codec slides over it) and after
    stream = b"junk!" + b"".join(messages[:7]) + b"\x00\x01\x02" + b"".join(messages[7:]) + b"tail"
    rng = random.Random(7)
    for _ in range(30):
        cuts = sorted(rng.sample(range(1, len(stream)), 25))
        units = _feed(EventStreamCodec(), stream, cuts)
        assert b"".join(u.raw for u in units) == stream
        assert sum(1 for u in units if u.ended) == 20


def test_encode_keeps_the_headers_and_computes_both_crcs():
    [unit] = EventStreamCodec().feed(_message({"delta": {"text": "hello"}}))
    new = unit.encode(b'{"delta":{"text":"[EMAIL]"}}')
    assert zlib.crc32(new[:8]) == int.from_bytes(new[8:12], "big")
    assert zlib.crc32(new[:-4]) == int.from_bytes(new[-4:], "big")
    [again] = EventStreamCodec().feed(new)
    assert again.headers == HEADERS and json.loads(again.data) == {"delta": {"text": "[EMAIL]"}}


def test_a_chunk_reads_and_writes_the_model_event_inside_its_base64():
    [unit] = EventStreamCodec().feed(_chunk({"type": "content_block_delta", "delta": {"text": "hi"}}))
    assert json.loads(unit.data)["delta"]["text"] == "hi"
    [again] = EventStreamCodec().feed(unit.encode(b'{"type":"content_block_delta","delta":{"text":"ho"}}'))
    envelope = json.loads(again.payload)
    assert envelope["p"] == "abc" and json.loads(base64.b64decode(envelope["bytes"]))["delta"]["text"] == "ho"


def test_garbage_bad_crcs_bad_base64_and_truncation_are_unreadable():
    good = _message({"ok": 1})
    corrupt = bytearray(good)
    corrupt[-6] ^= 0xFF
    bad_chunk = _message({"bytes": "%%%not base64"}, {**HEADERS, ":event-type": "chunk"})
    units = _feed(EventStreamCodec(), b"xx" + bytes(corrupt) + good + bad_chunk + good[:20], [3, 50])
    assert [u.unreadable for u in units] == [True, True, False, True, True]


def test_an_oversized_message_passes_in_pieces_without_being_held():
    big, small = _message({"x": "y" * 5000}), _message({"ok": 1})
    codec = EventStreamCodec(max_buffer=1000)
    units = []
    for i in range(0, len(big + small), 700):
        units += codec.feed((big + small)[i : i + 700])
        assert codec.buffered_bytes <= 1000
    assert b"".join(u.raw for u in units) == big + small
    assert [json.loads(u.data) for u in units if u.ended] == [{"ok": 1}]


def test_endless_garbage_breaks_the_stream():
    codec = EventStreamCodec(max_resync=1000)
    units = codec.feed(bytes(range(256)) * 20)
    assert codec.broken and codec.buffered_bytes == 0 and all(u.unreadable for u in units)
    assert all(u.unreadable for u in codec.feed(_message({"ok": 1})))


def test_the_exception_message_is_what_the_sdks_raise():
    raw = exception_message("modelStreamErrorException", b'{"message": "withheld"}')
    [frame] = EventStreamDecoder().feed(raw)
    assert frame.error == "modelStreamErrorException" and frame.data == {"message": "withheld"}
    headers = decode_event_stream_headers(raw[12 : 12 + int.from_bytes(raw[4:8], "big")])
    assert headers[":message-type"] == "exception"
