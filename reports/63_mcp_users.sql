-- name: mcp_users
-- title: MCP: top {top} users
-- path: mcp.users
-- The people using MCP servers.
SELECT user_name AS "user", min(user_group) AS "group", count(*) AS calls,
       count(*) FILTER (WHERE method = 'tools/call') AS tool_calls, count(DISTINCT host) AS servers,
       count(DISTINCT tool_name) AS tools, count(*) FILTER (WHERE decision = 'block') AS blocked
FROM mcp GROUP BY user_name ORDER BY calls DESC, "user" LIMIT getvariable('top');
