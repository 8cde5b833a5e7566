-- name: cost_by_model
-- title: Top {top} models by cost
-- path: cost.by_model
-- The models with the highest estimated cost.
SELECT provider, model, sum(requests) AS requests, sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens,
       sum(tokens) AS tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced
FROM cur GROUP BY provider, model ORDER BY cost_usd DESC NULLS LAST, tokens DESC, requests DESC, provider, model LIMIT getvariable('top');
