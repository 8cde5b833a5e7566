"""JSON-RPC 2.0 as MCP uses it: recognising a message or batch, ids as keys, errors, encoding."""

from __future__ import annotations

import codecs
import json
from typing import Any

from shadowgate.wireformats.common import LongNumber
from shadowgate.wireformats.common import dumps_json
from shadowgate.wireformats.common import loads_lenient
from shadowgate.wireformats.common import looks_like_json
from shadowgate.wireformats.decoding import decode_body

POLICY_ERROR_CODE = -32001  # implementation-defined server error range of JSON-RPC
INVALID_REQUEST = -32600


class AmbiguousBody(ValueError):
    """A body that reads as different JSON-RPC messages depending on how a server decodes it."""


def body_texts(data: bytes, charset: str | None = None) -> list[str]:
    """A body's text as each kind of MCP server reads it, so the proxy never judges other text
    than a server runs.

    Servers disagree: the TypeScript SDK decodes with the content-type's charset (through
    iconv-lite, which also knows UTF-7: `+AGQ-elete` is "delete"); the Python SDK and Go ignore
    it and read JSON's own way (a BOM, UTF-16/32 by their zero bytes, else UTF-8). So both
    readings count. Undecodable bytes are replaced, not refused: Go's encoding/json and
    JavaScript's decoders replace them and run the call.
    """
    encodings: list[str] = [json.detect_encoding(data)]
    if charset:
        try:
            encodings.append(codecs.lookup(charset.strip().strip('"')).name)
        except LookupError:
            pass  # a charset Python does not know: the JSON reading stands
    texts: list[str] = []
    for encoding in encodings:
        text = data.decode(encoding, "replace").lstrip("\ufeff")
        if text not in texts:
            texts.append(text)
    return texts


def request_content(raw: bytes | None, content_encoding: str | None) -> bytes:
    """A request body as the server reads it: every content coding undone, stacked ("gzip, gzip")
    and aliased ("x-gzip") ones too, which mitmproxy's decoder hands back undecoded. Raises
    shadowgate.wireformats.decoding.UndecodableBody (a ValueError) for a body no decoder reads."""
    return decode_body(raw or b"", content_encoding)


