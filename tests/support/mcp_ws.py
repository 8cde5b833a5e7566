"""MCP over WebSocket for tests: the official SDK's client and server on a WebSocket, a recording
JSON-RPC endpoint, and a raw WebSocket client that cuts frames by hand.

MCP SDK 2.x dropped its WebSocket transport (python-sdk#2785: not a transport of the
specification), so the SDK's Client and server are bridged here to WebSocket text messages the
way the 1.x transport did (subprotocol "mcp", one JSON-RPC message per text message), with the
`websockets` client (through the proxy) and Starlette's WebSocket on the server side.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import ssl
import struct
from collections.abc import AsyncIterator
from collections.abc import Callable
from typing import Any

import anyio
import mcp_types as types
from mcp.client._transport import TransportStreams
from mcp.server.mcpserver import MCPServer
from mcp.shared._context_streams import create_context_streams
from mcp.shared.message import SessionMessage
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket
from starlette.websockets import WebSocketDisconnect
from websockets.asyncio.client import connect

from tests.adversarial.wire import open_tunnel


async def _deliver(read_writer: Any, text: str | bytes) -> None:
    """One WebSocket message to the SDK's read stream: a message, or the error of a bad one."""
    try:
        message = types.jsonrpc_message_adapter.validate_json(text, by_name=False)
    except Exception as e:
        await read_writer.send(e)
        return
    await read_writer.send(SessionMessage(message))


@contextlib.asynccontextmanager
async def ws_transport(url: str, proxy: str, context: ssl.SSLContext) -> AsyncIterator[TransportStreams]:
    """An SDK client transport: JSON-RPC messages as WebSocket text messages, through the proxy."""
    read_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
    write_stream, write_reader = create_context_streams[SessionMessage](0)
    async with connect(url, subprotocols=["mcp"], proxy=proxy, ssl=context) as ws:  # type: ignore[list-item]

        async def reader() -> None:
            async with read_writer:
                async for text in ws:
                    await _deliver(read_writer, text)

        async def writer() -> None:
            async with write_reader:
                async for session_message in write_reader:
                    await ws.send(session_message.message.model_dump_json(by_alias=True, exclude_unset=True))

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            yield read_stream, write_stream
            tg.cancel_scope.cancel()


def sdk_route(path: str, make: Callable[[], MCPServer]) -> WebSocketRoute:
    """The SDK's MCP server on a WebSocket (subprotocol mcp)."""

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="mcp")
        server = make()._lowlevel_server
        read_writer, read_stream = create_context_streams[SessionMessage | Exception](0)
        write_stream, write_reader = create_context_streams[SessionMessage](0)

        async def reader() -> None:
            async with read_writer:
                with contextlib.suppress(WebSocketDisconnect):
                    while True:
                        await _deliver(read_writer, await websocket.receive_text())

        async def writer() -> None:
            async with write_reader:
                async for session_message in write_reader:
                    await websocket.send_text(
                        session_message.message.model_dump_json(by_alias=True, exclude_unset=True)
                    )

        async with anyio.create_task_group() as tg:
            tg.start_soon(reader)
            tg.start_soon(writer)
            with contextlib.suppress(Exception):
                await server.run(read_stream, write_stream, server.create_initialization_options())
            tg.cancel_scope.cancel()

    return WebSocketRoute(path, endpoint)


def recording_route(path: str, received: list[Any]) -> WebSocketRoute:
    """A lax JSON-RPC server: keeps every message as it arrived (str or bytes), reads JSON from
    text and binary messages alike, and answers each request: ping with {}, anything else with
    its params echoed as text."""

    def answer(m: Any) -> dict | None:
        if not isinstance(m, dict) or "id" not in m or not isinstance(m.get("method"), str):
            return None
        if m["method"] == "ping":
            return {"jsonrpc": "2.0", "id": m["id"], "result": {}}
        text = json.dumps(m.get("params"))
        return {"jsonrpc": "2.0", "id": m["id"], "result": {"content": [{"type": "text", "text": text}]}}

    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept(subprotocol="mcp" if "mcp" in websocket.scope.get("subprotocols", []) else None)
        with contextlib.suppress(WebSocketDisconnect):
            while True:
                event = await websocket.receive()
                if event["type"] == "websocket.disconnect":
                    return
                data = event.get("text") if event.get("text") is not None else event.get("bytes")
                received.append(data)
                try:
                    body = json.loads(data)
                except ValueError:
                    continue
                answers = [a for a in map(answer, body if isinstance(body, list) else [body]) if a]
                if answers:
                    await websocket.send_text(json.dumps(answers if isinstance(body, list) else answers[0]))

    return WebSocketRoute(path, endpoint)


TEXT, BINARY, CONTINUATION, CLOSE = 1, 2, 0, 8


class RawWebSocket:
    """A WebSocket client on a CONNECT tunnel through the proxy, frames written by hand."""

    def __init__(self, proxy_port: int, host: str, path: str, context: ssl.SSLContext, user: str, mcp: bool = True):
        raw, status = open_tunnel(proxy_port, f"{host}:443", user)
        assert status == 200, status
        self.sock = context.wrap_socket(raw, server_hostname=host)
        key = base64.b64encode(os.urandom(16)).decode()
        protocol = "Sec-WebSocket-Protocol: mcp\r\n" if mcp else ""
        self.sock.sendall(
            f"GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n{protocol}\r\n".encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            chunk = self.sock.recv(4096)
            assert chunk, head
            head += chunk
        assert head.startswith(b"HTTP/1.1 101"), head
        self.buffer = head.partition(b"\r\n\r\n")[2]

    def frame(self, opcode: int, payload: bytes, fin: bool = True) -> None:
        mask = os.urandom(4)
        first = (0x80 if fin else 0) | opcode
        n = len(payload)
        if n < 126:
            header = struct.pack("!BB", first, 0x80 | n)
        elif n < 65536:
            header = struct.pack("!BBH", first, 0x80 | 126, n)
        else:
            header = struct.pack("!BBQ", first, 0x80 | 127, n)
        masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
        self.sock.sendall(header + mask + masked)

    def send(self, data: str | bytes) -> None:
        if isinstance(data, str):
            self.frame(TEXT, data.encode())
        else:
            self.frame(BINARY, data)

    def _read(self, n: int) -> bytes:
        while len(self.buffer) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out

    def receive(self, timeout: float = 10.0) -> Any:
        """The next message from the server, parsed as JSON."""
        self.sock.settimeout(timeout)
        data = b""
        while True:
            first, second = self._read(2)
            n = second & 0x7F
            if n == 126:
                n = struct.unpack("!H", self._read(2))[0]
            elif n == 127:
                n = struct.unpack("!Q", self._read(8))[0]
            payload = self._read(n)
            opcode = first & 0x0F
            if opcode == CLOSE:
                raise ConnectionError("close frame")
            if opcode in (TEXT, BINARY, CONTINUATION):
                data += payload
                if first & 0x80:
                    return json.loads(data)

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.frame(CLOSE, struct.pack("!H", 1000))
            self.sock.close()
