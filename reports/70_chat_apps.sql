-- name: chat_apps
-- title: Chat apps: prompts, uploads and accounts
-- path: chat_apps.by_app
-- audience: manager
-- Per chat web app: prompts, uploads, active users, accounts (corporate, personal, ...), DLP hits, refused and coached requests. Since the web_apps catalog, a chat app's request counts as an AI request only when it is a prompt (telemetry and anti-bot calls no longer count), so chat-web request numbers from before are not comparable.
CREATE OR REPLACE TEMP TABLE web AS
SELECT day, coalesce(user_name, client_ip, '?') AS user_name, app, endpoint, activity, account_kind, decision,
       dlp_findings, dlp_action, parse_status, file_bytes
FROM web_activity WHERE day >= getvariable('period_start') AND day < getvariable('period_end');
SELECT app, count(*) FILTER (WHERE activity = 'prompt') AS prompts,
       count(*) FILTER (WHERE activity = 'upload') AS uploads,
       count(DISTINCT user_name) FILTER (WHERE activity <> 'visit') AS active_users,
       count(*) FILTER (WHERE activity = 'prompt' AND account_kind = 'corporate') AS corporate_prompts,
       count(*) FILTER (WHERE activity = 'prompt' AND account_kind IN ('personal', 'other-workspace')) AS non_corporate_prompts,
       count(*) FILTER (WHERE activity = 'prompt' AND account_kind = 'anonymous') AS signed_out_prompts,
       count(*) FILTER (WHERE coalesce(dlp_findings, '') <> '') AS dlp_hits,
       count(*) FILTER (WHERE decision IN ('block', 'rate_limit') OR dlp_action = 'block') AS refused,
       count(*) FILTER (WHERE decision IN ('coach', 'coach_allowed')) AS coached,
       count(*) FILTER (WHERE activity = 'visit') AS refused_visits
FROM web GROUP BY app ORDER BY prompts DESC, app;