def charset_of(content_type: str | None) -> str | None:
    """The charset parameter of a content-type header, or None."""
    for param in (content_type or "").split(";")[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset" and value.strip():
            return value.strip()
    return None


def parse_json(data: bytes, charset: str | None = None) -> list[Any]:
    """The JSON values of a body, one per distinct reading of it that parses (see body_texts)."""
    values: list[Any] = []
    for text in body_texts(data, charset):
        try:
            # Without Python's limits where lifting them is cheap (an integer past 4300 digits);
            # nesting past MAX_JSON_DEPTH does not parse (red-team F1, see parse_jsonrpc).
            value = loads_lenient(text, None)
        except (ValueError, RecursionError):
            continue
        if value not in values:
            values.append(value)
    return values


def _repeats_a_member(data: bytes, charset: str | None) -> bool:
    """Whether an object in any reading of the body gives a member name twice. Only asked of
    JSON-RPC bodies: the pairs hook costs Python time per object, which other bodies need not pay."""
    repeated = False

    def members(pairs: list[tuple[str, Any]]) -> dict:
        nonlocal repeated
        obj = dict(pairs)
        repeated = repeated or len(obj) != len(pairs)
        return obj

    for text in body_texts(data, charset):
        try:
            loads_lenient(text, members)
        except (ValueError, RecursionError):
            continue
    return repeated


def parse_jsonrpc(
    data: bytes, charset: str | None = None, mcp_context: bool = False, session: bool = False
) -> dict | list | None:
    """The JSON-RPC message (or batch) in a body, or None when it is not one.

    Judged on the parsed JSON, never on the first bytes: leading whitespace, a BOM, a
    `\\u`-escaped key or another encoding are all the same message to a server. In an MCP context
    (an MCP session, path or listed server) a message without a "jsonrpc" member that names a
    method counts too: a server that does not check the member runs it all the same. Raises
    AmbiguousBody when two readings of the body are different messages, or when a body on an MCP
    session is no JSON at all: a lenient server (comments, trailing commas) may still run it.
    """
    values = parse_json(data, charset)
    if session and not values and data.strip():
        raise AmbiguousBody("a body on an MCP session that is not JSON")
    if mcp_context and not values and any(looks_like_json(text) for text in body_texts(data, charset)):
        # The first request of a session too: a server reads JSON the proxy cannot parse (an
        # integer past Python's 4300 digits, nesting past ~1000), so it is no pass (red-team F1).
        raise AmbiguousBody("an MCP request body that looks like JSON but does not parse")
    found = [m for m in values if _is_jsonrpc(m, mcp_context)]
    if len(found) > 1:
        raise AmbiguousBody("the body is a different message in another encoding")
    if found and _repeats_a_member(data, charset):
        # Python keeps the last of two equal member names, other parsers the first: a server
        # could run the `name` or read the `arguments` the proxy never judged (red-team F9).
        raise AmbiguousBody("a member name given twice in one object")
    return found[0] if found else None


def _is_jsonrpc(msg: Any, mcp_context: bool) -> bool:
    if is_candidate(msg, mcp_context):
        return True
    return isinstance(msg, list) and any(is_candidate(m, mcp_context) for m in msg)


def is_candidate(value: Any, mcp_context: bool) -> bool:
    """A JSON-RPC message, or in an MCP context anything a lax server would take for a request."""
    if not isinstance(value, dict):
        return False
    if is_message(value) or any(_fold(k) == "jsonrpc" for k in value):
        return True
    return mcp_context and any(_fold(k) == "method" for k in value)


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and value.get("jsonrpc") == "2.0"


def is_request(value: Any) -> bool:
    """A message that asks the server for something: a method name, whatever its "jsonrpc" says
    (a server that does not check the version runs it; one that does refuses it, at no cost)."""
    return isinstance(value, dict) and isinstance(value.get("method"), str)


_PROTOCOL_KEYS = frozenset({"jsonrpc", "method", "params", "id"})
_CALL_KEYS = frozenset({"name", "arguments"})


def _fold(key: Any) -> str:
    return key.casefold() if isinstance(key, str) else ""


def _inexact(obj: dict, keys: frozenset[str]) -> bool:
    return any(k not in keys and _fold(k) in keys for k in obj)


def ambiguous(item: Any) -> bool:
    """A message whose member names a server may read differently: Go's encoding/json matches
    names case-insensitively, with Unicode folding ("METHOD", "jſonrpc" with a long s, "NAME" in
    params), so such a message could name one method or tool here and another there."""
    if not isinstance(item, dict):
        return False
    if _inexact(item, _PROTOCOL_KEYS):
        return True
    params = item.get("params")
    return item.get("method") == "tools/call" and isinstance(params, dict) and _inexact(params, _CALL_KEYS)


def ambiguous_body(msg: Any) -> bool:
    """A message or batch a server may read otherwise than the proxy: a member name read
    differently (ambiguous()), two requests of one batch with the same id (the proxy keeps one
    call per id, so the other would pass unchecked: no approval, no DLP), or a tools/call without
    an id (a notification to the protocol, which a lax server may still run)."""
    items = msg if isinstance(msg, list) else [msg]
    ids = [id_key(m["id"]) for m in items if isinstance(m, dict) and "method" in m and "id" in m]
    lone_calls = any(isinstance(m, dict) and m.get("method") == "tools/call" and "id" not in m for m in items)
    return lone_calls or len(ids) != len(set(ids)) or any(ambiguous(m) for m in items)


def id_key(rpc_id: Any) -> Any:
    """A hashable key for a JSON-RPC id (1 and "1" are different ids)."""
    if isinstance(rpc_id, LongNumber):
        return ("long", rpc_id.digits)
    if isinstance(rpc_id, bool) or not isinstance(rpc_id, (int, str)):
        return ("json", json.dumps(rpc_id, sort_keys=True, default=str))
    return (type(rpc_id).__name__, rpc_id)


def encoded_size(value: Any) -> int | None:
    """The size of a value as compact JSON (None for None)."""
    if value is None:
        return None
    return len(dumps(value))


def rpc_error(rpc_id: Any, message: str, code: int = POLICY_ERROR_CODE) -> dict:
    return {"jsonrpc": "2.0", "id": rpc_id, "error": {"code": code, "message": message}}


def ping(rpc_id: Any) -> dict:
    """What a refused request is forwarded as when the proxy cannot answer it itself."""
    return {"jsonrpc": "2.0", "id": rpc_id, "method": "ping"}


def dumps(msg: Any) -> bytes:
    try:
        return dumps_json(msg, separators=(",", ":")).encode()
    except UnicodeEncodeError:  # a lone surrogate ("\udcff" in the JSON): keep it escaped
        return dumps_json(msg, ensure_ascii=True, separators=(",", ":")).encode()
