-- Heartbeats (docs/architecture.md, "Heartbeats"): a cron job or worker pings its own URL.

-- The ping URL's token: the only credential a ping needs (a crontab line carries no API key), so it
-- is unguessable (secrets.token_urlsafe) and can be regenerated. NULL for kinds that take no pings.
ALTER TABLE monitors ADD COLUMN ping_token text;
CREATE UNIQUE INDEX monitors_ping_token ON monitors (ping_token) WHERE ping_token IS NOT NULL;

-- Every ping a heartbeat received, written by the detector when it applies the observation.
CREATE TABLE pings (
    id           bigserial PRIMARY KEY,
    monitor_id   bigint NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    project_id   bigint NOT NULL,
    received_at  timestamptz NOT NULL,
    kind         text NOT NULL CHECK (kind IN ('success', 'start', 'fail', 'exit')),
    exit_code    int,
    rid          text,
    duration     double precision,  -- seconds from the run's start ping, for a finish
    body         text,              -- the first 10 KiB of the request body
    remote_addr  text,
    user_agent   text
);
CREATE INDEX pings_monitor ON pings (monitor_id, id DESC);
