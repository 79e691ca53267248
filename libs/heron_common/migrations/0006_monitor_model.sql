-- One monitor model for every kind (docs/architecture.md, "One monitor model").

-- Monitors: event streams keep event_name/service/environment; declared kinds have a name and the
-- user's settings in config. Event streams may carry overrides there too.
ALTER TABLE monitors ALTER COLUMN event_name DROP NOT NULL;
ALTER TABLE monitors ADD COLUMN name text;
ALTER TABLE monitors ADD COLUMN config jsonb NOT NULL DEFAULT '{}';
ALTER TABLE monitors DROP CONSTRAINT monitors_state_check;
ALTER TABLE monitors ADD CONSTRAINT monitors_state_check
    CHECK (state IN ('new', 'up', 'late', 'down', 'paused', 'resolved', 'alerting', 'acknowledged'));
-- Any kind may have a deadline in any state ('late' heartbeats, liveness triggers): the index
-- covers every monitor with one.
DROP INDEX monitors_due;
CREATE INDEX monitors_due ON monitors (shard, deadline) WHERE deadline IS NOT NULL;

-- Incidents are kind-neutral: the kind, a human title, and what the kind adds (details).
ALTER TABLE incidents ALTER COLUMN event_name DROP NOT NULL;
ALTER TABLE incidents ADD COLUMN kind text NOT NULL DEFAULT 'event';
ALTER TABLE incidents ADD COLUMN title text;
ALTER TABLE incidents ADD COLUMN details jsonb NOT NULL DEFAULT '{}';
ALTER TABLE incidents ADD COLUMN acknowledged_at timestamptz;
ALTER TABLE incidents ADD COLUMN acknowledged_by text;
ALTER TABLE incidents ADD COLUMN ack_alert_id uuid UNIQUE;
ALTER TABLE incidents ADD COLUMN resolved_by text;
