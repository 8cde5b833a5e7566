-- name: mcp
-- The period's MCP tool-server calls (temp table `mcp`), with the person named as the AI sections name them
-- (the user, else the client IP), for the MCP tables after it.
CREATE OR REPLACE TEMP TABLE mcp AS
SELECT day, coalesce(user_name, client_ip, '?') AS user_name, coalesce(user_group, '-') AS user_group, host,
       server_name, session_id, method, tool_name, is_error, latency_ms, decision, rule_id, injection_flags,
       dlp_findings, dlp_action, transport
FROM mcp_calls WHERE day >= getvariable('period_start') AND day < getvariable('period_end');
