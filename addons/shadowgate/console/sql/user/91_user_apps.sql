-- name: user_apps
-- title: Apps
-- path: user.apps
-- The apps one person used, with sanctioned status and what the policy did (observe mode's would-be actions included).
SELECT app, any_value(coalesce((getvariable('provider_names')::MAP(VARCHAR, VARCHAR))[provider], app)) AS name,
       any_value(status) AS status, sum(requests) AS requests, sum(tokens) AS tokens, sum(cost_usd) AS cost_usd,
       coalesce(sum(requests) FILTER (WHERE decision IN ('block', 'would_block')), 0) AS blocked,
       coalesce(sum(requests) FILTER (WHERE decision IN ('coach', 'would_coach')), 0) AS coached,
       coalesce(sum(requests) FILTER (WHERE decision IN ('redirect', 'would_redirect')), 0) AS redirected,
       min(day) AS first_day, max(day) AS last_day
FROM cur WHERE user_name = getvariable('console_user')
GROUP BY app ORDER BY requests DESC, app;
