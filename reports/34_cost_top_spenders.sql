-- name: cost_top_spenders
-- title: Top {top} spenders
-- path: cost.top_spenders
-- audience: manager
-- The people with the highest estimated cost.
SELECT user_name AS "user", min(user_group) AS "group",
       sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(tokens) AS tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced
FROM cur GROUP BY user_name ORDER BY cost_usd DESC NULLS LAST, tokens DESC, requests DESC, user_name LIMIT getvariable('top');
