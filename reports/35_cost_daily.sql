-- name: cost_daily
-- title: Daily trend
-- path: cost.daily
-- audience: manager
-- Requests, active users, tokens and estimated cost per day.
SELECT day, sum(requests) AS requests, count(DISTINCT user_name) AS users, sum(tokens) AS tokens, sum(cost_usd) AS cost_usd
FROM cur GROUP BY day ORDER BY day;
