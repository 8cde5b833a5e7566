-- name: budget_near_limit
-- title: Budgets near or over their limit
-- path: budget.near_limit
-- audience: manager
-- The highest level each person reached per budget (from the budget_status the proxy recorded).
WITH b AS (SELECT user_name, user_group, day, requests, unnest(string_split(budget_status, ',')) AS item
           FROM cur WHERE budget_status <> '')
SELECT user_name AS user, min(user_group) AS "group", split_part(item, ':', 1) AS budget,
       split_part(item, ':', 2) AS unit,
       max(TRY_CAST(rtrim(split_part(item, ':', 3), '%') AS INTEGER)) AS max_percent,
       sum(requests) AS requests, max(day) AS last_day
FROM b GROUP BY user_name, budget, unit ORDER BY max_percent DESC, user, budget;
