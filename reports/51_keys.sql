-- name: keys
-- title: Key inventory
-- path: keys
-- Per provider, each API key fingerprint with its users and a personal-or-corporate hint.
SELECT provider, key_fingerprint, min(key_kind) AS key_kind,
       count(DISTINCT user_name) AS users, list(DISTINCT user_name ORDER BY user_name)[1:5] AS user_names,
       string_agg(DISTINCT account_hint, ' ' ORDER BY account_hint) AS account_hints,
       CASE WHEN bool_or(account_hint LIKE '%org=%' OR account_hint LIKE '%project=%') THEN 'corporate (org/project id)'
            WHEN bool_or(key_kind IN ('openai-service-account', 'openai-admin', 'anthropic-admin')) THEN 'corporate (key type)'
            WHEN count(DISTINCT user_name) > 1 THEN 'shared key'
            ELSE 'personal?' END AS hint,
       sum(requests) AS requests, max(day) AS last_day
FROM cur WHERE key_fingerprint IS NOT NULL
GROUP BY provider, key_fingerprint ORDER BY provider, users DESC, requests DESC, key_fingerprint;
