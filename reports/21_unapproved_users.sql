-- name: unapproved_users
-- title: Unapproved usage: top {top} users
-- path: unapproved.users
-- The people with the most requests to apps not sanctioned, with their three main such apps.
WITH top AS (SELECT user_name AS k, user_name AS "user", min(user_group) AS "group", count(DISTINCT app) AS apps,
                    sum(n) AS requests, sum(t) AS tokens, sum(c) AS cost_usd
             FROM unapproved GROUP BY user_name ORDER BY requests DESC, k LIMIT getvariable('top')),
     main AS (SELECT k, list(app ORDER BY n DESC, app)[1:3] AS main_apps
              FROM (SELECT user_name AS k, app, sum(n) AS n FROM unapproved
                    WHERE user_name IN (SELECT k FROM top) GROUP BY ALL) GROUP BY k)
SELECT top.* EXCLUDE (k), main.main_apps FROM top JOIN main USING (k) ORDER BY requests DESC, k;
