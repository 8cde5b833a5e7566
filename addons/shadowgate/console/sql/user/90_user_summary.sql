-- name: user_summary
-- title: Totals
-- path: user.summary
-- One person's totals in the period, from the report's own period rows (`cur`, reports/00_period.sql); the user is the variable console_user.
SELECT getvariable('console_user') AS "user", min(user_group) AS "group", coalesce(sum(requests), 0) AS requests,
       coalesce(sum(tokens), 0) AS tokens, sum(cost_usd) AS cost_usd, count(DISTINCT app) AS apps,
       coalesce(sum(requests) FILTER (WHERE status <> 'sanctioned'), 0) AS unapproved_requests
FROM cur WHERE user_name = getvariable('console_user');
