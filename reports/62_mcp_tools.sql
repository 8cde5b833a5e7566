-- name: mcp_tools
-- title: MCP: top {top} tools
-- path: mcp.tools
-- The most called tools (tools/call), per server.
SELECT host, tool_name AS tool, count(*) AS calls, count(DISTINCT user_name) AS users,
       count(*) FILTER (WHERE decision = 'block') AS blocked, count(*) FILTER (WHERE is_error) AS errors,
       round(median(latency_ms), 1) AS median_ms
FROM mcp WHERE method = 'tools/call' GROUP BY host, tool_name ORDER BY calls DESC, host, tool
LIMIT getvariable('top');
