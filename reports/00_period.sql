-- name: period
-- The report period's rollup rows as the temp table `cur`, with each row's app, token total and use status.
--
-- Set before running it (the report does the same):
--   SET VARIABLE period_start = DATE '2026-11-16';  -- first day, inclusive
--   SET VARIABLE period_end = DATE '2026-11-23';    -- the day after the last, exclusive
-- Optional, from the policy and the catalog (unset: every app has status 'unknown' and no name):
--   SET VARIABLE provider_status = MAP {'openai': 'sanctioned', 'deepseek': 'unapproved'};
--   SET VARIABLE category_status = MAP {'chat-web': 'unapproved'};
--   SET VARIABLE rule_status = MAP {'no-gpt4o': 'unapproved'};       -- per rule id that names an app
--   SET VARIABLE provider_names = MAP {'openai': 'OpenAI API'};
--   SET VARIABLE provider_notes = MAP {'openai': 'API data not used for training'};
--   SET VARIABLE top = 10;                           -- rows in the top-N tables
--
-- Reads ai_requests_daily: rollup-shaped rows (the proxy's database file has this view), where
-- one row may stand for many requests, so every section sums `requests`.

-- The previous period, of the same length, for the headline's change.
SET VARIABLE previous_start = getvariable('period_start')
    - (getvariable('period_end') - getvariable('period_start'))::INTEGER;

-- An "app" is a catalog provider; an unlisted AI endpoint is an app of its own, named by its site.
CREATE OR REPLACE TEMP MACRO app_name(provider, site, host) AS
    CASE WHEN provider = 'unknown' THEN 'unknown:' || coalesce(site, host, '?') ELSE provider END;

-- The MAP variables as tables, joined like any other: a missing variable is an empty table.
CREATE OR REPLACE TEMP TABLE provider_status AS
SELECT unnest(map_keys(m)) AS provider, unnest(map_values(m)) AS status
FROM (SELECT getvariable('provider_status')::MAP(VARCHAR, VARCHAR) AS m);
CREATE OR REPLACE TEMP TABLE category_status AS
SELECT unnest(map_keys(m)) AS category, unnest(map_values(m)) AS status
FROM (SELECT getvariable('category_status')::MAP(VARCHAR, VARCHAR) AS m);
CREATE OR REPLACE TEMP TABLE rule_status AS
SELECT unnest(map_keys(m)) AS rule_id, unnest(map_values(m)) AS status
FROM (SELECT getvariable('rule_status')::MAP(VARCHAR, VARCHAR) AS m);

-- Whether the policy named any app: without it, nothing is known to be sanctioned or unapproved.
CREATE OR REPLACE TEMP MACRO policy_given() AS
    (SELECT count(*) FROM provider_status) + (SELECT count(*) FROM category_status)
    + (SELECT count(*) FROM rule_status) > 0;

-- Sanctioned, unapproved and unknown, defined here and nowhere else: every section, the headline
-- and the report's own glossary (03_definitions.sql reads `use_status_definitions`) take them from here.
--   app_status: what the policy says about the whole app: the first rule naming only apps decides (a
--               provider's such rule beats its category's); an app that only rules narrowed by a model,
--               user, group, client, host, ... block, coach or redirect is 'restricted' (runner.statuses).
--   status:     what one call was. A call the policy redirected went to the sanctioned gateway, so it is
--               sanctioned use even though its app is unapproved (observe mode's would_redirect did not);
--               without a policy nothing is known to be sanctioned, so it is unknown like every call.
--               A call that met a rule naming its app counts as that rule says (rule_status: a model's
--               block rule makes its calls unapproved, not the app's other calls); any other call
--               counts as its app (a restricted app's other calls are unknown).
CREATE OR REPLACE TEMP MACRO app_status(provider_status, category_status) AS
    coalesce(nullif(provider_status, 'restricted'), nullif(category_status, 'restricted'),
             provider_status, category_status, 'unknown');
CREATE OR REPLACE TEMP MACRO use_status(app_status, decision, rule_status) AS
    CASE WHEN decision = 'redirect' AND policy_given() THEN 'sanctioned'
         WHEN rule_status IS NOT NULL THEN rule_status
         WHEN app_status = 'restricted' THEN 'unknown'
         ELSE app_status END;
CREATE OR REPLACE TEMP TABLE use_status_definitions AS
SELECT * FROM (VALUES
    ('sanctioned', 'calls to an app the policy allows, calls an allow rule naming their app let through (say, for one group), and calls the policy redirected to the sanctioned gateway'),
    ('unapproved', 'calls to an app the policy blocks, coaches or redirects as a whole, and calls such a rule narrowed to a model, user, group or client met; not the redirected ones (blocked and coached attempts count)'),
    ('restricted', 'an app (apps table only) that only rules narrowed to a model, user, group, client or host block, coach or redirect; the calls they met are unapproved, its other calls unknown'),
    ('unknown', 'calls to an app the policy does not name; without --policy every call is unknown, and the share unapproved is unknown too')
) AS t(status, meaning);

-- Every day's rows with the columns the sections need: a view, so each period reads only its days.
CREATE OR REPLACE TEMP VIEW ai_rows AS
SELECT day, user_name, user_group, host, site, provider, category, wire_format, model, requests,
       coalesce(input_tokens, 0) + coalesce(output_tokens, 0) AS tokens, input_tokens, output_tokens, cost_usd,
       unpriced, decision, rule_id, key_fingerprint, key_kind, account_hint, inspected, inspect_note,
       budget_status, dlp_findings, dlp_action, app_name(provider, site, host) AS app,
       app_status(ps.status, cs.status) AS app_status,
       use_status(app_status(ps.status, cs.status), decision, rs.status) AS status
FROM ai_requests_daily
LEFT JOIN provider_status ps USING (provider)
LEFT JOIN category_status cs USING (category)
LEFT JOIN rule_status rs USING (rule_id);

CREATE OR REPLACE TEMP TABLE cur AS
SELECT * FROM ai_rows WHERE day >= getvariable('period_start') AND day < getvariable('period_end');
