"""Body decoders that can write an edited value back: JSON, form-encoded, multipart, a raw file.

Each decoder gives a document (dicts, lists, strings) for the field paths to read, and an
encoder that writes an edited document back with as little change as it can: JSON in the
separators and escaping it came in, form pairs that did not change byte for byte as they were
(re-encoding Gemini's whole form tripped its bot detection, per the research notes), multipart
parts that did not change as they were. A body that does not decode is None, never an exception.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from urllib.parse import quote
from urllib.parse import quote_plus
from urllib.parse import unquote
from urllib.parse import unquote_plus

from shadowgate.wireformats import read_json_body
from shadowgate.wireformats.common import DuplicateKeys
from shadowgate.wireformats.common import dumps_json
from shadowgate.wireformats.common import loads_lenient
from shadowgate.wireformats.decoding import UndecodableBody
from shadowgate.wireformats.multipart import Part as MultipartSpan
from shadowgate.wireformats.multipart import boundary_of
from shadowgate.wireformats.multipart import parse_multipart

BODY_KINDS = ("json", "form", "multipart", "raw")
_STYLES = (((",", ":"), False), ((", ", ": "), False), ((",", ":"), True), ((", ", ": "), True))


def load_json(text: str | bytes) -> Any:
    """The JSON value (repeated keys kept for DLP, see DuplicateKeys), or None. Read as the API
    path reads JSON (wireformats.read_json_body): UTF-8, or UTF-16/32 as RFC 8259 readers detect
    it, and an integer longer than Python's int() takes kept as its digits (common.LongNumber),
    since the apps' servers (Node, Go) read such a body and so must DLP (red-team F1)."""
    if isinstance(text, bytes | bytearray):
        try:
            text = _json_text(bytes(text))[0]
        except (UnicodeDecodeError, LookupError):
            return None
    if not text or not text.strip():
        return None
    try:
        return loads_lenient(text)
    except (ValueError, RecursionError):
        return None


def json_error(content: bytes, content_type: str = "") -> str | None:
    """Why a body that a reader takes for JSON (wireformats.common.looks_like_json) does not parse
    even leniently (nested past MAX_JSON_DEPTH, broken); None when it parses or is not JSON. The
    API path's verdict (read_json_body), so a chat app is refused what an API is (red-team F1):
    read as text instead, a value behind its escapes (p\\u0061ssword: ...) is not found."""
    return read_json_body(content, content_type)[1]


def _json_text(content: bytes) -> tuple[str, str]:
    """(the text of a JSON body, the encoding it came in), as wireformats.decoding.json_text reads it."""
    encoding = json.detect_encoding(content)
    return content.decode(encoding), encoding


def json_style(original: str, value: Any) -> tuple[tuple[str, str], bool] | None:
    """The separators and ensure_ascii that reproduce `original` from `value`, if any do."""
    for separators, ascii_only in _STYLES:
        try:
            if dumps_json(value, separators=separators, ensure_ascii=ascii_only) == original:
                return separators, ascii_only
        except (TypeError, ValueError):
            return None
    return None


def dump_json_like(value: Any, original: str) -> str:
    """`value` as JSON in the style `original` was written in (compact when none reproduces it)."""
    style = json_style(original, load_json(original))
    separators, ascii_only = style if style is not None else ((",", ":"), False)
    return dumps_json(value, separators=separators, ensure_ascii=ascii_only)  # a LongNumber as its digits


class Body:
    """A decoded request body: `doc` for the paths, `encode(doc)` for the bytes to send."""

    kind = "raw"
    doc: Any = None

    def encode(self, doc: Any) -> bytes:
        raise NotImplementedError

    def has_shadowed(self) -> bool:
        """True when a key was given twice (the server may read either value)."""
        return False


@dataclass
class JsonBody(Body):
    text: str
    doc: Any
    encoding: str = "utf-8"  # what the text came in (json.detect_encoding), and goes back out in
    kind = "json"

    def encode(self, doc: Any) -> bytes:
        if doc is self.doc:
            return self.text.encode(self.encoding)
        return dump_json_like(doc, self.text).encode(self.encoding)

    def has_shadowed(self) -> bool:
        return _any_shadowed(self.doc)


@dataclass
class FormBody(Body):
    """application/x-www-form-urlencoded, pairs in order; `doc` holds each key's last value."""

    raw: str
    pairs: list[tuple[str, str, str]]  # (raw pair text, key, value)
    doc: dict[str, str] = field(default_factory=dict)
    kind = "form"

    @classmethod
    def parse(cls, raw: str) -> FormBody | None:
        pairs = []
        for piece in raw.split("&"):
            if not piece:
                pairs.append(("", "", ""))
                continue
            key, sep, value = piece.partition("=")
            try:
                pairs.append((piece, unquote_plus(key, errors="strict"), unquote_plus(value, errors="strict")))
            except UnicodeDecodeError:
                return None
            if not sep and not key:
                return None
        named = [(k, v) for piece, k, v in pairs if piece]
        if not named:
            return None
        doc: dict[str, str] = DuplicateKeys(named) if len({k for k, _ in named}) != len(named) else dict(named)
        return cls(raw, pairs, doc)

    def encode(self, doc: Any) -> bytes:
        if doc is self.doc:
            return self.raw.encode()
        last = {key: i for i, (piece, key, _) in enumerate(self.pairs) if piece}
        out: list[str] = []
        for i, (piece, key, value) in enumerate(self.pairs):
            if not piece:  # an empty piece ("a=1&&b=2", a trailing "&") stays where it was
                out.append(piece)
                continue
            new = doc.get(key, value) if last[key] == i else value
            if new == value:
                out.append(piece)
                continue
            raw_key = piece.partition("=")[0]
            raw_value = piece.partition("=")[2]
            # Spaces as '+' (what browsers send) unless the original wrote them as %20.
            encoded = quote(new, safe="") if "%20" in raw_value else quote_plus(new, safe="")
            out.append(f"{raw_key}={encoded}")
        return "&".join(out).encode()

    def has_shadowed(self) -> bool:
        return isinstance(self.doc, DuplicateKeys)


