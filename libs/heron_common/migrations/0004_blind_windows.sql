-- Heron's own outages never page (docs/architecture.md, "When Heron itself is blind").

-- Spans of time in which Heron could not see events: the broker was down, no ingest replica could
-- publish, or no detector ran the ticker. A silence overlapping one is not held against a monitor.
CREATE TABLE blind_windows (
    id          bigserial PRIMARY KEY,
    started_at  timestamptz NOT NULL,
    ended_at    timestamptz NOT NULL,
    reason      text NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    CHECK (ended_at >= started_at)
);
CREATE INDEX blind_windows_end ON blind_windows (ended_at);

-- When the ticker last published a full round of ticks: a gap longer than a few scan intervals
-- means time passed that no detector could judge. One row.
CREATE TABLE ticker_state (
    id            int PRIMARY KEY CHECK (id = 1),
    last_tick_at  timestamptz NOT NULL
);
