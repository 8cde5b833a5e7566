-- name: definitions
-- title: What sanctioned, unapproved and unknown mean
-- path: definitions
-- audience: manager
-- The definitions the shares and the status columns use (from 00_period.sql), and whether a policy was given.
SELECT status, meaning,
       CASE WHEN policy_given() THEN 'from the policy' ELSE 'no policy given: every app is unknown' END AS basis
FROM use_status_definitions;
