-- name: catalog_candidates
-- AI endpoints the catalog did not list when they were called (provider 'unknown'), one row per site, as the temp table `catalog_candidates`.
--
-- Set-up, not a section: the weekly report shows unknown endpoints per host in
-- 12_unknown_endpoints.sql; this per-site shape (every host, wire format and model seen) is the
-- material for one new catalog entry each, and `shadowgate catalog candidates` prints it after
-- running 00_period.sql and this file over its --days. Sum `requests`: a row of `cur` may stand
-- for many requests.
CREATE OR REPLACE TEMP TABLE catalog_candidates AS
SELECT coalesce(site, host) AS site,
       list(DISTINCT host ORDER BY host) AS hosts,
       sum(requests) AS requests,
       count(DISTINCT user_name) AS users,
       coalesce(list(DISTINCT wire_format ORDER BY wire_format) FILTER (WHERE wire_format IS NOT NULL), []) AS wire_formats,
       coalesce(list(DISTINCT model ORDER BY model) FILTER (WHERE model IS NOT NULL), []) AS models,
       min(day) AS first_seen,
       max(day) AS last_seen
FROM cur
WHERE provider = 'unknown'
GROUP BY coalesce(site, host)
ORDER BY requests DESC, users DESC, site;

SELECT * FROM catalog_candidates ORDER BY requests DESC, users DESC, site;
