-- name: alerts_period
-- The period's alerts (the `alerts` table the proxy records) as the temp table `alert_rows`, each with its severity (79_alert_severity.sql), filtered by the page's alert type and severity.
--
-- Set before running it (the console does the same; an empty string means every one):
--   SET VARIABLE alert_event = 'dlp_block';
--   SET VARIABLE alert_severity = 'high';
CREATE OR REPLACE TEMP TABLE alert_rows AS
SELECT ts, day, alert_severity(event, alert_key) AS severity, event, rule_id, alert_key, summary, user_name,
       host, provider, destinations, delivered, delivery_error, coalesce(suppressed, 0) AS suppressed
FROM alerts
WHERE day >= getvariable('period_start') AND day < getvariable('period_end')
  AND coalesce(getvariable('alert_event'), '') IN ('', event)
  AND coalesce(getvariable('alert_severity'), '') IN ('', alert_severity(event, alert_key));
