"""The WebSocket message readers: MessagePack (wireformats/msgpack.py), the SignalR hub protocol
(wireformats/signalr.py) and the message reader the realtime stage uses (wireformats/wsframes.py).

The byte strings are written by hand from the specifications (msgpack spec.md; ASP.NET Core
SignalR specs/HubProtocol.md, whose examples are copied byte for byte), not produced by the
writer under test.
"""

from __future__ import annotations

import json

import pytest

from shadowgate.wireformats import msgpack
from shadowgate.wireformats import signalr
from shadowgate.wireformats.msgpack import Ext
from shadowgate.wireformats.msgpack import MsgPackError
from shadowgate.wireformats.wsframes import JSON
from shadowgate.wireformats.wsframes import TEXT
from shadowgate.wireformats.wsframes import Opaque
from shadowgate.wireformats.wsframes import Unreadable
from shadowgate.wireformats.wsframes import read_message

# HubProtocol.md, "Invocation Message Encoding": [1, {}, "xyz", "method", [42], []]
SPEC_INVOCATION = bytes.fromhex("96 01 80 a3 78 79 7a a6 6d 65 74 68 6f 64 91 2a 90")
# "Completion Message Encoding", error result: [3, {}, "xyz", 1, "Error"]
SPEC_COMPLETION_ERROR = bytes.fromhex("95 03 80 a3 78 79 7a 01 a5 45 72 72 6f 72")
# "Close message that allows automatic client reconnects": [7, "xyz", True]
SPEC_CLOSE = bytes.fromhex("93 07 a3 78 79 7a c3")


def _str8(text: str) -> bytes:
    data = text.encode()
    return bytes([0xD9, len(data)]) + data


def _framed(*bodies: bytes) -> bytes:
    """Length-prefixed hub messages; every body here is shorter than 128 bytes (one-byte VarInt)."""
    out = b""
    for body in bodies:
        assert len(body) < 128
        out += bytes([len(body)]) + body
    return out


@pytest.mark.parametrize(
    ("data", "value"),
    [
        (b"\xc0", None),
        (b"\xc2", False),
        (b"\xc3", True),
        (b"\x7f", 127),
        (b"\xe0", -32),
        (b"\xcc\xff", 255),
        (b"\xcd\x01\x00", 256),
        (b"\xce\x00\x01\x00\x00", 65536),
        (b"\xcf" + (2**64 - 1).to_bytes(8, "big"), 2**64 - 1),
        (b"\xd0\x80", -128),
        (b"\xd1\x80\x00", -32768),
        (b"\xd2\x80\x00\x00\x00", -(2**31)),
        (b"\xd3\x80" + b"\x00" * 7, -(2**63)),
        (b"\xca\x3f\xc0\x00\x00", 1.5),
        (b"\xcb\x3f\xf8" + b"\x00" * 6, 1.5),
        (b"\xa3abc", "abc"),
        (b"\xd9\x03abc", "abc"),
        (b"\xda\x00\x03abc", "abc"),
        (b"\xdb\x00\x00\x00\x03abc", "abc"),
        (b"\xc4\x02\x00\xff", b"\x00\xff"),
        (b"\xc5\x00\x01\x01", b"\x01"),
        (b"\xc6\x00\x00\x00\x00", b""),
        (b"\x92\x01\xa1x", [1, "x"]),
        (b"\xdc\x00\x01\xc0", [None]),
        (b"\xdd\x00\x00\x00\x00", []),
        (b"\x81\xa1k\xa1v", {"k": "v"}),
        (b"\xde\x00\x01\x01\x02", {1: 2}),
        (b"\xd4\x05\xaa", Ext(5, b"\xaa")),
        (b"\xd6\xff\x00\x00\x00\x01", Ext(-1, b"\x00\x00\x00\x01")),  # a timestamp
        (b"\xc7\x03\x07abc", Ext(7, b"abc")),
        (SPEC_INVOCATION, [1, {}, "xyz", "method", [42], []]),
    ],
)
def test_every_messagepack_family_is_read(data, value):
    assert msgpack.unpackb(data) == value


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\xc1", "starts no MessagePack value"),
        (b"\xa5abc", "truncated"),
        (b"\xdd\xff\xff\xff\xff", "items declared"),  # 4 billion items in 5 bytes: refused at once
        (b"\xdf\x7f\xff\xff\xff\x00", "items declared"),
        (b"\x91" * 40 + b"\x00", "nested deeper"),
        (b"\xa2\xff\xfe", "not UTF-8"),
        (b"\x81\x90\x00", "map key"),
        (b"\x01\x02", "bytes after the value"),
        (b"", "truncated"),
    ],
)
def test_malformed_or_hostile_messagepack_is_an_error(data, why):
    with pytest.raises(MsgPackError, match=why):
        msgpack.unpackb(data)


