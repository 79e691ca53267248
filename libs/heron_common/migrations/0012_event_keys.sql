-- Per-event idempotency: a client that retries a request after an ambiguous failure (a 503 or a
-- lost connection after the broker had already stored the first attempt) sends the same
-- Idempotency-Key, and each of its events carries a key derived from it (uuid5 of project, key
-- and position). The detector records each key with the event, in the same transaction, and skips
-- an event whose key it has seen: counted exactly once. Kept as long as processed_messages.
CREATE TABLE event_keys (
    key uuid PRIMARY KEY,
    seen_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX event_keys_age ON event_keys (seen_at);
