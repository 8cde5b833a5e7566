-- name: user_chat
-- title: Chat apps
-- path: user.chat
-- One person's chat web app use (web_activity_daily: the detail, or the daily totals where retention dropped it): prompts, uploads and refusals by app, activity and account.
SELECT app, activity, account_kind AS account, sum(requests) AS requests,
       coalesce(sum(requests) FILTER (WHERE coalesce(dlp_findings, '') <> ''), 0) AS dlp_hits,
       coalesce(sum(requests) FILTER (WHERE decision IN ('block', 'rate_limit') OR dlp_action = 'block'), 0) AS refused,
       coalesce(sum(requests) FILTER (WHERE decision IN ('coach', 'coach_allowed')), 0) AS coached,
       sum(file_bytes) AS file_bytes, min(day) AS first_day, max(day) AS last_day
FROM web_activity_daily
WHERE day >= getvariable('period_start') AND day < getvariable('period_end') AND user_name = getvariable('console_user')
GROUP BY ALL ORDER BY requests DESC, app, activity, account;
