-- name: user_decisions
-- title: Decisions
-- path: user.decisions
-- What the policy decided for one person's requests, by decision, rule and app.
SELECT decision, coalesce(rule_id, '-') AS rule_id, app, sum(requests) AS requests, min(day) AS first_day, max(day) AS last_day
FROM cur WHERE user_name = getvariable('console_user')
GROUP BY ALL ORDER BY requests DESC, decision, rule_id, app;
