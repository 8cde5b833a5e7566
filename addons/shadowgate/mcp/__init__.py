"""MCP: the parts of the MCP addon (addons/shadowgate/stages/mcp.py) that are not its hooks.

- `jsonrpc`: recognising JSON-RPC 2.0 messages, ids as keys, error answers, compact encoding.
- `screening`: prompt-injection patterns in tool results.
- `session`: a call, its POST and its HTTP+SSE session, and the mcp_calls / mcp_tools rows.
- `dlp`: DLP on tool arguments and results, and what opt-in content storage keeps.
- `hosted`: provider-hosted MCP servers named in AI requests (Responses `mcp` tools, Messages
  `mcp_servers`), checked against the same policy before the request leaves.
- `taps`: the response.stream callables that parse a copy of the answers and rewrite one.
- `approval`, `holding`: calls held for an approver (signed links, the shared decisions folder).
- `websocket`: JSON-RPC in WebSocket messages, decided and recorded as on HTTP.
"""
