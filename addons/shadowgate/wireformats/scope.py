"""What DLP reads in a JSON request: every string the model, a tool or the provider will read.

Not only the prompt fields of a known format: tool and function descriptions and their
parameter schemas, response_format / JSON schemas, message `name` fields, object keys, URLs the
provider fetches (a secret in a query string leaves with the fetch), text documents, and base64
or data-URL payloads that decode to text (decoded, scanned, and re-encoded when redacted). A
payload whose own field declares it text (Gemini `inlineData` / `mimeType: text/plain`, an
Anthropic base64 `document` with `media_type: text/plain`, a `data:text/csv;...` URL, a Bedrock
`document` of format `txt`, an MCP `blob` with a text `mimeType`) is text whatever its bytes look
like: decoded in its charset, or byte for byte when they are not (latin-1: ASCII secrets stay
readable, and redaction puts every other byte back), never judged binary by its control
characters; base64 with stray characters is also read as a lenient decoder reads it. Numbers
that can be a card or a named identifier are read as their digits (number_reading).
Left
out: opaque tokens the provider minted (encrypted_content, signature), large base64 payloads that
decode to binary media (an image, a PDF: no text to match), and, unless the operator opts in,
the request's own bookkeeping (`metadata`, `user`), which the model never reads and which
carries user ids and emails on every request.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import json
import re
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote_from_bytes
from urllib.parse import unquote_to_bytes

from shadowgate.dlp import jsonnumbers
from shadowgate.wireformats import prompt_strings

from .base import JsonPath
from .base import KeyStep
from .base import Shadowed
from .common import DuplicateKeys
from .common import every_string
from .common import json_unescaped
from .common import loads_lenient
from .common import replace_strings
from .decoding import read_text

# Opaque values the provider minted and reads back as-is: never text. Only a string under one of
# these keys in a block of one of these types is one (Anthropic `thinking.signature`, a web search
# result's `encrypted_content`, a Responses `reasoning` item's): the same names in a tool schema,
# tool input or arguments are the user's, read by the model (red-team F45).
OPAQUE_KEYS = frozenset({"encrypted_content", "signature"})
MINTED_BLOCK_TYPES = frozenset({"thinking", "reasoning", "compaction", "web_search_result", "web_fetch_result"})


def _minted_position(path: JsonPath) -> bool:
    """Whether a block sits where the provider puts the blocks it mints: a message's content
    block (`messages[i].content[j]`), a Responses input item (`input[i]`), or an entry of a
    server tool result's content (`messages[i].content[j].content[k]`). The same `type` anywhere
    else (a tool's input, a schema) is the user's, and its values are read (red-team F67)."""
    steps = [step for step in path if not isinstance(step, Shadowed)]
    shape = tuple("#" if isinstance(step, int) else step for step in steps)
    return shape in (
        ("messages", "#", "content", "#"),
        ("input", "#"),
        ("messages", "#", "content", "#", "content", "#"),
    )


# Gemini's thought signatures: opaque tokens the model minted in its answer's parts, which the
# API requires back unchanged in the next request's parts (round-6b G30: one read as a UK
# postcode and redacted broke the agent's next turn). Only on a turn's part.
THOUGHT_SIGNATURE_KEYS = frozenset({"thoughtSignature", "thought_signature"})


def _gemini_part(path: JsonPath) -> bool:
    """A part of a Gemini turn: `contents[i].parts[j]` (a batch's request wraps it deeper)."""
    shape = tuple("#" if isinstance(step, int) else step for step in path if not isinstance(step, Shadowed))
    return shape[-4:] == ("contents", "#", "parts", "#")


# Top-level bookkeeping the provider stores but the model never reads (opt-in: metadata option).
METADATA_KEYS = frozenset({"metadata", "user", "safety_identifier", "labels"})
# A base64 value that decodes to binary and is shorter than this is scanned as it is (it may be
# a hex or base64 secret).
RAW_SCAN_LIMIT = 4096
_MIN_BASE64 = 24
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]+={0,2}")
_DATA_URL = re.compile(r"data:([^,;]*)((?:;[^,;]*)*),", re.IGNORECASE)
# The fields that name a payload's media type beside it, and those that hold the payload.
MIME_KEYS = ("mimeType", "mime_type", "media_type", "mediaType", "contentType", "content_type")
PAYLOAD_KEYS = frozenset({"data", "blob", "bytes", "file_data"})
# Bedrock Converse `document.format` values that are text.
TEXT_FORMATS = frozenset({"txt", "csv", "md", "html", "json", "xml", "yaml"})
# Media types a reader takes for text: text/*, JSON, XML, YAML, scripts, CSV and the like.
_TEXT_MEDIA = re.compile(
    r"\s*(?:text/[\w.+-]+|message/[\w.+-]+|[\w.-]+/[\w.-]*\+(?:json|xml|yaml)"
    r"|application/(?:json|xml|yaml|x-yaml|javascript|x-javascript|ecmascript|csv|sql|graphql|toml|rtf"
    r"|markdown|x-ndjson|ndjson|jsonl|x-sh|x-python|x-httpd-php|x-tex|x-www-form-urlencoded|xhtml\+xml))"
    r"\s*(?:;|$)",
    re.IGNORECASE,
)
_WHITESPACE = re.compile(r"\s+")
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/_=-]")
MAX_NESTING = 3  # JSON inside a string inside a string ...: deeper is not what an app sends


