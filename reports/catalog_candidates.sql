-- name: catalog_candidates
-- title: Catalog candidates
-- path: candidates
-- AI endpoints the catalog did not list when they were called (provider 'unknown'), one row per site, for `shadowgate catalog candidates`.
--
-- Not part of the weekly report (no number in the file name; 12_unknown_endpoints.sql is the
-- report's table): the catalog command runs 00_period.sql, then this file, over `--days N`.
-- One row per registrable site, with every host, wire format and model seen, so that a row is the
-- material for one new catalog entry. Sum `requests`: a row of `cur` may stand for many requests.
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
