-- A project's Slack incoming-webhook URL is a credential, stored sealed (heron_common.secretbox;
-- heron-migrate seals the existing ones after this runs). A delivery to it no longer names the URL
-- in deliveries.target but 'project:<id>' (heron_notifier.ledger.project_slack), and the notifier
-- reads the project's URL when it sends. Rewrite the URLs already kept there. An alert is one
-- project's, so this keeps (alert_id, target_kind, target) unique; a second Slack row of one alert
-- (only if the URL changed between two deliveries of the alert) keeps its id as a suffix.
UPDATE deliveries d
SET target = 'project:' || d.project_id || CASE WHEN d.id = first.id AND NOT first.taken THEN '' ELSE ':' || d.id END
FROM (
    SELECT alert_id, min(id) FILTER (WHERE target NOT LIKE 'project:%') AS id,
           coalesce(bool_or(target LIKE 'project:%'), false) AS taken
    FROM deliveries WHERE target_kind = 'slack' GROUP BY alert_id
) first
WHERE d.target_kind = 'slack' AND d.alert_id = first.alert_id AND d.target NOT LIKE 'project:%';
