"""The SignalR hub protocol (ASP.NET Core's specs/HubProtocol.md): its two encodings, read and written.

Microsoft's chat hubs (Microsoft 365 Copilot's /m365Copilot/Chathub, Bing's /sydney/ChatHub) speak
it over a WebSocket. The client's first message is a JSON handshake naming the encoding for the
rest of the connection, `{"protocol": "json" | "messagepack", "version": 1}`. Then:

- json: every message is a JSON object ended by the record separator 0x1E, and one WebSocket
  message may carry several;
- messagepack: binary messages, each hub message a MessagePack array prefixed by its length as
  a VarInt (1-5 bytes, at most 2 GB), several per WebSocket message.

A MessagePack hub message is turned into the object the JSON encoding would send for it
(`[1, headers, id, target, args, streamIds]` -> `{"type": 1, "headers": .., "invocationId": ..,
"target": .., "arguments": .., "streamIds": ..}`), so DLP, the injection screen and the catalog's
field paths read both encodings alike, and written back into the array it came from.
"""

from __future__ import annotations

import json
from typing import Any

from .common import loads_request
from .msgpack import MsgPackError
from .msgpack import packb
from .msgpack import unpack_from

RS = "\x1e"
JSON, MESSAGEPACK = "json", "messagepack"
INVOCATION, STREAM_ITEM, COMPLETION, STREAM_INVOCATION, CLOSE = 1, 2, 3, 4, 7
MAX_LENGTH = 0x7FFFFFFF
# The array positions after the type, by message type; Completion (3) is read by hand.
_FIELDS: dict[int, tuple[str, ...]] = {
    INVOCATION: ("headers", "invocationId", "target", "arguments", "streamIds"),
    STREAM_INVOCATION: ("headers", "invocationId", "target", "arguments", "streamIds"),
    STREAM_ITEM: ("headers", "invocationId", "item"),
    5: ("headers", "invocationId"),  # CancelInvocation
    6: (),  # Ping
    CLOSE: ("error", "allowReconnect"),
    8: ("sequenceId",),  # Ack
    9: ("sequenceId",),  # Sequence
}
_RESULT_KEYS = {1: "error", 3: "result"}  # Completion's ResultKind: 1 error, 2 void, 3 a result


class SignalRError(ValueError):
    """Bytes that are not the SignalR encoding they should be."""


def handshake_protocol(doc: Any) -> str | None:
    """The encoding a handshake request names, or None when `doc` is not a handshake."""
    if isinstance(doc, dict) and set(doc) <= {"protocol", "version"} and isinstance(doc.get("protocol"), str):
        return doc["protocol"].lower()
    return None


# --- json ----------------------------------------------------------------------------------------


def json_records(text: str) -> list[tuple[str, Any]]:
    """(record text, its JSON value) for each record of a message; every record must end in 0x1E."""
    if not text.endswith(RS):
        raise SignalRError("a SignalR JSON message must end with the record separator")
    out = []
    for piece in text[:-1].split(RS):
        try:
            out.append((piece, loads_request(piece)))
        except (ValueError, RecursionError) as e:
            raise SignalRError(f"a SignalR record is not JSON: {e}") from None
    return out


# --- messagepack ---------------------------------------------------------------------------------


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    """The VarInt length at data[pos] and the offset after it."""
    value = 0
    for i in range(5):
        if pos + i >= len(data):
            raise SignalRError("a truncated length prefix")
        byte = data[pos + i]
        value |= (byte & 0x7F) << (7 * i)
        if not byte & 0x80:
            if value > MAX_LENGTH:
                raise SignalRError("a length prefix over 2 GB")
            return value, pos + i + 1
    raise SignalRError("a length prefix longer than 5 bytes")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def msgpack_records(data: bytes) -> list[tuple[list[Any], dict[str, Any]]]:
    """(the MessagePack array, the JSON-encoding object) of each hub message of a binary message."""
    if not data:
        raise SignalRError("an empty SignalR MessagePack message")
    out = []
    pos = 0
    while pos < len(data):
        length, start = read_varint(data, pos)
        end = start + length
        if end > len(data):
            raise SignalRError(f"a hub message of {length} bytes, but {len(data) - start} left")
        try:
            array, used = unpack_from(data[:end], start)
        except MsgPackError as e:
            raise SignalRError(f"a hub message is not MessagePack: {e}") from None
        if used != end:
            raise SignalRError("bytes after a hub message inside its length")
        out.append((array, hub_object(array)))
        pos = end
    return out


def hub_object(array: Any) -> dict[str, Any]:
    """A MessagePack hub message as the JSON encoding's object (an unknown type keeps its items
    under "items", so nothing in it goes unread)."""
    if not isinstance(array, list) or not array or not isinstance(array[0], int) or isinstance(array[0], bool):
        raise SignalRError("a hub message must be an array that starts with its type")
    kind = array[0]
    doc: dict[str, Any] = {"type": kind}
    if kind == COMPLETION:
        doc.update(zip(("headers", "invocationId"), array[1:3], strict=False))
        result_key = _RESULT_KEYS.get(array[3]) if len(array) > 3 else None
        if result_key is not None and len(array) > 4:
            doc[result_key] = array[4]
        return doc
    fields = _FIELDS.get(kind)
    if fields is None:
        doc["items"] = array[1:]
    else:
        doc.update(zip(fields, array[1:], strict=False))
    return doc


def hub_array(doc: dict[str, Any], template: list[Any]) -> list[Any]:
    """`doc` (an edited hub_object of `template`) written back into the array it came from."""
    array = list(template)
    kind = array[0]
    names: tuple[str | None, ...]
    if kind == COMPLETION:
        names = ("headers", "invocationId", None, _RESULT_KEYS.get(array[3]) if len(array) > 3 else None)
    elif kind in _FIELDS:
        names = _FIELDS[kind]
    else:
        return [kind, *doc.get("items", array[1:])]
    for i, name in enumerate(names, start=1):
        if name is not None and i < len(array) and name in doc:
            array[i] = doc[name]
    return array


def msgpack_message(arrays: list[list[Any]]) -> bytes:
    out = bytearray()
    for array in arrays:
        body = packb(array)
        out += varint(len(body)) + body
    return bytes(out)


# --- what the proxy says to a client ---------------------------------------------------------------


def refusal(protocol: str, text: str, invocation_ids: list[str]) -> tuple[bytes, bool]:
    """(message, is_text) that tells a SignalR client it was refused: a Completion with the error
    for each invocation that waits for one (the call fails, the connection goes on), or, when none
    waits (a non-blocking invocation, a message the proxy could not read), a Close with the error."""
    if invocation_ids:
        objects = [{"type": COMPLETION, "invocationId": i, "error": text} for i in invocation_ids]
        arrays: list[list[Any]] = [[COMPLETION, {}, i, 1, text] for i in invocation_ids]
    else:
        objects = [{"type": CLOSE, "error": text, "allowReconnect": False}]
        arrays = [[CLOSE, text, False]]
    if protocol == MESSAGEPACK:
        return msgpack_message(arrays), False
    return "".join(json.dumps(o) + RS for o in objects).encode(), True


def waiting_invocations(docs: list[Any]) -> list[str]:
    """The invocation ids of the calls among `docs` that wait for a Completion."""
    return [
        d["invocationId"]
        for d in docs
        if isinstance(d, dict)
        and d.get("type") in (INVOCATION, STREAM_INVOCATION)
        and isinstance(d.get("invocationId"), str)
    ]