@dataclass(frozen=True, slots=True)
class Piece:
    """One string DLP scans. path: where it lives (a KeyStep last for an object key).
    prompt: prompt text, joined with its neighbours to catch a value split across strings.
    encode: for text decoded from base64 or a data URL, how redacted text goes back in."""

    path: JsonPath
    text: str
    prompt: bool = False
    encode: Callable[[str], str] | None = None
    # Other readings of the same bytes a provider may take (UTF-16 without a BOM): scanned too,
    # but not redactable in place (a finding to redact in one refuses the request).
    also: tuple[str, ...] = ()
    # A JSON number (see number_reading): where its digits start in text, after the names that
    # give it context; a finding there cannot be redacted in place.
    digits_at: int | None = None


def request_pieces(body: Any, include_metadata: bool = False) -> Iterator[Piece]:
    """Every string of a JSON request body DLP scans, in document order."""
    prompt_paths = {path for path, _ in prompt_strings(body)}

    def walk(node: Any, path: JsonPath, media: str | None = None) -> Iterator[Piece]:
        if isinstance(node, str):
            yield from _string(node, path, path in prompt_paths)
        elif isinstance(node, list):
            for i, item in enumerate(node):
                yield from walk(item, (*path, i))
        elif isinstance(node, dict):
            media = declared_text(node) or media
            entries = [((*path, key), key, value) for key, value in node.items()]
            if isinstance(node, DuplicateKeys):  # a first-wins server reads the shadowed values
                entries += [((*path, key, Shadowed(i)), key, v) for i, (key, v) in enumerate(node.shadowed)]
            minted = node.get("type") in MINTED_BLOCK_TYPES and _minted_position(path)
            gemini_part = _gemini_part(path)
            for step, key, value in entries:
                if (
                    (minted and key in OPAQUE_KEYS and isinstance(value, str))
                    or (gemini_part and key in THOUGHT_SIGNATURE_KEYS and isinstance(value, str))
                    or (not path and key in METADATA_KEYS and not include_metadata)
                ):
                    continue
                if not isinstance(step[-1], Shadowed):
                    yield Piece((*path, KeyStep(key)), key)
                if media is not None and key in PAYLOAD_KEYS and isinstance(value, str):
                    yield declared_piece(step, value, media)
                else:
                    yield from walk(value, step, media if key == "source" else None)
        elif (reading := number_reading(node, path)) is not None:
            yield Piece(path, reading[0], digits_at=reading[1])

    return walk(body, ())


def _string(text: str, path: JsonPath, prompt: bool) -> Iterator[Piece]:
    m = _DATA_URL.match(text)
    if m is not None and is_text_media(m.group(1)):  # a data URL that says it is text, wherever it is
        yield declared_piece(path, text, m.group(1))
        return
    decoded = decode_embedded(text)
    if decoded is None:
        yield Piece(path, text, prompt, also=tuple(nested_json_texts(text)))
        return
    plain, encode, also = decoded
    if plain is not None:
        # The text it decodes to is scanned (and redacted, re-encoded); scanning the encoded form
        # as well would count each value twice, now that the scanner decodes base64 runs itself.
        yield Piece(path, plain, False, encode, also)
    elif len(text) <= RAW_SCAN_LIMIT:
        yield Piece(path, text, prompt, also=also)  # binary: the value itself may be a hex or base64 secret
    elif also:
        yield Piece(path, "", False, also=also)  # the printable runs of a large binary payload


