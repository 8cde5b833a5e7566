-- name: user_alerts
-- title: Alerts about this person
-- path: user.alerts
-- The alerts raised about one person in the period (alerts.user_name), newest first, with their severity (console/sql/alerts/80_alerts.sql).
SELECT strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts, alert_severity(event, alert_key) AS severity, event, rule_id, summary, delivered
FROM alerts
WHERE day >= getvariable('period_start') AND day < getvariable('period_end') AND user_name = getvariable('console_user')
ORDER BY ts DESC LIMIT getvariable('top');
