"""The one SSE/NDJSON codec: events out of bytes cut anywhere, the stream back byte for byte,
events re-encoded with the line endings they came with, and memory bounded."""

from __future__ import annotations

import json
import random

import pytest
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from shadowgate.wireformats.framing import EventCodec
from shadowgate.wireformats.framing import SSEDecoder
from shadowgate.wireformats.framing import codec_for

ENDINGS = [b"\n", b"\r\n", b"\r"]


def sse_stream(values: list[dict], newline: bytes) -> bytes:
    out = b""
    for i, value in enumerate(values):
        out += b": keep-alive" + newline if i % 3 == 0 else b""
        out += b"event: e%d" % i + newline + b"data: " + json.dumps(value).encode() + newline + newline
    return out


def feed_in_pieces(codec: EventCodec, data: bytes, cuts: list[int]) -> list:
    events, last = [], 0
    for cut in [*sorted(cuts), len(data)]:
        events += codec.feed(data[last:cut])
        last = cut
    return events + codec.finish()


@pytest.mark.parametrize("newline", ENDINGS)
def test_every_line_ending_splits_events_at_any_cut(newline: bytes) -> None:
    values = [{"i": i, "text": "é☃" * i} for i in range(6)]
    body = sse_stream(values, newline)
    rng = random.Random(7)
    for _ in range(200):
        cuts = rng.sample(range(1, len(body)), rng.randint(0, 12))
        events = feed_in_pieces(EventCodec(), body, cuts)
        assert b"".join(e.raw for e in events) == body  # nothing held back, nothing lost
        parsed = [(e.event, json.loads(e.data)) for e in events if e.data is not None]
        assert parsed == [(f"e{i}", v) for i, v in enumerate(values)]
        assert all(e.ended for e in events if e.data is not None)


def test_crlf_cut_between_cr_and_lf_hands_each_event_out_at_once() -> None:
    codec = EventCodec()
    [first] = codec.feed(b'data: {"a": 1}\r\n\r')  # the LF of the blank line has not come yet
    assert json.loads(first.data) == {"a": 1} and first.ended
    [second] = codec.feed(b'\ndata: {"b": 2}\r\n\r\n')
    assert json.loads(second.data) == {"b": 2}
    assert first.raw + second.raw == b'data: {"a": 1}\r\n\r\ndata: {"b": 2}\r\n\r\n'
    # Re-encoding keeps the stream well-formed: the LF that belonged to the first event's CR
    # stays in front of the second event.
    assert first.encode(b"{}") + second.encode(b'{"c":3}') == b'data: {}\r\n\r\ndata: {"c":3}\r\n\r\n'


@pytest.mark.parametrize("newline", ENDINGS)
def test_encode_keeps_other_fields_in_place_and_the_line_ending(newline: bytes) -> None:
    raw = (
        b"event: delta"
        + newline
        + b"id: 7"
        + newline
        + b'data: {"x":'
        + newline
        + b"data: 1}"
        + newline
        + b"retry: 5"
        + newline
        + newline
    )
    [event] = EventCodec().feed(raw)
    assert event.data == b'{"x":\n1}'
    n = newline
    assert event.encode(b'{"x": 2}') == b"event: delta" + n + b"id: 7" + n + b'data: {"x": 2}' + n + b"retry: 5" + n + n
    assert (
        event.encode(b"a\nb")
        == b"event: delta" + n + b"id: 7" + n + b"data: a" + n + b"data: b" + n + b"retry: 5" + n + n
    )
    [again] = EventCodec().feed(event.encode(event.data))
    assert (again.event, again.data) == ("delta", event.data)


def test_an_over_long_event_passes_as_pieces_and_decoding_resumes_after_it() -> None:
    codec = EventCodec(max_buffer=1024)
    stream = [
        b"data: " + b"x" * 600,
        b"y" * 600,
        b"z" * 5000 + b"\r\n",
        b"data: more\r\n",
        b"\r\n",
        b'data: {"ok": 1}\r\n\r\n',
    ]
    events = []
    for chunk in stream:
        events += codec.feed(chunk)
        assert codec.buffered_bytes <= 1024
    events += codec.finish()
    assert b"".join(e.raw for e in events) == b"".join(stream)
    assert [e.data for e in events if e.data is not None] == [b'{"ok": 1}']


def test_ndjson_lines_keep_their_ending_and_a_cr_is_not_a_line_end() -> None:
    body = b'{"a": "x"}\r\n\n{"b":\r 2}\n{"c": 3}'
    codec = EventCodec(sse=False)
    events = feed_in_pieces(codec, body, [3, 11, 12, 20])
    assert b"".join(e.raw for e in events) == body
    assert [json.loads(e.data) for e in events] == [{"a": "x"}, {"b": 2}, {"c": 3}]
    assert events[0].encode(b'{"a": "y"}') == b'{"a": "y"}\r\n'
    assert [e.ended for e in events] == [True, True, False]


def test_codec_for_picks_by_content_type() -> None:
    assert codec_for("text/event-stream; charset=utf-8")._sse is True
    assert codec_for("application/x-ndjson")._sse is False
    assert codec_for("application/json") is None and codec_for("application/vnd.amazon.eventstream") is None


def test_decoder_reads_bare_cr_events() -> None:
    body = b'event: a\rdata: {"x": 1}\r\rdata: [DONE]\r\r'
    dec = SSEDecoder()
    frames = [f for b in body for f in dec.feed(bytes([b]))] + dec.finish()
    assert [(f.event, f.data) for f in frames] == [("a", {"x": 1})]


PIECES = st.sampled_from(
    [b"\n", b"\r", b"\r\n", b"data: ", b"event: x", b":c", b'{"a": 1}', b"[DONE]", b"x" * 40, b"\xff"]
)


@settings(max_examples=300, deadline=None)
@given(parts=st.lists(PIECES, max_size=40), cuts=st.lists(st.integers(0, 2000), max_size=10), sse=st.booleans())
def test_arbitrary_bytes_never_raise_stay_bounded_and_come_back_whole(parts, cuts, sse):
    body = b"".join(parts)
    codec = EventCodec(sse=sse, max_buffer=64)
    events, last = [], 0
    for cut in [*sorted(c for c in cuts if c < len(body)), len(body)]:
        events += codec.feed(body[last:cut])
        last = max(last, cut)
        assert codec.buffered_bytes <= 64
    events += codec.finish()
    assert b"".join(e.raw for e in events) == body
    for e in events:  # an ended event re-encodes to one that parses the same
        if e.ended and e.data is not None:
            again = EventCodec(sse=sse).feed(e.encode(e.data))
            assert [(a.event, a.data) for a in again if a.data is not None] == [(e.event, e.data)]
