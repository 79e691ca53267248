-- HTTP probes (docs/architecture.md, "Probes"): a monitor of kind 'probe' whose config is the
-- request and its rules (heron_common.monitors.probe), judged by the detector from the results
-- the probers report.

-- A probe that failed but not yet for its whole timeout is 'failing' (no incident yet). Other
-- branches extend this list too, so the state is added to whatever the list is when this runs,
-- rather than the list being written out again (which would drop states added meanwhile).
DO $$
DECLARE
    allowed text[];
BEGIN
    -- The lower-case words of the definition are the states, the column and the type: read either
    -- form Postgres prints (ARRAY['new'::text, …] or '{new,…}'::text[]).
    SELECT array_agg(DISTINCT m[1]) INTO allowed
    FROM pg_constraint c, regexp_matches(pg_get_constraintdef(c.oid), '([a-z_]+)', 'g') AS m
    WHERE c.conrelid = 'monitors'::regclass AND c.conname = 'monitors_state_check'
      AND m[1] NOT IN ('state', 'text');
    IF NOT 'failing' = ANY (allowed) THEN
        allowed := array_append(allowed, 'failing');
    END IF;
    ALTER TABLE monitors DROP CONSTRAINT monitors_state_check;
    EXECUTE format('ALTER TABLE monitors ADD CONSTRAINT monitors_state_check CHECK (state = ANY (%L::text[]))', allowed);
END $$;

-- When each probe runs next. Owned by the probers (the detector stays the only writer of monitor
-- state): a prober claims the due rows with one UPDATE … FOR UPDATE SKIP LOCKED that also moves
-- next_at on by the (jittered) interval, so probers need no coordinator and never take one probe
-- twice. Created with the probe by ingest; gone with the monitor.
CREATE TABLE probe_schedule (
    monitor_id  bigint PRIMARY KEY REFERENCES monitors (id) ON DELETE CASCADE,
    next_at     timestamptz NOT NULL,
    claimed_by  text,           -- the prober instance that ran it last
    claimed_at  timestamptz,
    runs        bigint NOT NULL DEFAULT 0
);
CREATE INDEX probe_schedule_due ON probe_schedule (next_at);

-- Every result the detector applied (written in the observation's transaction, as pings are), kept
-- as long as raw events (HERON_EVENT_RETENTION_DAYS).
CREATE TABLE probe_results (
    id          bigserial PRIMARY KEY,
    monitor_id  bigint NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    project_id  bigint NOT NULL,
    started_at  timestamptz NOT NULL,
    up          boolean NOT NULL,
    status      int,            -- the HTTP status, when a response came
    reason      text,           -- why it is down ("status 503", "TLS handshake timed out after 10 s")
    timings     jsonb NOT NULL DEFAULT '{}',  -- seconds: dns, connect, tls, first_byte, total
    prober      text
);
CREATE INDEX probe_results_monitor ON probe_results (monitor_id, id DESC);
CREATE INDEX probe_results_age ON probe_results (started_at);
