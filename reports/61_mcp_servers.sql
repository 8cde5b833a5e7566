-- name: mcp_servers
-- title: MCP servers
-- path: mcp.servers
-- audience: manager
-- Per MCP server: who calls it, how often, in how many sessions, and what the policy refused.
SELECT host, string_agg(DISTINCT server_name, ', ' ORDER BY server_name) AS server_name, count(*) AS calls,
       count(*) FILTER (WHERE method = 'tools/call') AS tool_calls, count(DISTINCT user_name) AS users,
       count(DISTINCT session_id) AS sessions, count(*) FILTER (WHERE decision = 'block') AS blocked,
       count(*) FILTER (WHERE is_error) AS errors,
       string_agg(DISTINCT transport, ', ' ORDER BY transport) AS transports
FROM mcp GROUP BY host ORDER BY calls DESC, host;
