-- name: user_models
-- title: Models and cost
-- path: user.models
-- One person's requests, tokens and estimated cost per model.
SELECT provider, coalesce(model, '-') AS model, sum(requests) AS requests, sum(input_tokens) AS input_tokens,
       sum(output_tokens) AS output_tokens, sum(tokens) AS tokens, sum(cost_usd) AS cost_usd, sum(unpriced) AS unpriced
FROM cur WHERE user_name = getvariable('console_user')
GROUP BY ALL ORDER BY tokens DESC, requests DESC, provider, model;
