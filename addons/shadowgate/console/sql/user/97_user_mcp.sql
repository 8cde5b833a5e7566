-- name: user_mcp
-- title: MCP servers and tools
-- path: user.mcp
-- The MCP servers and tools one person called in the period, with what the policy refused.
SELECT host, string_agg(DISTINCT server_name, ', ' ORDER BY server_name) AS server_name, coalesce(tool_name, '-') AS tool,
       count(*) AS calls, count(*) FILTER (WHERE decision IN ('block', 'would_block')) AS blocked,
       count(*) FILTER (WHERE is_error) AS errors, count(*) FILTER (WHERE coalesce(injection_flags, '') <> '') AS injection_flags,
       count(*) FILTER (WHERE coalesce(dlp_findings, '') <> '') AS dlp_hits, min(day) AS first_day, max(day) AS last_day
FROM mcp_calls
WHERE day >= getvariable('period_start') AND day < getvariable('period_end')
  AND coalesce(user_name, client_ip, '?') = getvariable('console_user')
GROUP BY host, tool_name ORDER BY calls DESC, host, tool;
