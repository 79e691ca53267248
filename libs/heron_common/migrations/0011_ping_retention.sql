-- Pings are kept as long as raw events (HERON_EVENT_RETENTION_DAYS): the hourly maintenance deletes
-- older ones by this index.
CREATE INDEX pings_age ON pings (received_at);
