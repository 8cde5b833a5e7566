-- name: alerts_count
-- title: Alerts
-- path: alerts.count
-- The period's alerts in all (whatever the filters), high ones and ones not delivered: the overview's link to the alerts page.
SELECT count(*) AS alerts, count(*) FILTER (WHERE alert_severity(event, alert_key) = 'high') AS high,
       count(*) FILTER (WHERE NOT coalesce(delivered, false)) AS not_delivered
FROM alerts WHERE day >= getvariable('period_start') AND day < getvariable('period_end');
