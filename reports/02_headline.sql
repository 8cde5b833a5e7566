-- name: headline
-- title: Headline
-- path: headline
-- Active users, requests, tokens, cost, distinct apps and the shares of sanctioned, unapproved and unknown use: one row for this period, one for the previous.
-- Cost is NULL (unknown, shown as –) when there were requests but none had a price. The shares
-- follow 00_period.sql's definitions; without a policy only the unknown share is known (1.0). A
-- period without requests has no shares (NULL, shown as –): a share of nothing is not 0 %.
WITH periods(period) AS (VALUES ('current'), ('previous')),  -- a row for each, even with no traffic
rows AS (
    SELECT 'current' AS period, user_name, requests, tokens, cost_usd, app, status FROM cur
    UNION ALL
    SELECT 'previous', user_name, requests, tokens, cost_usd, app, status FROM ai_rows
    WHERE day >= getvariable('previous_start') AND day < getvariable('period_start'))
SELECT p.period, count(DISTINCT r.user_name) AS active_users, coalesce(sum(r.requests), 0) AS requests,
       coalesce(sum(r.tokens), 0) AS tokens,
       CASE WHEN coalesce(sum(r.requests), 0) = 0 THEN 0 ELSE sum(r.cost_usd) END AS cost_usd,
       count(DISTINCT r.app) AS apps,
       CASE WHEN policy_given() THEN coalesce(sum(r.requests) FILTER (WHERE r.status = 'sanctioned'), 0) / nullif(sum(r.requests), 0) END
         AS sanctioned_share,
       CASE WHEN policy_given() THEN coalesce(sum(r.requests) FILTER (WHERE r.status = 'unapproved'), 0) / nullif(sum(r.requests), 0) END
         AS unapproved_share,
       coalesce(sum(r.requests) FILTER (WHERE r.status = 'unknown'), 0) / nullif(sum(r.requests), 0) AS unknown_share
FROM periods p LEFT JOIN rows r USING (period)
GROUP BY p.period ORDER BY p.period;
