-- name: mcp_dlp
-- title: MCP: DLP findings in tool arguments and results
-- path: mcp.dlp
-- DLP in tool arguments and results: the calls with each type and the number found (never values).
WITH f AS (SELECT user_name, dlp_action, unnest(string_split(dlp_findings, ',')) AS item FROM mcp
           WHERE dlp_findings <> '')
SELECT split_part(item, ':', 1) AS type, count(*) AS calls,
       sum(coalesce(TRY_CAST(split_part(item, ':', 2) AS BIGINT), 1)) AS findings, count(DISTINCT user_name) AS users,
       count(*) FILTER (WHERE dlp_action = 'redact') AS redacted, count(*) FILTER (WHERE dlp_action = 'block') AS blocked,
       count(*) FILTER (WHERE dlp_action = 'log') AS logged
FROM f GROUP BY type ORDER BY findings DESC, type;
