-- name: alerts_daily
-- title: Alerts per day
-- path: alerts.daily
-- Alerts per day and severity, for the chart.
SELECT day, count(*) FILTER (WHERE severity = 'high') AS high, count(*) FILTER (WHERE severity = 'medium') AS medium,
       count(*) FILTER (WHERE severity = 'low') AS low, count(*) AS alerts
FROM alert_rows GROUP BY day ORDER BY day;
