-- name: mcp_denials
-- title: MCP: refused and filtered calls by rule
-- path: mcp.denials
-- What the policy refused, filtered or would have (observe mode), by rule.
SELECT rule_id, decision, count(*) AS calls, count(DISTINCT user_name) AS users,
       coalesce(list(DISTINCT tool_name ORDER BY tool_name) FILTER (WHERE tool_name IS NOT NULL), []::VARCHAR[])[1:5]
         AS tools
FROM mcp WHERE decision <> 'allow' GROUP BY rule_id, decision ORDER BY calls DESC, rule_id, decision;