_NAME_CHARS = 40  # of each key name before a number: a context word is near the value
_SMALLEST_READ = 10 ** (jsonnumbers.NUMBER_DIGITS.start - 1)
_LARGEST_READ = 10 ** (jsonnumbers.NUMBER_DIGITS.stop - 1)


def number_reading(value: Any, path: JsonPath) -> tuple[str, int] | None:
    """A JSON number as DLP reads it: its digits after the names of the two keys above it
    (`card enum: 4539148803436467`, `ssn: 536228475`: an identifier found by the word that names
    it is found in a field of that name), and where the digits start; None for a number that is
    not an integer that can hold a value (dlp.jsonnumbers: its length, its key names). A model
    reads a number in a tool schema or a tool call as text, and an MCP server takes a card number
    typed `integer` as a number (red-team F19)."""
    if type(value) is float and value.is_integer():
        value = int(value)
    elif type(value) is not int:
        return None  # a bool, None, a decimal (an amount, a ratio), inf, nan, a LongNumber
    value = abs(value)
    if not _SMALLEST_READ <= value < _LARGEST_READ:
        return None
    digits = str(value)
    names = " ".join([step[-_NAME_CHARS:] for step in path if type(step) is str][-2:])
    if not jsonnumbers.may_hold_value(digits, names):
        return None
    head = names + ": " if names else ""
    return head + digits, len(head)


def number_readings(node: Any) -> list[tuple[str, int]]:
    """number_reading of every number in a JSON value (for the scans that read strings only:
    MCP tool arguments and results)."""
    out: list[tuple[str, int]] = []
    stack: list[tuple[Any, JsonPath]] = [(node, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, dict):
            stack.extend(((item, (*path, key)) for key, item in value.items()))
        elif isinstance(value, list):
            stack.extend(((item, (*path, i)) for i, item in enumerate(value)))
        elif (reading := number_reading(value, path)) is not None:
            out.append(reading)
    return out


def joined_numbers(readings: list[tuple[str, int]]) -> tuple[str, Callable[[Any], bool]]:
    """Number readings as one text to scan, apart by blank lines (a scan has a fixed cost that a
    body of many numbers would pay per number), and which of its findings count: those over a
    number's digits (one in the key names is the keys' own) that dlp.jsonnumbers.counts allows."""
    starts, ends, digits, at = [], [], [], 0
    for text, digits_at in readings:
        starts.append(at + digits_at)
        ends.append(at + len(text))
        digits.append(text[digits_at:])
        at += len(text) + len(_NUMBER_GAP)

    def counts(finding: Any) -> bool:
        k = bisect.bisect_right(starts, finding.end - 1) - 1
        if k < 0 or finding.start < starts[k] or finding.end > ends[k]:
            return False
        return jsonnumbers.counts(finding, digits[k])

    return _NUMBER_GAP.join(text for text, _ in readings), counts


_NUMBER_GAP = "\n\n\n"


def declared_text(node: dict) -> str | None:
    """The media type of a payload that the object declares text (see the module docstring):
    `mimeType` and its spellings, or a Bedrock document's `format`; None when it declares none,
    or binary, or holds text as it stands (Anthropic's `source.type: text`)."""
    if node.get("type") == "text":
        return None
    for key in MIME_KEYS:
        value = node.get(key)
        if isinstance(value, str) and is_text_media(value):
            return value
    fmt = node.get("format")
    if isinstance(fmt, str) and fmt.lower() in TEXT_FORMATS and isinstance(node.get("source"), dict):
        return "text/plain"
    return None


def is_text_media(media_type: str) -> bool:
    return _TEXT_MEDIA.match(media_type) is not None


def nested_json_texts(text: str, depth: int = 0) -> list[str]:
    """The strings of a JSON document inside a string (function-call arguments, a tool's output)
    that are not there as they stand: escapes (`\\u0041KIA...`) hide them from a scan of the
    string, while the tool or model that parses the document reads them. Nested MAX_NESTING deep."""
    if depth >= MAX_NESTING or "\\" not in text or text.lstrip()[:1] not in ("{", "["):
        return []
    try:
        inner = loads_lenient(text)
    except (ValueError, RecursionError):
        # JSON the proxy cannot parse (nested past MAX_JSON_DEPTH, broken) that a tool may: its
        # text with the escapes undone is the reading scanned (red-team F1).
        unescaped = json_unescaped(text)
        return [unescaped] if unescaped != text else []
    out: list[str] = []
    for value in every_string(inner, keys=True):
        if value not in text:
            out.append(value)
        out += nested_json_texts(value, depth + 1)
    return out


def embedded_texts(node: Any) -> list[str]:
    """The text of every payload a JSON value declares text (each reading), for the scans that
    pass media keys by (WebSocket messages, MCP tool results)."""
    out: list[str] = []
    stack = [node]
    while stack:
        value = stack.pop()
        if isinstance(value, dict):
            media = declared_text(value)
            for key, item in value.items():
                if media is not None and key in PAYLOAD_KEYS and isinstance(item, str):
                    text, _, also = declared_payload(item, media)
                    out += [text, *also]
                elif isinstance(item, dict) and key == "source" and media is not None:
                    stack.append({**item, "mimeType": media})  # a Bedrock document's bytes
                else:
                    stack.append(item)
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str) and (m := _DATA_URL.match(value)) is not None and is_text_media(m.group(1)):
            text, _, also = declared_payload(value, m.group(1))
            out += [text, *also]
    return out


