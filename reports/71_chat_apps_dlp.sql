-- name: chat_apps_dlp
-- title: Chat apps: DLP hits by app and activity
-- path: chat_apps.dlp
-- Requests to chat web apps with DLP findings, per app and activity, and what DLP did (block, log, error; redact only where the catalog allows it).
SELECT app, activity, sum(requests) AS requests, count(DISTINCT user_name) AS users,
       string_agg(DISTINCT dlp_findings, '; ' ORDER BY dlp_findings) AS findings,
       coalesce(sum(requests) FILTER (WHERE dlp_action IN ('block', 'would_block')), 0) AS blocked,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'log'), 0) AS logged,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'redact'), 0) AS redacted,
       coalesce(sum(requests) FILTER (WHERE dlp_action = 'error'), 0) AS errors
FROM web WHERE coalesce(dlp_findings, '') <> '' OR dlp_action = 'error'
GROUP BY app, activity ORDER BY requests DESC, app, activity;
