-- On-call (issue #11, docs/oncall.md): who is paged when a service's monitor alerts, and the
-- notifier's ledger of the pages it owes.

-- People who can be on call, per project. An email appears once per project (whatever its case):
-- the rotation text names people by email.
CREATE TABLE users (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    email       text NOT NULL,
    name        text NOT NULL DEFAULT '',
    time_zone   text NOT NULL DEFAULT 'UTC',
    created_at  timestamptz NOT NULL DEFAULT now(),
    updated_at  timestamptz NOT NULL DEFAULT now()
);
CREATE UNIQUE INDEX users_email ON users (project_id, lower(email));

-- How a person is paged: each channel after its delay from the page (0 for the primary channel,
-- 5-15 minutes for a backup). slack: a Slack user id (sent with the bot token) or an incoming
-- webhook URL; email: an address (sent through HERON_SMTP_*); webhook: a URL, signed with secret
-- like the project's webhook endpoints.
CREATE TABLE user_channels (
    id          bigserial PRIMARY KEY,
    user_id     bigint NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    project_id  bigint NOT NULL,
    kind        text NOT NULL CHECK (kind IN ('slack', 'email', 'webhook')),
    target      text NOT NULL,
    delay       double precision NOT NULL DEFAULT 0 CHECK (delay >= 0),
    secret      text,  -- webhook channels: usable to sign, so stored like webhook_endpoints.secret
    created_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX user_channels_user ON user_channels (user_id, id);

-- A rotation: the text (one 'EMAIL, DURATION' per line, heron_common.oncall.rotation), when its
-- schedule started, and how often the primary is paged again while an incident alerts.
CREATE TABLE rotations (
    id            bigserial PRIMARY KEY,
    project_id    bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name          text NOT NULL,
    spec          text NOT NULL,
    anchor        timestamptz NOT NULL,
    repeat_every  double precision,  -- seconds; NULL: the primary is paged once
    created_at    timestamptz NOT NULL DEFAULT now(),
    updated_at    timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- Shifts, generated from the rotation ahead of time and never changed automatically afterwards:
-- people reassign them, delete them from a time on, or add a full rotation's worth.
CREATE TABLE shifts (
    id           bigserial PRIMARY KEY,
    rotation_id  bigint NOT NULL REFERENCES rotations (id) ON DELETE CASCADE,
    project_id   bigint NOT NULL,
    email        text NOT NULL,
    starts_at    timestamptz NOT NULL,
    ends_at      timestamptz NOT NULL,
    position     int,  -- the rotation line it came from (0-based); NULL: added by hand
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK (ends_at > starts_at)
);
CREATE INDEX shifts_rotation ON shifts (rotation_id, starts_at);
CREATE INDEX shifts_rotation_end ON shifts (rotation_id, ends_at);

-- A rotation's escalation ladder: each strategy pages its target `delay` seconds after an
-- incident opened, while it is still unacknowledged.
CREATE TABLE escalation_strategies (
    id           bigserial PRIMARY KEY,
    rotation_id  bigint NOT NULL REFERENCES rotations (id) ON DELETE CASCADE,
    project_id   bigint NOT NULL,
    delay        double precision NOT NULL CHECK (delay >= 0),
    target       text NOT NULL CHECK (target IN ('previous', 'rotation', 'user')),
    user_id      bigint REFERENCES users (id),  -- a user still named here cannot be deleted (409)
    created_at   timestamptz NOT NULL DEFAULT now(),
    CHECK ((target = 'user') = (user_id IS NOT NULL))
);
CREATE INDEX escalation_strategies_rotation ON escalation_strategies (rotation_id, id);

-- Which rotation is on call for a service (a monitor belongs to a service by id or by name).
ALTER TABLE services ADD COLUMN rotation_id bigint REFERENCES rotations (id) ON DELETE SET NULL;

-- The notifier's paging ledger. One row per incident that pages: its steps are written ahead up
-- to planned_until (HERON_PAGING_HORIZON), so a restarted notifier plans on from there and a step
-- is never planned twice; stopped_at is set (and the pending pages cancelled, in the same
-- transaction) when the incident is acknowledged or resolved.
CREATE TABLE paging (
    incident_id    bigint PRIMARY KEY REFERENCES incidents (id) ON DELETE CASCADE,
    project_id     bigint NOT NULL,
    rotation_id    bigint REFERENCES rotations (id) ON DELETE SET NULL,
    opened_at      timestamptz NOT NULL,
    escalate       boolean NOT NULL DEFAULT true,
    planned_until  timestamptz,  -- NULL: nothing planned yet
    stopped_at     timestamptz,
    created_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX paging_active ON paging (planned_until NULLS FIRST) WHERE stopped_at IS NULL;

-- One durable row per page step (heron_common.oncall.escalation.Step), unique on its
-- deterministic id: a plan computed again inserts nothing new. Claimed under a lease like
-- deliveries.
CREATE TABLE pages (
    id               bigserial PRIMARY KEY,
    step_id          uuid NOT NULL UNIQUE,
    incident_id      bigint NOT NULL REFERENCES paging (incident_id) ON DELETE CASCADE,
    project_id       bigint NOT NULL,
    due_at           timestamptz NOT NULL,
    email            text NOT NULL,
    channel_id       bigint REFERENCES user_channels (id) ON DELETE SET NULL,
    channel_kind     text NOT NULL,
    reason           text NOT NULL CHECK (reason IN ('primary', 'repeat', 'escalation')),
    round            int,
    strategy         text,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'cancelled')),
    attempts         int NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL,
    locked_until     timestamptz,
    sent_at          timestamptz,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX pages_due ON pages (next_attempt_at) WHERE status = 'pending';
CREATE INDEX pages_incident ON pages (incident_id, due_at);

-- Acknowledge links are single-use: a link's id is recorded when it is used.
CREATE TABLE ack_links_used (
    link_id      uuid PRIMARY KEY,
    incident_id  bigint NOT NULL,
    used_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ack_links_used_age ON ack_links_used (used_at);

-- The key acknowledge links are signed with (HMAC-SHA256), shared by the notifier (signs) and
-- ingest (verifies): made here once, 244 random bits from gen_random_uuid (a strong source).
CREATE TABLE oncall_keys (
    id       int PRIMARY KEY CHECK (id = 1),
    ack_key  bytea NOT NULL
);
INSERT INTO oncall_keys (id, ack_key)
VALUES (1, decode(replace(gen_random_uuid()::text || gen_random_uuid()::text, '-', ''), 'hex'));