def test_a_repeated_map_key_keeps_the_shadowed_value():
    value = msgpack.unpackb(b"\x82\xa1k\xa5first\xa1k\xa4last")
    assert value == {"k": "last"} and value.shadowed == [("k", "first")]


@pytest.mark.parametrize(
    ("value", "data"),
    [
        (0, b"\x00"),
        (-1, b"\xff"),
        (128, b"\xcc\x80"),
        (-33, b"\xd0\xdf"),
        (70000, b"\xce\x00\x01\x11\x70"),
        (2**63, b"\xcf\x80" + b"\x00" * 7),
        ("a" * 31, b"\xbf" + b"a" * 31),
        ("a" * 32, b"\xd9\x20" + b"a" * 32),
        (b"xy", b"\xc4\x02xy"),
        (list(range(16)), b"\xdc\x00\x10" + bytes(range(16))),
        ({"a": None}, b"\x81\xa1a\xc0"),
        (Ext(-1, b"\x00" * 12), b"\xc7\x0c\xff" + b"\x00" * 12),
        (1.5, b"\xcb\x3f\xf8" + b"\x00" * 6),
    ],
)
def test_values_are_written_in_their_shortest_form(value, data):
    assert msgpack.packb(value) == data
    assert msgpack.unpackb(data) == value


def test_what_cannot_be_written_is_an_error():
    with pytest.raises(MsgPackError):
        msgpack.packb(2**64)
    with pytest.raises(MsgPackError):
        msgpack.packb({1, 2})


@pytest.mark.parametrize(
    ("data", "value"),
    [(b"\x35", 53), (b"\x80\x29", 5248), (b"\xff\xff\xff\xff\x07", 0x7FFFFFFF)],  # the spec's examples
)
def test_signalr_length_prefixes(data, value):
    assert signalr.read_varint(data, 0) == (value, len(data))
    assert signalr.varint(value) == data


@pytest.mark.parametrize("data", [b"\x80", b"\xff\xff\xff\xff\x08", b"\x80\x80\x80\x80\x80\x01"])
def test_bad_signalr_length_prefixes(data):
    with pytest.raises(signalr.SignalRError):
        signalr.read_varint(data, 0)


def test_messagepack_hub_messages_read_as_the_json_encoding_objects():
    records = signalr.msgpack_records(_framed(SPEC_INVOCATION, SPEC_COMPLETION_ERROR, SPEC_CLOSE, b"\x91\x06"))
    assert [doc for _, doc in records] == [
        {"type": 1, "headers": {}, "invocationId": "xyz", "target": "method", "arguments": [42], "streamIds": []},
        {"type": 3, "headers": {}, "invocationId": "xyz", "error": "Error"},
        {"type": 7, "error": "xyz", "allowReconnect": True},
        {"type": 6},
    ]
    array, doc = records[0]
    assert signalr.hub_array({**doc, "arguments": ["changed"]}, array) == [1, {}, "xyz", "method", ["changed"], []]


def test_a_signalr_json_message_with_several_records_is_split_and_written_back_as_it_came():
    text = '{"type":1,"target":"chat","arguments":[{"message":{"text":"hi"}}],"invocationId":"0"}\x1e{"type":6}\x1e'
    frame = read_message(text.encode(), True)
    assert frame.kind == "signalr-json" and [d["type"] for d in frame.docs] == [1, 6]
    assert frame.encode(frame.docs) == text.encode()
    edited = [{**frame.docs[0], "target": "other"}, frame.docs[1]]
    assert frame.encode(edited) == text.replace('"chat"', '"other"').encode()


def test_the_handshake_names_the_encoding_and_a_messagepack_connection_reads_binary_strictly():
    handshake = read_message(b'{"protocol":"messagepack","version":1}\x1e', True)
    assert handshake.protocol == "messagepack"
    frame = read_message(_framed(SPEC_INVOCATION), False, "messagepack")
    assert frame.kind == "signalr-msgpack" and frame.docs[0]["target"] == "method"
    with pytest.raises(Unreadable, match="malformed SignalR MessagePack") as refused:
        read_message(_framed(SPEC_INVOCATION)[:-1], False, "messagepack")
    assert not isinstance(refused.value, Opaque)
    with pytest.raises(Unreadable, match="malformed SignalR JSON"):
        read_message(b'{"type":1', True, "json")


