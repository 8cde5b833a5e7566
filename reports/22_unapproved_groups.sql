-- name: unapproved_groups
-- title: Not sanctioned (unapproved or unknown): top {top} groups
-- path: unapproved.groups
-- audience: manager
-- The groups with the most requests to apps not sanctioned (unapproved or unknown), with their three main such apps (redirected calls are sanctioned use).
WITH top AS (SELECT user_group AS k, user_group AS "group", count(DISTINCT user_name) AS users,
                    count(DISTINCT app) AS apps, sum(n) AS requests, sum(n_unapproved) AS unapproved, sum(n_unknown) AS unknown, sum(t) AS tokens, sum(c) AS cost_usd
             FROM unapproved GROUP BY user_group ORDER BY requests DESC, k LIMIT getvariable('top')),
     main AS (SELECT k, list(app ORDER BY n DESC, app)[1:3] AS main_apps
              FROM (SELECT user_group AS k, app, sum(n) AS n FROM unapproved
                    WHERE user_group IN (SELECT k FROM top) GROUP BY ALL) GROUP BY k)
SELECT top.* EXCLUDE (k), main.main_apps FROM top JOIN main USING (k) ORDER BY requests DESC, k;
