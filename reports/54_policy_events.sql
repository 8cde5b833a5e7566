-- name: policy_events
-- title: Policy events
-- path: policy_events
-- Policy events that are not AI calls (people continuing past a coaching page), by event and app.
SELECT event, coalesce(provider, '-') AS provider, count(*) AS events, count(DISTINCT user_name) AS users
FROM policy_events WHERE day >= getvariable('period_start') AND day < getvariable('period_end')
GROUP BY ALL ORDER BY events DESC, event, provider;
