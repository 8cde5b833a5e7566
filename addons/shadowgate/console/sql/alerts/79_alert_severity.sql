-- name: alert_severity
-- The macro alert_severity(event, alert_key): the console's reading of an alert's event, defined here and nowhere else.
--   high    dlp_block, storage_failure, mcp_refusal: data about to leave, or a control not working
--   medium  unapproved_users, unknown_endpoint, pinned_passthrough, budget_crossed (a call refused),
--           mcp_approval_denied, mcp_approval_timeout
--   low     new_app, budget_crossed when a budget is only nearly used (its key ends in |near),
--           mcp_approval_requested (a call waits for an approver, as the policy wants)
CREATE OR REPLACE TEMP MACRO alert_severity(event, alert_key) AS
    CASE WHEN event IN ('dlp_block', 'storage_failure', 'mcp_refusal') THEN 'high'
         WHEN event IN ('new_app', 'mcp_approval_requested')
              OR (event = 'budget_crossed' AND ends_with(alert_key, '|near')) THEN 'low'
         ELSE 'medium' END;
