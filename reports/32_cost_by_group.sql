-- name: cost_by_group
-- title: Cost and tokens by group
-- path: cost.by_group
-- audience: manager
-- Requests, tokens and estimated cost per group.
SELECT user_group AS "group", sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(tokens) AS tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced
FROM cur GROUP BY user_group ORDER BY cost_usd DESC NULLS LAST, tokens DESC, requests DESC, user_group;
