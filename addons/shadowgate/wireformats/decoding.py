"""Incremental Content-Encoding decoders for stream taps.

A stream tap sees the raw wire bytes, still compressed. These decoders turn each chunk into
plain bytes for the usage parser without ever raising: a corrupt or truncated stream turns the
decoder off (usage then comes from the estimate), and the client still gets every byte untouched.
"""

from __future__ import annotations

import json
import re
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import Protocol

import brotli

try:  # Python 3.14 has zstd in the standard library; mitmproxy ships the backport before that.
    from compression import zstd
except ImportError:  # pragma: no cover - depends on the interpreter
    from backports import zstd

# A decompression bomb must not blow up memory: cap the output of one chunk.
MAX_OUTPUT_PER_CHUNK = 8 * 1024 * 1024


class _Decompressor(Protocol):
    def decompress(self, data: bytes) -> bytes: ...


class _Identity:
    def decompress(self, data: bytes) -> bytes:
        return data


class _Zlib:
    def __init__(self, wbits: int) -> None:
        self._d = zlib.decompressobj(wbits)

    def decompress(self, data: bytes) -> bytes:
        out = self._d.decompress(data, MAX_OUTPUT_PER_CHUNK)
        if self._d.unconsumed_tail:
            raise ValueError("decompression bomb: one chunk expands past the cap")
        return out


class _Deflate:
    """HTTP 'deflate' is meant to be zlib-wrapped, but servers also send raw deflate."""

    def __init__(self) -> None:
        self._d: _Zlib | None = None
        self._head = b""

    def decompress(self, data: bytes) -> bytes:
        if self._d is None:
            self._head += data
            if len(self._head) < 2:
                return b""  # the zlib header is two bytes; wait for the second
            data, self._head = self._head, b""
            wrapped = (data[0] & 0x0F) == 8 and (data[0] << 8 | data[1]) % 31 == 0
            self._d = _Zlib(zlib.MAX_WBITS if wrapped else -zlib.MAX_WBITS)
        return self._d.decompress(data)


class _Brotli:
    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def decompress(self, data: bytes) -> bytes:
        return self._d.process(data)


class _Zstd:
    def __init__(self) -> None:
        self._d = zstd.ZstdDecompressor()

    def decompress(self, data: bytes) -> bytes:
        if self._d.eof:  # a new frame may follow the previous one
            self._d = zstd.ZstdDecompressor()
        out = self._d.decompress(data, MAX_OUTPUT_PER_CHUNK)
        if not self._d.needs_input and not self._d.eof:
            raise ValueError("decompression bomb: one chunk expands past the cap")
        return out


_FACTORIES: dict[str, Callable[[], _Decompressor]] = {
    "": _Identity,
    "identity": _Identity,
    "gzip": lambda: _Zlib(16 + zlib.MAX_WBITS),
    "x-gzip": lambda: _Zlib(16 + zlib.MAX_WBITS),
    "deflate": _Deflate,
    "br": _Brotli,
    "zstd": _Zstd,
}


class StreamDecoder:
    """Decodes one response body chunk by chunk; failed is set instead of raising."""

    __slots__ = ("_stages", "failed")

    def __init__(self, content_encoding: str | None) -> None:
        self.failed = False
        # "gzip, br" means gzip was applied first, so undo the last one first.
        names = [n.strip().lower() for n in (content_encoding or "").split(",") if n.strip()]
        self._stages: list[_Decompressor] = []
        for name in reversed(names):
            factory = _FACTORIES.get(name)
            if factory is None:
                self.failed = True
                return
            self._stages.append(factory())

    def decode(self, chunk: bytes) -> bytes:
        if self.failed:
            return b""
        try:
            for stage in self._stages:
                chunk = stage.decompress(chunk)
            return chunk
        except Exception:
            self.failed = True
            return b""


# --- whole request bodies ---------------------------------------------------------------------

# Content-coding names as RFC 9110 §8.4.1 registers them; "x-gzip" is the alias it says a
# recipient SHOULD treat as gzip. "compress" (LZW) is registered but nothing here decodes it.
_CODINGS: dict[str, Callable[[], _Decompressor]] = {
    "gzip": _FACTORIES["gzip"],
    "x-gzip": _FACTORIES["gzip"],
    "deflate": _FACTORIES["deflate"],
    "br": _FACTORIES["br"],
    "zstd": _FACTORIES["zstd"],
}
_IDENTITY = frozenset({"", "identity", "none"})
# A request body is checked against this many decoded bytes at most: a compressed body that
# expands past it is refused rather than scanned in part.
MAX_DECODED_BODY = 64 * 1024 * 1024
_BOMB_CHUNK = 4096  # with MAX_OUTPUT_PER_CHUNK, a 2048:1 ratio per chunk (deflate tops out near 1032:1)


