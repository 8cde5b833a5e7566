-- name: unapproved
-- Use that is not sanctioned (unapproved or unknown, as 00_period.sql defines them), per person, group and app (temp table `unapproved`), for the two tables after it.
CREATE OR REPLACE TEMP TABLE unapproved AS
SELECT user_name, user_group, app, sum(requests) AS n, sum(tokens) AS t, sum(cost_usd) AS c,
       coalesce(sum(requests) FILTER (WHERE status = 'unapproved'), 0) AS n_unapproved,
       coalesce(sum(requests) FILTER (WHERE status = 'unknown'), 0) AS n_unknown
FROM cur WHERE status <> 'sanctioned' GROUP BY ALL;
