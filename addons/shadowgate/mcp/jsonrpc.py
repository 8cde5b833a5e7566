"""JSON-RPC 2.0 as MCP uses it: recognising a message or batch, ids as keys, errors, encoding."""

from __future__ import annotations

import json
from typing import Any

POLICY_ERROR_CODE = -32001  # implementation-defined server error range of JSON-RPC


def parse_jsonrpc(data: bytes) -> dict | list | None:
    """The JSON-RPC message (or batch) in a body, or None when it is not one."""
    head = data[:64].lstrip()
    if not head.startswith((b"{", b"[")) or b'"jsonrpc"' not in data:
        return None
    try:
        msg = json.loads(data)
    except ValueError:
        return None
    if is_message(msg):
        return msg
    if isinstance(msg, list) and any(is_message(m) for m in msg):
        return msg
    return None


def is_message(value: Any) -> bool:
    return isinstance(value, dict) and value.get("jsonrpc") == "2.0"


def id_key(rpc_id: Any) -> Any:
    """A hashable key for a JSON-RPC id (1 and "1" are different ids)."""
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
        return json.dumps(msg, separators=(",", ":"), ensure_ascii=False).encode()
    except UnicodeEncodeError:  # a lone surrogate ("\udcff" in the JSON): keep it escaped
        return json.dumps(msg, separators=(",", ":")).encode()
