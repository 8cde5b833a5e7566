-- name: first_seen
-- The first day each app and each model was ever seen, over all history up to the period's end (temp table `firsts`).
-- One grouping pass over plain columns (`seen`), then the apps and the models from that small table.
-- 1970-01-01 is the proxy's schema day: it holds empty files only, never traffic.

CREATE OR REPLACE TEMP TABLE seen AS
SELECT provider, site, host, model, min(day) AS first_seen
FROM ai_requests_daily WHERE day > DATE '1970-01-01' AND day < getvariable('period_end') GROUP BY ALL;

CREATE OR REPLACE TEMP TABLE firsts AS
SELECT app_name(provider, site, host) AS app, NULL AS model, min(first_seen) AS first_seen, NULL AS first_app,
       false AS by_model
FROM seen GROUP BY 1
UNION ALL
SELECT NULL, model, min(first_seen), arg_min(app_name(provider, site, host), first_seen), true FROM seen GROUP BY model;
