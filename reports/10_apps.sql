-- name: apps
-- title: AI apps
-- path: apps
-- audience: manager
-- Who uses each AI app, how much, what the policy did, when it was first seen, and the catalog's notes.
-- status is the app's (what the policy says about it); its redirected calls are sanctioned use (00_period.sql).
-- risk is the catalog's documented level (docs/catalog.md) with the training setting of the service's
-- worst plan tier ("high, trains: default"); empty for an endpoint the catalog does not list.
-- lifecycle is what became of the service when the catalog knows ("retired, 2025-05-30", "acquired by
-- Cognition, 2025-07-14"): its traffic still counts, the reader sees whom it now goes to. Empty otherwise.
-- Blocked, coached and redirected include what observe mode would have done; `observed` says how many.
CREATE OR REPLACE TEMP TABLE apps AS
SELECT c.app, any_value(coalesce((getvariable('provider_names')::MAP(VARCHAR, VARCHAR))[c.provider], c.app))
         AS name,
       any_value(c.category) AS category, any_value(c.app_status) AS status,
       any_value((getvariable('provider_risk')::MAP(VARCHAR, VARCHAR))[c.provider] || ', trains: '
                 || (getvariable('provider_training')::MAP(VARCHAR, VARCHAR))[c.provider]) AS risk,
       any_value((getvariable('provider_lifecycle')::MAP(VARCHAR, VARCHAR))[c.provider]) AS lifecycle,
       count(DISTINCT c.user_name) AS users,
       sum(c.requests) AS requests, sum(c.tokens) AS tokens, sum(c.cost_usd) AS cost_usd,
       coalesce(sum(c.requests) FILTER (WHERE c.decision IN ('block', 'would_block')), 0) AS blocked,
       coalesce(sum(c.requests) FILTER (WHERE c.decision IN ('coach', 'would_coach')), 0) AS coached,
       coalesce(sum(c.requests) FILTER (WHERE c.decision IN ('redirect', 'would_redirect')), 0) AS redirected,
       coalesce(sum(c.requests) FILTER (WHERE starts_with(c.decision, 'would_')), 0) AS observed,
       any_value(f.first_seen) AS first_seen,
       any_value((getvariable('provider_notes')::MAP(VARCHAR, VARCHAR))[c.provider]) AS notes
FROM cur c LEFT JOIN firsts f ON NOT f.by_model AND f.app = c.app
GROUP BY c.app ORDER BY requests DESC, c.app;

SELECT * FROM apps;
