"""What one WebSocket message of an AI session says, whatever encoding it came in, and the
message written back after an edit.

`read_message(content, is_text, protocol)` gives a Frame: the message's documents (one per
record), its kind, and `encode(docs)` for the bytes of the message with edited documents. In the
order tried:

- `signalr-msgpack`: a binary message of a SignalR connection whose handshake chose MessagePack
  (wireformats/signalr.py), or one that reads as length-prefixed hub messages without it;
- `signalr-json`: records ended by 0x1E, several per message (a SignalR JSON connection);
- `json`: one JSON document, in a text or a binary message (a lax server reads either);
- `msgpack`: a binary message that is exactly one MessagePack value;
- `text`: a text message, or a binary one that is UTF-8 text, in no structure: the document is
  {"text": the message}.

Anything else (a binary message in no encoding above: compressed, encrypted, protobuf, audio) is
Unreadable, and so is a message that breaks the encoding its connection chose (a malformed
MessagePack hub message is an error, not a pass). What the caller does with it is its policy.

`Frame.hidden` lists the texts the documents carry in a form DLP and the screen would not read
as text: a JSON document inside a string whose escapes hide letters (`\\u0041KIA...`), and
MessagePack bin values that are UTF-8 text (a SignalR byte[] argument). They are scanned and
screened beside the documents; being nowhere literally in the message, they cannot be redacted.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from shadowgate.webapps.codecs import dump_json_like

from . import signalr
from .common import DuplicateKeys
from .common import dumps_json
from .common import has_long_numbers
from .common import loads_lenient
from .msgpack import MsgPackError
from .msgpack import packb
from .msgpack import unpackb
from .scope import embedded_texts
from .scope import nested_json_texts

SIGNALR_JSON, SIGNALR_MSGPACK, JSON, MSGPACK, TEXT = "signalr-json", "signalr-msgpack", "json", "msgpack", "text"
MIN_HIDDEN_CHARS = 8
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1d\x1f]")
BOM = "\ufeff"


class Unreadable(ValueError):
    """A message the proxy cannot read; the text says why, for the client and the log."""


class UnparsedJson(Unreadable):
    """A message that looks like JSON ({ or [ first) but does not parse: the server reads JSON
    the proxy cannot (nesting past MAX_JSON_DEPTH), so it is not read as text either."""


class Opaque(Unreadable):
    """A binary message in no encoding the proxy knows (it may be media, such as raw audio)."""


@dataclass(slots=True)
class Frame:
    kind: str
    docs: list[Any]
    _write: Callable[[list[Any], bool], bytes]
    protocol: str | None = None  # the SignalR encoding a handshake in this message chose
    hidden: list[str] = field(default_factory=list)

    @property
    def one_document_per_message(self) -> bool:
        """Whether every document is a message of its own (else one message carries them all)."""
        return self.kind not in (SIGNALR_JSON, SIGNALR_MSGPACK)

    def encode(self, docs: list[Any], reuse: bool = True) -> bytes:
        """The message with these documents. reuse: a document that is one of the originals
        (the same object, not edited in place) goes out as the bytes it came in."""
        return self._write(docs, reuse)


def read_message(content: bytes, is_text: bool, protocol: str | None = None, greeting: bool = False) -> Frame:
    """The message's documents (see the module docstring); raises Unreadable. greeting: the
    server's first message on a SignalR connection, which starts with the JSON handshake answer
    (sent in a binary message, followed by hub messages, on a MessagePack connection)."""
    if greeting and content[:1] == b"{" and (end := content.find(signalr.RS.encode())) >= 0:
        head, rest = content[: end + 1], content[end + 1 :]
        if not rest:
            return read_message(head, True)
        frame = read_message(rest, is_text, protocol)
        encode = frame._write
        frame._write = lambda docs, reuse: head + encode(docs, reuse)
        return frame
    if not is_text and protocol == signalr.MESSAGEPACK:
        try:
            return _signalr_msgpack(content)
        except signalr.SignalRError as e:
            raise Unreadable(f"a malformed SignalR MessagePack message ({e})") from None
    text = _utf8(content)
    if text is not None and (is_text or _looks_like_text(text)):
        return _text_frame(text, protocol)
    if is_text:  # wsproto lets no invalid UTF-8 through in a text message; be safe all the same
        raise Unreadable("a text message that is not UTF-8")
    for reader in (_signalr_msgpack, _msgpack):
        try:
            return reader(content)
        except (signalr.SignalRError, MsgPackError):
            continue
    raise Opaque("a binary message in no encoding the proxy reads")


def _text_frame(text: str, protocol: str | None) -> Frame:
    if text.startswith(BOM):
        # A byte order mark before JSON, in a text or a binary message: readers that take JSON
        # from bytes skip it (Python's json.loads, .NET's System.Text.Json), so it is the same
        # event to them and must be to DLP, not a text message of no structure. The message is
        # read, and written back when edited, without it: the provider gets what was scanned.
        frame = _text_frame(text.lstrip(BOM), protocol)
        if frame.kind == TEXT:
            return Frame(TEXT, [{"text": text}], frame._write)
        return frame
    if text.endswith(signalr.RS) or protocol == signalr.JSON:
        try:
            return _signalr_json(text)
        except signalr.SignalRError as e:
            if protocol == signalr.JSON:
                raise Unreadable(f"a malformed SignalR JSON message ({e})") from None
    stripped = text.lstrip()
    if stripped[:1] in ("{", "["):
        try:
            doc = loads_lenient(text)
        except (ValueError, RecursionError) as e:
            # The server takes it for JSON; read as plain text its escapes (\u0041KIA...) would
            # hide a secret and its model from the proxy (red-team F1): unreadable, not text.
            raise UnparsedJson(f"a message that looks like JSON but does not parse ({str(e)[:120]})") from None
        return _json_frame(text, doc)
    return Frame(TEXT, [{"text": text}], lambda docs, _reuse: "".join(d["text"] for d in docs).encode())


def _json_frame(text: str, doc: Any) -> Frame:
    def write(docs: list[Any], reuse: bool) -> bytes:
        [new] = docs
        if reuse and new is doc:
            return text.encode()
        # A LongNumber (an integer too long for int()) has no json.dumps form: written digit for digit.
        return (dumps_json(new) if has_long_numbers(new) else dump_json_like(new, text)).encode()

    return Frame(JSON, [doc], write, signalr.handshake_protocol(doc), _hidden([doc]))


def _signalr_json(text: str) -> Frame:
    records = signalr.json_records(text)
    originals = {id(doc): raw for raw, doc in records}
    style = records[0][0]

    def write(docs: list[Any], reuse: bool) -> bytes:
        out = []
        for doc in docs:
            raw = originals.get(id(doc)) if reuse else None
            out.append(raw if raw is not None else dump_json_like(doc, style))
        return "".join(piece + signalr.RS for piece in out).encode()

    docs = [doc for _, doc in records]
    protocol = next((p for d in docs if (p := signalr.handshake_protocol(d))), None)
    return Frame(SIGNALR_JSON, docs, write, protocol, _hidden(docs))


def _signalr_msgpack(content: bytes) -> Frame:
    records = signalr.msgpack_records(content)
    templates = {id(doc): array for array, doc in records}
    by_type = {doc["type"]: array for array, doc in records}

    def write(docs: list[Any], reuse: bool) -> bytes:
        arrays = []
        for doc in docs:
            template = templates.get(id(doc)) or by_type.get(doc.get("type"))
            if template is None:
                raise Unreadable("a hub message of a type the message did not have")
            arrays.append(template if reuse and id(doc) in templates else signalr.hub_array(doc, template))
        return signalr.msgpack_message(arrays)

    docs = [doc for _, doc in records]
    return Frame(SIGNALR_MSGPACK, docs, write, None, _hidden(docs))


def _msgpack(content: bytes) -> Frame:
    value = unpackb(content)
    if not isinstance(value, dict | list):
        raise MsgPackError("a lone scalar is not a message")

    def write(docs: list[Any], reuse: bool) -> bytes:
        [new] = docs
        return content if reuse and new is value else packb(new)

    return Frame(MSGPACK, [value], write, None, _hidden([value]))


def _utf8(content: bytes) -> str | None:
    try:
        return content.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _looks_like_text(text: str) -> bool:
    """UTF-8 without control characters other than white space and the record separator."""
    return bool(text) and _CONTROL.search(text) is None


def _hidden(docs: list[Any]) -> list[str]:
    """Texts the documents hold that DLP and the screen would not read as they are: strings of
    JSON documents inside strings (whose escapes may hide letters), bin values of UTF-8 text, and
    base64 payloads that declare themselves text (Gemini Live `inlineData` / `mediaChunks` of
    type text/plain, a data:text/... URL), which the scans pass by as media."""
    out: list[str] = embedded_texts(docs)
    stack: list[tuple[Any, int]] = [(docs, 0)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, str):
            out += nested_json_texts(node, depth)
        elif isinstance(node, bytes):
            decoded = _utf8(node)
            if decoded is not None and len(decoded) >= MIN_HIDDEN_CHARS and _looks_like_text(decoded):
                out.append(decoded)
                stack.append((decoded, depth + 1))
        elif isinstance(node, list):
            stack.extend((item, depth) for item in node)
        elif isinstance(node, dict):
            stack.extend((value, depth) for value in node.values())
            if isinstance(node, DuplicateKeys):
                stack.extend((value, depth) for _, value in node.shadowed)
    return out
