-- name: host_candidates
-- title: Possible AI services not in the catalog: top {top}
-- path: new.host_candidates
-- Hosts the catalog does not list whose names look like AI (an .ai domain, an AI hosting suffix, an AI word
-- in a label), from TLS connections the proxy saw (host_sightings; shadowgate_host_discovery). Names only:
-- most of these connections were not decrypted, so nothing says they carried AI calls. Triage them with
-- `shadowgate catalog candidates`; a host catalogued since still shows here until the period moves on.
SELECT site, string_agg(DISTINCT host, ' ' ORDER BY host) AS hosts, any_value(reason) AS reason,
       count(DISTINCT user_name) AS users, count(*) AS connections,
       bool_or(decrypted) AS decrypted, min(ts)::DATE AS first_seen, max(ts)::DATE AS last_seen
FROM host_sightings
WHERE ts >= getvariable('period_start') AND ts < getvariable('period_end')
GROUP BY site ORDER BY users DESC, connections DESC, site
LIMIT getvariable('top');
