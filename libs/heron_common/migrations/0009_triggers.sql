-- On-call triggers (Heii On-Call semantics) and the services they belong to.
-- A trigger is a monitor of kind 'trigger': config {trigger_kind, timeout, critical, escalate,
-- service_id}, data {since, last_checkin}; monitors.service holds its service's name ('' if none).

-- A service is one logical subsystem (API, Frontend…); a trigger alerting means it is in trouble.
CREATE TABLE services (
    id          bigserial PRIMARY KEY,
    project_id  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    name        text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    UNIQUE (project_id, name)
);

-- One trigger of a name per service of a project: creating it twice is a 409, not a duplicate.
CREATE UNIQUE INDEX monitors_trigger_name ON monitors (project_id, service, name) WHERE kind = 'trigger';

-- A test key authenticates every call and answers as a real call would, but changes nothing.
ALTER TABLE api_keys ADD COLUMN test boolean NOT NULL DEFAULT false;
