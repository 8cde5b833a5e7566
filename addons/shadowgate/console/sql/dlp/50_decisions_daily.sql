-- name: decisions_daily
-- title: Decisions and DLP day by day
-- path: decisions.daily
-- Per day: requests, what the policy did to them (observe mode's would-be actions included) and the requests with DLP findings by DLP action; one person's when console_user is set.
-- Reads `cur` (reports/00_period.sql): the same rows and definitions as the weekly report.
SELECT day, sum(requests) AS requests,
       coalesce(sum(requests) FILTER (WHERE decision IN ('block', 'would_block')), 0) AS blocked,
       coalesce(sum(requests) FILTER (WHERE decision IN ('coach', 'would_coach')), 0) AS coached,
       coalesce(sum(requests) FILTER (WHERE decision IN ('redirect', 'would_redirect')), 0) AS redirected,
       coalesce(sum(requests) FILTER (WHERE decision IN ('rate_limit', 'would_rate_limit')), 0) AS rate_limited,
       coalesce(sum(requests) FILTER (WHERE dlp_findings <> ''), 0) AS dlp_hits,
       coalesce(sum(requests) FILTER (WHERE dlp_findings <> '' AND dlp_action IN ('block', 'would_block')), 0) AS dlp_blocked,
       coalesce(sum(requests) FILTER (WHERE dlp_findings <> '' AND dlp_action IN ('redact', 'would_redact')), 0) AS dlp_redacted,
       coalesce(sum(requests) FILTER (WHERE dlp_findings <> '' AND dlp_action NOT IN ('block', 'would_block', 'redact', 'would_redact')), 0) AS dlp_logged
FROM cur WHERE getvariable('console_user') IS NULL OR user_name = getvariable('console_user')
GROUP BY day ORDER BY day;
