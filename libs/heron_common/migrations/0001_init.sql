-- Heron's first schema. Migrations are append-only: change the schema in a new numbered file.

CREATE TABLE projects (
    id                bigserial PRIMARY KEY,
    name              text NOT NULL,
    slack_webhook_url text,
    created_at        timestamptz NOT NULL DEFAULT now()
);

-- Keys are stored as SHA-256 hashes only; the plaintext is shown once, at creation.
CREATE TABLE api_keys (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    key_hash    bytea NOT NULL UNIQUE,
    hint        text NOT NULL,
    name        text,
    created_at  timestamptz NOT NULL DEFAULT now(),
    revoked_at  timestamptz
);
CREATE INDEX api_keys_project ON api_keys (project_id);

-- Everything Heron watches. For kind 'event' a monitor is one stream:
-- (project, event name, service, environment).
CREATE TABLE monitors (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    kind          text NOT NULL DEFAULT 'event',
    event_name    text NOT NULL,
    service       text NOT NULL DEFAULT '',  -- '' when absent: plain equality keeps lookups indexed
    environment   text NOT NULL DEFAULT '',
    shard         int NOT NULL,
    state         text NOT NULL DEFAULT 'new' CHECK (state IN ('new', 'up', 'down', 'paused')),
    event_count   bigint NOT NULL DEFAULT 0,
    last_seen     timestamptz,
    cadence       jsonb NOT NULL DEFAULT '{}',
    deadline      timestamptz,
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, kind, event_name, service, environment)
);
-- "What is overdue" is one cheap range scan per shard, whatever the number of monitors.
CREATE INDEX monitors_due ON monitors (shard, deadline) WHERE state = 'up';
CREATE INDEX monitors_project ON monitors (project_id, id);

-- Raw events, partitioned by receive day so retention is a DROP of whole partitions.
CREATE TABLE events (
    monitor_id   bigint NOT NULL,
    project_id   bigint NOT NULL,
    event_time   timestamptz NOT NULL,
    received_at  timestamptz NOT NULL,
    metadata     jsonb,
    message_id   uuid NOT NULL
) PARTITION BY RANGE (received_at);
CREATE INDEX events_monitor_time ON events (monitor_id, event_time DESC);
-- Safety net: an event is never refused for want of a partition (maintenance creates them ahead).
CREATE TABLE events_default PARTITION OF events DEFAULT;

CREATE FUNCTION heron_ensure_event_partitions(days_back int, days_ahead int) RETURNS int
LANGUAGE plpgsql AS $$
DECLARE
    d date;
    created int := 0;
    part text;
BEGIN
    FOR d IN SELECT generate_series((now() AT TIME ZONE 'UTC')::date - days_back, (now() AT TIME ZONE 'UTC')::date + days_ahead, interval '1 day')::date LOOP
        part := 'events_' || to_char(d, 'YYYYMMDD');
        IF to_regclass(part) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%L) TO (%L)',
                part, d::timestamp AT TIME ZONE 'UTC', (d + 1)::timestamp AT TIME ZONE 'UTC'
            );
            created := created + 1;
        END IF;
    END LOOP;
    RETURN created;
END $$;

-- Messages the detector has committed: a redelivered message is recognised and skipped,
-- so an event is never counted twice.
CREATE TABLE processed_messages (
    message_id   uuid PRIMARY KEY,
    processed_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processed_messages_age ON processed_messages (processed_at);

-- Every state change of a monitor: the audit trail and the source of uptime history.
CREATE TABLE flips (
    id          bigserial PRIMARY KEY,
    monitor_id  bigint NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    project_id  bigint NOT NULL,
    at          timestamptz NOT NULL,
    from_state  text NOT NULL,
    to_state    text NOT NULL,
    reason      text NOT NULL
);
CREATE INDEX flips_monitor ON flips (monitor_id, at DESC);

CREATE TABLE incidents (
    id                 bigserial PRIMARY KEY,
    project_id         bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    monitor_id         bigint NOT NULL REFERENCES monitors (id) ON DELETE CASCADE,
    alert_id           uuid NOT NULL UNIQUE,
    resolve_alert_id   uuid UNIQUE,
    event_name         text NOT NULL,
    service            text NOT NULL DEFAULT '',
    environment        text NOT NULL DEFAULT '',
    started_at         timestamptz NOT NULL,  -- the last event before the silence
    opened_at          timestamptz NOT NULL,  -- when Heron declared it
    resolved_at        timestamptz,           -- the first event after the silence
    duration           integer,               -- resolved_at - started_at, in seconds
    expected_interval  double precision
);
-- At most one open incident per monitor, whatever races.
CREATE UNIQUE INDEX incidents_one_open ON incidents (monitor_id) WHERE resolved_at IS NULL;
CREATE INDEX incidents_project ON incidents (project_id, id DESC);

-- Alerts to publish, written in the same transaction as the flip that caused them.
CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    alert_id    uuid NOT NULL UNIQUE,
    routing_key text NOT NULL,
    message     jsonb NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    sent_at     timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- One row per (alert, target): the notifier's ledger.
CREATE TABLE deliveries (
    id               bigserial PRIMARY KEY,
    alert_id         uuid NOT NULL,
    project_id       bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    topic            text NOT NULL,
    target_kind      text NOT NULL,
    target           text NOT NULL,
    payload          jsonb NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'succeeded', 'failed')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    last_status_code int,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    finished_at      timestamptz,
    UNIQUE (alert_id, target_kind, target)
);
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';

CREATE TABLE delivery_attempts (
    id             bigserial PRIMARY KEY,
    delivery_id    bigint NOT NULL REFERENCES deliveries (id) ON DELETE CASCADE,
    attempted_at   timestamptz NOT NULL,
    status_code    int,
    latency_ms     double precision,
    error          text,
    response_body  text
);
CREATE INDEX delivery_attempts_delivery ON delivery_attempts (delivery_id, id);

SELECT heron_ensure_event_partitions(1, 3);
