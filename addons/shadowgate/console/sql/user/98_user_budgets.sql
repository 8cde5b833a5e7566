-- name: user_budgets
-- title: Budgets
-- path: user.budgets
-- One person's budgets: the highest share of each reached (from the budget_status the proxy recorded) and the requests a budget refused.
WITH b AS (SELECT day, requests, unnest(string_split(budget_status, ',')) AS item
           FROM cur WHERE user_name = getvariable('console_user') AND budget_status <> ''),
near AS (SELECT split_part(item, ':', 1) AS budget, split_part(item, ':', 2) AS unit,
                max(TRY_CAST(rtrim(split_part(item, ':', 3), '%') AS INTEGER)) AS max_percent,
                0 AS refused, max(day) AS last_day
         FROM b GROUP BY ALL),
refused AS (SELECT coalesce(rule_id, '-') AS budget, '-' AS unit, NULL::INTEGER AS max_percent, sum(requests) AS refused,
                   max(day) AS last_day
            FROM cur WHERE user_name = getvariable('console_user') AND decision IN ('rate_limit', 'would_rate_limit')
            GROUP BY ALL)
SELECT budget, max(unit) AS unit, max(max_percent) AS max_percent, sum(refused) AS refused, max(last_day) AS last_day
FROM (SELECT * FROM near UNION ALL SELECT * FROM refused) GROUP BY budget
ORDER BY refused DESC, max_percent DESC NULLS LAST, budget;
