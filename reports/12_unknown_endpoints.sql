-- name: unknown_endpoints
-- title: Unknown AI endpoints
-- path: new.unknown_endpoints
-- AI endpoints the catalog does not list (provider 'unknown'): self-hosted or unlisted API-compatible hosts.
SELECT c.site, c.host, string_agg(DISTINCT c.wire_format, ',' ORDER BY c.wire_format) AS wire_formats,
       count(DISTINCT c.user_name) AS users, sum(c.requests) AS requests, any_value(f.first_seen) AS first_seen,
       any_value(f.first_seen) >= getvariable('period_start') AS new
FROM cur c LEFT JOIN firsts f ON NOT f.by_model AND f.app = c.app
WHERE c.provider = 'unknown'
GROUP BY c.site, c.host ORDER BY requests DESC, c.host;
