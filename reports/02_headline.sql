-- name: headline
-- title: Headline
-- path: headline
-- Active users, requests, tokens, cost, distinct apps and the share of requests to apps not sanctioned: one row for this period, one for the previous.
WITH periods(period) AS (VALUES ('current'), ('previous')),  -- a row for each, even with no traffic
rows AS (
    SELECT 'current' AS period, user_name, requests, tokens, cost_usd, app, status FROM cur
    UNION ALL
    SELECT 'previous', user_name, requests, tokens, cost_usd, app, status FROM ai_rows
    WHERE day >= getvariable('previous_start') AND day < getvariable('period_start'))
SELECT p.period, count(DISTINCT r.user_name) AS active_users, coalesce(sum(r.requests), 0) AS requests,
       coalesce(sum(r.tokens), 0) AS tokens, coalesce(sum(r.cost_usd), 0) AS cost_usd, count(DISTINCT r.app) AS apps,
       coalesce(sum(r.requests) FILTER (WHERE r.status <> 'sanctioned') / nullif(sum(r.requests), 0), 0)
         AS unapproved_share
FROM periods p LEFT JOIN rows r USING (period)
GROUP BY p.period ORDER BY p.period;
