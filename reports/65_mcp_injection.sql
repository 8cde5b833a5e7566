-- name: mcp_injection
-- title: MCP: prompt-injection flags in tool results
-- path: mcp.injection
-- Tool results that looked like prompt injections, by pattern.
WITH f AS (SELECT host, user_name, decision, unnest(string_split(injection_flags, ',')) AS flag
           FROM mcp WHERE injection_flags <> '')
SELECT flag, count(*) AS calls, count(DISTINCT host) AS servers, count(DISTINCT user_name) AS users,
       count(*) FILTER (WHERE decision = 'block') AS blocked
FROM f GROUP BY flag ORDER BY calls DESC, flag;
