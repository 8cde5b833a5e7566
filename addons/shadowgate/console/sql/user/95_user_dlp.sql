-- name: user_dlp
-- title: DLP findings
-- path: user.dlp
-- One person's DLP findings by type and action (counts only, never values).
WITH f AS (SELECT requests, dlp_action, unnest(string_split(dlp_findings, ',')) AS item FROM cur
           WHERE user_name = getvariable('console_user') AND dlp_findings <> '')
SELECT split_part(item, ':', 1) AS type, coalesce(dlp_action, '-') AS action, sum(requests) AS requests,
       sum(requests * coalesce(TRY_CAST(split_part(item, ':', 2) AS BIGINT), 1)) AS findings
FROM f GROUP BY ALL ORDER BY findings DESC, type, action;
