-- name: chat_apps_parse
-- title: Chat apps: format drift (parse status by endpoint)
-- path: chat_apps.parse_status
-- Per chat-app endpoint: how many requests were read as the catalog says (ok), lacked the prompt's field (no-text) or were not the endpoint's format (unparsed); a rise of the last two means the app changed its format (check it with `shadowgate webapps check`).
SELECT app, endpoint, count(*) AS requests,
       count(*) FILTER (WHERE parse_status = 'ok') AS ok,
       count(*) FILTER (WHERE parse_status = 'no-text') AS no_text,
       count(*) FILTER (WHERE parse_status = 'unparsed') AS unparsed,
       count(*) FILTER (WHERE parse_status = 'error') AS errors,
       round(count(*) FILTER (WHERE parse_status <> 'ok') / count(*), 3) AS drift_share
FROM web WHERE activity <> 'visit'
GROUP BY app, endpoint ORDER BY drift_share DESC, requests DESC, endpoint;