@dataclass
class Part:
    headers: bytes  # the part's header block, as sent
    name: str | None
    filename: str | None
    content_type: str | None
    data: bytes
    header_text: str = ""  # its header values and decoded names, for DLP (multipart.Part.header_text)


@dataclass
class MultipartBody(Body):
    """multipart/form-data: text fields in `doc` by name; file parts in `files`."""

    boundary: bytes
    preamble: bytes
    parts: list[Part]
    epilogue: bytes
    doc: dict[str, Any] = field(default_factory=dict)
    kind = "multipart"

    @property
    def files(self) -> list[Part]:
        return [p for p in self.parts if p.filename is not None]

    def encode(self, doc: Any) -> bytes:
        if doc is self.doc:
            chunks = [p.headers + b"\r\n\r\n" + p.data for p in self.parts]
        else:
            chunks = []
            for p in self.parts:
                data = p.data
                if p.filename is None and p.name is not None and doc.get(p.name) != self.doc.get(p.name):
                    data = str(doc[p.name]).encode()
                chunks.append(p.headers + b"\r\n\r\n" + data)
        delimiter = b"--" + self.boundary
        body = self.preamble + delimiter + b"\r\n"
        body += (b"\r\n" + delimiter + b"\r\n").join(chunks)
        return body + b"\r\n" + delimiter + b"--" + self.epilogue

    @classmethod
    def parse(cls, content: bytes, content_type: str) -> MultipartBody | None:
        """The body split as wireformats.multipart splits it (the boundary parameter parsed, not
        searched for; a body a server could split otherwise is None, so its DLP fails closed)."""
        try:
            boundary = boundary_of(content_type)
            spans = parse_multipart(content, content_type)
        except UndecodableBody:
            return None
        parts = [_part(span, content) for span in spans]
        close = content.rfind(b"--" + boundary + b"--")
        epilogue = content[close + len(boundary) + 4 :]
        doc = {p.name: p.data.decode("utf-8", "replace") for p in parts if p.filename is None and p.name}
        return cls(boundary, b"", parts, epilogue, doc)


def _part(span: MultipartSpan, content: bytes) -> Part:
    params = span.disposition_params()
    filename = params.get("filename")
    if "filename*" in params:  # RFC 5987 (charset'language'%XX): what servers prefer when both are sent
        filename = unquote(params["filename*"].partition("'")[2].partition("'")[2], errors="replace")
    head = content[span.head : span.start - 4]  # empty for a part without headers
    data = content[span.start : span.end]
    return Part(head, params.get("name"), filename, span.headers.get("content-type"), data, span.header_text())


@dataclass
class RawBody(Body):
    """The body is a file's bytes (a PUT to a storage host)."""

    data: bytes
    kind = "raw"

    def encode(self, doc: Any) -> bytes:
        return self.data


def decode_body(kind: str, content: bytes, content_type: str = "") -> Body | None:
    """The body decoded as `kind`; None when it is not that kind."""
    if kind == "raw":
        return RawBody(content)
    if kind == "multipart":
        return MultipartBody.parse(content, content_type)
    if kind == "json":
        try:
            text, encoding = _json_text(content)
        except (UnicodeDecodeError, LookupError):
            return None
        doc = load_json(text)
        return JsonBody(text, doc, encoding) if doc is not None else None
    try:
        text = content.decode("utf-8-sig")
    except UnicodeDecodeError:
        return None
    if kind == "form":
        if text.lstrip().startswith(("{", "[")):
            return None  # JSON is not a form, even if it has an '=' in it
        return FormBody.parse(text.strip())
    raise ValueError(f"unknown body kind {kind!r}")


def decode_any(content: bytes, content_type: str = "") -> Body | None:
    """The body as whatever it decodes as (for a body that is not what its endpoint says)."""
    if "multipart/" in content_type.lower():
        found = MultipartBody.parse(content, content_type)
        if found is not None:
            return found
    for kind in ("json", "form"):
        body = decode_body(kind, content, content_type)
        if body is not None:
            return body
    return None


def _any_shadowed(node: Any) -> bool:
    if isinstance(node, DuplicateKeys):
        return True
    if isinstance(node, dict):
        return any(_any_shadowed(v) for v in node.values())
    if isinstance(node, list):
        return any(_any_shadowed(v) for v in node)
    return False
