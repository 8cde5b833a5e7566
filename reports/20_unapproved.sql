-- name: unapproved
-- Usage of apps the policy does not sanction, per person, group and app (temp table `unapproved`), for the two tables after it.
CREATE OR REPLACE TEMP TABLE unapproved AS
SELECT user_name, user_group, app, sum(requests) AS n, sum(tokens) AS t, sum(cost_usd) AS c
FROM cur WHERE status <> 'sanctioned' GROUP BY ALL;