class UndecodableBody(ValueError):
    """A request body the proxy cannot turn into the bytes the upstream will read."""


def content_codings(header: str | None) -> list[str]:
    """The codings of a Content-Encoding value, first applied first, identity left out."""
    names = [name.strip().lower() for name in (header or "").split(",")]
    return [name for name in names if name not in _IDENTITY]


def transfer_codings(headers: Any) -> list[str]:
    """The transfer codings of a request besides chunked (RFC 9112 §6.1), first applied first.

    mitmproxy undoes only chunked: it hands a `Transfer-Encoding: gzip, chunked` body to the
    stages still gzip-coded and forwards it so, under the same header, to an upstream that may
    undo the gzip itself. No client library sends such a body; the stages refuse it on AI calls
    (Decide) rather than read what the upstream would not."""
    names = [name.strip().lower() for value in headers.get_all("transfer-encoding") for name in value.split(",")]
    return [name for name in names if name and name != "chunked"]


def decode_body(raw: bytes, content_encoding: str | None, limit: int = MAX_DECODED_BODY) -> bytes:
    """raw with every coding of its Content-Encoding undone, last applied first (RFC 9110: "gzip,
    br" was gzipped, then brotli'd). Raises UndecodableBody for an unknown coding, corrupt or
    truncated data, trailing bytes after a gzip member, or output above `limit`. mitmproxy's own
    decoder knows one coding per header only and hands back the raw bytes on any other value."""
    data = bytes(raw)
    for name in reversed(content_codings(content_encoding)):
        factory = _CODINGS.get(name)
        if factory is None:
            raise UndecodableBody(f"unknown content coding {name!r}")
        data = _undo(factory(), name, data, limit)
    return data


def _undo(stage: _Decompressor, name: str, data: bytes, limit: int) -> bytes:
    out = bytearray()
    try:
        for i in range(0, max(len(data), 1), _BOMB_CHUNK):
            out += stage.decompress(data[i : i + _BOMB_CHUNK])
            if len(out) > limit:
                raise UndecodableBody(f"the {name} body expands past {limit} bytes")
    except UndecodableBody:
        raise
    except Exception as e:
        raise UndecodableBody(f"the body is not valid {name}: {e}") from e
    if not _finished(stage):
        raise UndecodableBody(f"the {name} body is truncated or has trailing data")
    return bytes(out)


def _finished(stage: _Decompressor) -> bool:
    inner: Any = getattr(stage, "_d", None)
    if isinstance(stage, _Deflate):
        inner = getattr(inner, "_d", None)
    if inner is None:
        return isinstance(stage, _Identity)
    if hasattr(inner, "eof") and hasattr(inner, "unused_data"):  # zlib.Decompress
        return bool(inner.eof) and not inner.unused_data
    if isinstance(stage, _Brotli):
        return bool(inner.is_finished())
    return bool(getattr(inner, "eof", True))


def json_text(data: bytes) -> str:
    """The text of a JSON body as a reader that follows RFC 8259 §8.1 and RFC 4627 §3 sees it:
    UTF-8 (a BOM allowed), or UTF-16/UTF-32 told apart by a BOM or by where the zero bytes of the
    first two characters fall. Python's json.loads(bytes), and the servers built on it, accept
    all of them. Raises UnicodeDecodeError for bytes that are none of them."""
    return data.decode(json.detect_encoding(data))


def readable_content(message: Any) -> bytes:
    """A mitmproxy message's body as the upstream will read it, every content coding undone;
    b"" when it cannot be (DLP refuses such a body; metering then has nothing to read)."""
    raw = message.raw_content
    if not raw:
        return b""
    try:
        return decode_body(raw, message.headers.get("content-encoding"))
    except UndecodableBody:
        return b""


# --- the text in a file's bytes, for DLP ----------------------------------------------------------
#
# A file is binary only when its bytes say so: a known binary signature, or control bytes a text
# in no encoding has. Bytes that are not UTF-8 are not binary for that (red-team F18): a
# Windows-1252 CSV, Shift_JIS, UTF-8 with one stray byte, UTF-16 without a byte-order mark are all
# text to the reader that stores or reads the file, and every ASCII secret in them is readable in
# an ASCII-compatible view.

