-- Every secret rotated out keeps signing until its overlap (HERON_WEBHOOK_SECRET_OVERLAP) ends.
-- A single previous_secret column lost the first secret at once when a second rotation came
-- inside the window, breaking receivers that had not switched yet.

CREATE TABLE webhook_secrets (
    id           bigserial PRIMARY KEY,  -- rotation order: a higher id is a newer secret
    endpoint_id  bigint NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    secret       text NOT NULL,  -- usable to sign, so stored like webhook_endpoints.secret
    expires_at   timestamptz NOT NULL
);
CREATE INDEX webhook_secrets_endpoint ON webhook_secrets (endpoint_id, id DESC);
CREATE INDEX webhook_secrets_expiry ON webhook_secrets (expires_at);

INSERT INTO webhook_secrets (endpoint_id, secret, expires_at)
SELECT id, previous_secret, previous_secret_expires_at
FROM webhook_endpoints
WHERE previous_secret IS NOT NULL AND previous_secret_expires_at > now();

-- webhook_endpoints.previous_secret is still written on rotation (the newest rotated-out secret)
-- so notifiers of the previous release keep signing correctly during a rolling upgrade; nothing
-- reads it any more and a later migration can drop it. previous_secret_expires_at is when the
-- last rotated-out secret stops signing (the API's previous_secret_valid_until).
