-- name: cost_daily_by_app
-- title: Daily requests by app
-- path: cost.daily_by_app
-- audience: manager
-- Requests per day and app for the stacked chart: the six biggest apps, the rest as 'other'.
WITH top AS (SELECT app FROM cur GROUP BY app ORDER BY sum(requests) DESC, app LIMIT 6)
SELECT day, CASE WHEN app IN (SELECT app FROM top) THEN app ELSE 'other' END AS app, sum(requests) AS requests
FROM cur GROUP BY ALL ORDER BY day, requests DESC, app;
