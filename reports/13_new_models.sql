-- name: new_models
-- title: Models seen for the first time
-- path: new.models
-- Models seen for the first time in this period, with the app they first appeared on.
SELECT f.model, f.first_app AS app, f.first_seen, count(DISTINCT c.user_name) AS users, sum(c.requests) AS requests
FROM firsts f JOIN cur c ON c.model = f.model
WHERE f.by_model AND f.model IS NOT NULL AND f.first_seen >= getvariable('period_start')
GROUP BY ALL ORDER BY f.first_seen, requests DESC, f.model;
