-- name: budget_rate_limited
-- title: Rate-limited and budget-refused requests
-- path: budget.rate_limited
-- Requests refused by a rate-limit or spending budget, per person.
SELECT user_name AS user, min(user_group) AS "group", string_agg(DISTINCT rule_id, ',' ORDER BY rule_id) AS budgets,
       sum(requests) AS requests, max(day) AS last_day
FROM cur WHERE decision = 'rate_limit' GROUP BY user_name ORDER BY requests DESC, user;