# Leading bytes of the binary formats sent as files and payloads (media, documents, archives,
# executables); their text, if any, is not read here.
BINARY_SIGNATURES: tuple[bytes, ...] = (
    b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a", b"%PDF-", b"PK\x03\x04", b"PK\x05\x06",
    b"PK\x07\x08", b"\x1f\x8b", b"BZh", b"\xfd7zXZ\x00", b"7z\xbc\xaf\x27\x1c", b"Rar!\x1a\x07", b"\x28\xb5\x2f\xfd",
    b"RIFF", b"ID3", b"\xff\xfb", b"\xff\xf3", b"\xff\xf2", b"\xff\xf1", b"\xff\xf9", b"OggS", b"fLaC",
    b"\x1a\x45\xdf\xa3", b"FORM", b"\x00\x00\x01\x00", b"BM", b"II*\x00", b"MM\x00*", b"\x7fELF", b"MZ",
    b"\xca\xfe\xba\xbe", b"\xcf\xfa\xed\xfe", b"\x00asm", b"SQLite format 3\x00", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1",
    b"wOFF", b"wOF2", b"\x00\x01\x00\x00\x00", b"8BPS", b"\x93NUMPY", b"PAR1", b"ARROW1", b"\x89HDF\r\n\x1a\n",
)  # fmt: skip
_FTYP = b"ftyp"  # ISO media (MP4, M4A, MOV, HEIC, AVIF) at offset 4
# C0 controls no text file holds (tab, LF, VT, FF, CR and ESC, which colours logs, excepted).
_CONTROL_BYTES = bytes([*range(0x00, 0x09), *range(0x0E, 0x1B), *range(0x1C, 0x20), 0x7F])
_SAMPLE = 64 * 1024
# More control bytes than this share of a sample is binary (random bytes hold about 10 %).
_BINARY_CONTROL_SHARE = 0.02
_PRINTABLE_RUN = re.compile(rb"[\t\n\r\x20-\x7e]{8,}")
_BOMS = (
    (b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe\x00\x00", "utf-32-le"), (b"\x00\x00\xfe\xff", "utf-32-be"),
    (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"),
)  # fmt: skip


# Charsets (Python's codec names) in which every ASCII byte is that ASCII character and which
# the proxy reads as such: UTF-8/16/32 (told apart as JSON readers do), ASCII, Latin-1/cp1252.
READABLE_CHARSETS = frozenset(
    {"utf-8", "utf-8-sig", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "ascii",
     "iso8859-1", "latin-1", "cp1252"}
)  # fmt: skip


@dataclass(frozen=True, slots=True)
class TextReading:
    """How DLP reads a file's bytes. text: the reading scanned and, when redactable, redacted:
    encode() gives the bytes back, every byte outside a redaction as it came. also: other
    readings of the same bytes a reader may take, scanned but not redactable in place. lenient:
    text is a permissive view (not the bytes' own encoding), so a short value may also be a
    token as it stands. A reading that is not redactable is the printable runs of a binary blob."""

    text: str
    codec: str = "utf-8"
    errors: str = "strict"
    also: tuple[str, ...] = ()
    lenient: bool = False
    redactable: bool = True
    bom: bytes = b""  # the byte-order mark in front of text, written back as it came

    def encode(self, text: str) -> bytes:
        return self.bom + text.encode(self.codec, self.errors)


def read_text(data: bytes, charset: str | None = None) -> TextReading | None:
    """The text DLP reads in a file or payload; None for a known binary format.

    A declared charset is read first (and the bytes' own reading is scanned too, for a reader
    that ignores it); then a byte-order mark; then UTF-8 (UTF-16/32 when the first characters'
    zero bytes say so, as JSON readers guess); a known binary signature is binary; zero bytes
    in UTF-16/32's pattern are that; few control bytes are text in some ASCII-compatible
    encoding, read as UTF-8 with each other byte kept as it is, and also as Windows-1252; many
    control bytes are binary without a signature, of which the printable runs are scanned."""
    if charset:
        declared = _declared_reading(data, charset)
        if declared is not None:
            return declared
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return TextReading(data[len(bom) :].decode(encoding), encoding, bom=bom)
            except UnicodeDecodeError:
                break  # no text in that encoding: judged as the bytes themselves
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _non_utf8(data)
    if data[:4].count(0):
        try:
            encoding = json.detect_encoding(data)
            return TextReading(data.decode(encoding), encoding)
        except (UnicodeDecodeError, LookupError):
            pass
    return TextReading(text)


def _declared_reading(data: bytes, charset: str) -> TextReading | None:
    try:
        text = data.decode(charset.strip().strip('"'))
    except (LookupError, UnicodeDecodeError, ValueError):
        return None  # the bytes are judged as they are
    own = read_text(data)
    if own is None or own.text == text:
        return TextReading(text, charset.strip().strip('"'), also=own.also if own else ())
    return TextReading(text, charset.strip().strip('"'), also=(own.text, *own.also))


def _non_utf8(data: bytes) -> TextReading | None:
    sample = data[:_SAMPLE]
    binary = _controls_share(sample) > _BINARY_CONTROL_SHARE
    signature = next((s for s in BINARY_SIGNATURES if data.startswith(s)), b"12345678" if data[4:8] == _FTYP else None)
    # A signature alone proves nothing: one in front of text (few control bytes) is text.
    if signature is not None and _controls_share(sample[len(signature) :]) > _BINARY_CONTROL_SHARE:
        return None
    wide = _wide_encoding(sample)
    if wide is not None:
        try:
            return TextReading(data.decode(wide), wide)
        except UnicodeDecodeError:  # cut or stray bytes: a reader with replacement still reads the rest
            return TextReading(data.decode("utf-8", "surrogateescape"), "utf-8", "surrogateescape",
                               (data.decode(wide, "replace"),), lenient=True)  # fmt: skip
    if binary:
        runs = b"\n".join(_PRINTABLE_RUN.findall(data)).decode("ascii")
        return TextReading(runs, "ascii", lenient=True, redactable=False)
    text = data.decode("utf-8", "surrogateescape")
    western = data.decode("cp1252", "replace")
    return TextReading(text, "utf-8", "surrogateescape", (western,), lenient=True)


def _controls_share(sample: bytes) -> float:
    return (len(sample) - len(sample.translate(None, _CONTROL_BYTES))) / max(len(sample), 1)


def _wide_encoding(sample: bytes) -> str | None:
    """UTF-16 or UTF-32 without a byte-order mark, told by where the zero bytes fall: the high
    bytes of Latin characters (ASCII keys among them) in one position of each unit, the other
    positions all but free of zeros. CJK text has zeros only around its Latin letters."""
    quads = len(sample) // 4
    if quads:
        by_position = [sample[k : quads * 4 : 4].count(0) for k in range(4)]
        if by_position[2] >= 0.9 * quads and by_position[3] >= 0.9 * quads:
            return "utf-32-le"
        if by_position[0] >= 0.9 * quads and by_position[1] >= 0.9 * quads:
            return "utf-32-be"
    pairs = len(sample) // 2
    even, odd = sample[0 : pairs * 2 : 2].count(0), sample[1 : pairs * 2 : 2].count(0)
    if max(even, odd) >= max(2, 0.02 * pairs) and min(even, odd) * 8 <= max(even, odd):
        return "utf-16-le" if odd > even else "utf-16-be"
    return None


def is_grpc(content_type: str) -> bool:
    return content_type.split(";", 1)[0].strip().lower().startswith("application/grpc")


def grpc_messages(content: bytes, limit: int = MAX_DECODED_BODY) -> list[bytes]:
    """The messages of a gRPC request body (each: a compressed flag, a 4-byte length, the
    message), compressed ones inflated (gzip, or deflate as zlib or raw), as the server reads
    them. A body that is not whole frames, or a message in a compression the proxy cannot undo
    (snappy), is UndecodableBody: DLP fails closed on it (red-team F26: a gzip-compressed
    Gemini/Vertex gRPC message hid its prompt)."""
    messages: list[bytes] = []
    total, at = 0, 0
    while at < len(content):
        if len(content) - at < 5 or content[at] not in (0, 1):
            raise UndecodableBody("the gRPC body is not a sequence of whole frames")
        size = int.from_bytes(content[at + 1 : at + 5], "big")
        message = content[at + 5 : at + 5 + size]
        if len(message) != size:
            raise UndecodableBody("a gRPC frame is cut short")
        if content[at] == 1:
            message = _inflate_grpc(message, limit - total)
        total += len(message)
        if total > limit:
            raise UndecodableBody(f"the gRPC messages inflate past {limit} bytes")
        messages.append(message)
        at += 5 + size
    return messages


def _inflate_grpc(message: bytes, limit: int) -> bytes:
    for wbits in (16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS):  # gzip, zlib, raw deflate
        inflater = zlib.decompressobj(wbits)
        try:
            out = inflater.decompress(message, limit + 1)
        except zlib.error:
            continue
        if inflater.eof and not inflater.unconsumed_tail:
            return out
        if len(out) > limit:
            raise UndecodableBody(f"a gRPC message inflates past {limit} bytes")
    raise UndecodableBody("a gRPC message is compressed in a coding the proxy cannot undo")


# gRPC methods of Gemini's GenerativeService and Vertex's PredictionService: (operation, streamed).
_GRPC_OPERATIONS = {
    "generatecontent": ("generate_content", False),
    "streamgeneratecontent": ("generate_content", True),
    "counttokens": ("count_tokens", False),
    "embedcontent": ("embeddings", False),
    "batchembedcontents": ("embeddings", False),
    # Vertex AI's OpenAI-compatible endpoint: its model is in the JSON of an http_body, unread
    # here, so judged as any model (red-team F89).
    "chatcompletions": ("chat", False),
    "streamingchatcompletions": ("chat", True),
    # A batch of generation or embedding requests (the methods REST :batchGenerateContent and
    # :asyncBatchEmbedContent are transcoded from): its model is inside the batch (red-team F111).
    "batchgeneratecontent": ("create_batch", False),
    "asyncbatchembedcontent": ("create_batch", False),
    "createbatchpredictionjob": ("create_batch", False),  # Vertex AI's JobService
}
GRPC_BATCH_METHODS = frozenset({"batchgeneratecontent", "asyncbatchembedcontent", "createbatchpredictionjob"})
# Methods that run no model (read, list, delete or cancel a resource): an unknown method of a
# service that generates without one of these verbs may run one, and is judged as any model
# (red-team F111). The other services (Vertex's endpoints, models, jobs) manage resources.
_GRPC_QUIET_VERBS = ("get", "list", "delete", "cancel", "wait", "watch")
_GRPC_GENERATING_SERVICES = ("generativeservice/", "predictionservice/")


def grpc_method(path: str) -> str:
    """A gRPC call's method, the path's last segment, lower-cased."""
    return path.split("?", 1)[0].rsplit("/", 1)[-1].lower()


def grpc_operation(path: str) -> tuple[str, bool]:
    """(operation, streamed) of a gRPC call by its method, the path's last segment; ("", False)
    for a method not listed here."""
    return _GRPC_OPERATIONS.get(grpc_method(path), ("", False))


def grpc_may_run_a_model(path: str) -> bool:
    """Whether a gRPC method may run a model: a known generation method, or one the proxy does
    not know whose name is no read, list, delete or cancel."""
    if grpc_operation(path)[0]:
        return True
    service = path.split("?", 1)[0].lower()
    generating = any(name in service for name in _GRPC_GENERATING_SERVICES)
    return generating and not grpc_method(path).startswith(_GRPC_QUIET_VERBS)


def grpc_model_fields(path: str) -> tuple[tuple[int, ...], bool]:
    """(the request's fields naming its model, whether a Vertex endpoint may be that model) by
    service and method. The Gemini API names it in field 1 (red-team F26); Vertex AI's
    GenerateContentRequest in field 5 (F72), its CountTokensRequest in the endpoint (1) and the
    model (3) (round-6b G14), its other requests (Predict, RawPredict, ...) in field 1. A tuned
    Gemini or a custom model on Vertex is a model named by its endpoint,
    `projects/*/locations/*/endpoints/{id}` (G7); the endpoint of Vertex's OpenAI-compatible
    ChatCompletions is not its model (that is in the JSON it carries, F89)."""
    method = grpc_method(path)
    if ".aiplatform." not in path:
        return (1,), False
    if method in ("generatecontent", "streamgeneratecontent"):
        return (5,), True
    if method == "counttokens":
        return (1, 3), True
    return (1,), "chatcompletions" not in method


def grpc_first_message(content: bytes) -> bytes | None:
    """A gRPC body's first message, inflated if it is compressed; None when it cannot be read."""
    if len(content) < 5 or content[0] not in (0, 1):
        return None
    message = content[5 : 5 + int.from_bytes(content[1:5], "big")]
    if content[0] == 0:
        return message
    for wbits in (16 + zlib.MAX_WBITS, zlib.MAX_WBITS, -zlib.MAX_WBITS):  # gzip, zlib, raw deflate
        try:
            return zlib.decompressobj(wbits).decompress(message)
        except zlib.error:
            continue
    return None


def grpc_models(message: bytes, fields: tuple[int, ...] = (1,), endpoints: bool = False) -> list[str] | None:
    """Every value of the model fields of a Gemini/Vertex request (`models/...`, or with
    `endpoints` a Vertex endpoint), in order: protobuf lets a field come anywhere and repeat, the
    last value winning, so every one is judged (red-team F55). None when the message is not a
    protobuf the proxy can walk."""
    walked = protobuf_fields(message)
    if walked is None:
        return None
    models = []
    for number, value in walked:
        # The caller names the fields by service and method: the Gemini API's field 5 is its
        # tools (F87), Vertex's GenerateContentRequest field 5 its model (F72).
        if number in fields and isinstance(value, bytes) and len(value) <= 512:
            try:
                models.append(value.decode("utf-8"))
            except UnicodeDecodeError:
                return None
    return [m for m in models if "models/" in m or (endpoints and _VERTEX_ENDPOINT.fullmatch(m))]


_VERTEX_ENDPOINT = re.compile(r"projects/[^/]+/locations/[^/]+/endpoints/[^/]+")
_MODEL_NAME = re.compile(r"(?:[\w.@-]+/)*models/[\w.@:-]+")


def grpc_nested_models(message: bytes, depth: int = 8) -> list[str] | None:
    """Every model name (`models/...`, `publishers/*/models/...`) at any depth of a protobuf
    message, in order: a batch names its model inside the batch and again in each inlined
    request (red-team F111), at field numbers the proxy need not know. A length-delimited value
    that reads as a model name is one; any other is walked as a message when it is one. None when
    the message itself cannot be walked."""
    walked = protobuf_fields(message)
    if walked is None:
        return None
    models: list[str] = []
    for _number, value in walked:
        if not isinstance(value, bytes):
            continue
        if len(value) <= 512:
            try:
                text = value.decode("utf-8")
            except UnicodeDecodeError:
                text = ""
            if _MODEL_NAME.fullmatch(text):
                models.append(text)
                continue
        if depth > 0:
            models += grpc_nested_models(value, depth - 1) or []
    return models


def protobuf_fields(message: bytes) -> list[tuple[int, int | bytes]] | None:
    """The top-level fields of a protobuf message, in order: (number, an integer for a varint or
    fixed-size field, the bytes of a length-delimited one). None when it cannot be walked."""
    fields: list[tuple[int, int | bytes]] = []
    at, end = 0, len(message)
    while at < end:
        tag, at = _varint(message, at)
        if tag is None:
            return None
        number, kind = tag >> 3, tag & 7
        if kind == 0:
            value, at = _varint(message, at)
            if value is None:
                return None
            fields.append((number, value))
        elif kind in (1, 5):
            width = 8 if kind == 1 else 4
            fields.append((number, int.from_bytes(message[at : at + width], "little")))
            at += width
        elif kind == 2:
            size, at = _varint(message, at)
            if size is None or at + size > end:
                return None
            fields.append((number, message[at : at + size]))
            at += size
        else:
            return None  # groups (3, 4) and unknown wire types: not a message these APIs send
        if at > end:
            return None
    return fields


def grpc_usage(messages: list[bytes], usage_field: int) -> tuple[int | None, int | None] | None:
    """(prompt, output) tokens of the last answer message with usage metadata, or None.
    GenerateContentResponse holds it in field 3 (Gemini API) or 4 (Vertex AI); its prompt,
    candidates and total token counts are fields 1, 2 and 3 in both, and the output counted is
    total minus prompt (thinking tokens are in the total, not in the candidates' count)."""
    found = None
    for message in messages:
        for number, value in protobuf_fields(message) or ():
            if number == usage_field and isinstance(value, bytes):
                counts = {n: v for n, v in protobuf_fields(value) or () if isinstance(v, int)}
                if 1 in counts or 2 in counts:
                    prompt, candidates, total = counts.get(1), counts.get(2), counts.get(3)
                    output = total - (prompt or 0) if total is not None else candidates
                    found = (prompt, output)
    return found


def _varint(data: bytes, at: int) -> tuple[int | None, int]:
    value, shift = 0, 0
    while at < len(data) and shift < 64:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at += 1
        if not byte & 0x80:
            return value, at
        shift += 7
    return None, at