def test_an_edited_messagepack_record_is_rewritten_and_the_others_stay_byte_for_byte():
    prompt = [1, {}, "7", "chat", [{"text": "hello"}], []]
    body = b"\x96\x01\x80\xa17\xa4chat\x91\x81\xa4text\xa5hello\x90"
    assert msgpack.unpackb(body) == prompt
    data = _framed(b"\x91\x06", body)
    frame = read_message(data, False, "messagepack")
    ping, invocation = frame.docs
    new = {**invocation, "arguments": [{"text": "[EMAIL]"}]}
    out = frame.encode([ping, new])
    assert out.startswith(b"\x02\x91\x06")
    assert [d for _, d in signalr.msgpack_records(out)][1]["arguments"] == [{"text": "[EMAIL]"}]


def test_other_encodings_of_a_message():
    assert read_message(json.dumps({"a": "b"}).encode(), False).kind == "json"  # JSON in a binary message
    assert read_message(b"\x81\xa4text\xa2hi", False).docs == [{"text": "hi"}]  # one MessagePack value
    assert read_message(b"plain words\n", False).docs == [{"text": "plain words\n"}]
    assert read_message(b"not json {", True).docs == [{"text": "not json {"}]
    # SignalR MessagePack without the handshake: still read
    assert read_message(_framed(SPEC_INVOCATION), False).kind == "signalr-msgpack"
    with pytest.raises(Opaque):
        read_message(bytes(range(256)) * 4, False)  # in no encoding: refused by the caller's policy
    with pytest.raises(Opaque):
        read_message(b"\x1f\x8b\x08\x00" + b"\x00" * 16, False)  # gzip


def test_texts_an_encoding_inside_a_string_hides_are_listed():
    inner = json.dumps({"note": "\\u0041KIA secret"})  # \u escapes inside a JSON string inside JSON
    escaped = '{"event":"send","context":"{\\"note\\": \\"\\\\u0041KIAZ7Q3M5X2R3W4T5YB\\"}"}'
    frame = read_message(escaped.encode(), True)
    assert "AKIAZ7Q3M5X2R3W4T5YB" in frame.hidden
    assert read_message(json.dumps({"x": inner}).encode(), True).hidden == []  # no letter is hidden
    binary = b"\x81\xa4file\xc4\x1cthe key AKIAZ7Q3M5X2R3W4T5YB"
    assert read_message(binary, False).hidden == ["the key AKIAZ7Q3M5X2R3W4T5YB"]


def test_the_servers_first_signalr_message_starts_with_the_handshake_answer():
    data = b"{}\x1e" + _framed(SPEC_INVOCATION)
    frame = read_message(data, False, "messagepack", greeting=True)
    assert frame.docs[0]["target"] == "method"
    assert frame.encode(frame.docs) == data
    assert read_message(b"{}\x1e", False, "messagepack", greeting=True).docs == [{}]


@pytest.mark.parametrize("protocol", ["json", "messagepack"])
def test_a_refusal_is_a_completion_for_each_waiting_call_else_a_close(protocol):
    data, is_text = signalr.refusal(protocol, "no", ["3"])
    close, _ = signalr.refusal(protocol, "no", [])
    if protocol == "json":
        assert is_text and data == b'{"type": 3, "invocationId": "3", "error": "no"}\x1e'
        assert close == b'{"type": 7, "error": "no", "allowReconnect": false}\x1e'
    else:
        assert not is_text
        assert [d for _, d in signalr.msgpack_records(data)] == [
            {"type": 3, "headers": {}, "invocationId": "3", "error": "no"}
        ]
        assert [d for _, d in signalr.msgpack_records(close)] == [{"type": 7, "error": "no", "allowReconnect": False}]


def test_a_bom_before_json_is_skipped_in_text_and_binary_messages():
    event = '{"type":"conversation.item.create","item":{"content":[{"type":"input_text","text":"hi"}]}}'
    for content, is_text in ((("\ufeff" + event).encode(), True), (b"\xef\xbb\xbf" + event.encode(), False)):
        frame = read_message(content, is_text)
        assert frame.kind == JSON and frame.docs[0]["type"] == "conversation.item.create"
        frame.docs[0]["item"]["content"][0]["text"] = "[EMAIL_1]"
        assert frame.encode(frame.docs).startswith(b'{"type"')  # written back without the mark
    plain = read_message("\ufeffjust words".encode(), True)
    assert plain.kind == TEXT and plain.docs == [{"text": "\ufeffjust words"}]
