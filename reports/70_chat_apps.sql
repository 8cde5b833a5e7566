-- name: chat_apps
-- title: Chat apps: prompts, uploads and accounts
-- path: chat_apps.by_app
-- audience: manager
-- Per chat web app: prompts, uploads, active users, accounts (corporate, personal, ...), DLP hits, refused and coached requests. Since the web_apps catalog, a chat app's request counts as an AI request only when it is a prompt (telemetry and anti-bot calls no longer count), so chat-web request numbers from before are not comparable.
-- Reads web_activity_daily, rollup-shaped rows (the detail's days one row per request, the days
-- retention dropped from their stored daily totals), so every count sums `requests`.
CREATE OR REPLACE TEMP TABLE web AS
SELECT day, user_name, app, endpoint, activity, account_kind, decision, dlp_findings, dlp_action, parse_status,
       requests, file_bytes
FROM web_activity_daily WHERE day >= getvariable('period_start') AND day < getvariable('period_end');
SELECT app, coalesce(sum(requests) FILTER (WHERE activity = 'prompt'), 0) AS prompts,
       coalesce(sum(requests) FILTER (WHERE activity = 'upload'), 0) AS uploads,
       count(DISTINCT user_name) FILTER (WHERE activity <> 'visit') AS active_users,
       coalesce(sum(requests) FILTER (WHERE activity = 'prompt' AND account_kind = 'corporate'), 0) AS corporate_prompts,
       coalesce(sum(requests) FILTER (WHERE activity = 'prompt' AND account_kind IN ('personal', 'other-workspace')), 0) AS non_corporate_prompts,
       coalesce(sum(requests) FILTER (WHERE activity = 'prompt' AND account_kind = 'anonymous'), 0) AS signed_out_prompts,
       coalesce(sum(requests) FILTER (WHERE coalesce(dlp_findings, '') <> ''), 0) AS dlp_hits,
       coalesce(sum(requests) FILTER (WHERE decision IN ('block', 'rate_limit') OR dlp_action = 'block'), 0) AS refused,
       coalesce(sum(requests) FILTER (WHERE decision IN ('coach', 'coach_allowed')), 0) AS coached,
       coalesce(sum(requests) FILTER (WHERE activity = 'visit'), 0) AS refused_visits
FROM web GROUP BY app ORDER BY prompts DESC, app;
