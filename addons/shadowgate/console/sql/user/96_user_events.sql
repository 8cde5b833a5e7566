-- name: user_events
-- title: Policy events
-- path: user.events
-- One person's policy events that are not AI calls (continuing past a coaching page), by event, app and rule.
SELECT event, coalesce(provider, '-') AS provider, coalesce(rule_id, '-') AS rule_id, count(*) AS events,
       min(ts) AS first, max(ts) AS last
FROM policy_events
WHERE day >= getvariable('period_start') AND day < getvariable('period_end') AND user_name = getvariable('console_user')
GROUP BY ALL ORDER BY events DESC, event, provider;
