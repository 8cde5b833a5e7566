-- name: chat_apps_parse
-- title: Chat apps: format drift (parse status by endpoint)
-- path: chat_apps.parse_status
-- Per chat-app endpoint: how many requests were read as the catalog says (ok), lacked the prompt's field (no-text) or were not the endpoint's format (unparsed); a rise of the last two means the app changed its format (check it with `shadowgate webapps check`).
SELECT app, endpoint, sum(requests) AS requests,
       coalesce(sum(requests) FILTER (WHERE parse_status = 'ok'), 0) AS ok,
       coalesce(sum(requests) FILTER (WHERE parse_status = 'no-text'), 0) AS no_text,
       coalesce(sum(requests) FILTER (WHERE parse_status = 'unparsed'), 0) AS unparsed,
       coalesce(sum(requests) FILTER (WHERE parse_status = 'error'), 0) AS errors,
       round(coalesce(sum(requests) FILTER (WHERE parse_status <> 'ok'), 0) / sum(requests), 3) AS drift_share
FROM web WHERE activity <> 'visit'
GROUP BY app, endpoint ORDER BY drift_share DESC, requests DESC, endpoint;
