-- name: blind_spots
-- title: Blind spots: AI traffic not inspected
-- path: blind_spots
-- audience: manager
-- AI connections the proxy did not decrypt (pinned apps, passthrough), by host and reason. A
-- connection the policy refused (decision block, at CONNECT or TLS) sent nothing: no blind spot.
-- rule: the passthrough rule that made it, '-' for the passthrough: list or a pinned app.
SELECT host, provider, coalesce(inspect_note, '-') AS inspect_note,
       CASE WHEN decision = 'passthrough' THEN rule_id ELSE '-' END AS rule, sum(requests) AS requests,
       count(DISTINCT user_name) AS users, min(day) AS first_day, max(day) AS last_day
FROM cur WHERE NOT inspected AND decision IS DISTINCT FROM 'block' GROUP BY ALL ORDER BY requests DESC, host;
