-- name: alerts_recent
-- title: Latest {top} alerts
-- path: alerts.recent
-- The latest alerts, newest first, with what was sent and whether every destination accepted it.
SELECT strftime(ts, '%Y-%m-%d %H:%M:%S') AS ts, severity, event, rule_id, user_name AS "user", provider AS app, host, summary, destinations, delivered,
       delivery_error, suppressed
FROM alert_rows ORDER BY ts DESC, rule_id, alert_key LIMIT getvariable('top');
