-- name: cost_by_user
-- title: Top {top} users by tokens
-- path: cost.by_user
-- The people who used the most tokens.
SELECT user_name AS "user", min(user_group) AS "group",
       sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(tokens) AS tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced
FROM cur GROUP BY user_name ORDER BY tokens DESC, requests DESC, user_name LIMIT getvariable('top');
