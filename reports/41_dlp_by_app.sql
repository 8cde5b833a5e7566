-- name: dlp_by_app
-- title: DLP by app
-- path: dlp.by_app
-- Per app: the requests with findings, the findings, and what DLP did (redact, block, log, error).
WITH f AS (SELECT app, user_name, requests, dlp_action, dlp_findings,
                  requests * list_sum([coalesce(TRY_CAST(split_part(x, ':', 2) AS BIGINT), 1)
                                       FOR x IN string_split(dlp_findings, ',')]) AS n
           FROM cur WHERE dlp_findings <> '' OR dlp_action IS NOT NULL)
SELECT app, coalesce(sum(requests) FILTER (WHERE dlp_findings <> ''), 0) AS requests,
       coalesce(sum(n), 0) AS findings, count(DISTINCT user_name) AS users,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'redact'), 0) AS redacted,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'block'), 0) AS blocked,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'log'), 0) AS logged,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'error'), 0) AS errors
FROM f GROUP BY app ORDER BY findings DESC, app;
