-- Heroku app monitoring (docs/architecture.md, "Heroku apps"). A Heroku app is a monitor of kind
-- 'heroku': config {app_name, slack_channel, check_interval (minutes)}, data {snapshot, problems,
-- error, checked_at} kept by the detector from the prober's observations.

-- A monitor that cannot be checked (Heroku refused the key, no such app) is in state 'error'. The
-- allowed states are extended, not restated, so a migration that added others keeps them.
DO $$
DECLARE
    allowed text[];
BEGIN
    -- The states allowed now, whichever form Postgres prints the check in (0013 rewrote it as an
    -- array literal), plus 'error'.
    SELECT array_agg(DISTINCT m[1]) INTO allowed
    FROM pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '([a-z_]+)', 'g') AS m
    WHERE c.conrelid = 'monitors'::regclass AND c.conname = 'monitors_state_check'
      AND m[1] NOT IN ('state', 'text', 'any', 'array');
    IF NOT 'error' = ANY (allowed) THEN
        allowed := array_append(allowed, 'error');
    END IF;
    ALTER TABLE monitors DROP CONSTRAINT monitors_state_check;
    EXECUTE format('ALTER TABLE monitors ADD CONSTRAINT monitors_state_check CHECK (state = ANY (%L::text[]))', allowed);
END $$;

-- One monitor per app and project (monitoring an app twice would say everything twice).
CREATE UNIQUE INDEX monitors_heroku_app ON monitors (project_id, (config ->> 'app_name')) WHERE kind = 'heroku';

-- The prober's own schedule, one row per Heroku monitor (the prober creates them). Several probers
-- share it with no coordinator: a row is claimed with a conditional UPDATE (locked_until), taken
-- FOR UPDATE SKIP LOCKED, so an app is never checked twice at once. Monitor state stays the
-- detector's: nothing here is shown as the monitor's state.
CREATE TABLE heroku_checks (
    monitor_id       bigint PRIMARY KEY REFERENCES monitors (id) ON DELETE CASCADE,
    salt             text NOT NULL,         -- keys the config-vars hash (values are never kept)
    checked_config   jsonb,                 -- the config of the last check: a change means "check now"
    last_started_at  timestamptz,           -- intervals run start to start
    not_before       timestamptz,           -- backing off (429, Heroku unreachable)
    failures         int NOT NULL DEFAULT 0,
    locked_until     timestamptz,           -- a prober's claim, for as long as one check may take
    locked_by        text
);

-- Once-only seeding from the environment (MONITORED_APP_NAME…): the row stays after the monitor it
-- made is deleted, so a restart does not bring back a monitor someone removed.
CREATE TABLE seeds (
    name        text PRIMARY KEY,
    project_id  bigint,
    monitor_id  bigint,
    seeded_at   timestamptz NOT NULL DEFAULT now()
);
