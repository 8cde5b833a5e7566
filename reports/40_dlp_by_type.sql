-- name: dlp_by_type
-- title: DLP findings by type
-- path: dlp.by_type
-- audience: manager
-- Per finding type: the requests with it and the number of findings (counts only, never values).
WITH f AS (SELECT user_name, requests, unnest(string_split(dlp_findings, ',')) AS item FROM cur
           WHERE dlp_findings <> '')
SELECT split_part(item, ':', 1) AS type, sum(requests) AS requests,
       sum(requests * coalesce(TRY_CAST(split_part(item, ':', 2) AS BIGINT), 1)) AS findings,
       count(DISTINCT user_name) AS users
FROM f GROUP BY type ORDER BY findings DESC, type;
