-- name: alerts_by_event
-- title: Alerts by type
-- path: alerts.by_event
-- Per alert type and rule: how many were sent, how many a destination did not accept, and how many deduplication held back.
SELECT severity, event, rule_id, count(*) AS alerts, count(*) FILTER (WHERE NOT coalesce(delivered, false)) AS not_delivered,
       sum(suppressed) AS suppressed, count(DISTINCT alert_key) AS keys, strftime(min(ts), '%Y-%m-%d %H:%M') AS first, strftime(max(ts), '%Y-%m-%d %H:%M') AS last
FROM alert_rows GROUP BY severity, event, rule_id
ORDER BY CASE severity WHEN 'high' THEN 0 WHEN 'medium' THEN 1 ELSE 2 END, alerts DESC, event, rule_id;
