-- name: user_daily
-- title: Day by day
-- path: user.daily
-- One person's requests, tokens, cost and enforced decisions per day.
SELECT day, sum(requests) AS requests, sum(tokens) AS tokens, sum(cost_usd) AS cost_usd,
       coalesce(sum(requests) FILTER (WHERE decision NOT IN ('allow', 'would_allow')), 0) AS not_allowed
FROM cur WHERE user_name = getvariable('console_user')
GROUP BY day ORDER BY day;
