-- name: cost_by_provider
-- title: Cost and tokens by provider
-- path: cost.by_provider
-- audience: manager
-- Requests, tokens and estimated cost per provider (unpriced: requests with tokens but no price).
SELECT provider, sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(tokens) AS tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced
FROM cur GROUP BY provider ORDER BY cost_usd DESC NULLS LAST, tokens DESC, requests DESC, provider;