def declared_piece(path: JsonPath, value: str, media_type: str) -> Piece:
    plain, encode, also = declared_payload(value, media_type)
    return Piece(path, plain, False, encode, also)


def declared_payload(value: str, media_type: str) -> tuple[str, Callable[[str], str], tuple[str, ...]]:
    """The text of a payload declared text (base64, or a data URL), how redacted text goes back
    in the same form, and the other readings of its bytes. A value that is not base64 is text as
    it stands, read also as a lenient decoder reads base64 with stray characters."""
    m = _DATA_URL.match(value)
    if m is not None:
        head, payload = value[: m.end()], value[m.end() :]
        media_type = m.group(1) + m.group(2)
        if ";base64" not in m.group(2).lower():
            text, charset, also = _as_text(unquote_to_bytes(payload), media_type)
            return text, lambda new: head + new, also
    else:
        head, payload = "", value
    compact = _WHITESPACE.sub("", payload)
    data = _b64(compact) or _b64(compact + "=" * (-len(compact) % 4))  # padding left off
    if data is None:
        # Not base64: text as it stands (words), or base64 with stray characters, which a lenient
        # decoder (Python's b64decode, many others) skips: that reading is scanned too.
        kept = _NOT_BASE64.sub("", compact).rstrip("=")
        lenient = _b64(kept + "=" * (-len(kept) % 4)) if len(kept) >= _MIN_BASE64 else None
        reading = decoded_text(lenient) if lenient else None
        return value, lambda new: new, (reading,) if reading else ()
    text, charset, also = _as_text(data, media_type)
    urlsafe = "-" in payload or "_" in payload
    encoder = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return text, lambda new: head + encoder(new.encode(charset, "replace")).decode(), also


_BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe\x00\x00", "utf-32"), (b"\x00\x00\xfe\xff", "utf-32"),
         (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))  # fmt: skip


def _as_text(data: bytes, media_type: str) -> tuple[str, str, tuple[str, ...]]:
    """(text, the charset it was read in, other readings): the media type's charset, else the
    one a BOM names, else UTF-8, else latin-1, which reads any byte (and writes it back). Bytes
    with zeros and no BOM may be UTF-16/32 to a reader that guesses as JSON readers do: that
    reading is scanned too."""
    for param in media_type.split(";")[1:]:
        name, _, charset = param.partition("=")
        if name.strip().lower() == "charset":
            try:
                charset = charset.strip().strip('"')
                return data.decode(charset), charset, ()
            except (LookupError, UnicodeDecodeError):
                break
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            try:
                return data.decode(encoding), encoding, ()
            except UnicodeDecodeError:
                break
    try:
        text, charset = data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError:
        text, charset = data.decode("latin-1"), "latin-1"
    also: tuple[str, ...] = ()
    if 0 in data[:64]:
        try:
            guess = data.decode(json.detect_encoding(data))
        except (UnicodeDecodeError, LookupError):
            guess = text
        also = (guess,) if guess != text else ()
    return text, charset, also


