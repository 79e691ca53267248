-- Webhook endpoints and what the delivery ledger needs to serve them.

CREATE TABLE webhook_endpoints (
    id                          bigserial PRIMARY KEY,
    project_id                  bigint NOT NULL REFERENCES projects (id) ON DELETE CASCADE,
    url                         text NOT NULL,
    topics                      text[] NOT NULL DEFAULT '{*}',
    description                 text NOT NULL DEFAULT '',
    format                      text NOT NULL DEFAULT 'json' CHECK (format IN ('json', 'slack')),
    enabled                     boolean NOT NULL DEFAULT true,
    -- The signing secret must be usable to sign, so it is stored, never logged or listed.
    secret                      text NOT NULL,
    previous_secret             text,
    previous_secret_expires_at  timestamptz,
    disabled_reason             text,
    disabled_at                 timestamptz,
    -- Failing without a success since this time (NULL while healthy).
    failing_since               timestamptz,
    last_success_at             timestamptz,
    created_at                  timestamptz NOT NULL DEFAULT now(),
    updated_at                  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_project ON webhook_endpoints (project_id, id);

ALTER TABLE deliveries ADD COLUMN endpoint_id bigint REFERENCES webhook_endpoints (id) ON DELETE CASCADE;
CREATE INDEX deliveries_project ON deliveries (project_id, id DESC);
CREATE INDEX deliveries_endpoint ON deliveries (endpoint_id, id DESC) WHERE endpoint_id IS NOT NULL;
CREATE INDEX deliveries_failed ON deliveries (project_id, finished_at) WHERE status = 'failed';
CREATE INDEX delivery_attempts_age ON delivery_attempts (attempted_at);
