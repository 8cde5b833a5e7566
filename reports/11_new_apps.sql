-- name: new_apps
-- title: New apps
-- path: new.apps
-- audience: manager
-- Apps seen for the first time in this period.
SELECT app, name, category, status, users, requests, first_seen FROM apps
WHERE first_seen >= getvariable('period_start') ORDER BY first_seen, requests DESC, app;