def decode_embedded(text: str) -> tuple[str | None, Callable[[str], str], tuple[str, ...]] | None:
    """A data URL or a base64 value: (its text, or None when it is binary; how to re-encode
    text into the same form; other readings scanned too). None when the string is neither: it
    is text as it stands."""
    m = _DATA_URL.match(text)
    if m is not None:
        head, payload = text[: m.end()], text[m.end() :]
        if ";base64" in m.group(2).lower():
            data = _b64(payload)
            if data is None:
                return None
            return _embedded(data, text, lambda raw: head + base64.b64encode(raw).decode())
        return _embedded(unquote_to_bytes(payload), text, lambda raw: head + quote_from_bytes(raw, _URL_SAFE))
    if len(text) < _MIN_BASE64 or _BASE64.fullmatch(text) is None:
        return None
    data = _b64(text)
    if data is None:
        return None
    urlsafe = "-" in text or "_" in text
    encoder = base64.urlsafe_b64encode if urlsafe else base64.b64encode
    return _embedded(data, text, lambda raw: encoder(raw).decode())


# What a percent-encoded data URL keeps unescaped when its redacted text is written back.
_URL_SAFE = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) not in '%"\\')


def _embedded(
    data: bytes, value: str, to_value: Callable[[bytes], str]
) -> tuple[str | None, Callable[[str], str], tuple[str, ...]]:
    """The text of an embedded payload's bytes (decoding.read_text; red-team F18: text that is
    not UTF-8 is text), how redacted text goes back in, and the other readings. A permissive
    reading of a short value may be noise: the value as it stands (a hex or base64 secret) is
    then scanned too."""
    reading = read_text(data)
    if reading is None:
        return None, lambda new: new, ()
    if not reading.redactable:
        return None, lambda new: new, (reading.text,) if reading.text else ()
    also = reading.also + ((value,) if reading.lenient and len(value) <= RAW_SCAN_LIMIT else ())
    return reading.text, lambda new: to_value(reading.encode(new)), also


def _b64(payload: str) -> bytes | None:
    payload = payload.strip()
    try:
        if "-" in payload or "_" in payload:
            return base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
        return base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        return None


def decoded_text(data: bytes) -> str | None:
    """Decoded bytes as text when they are text, else None (decoding.read_text: text in any
    encoding is text, binary is what a known signature or many control bytes say is binary).

    Bytes that decode as UTF-8 are text, whatever control characters they hold: a reader takes
    them as text, and counting controls let a build log's ANSI colour codes (ESC), or any padding
    of controls or NULs, pass a file off as binary and unscanned."""
    reading = read_text(data)
    return reading.text if reading is not None and reading.redactable else None


def apply_ranges(text: str, ranges: list[tuple[int, int, str]]) -> str:
    """text with each (start, end, replacement) applied; where ranges overlap, the first
    replacement also covers the rest of the next, so no part of a value survives."""
    out: list[str] = []
    pos = 0
    for start, end, new in sorted(ranges, key=lambda r: (r[0], -r[1])):
        if end <= pos:
            continue
        if start < pos:
            pos = end
            continue
        out += [text[pos:start], new]
        pos = end
    out.append(text[pos:])
    return "".join(out)


class KeyCollision(ValueError):
    """A redacted object key would replace another key of the same object."""


def rewrite(body: Any, values: dict[JsonPath, str], keys: dict[JsonPath, str]) -> Any:
    """A copy of body with the strings at `values` paths replaced and the keys at `keys` paths
    (ending in a KeyStep) renamed. Raises KeyCollision when a renamed key already exists."""
    body = replace_strings(body, values)
    # Deepest first: renaming a key changes the paths below it.
    for path in sorted(keys, key=len, reverse=True):
        if any(isinstance(step, Shadowed) for step in path):
            continue  # a shadowed value is not in the copy at all (it holds each key once)
        step = path[-1]
        assert isinstance(step, KeyStep)
        body = _rename(body, path[:-1], step.key, keys[path])
    return body


def _rename(node: Any, path: JsonPath, old: str, new: str) -> Any:
    if not path:
        if new in node and new != old:
            raise KeyCollision(new)
        return {(new if key == old else key): value for key, value in node.items()}
    copy: Any = list(node) if isinstance(node, list) else dict(node)
    copy[path[0]] = _rename(node[path[0]], path[1:], old, new)
    return copy
