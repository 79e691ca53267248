-- Messages no service could apply, kept for an operator to inspect and replay: what the
-- dead-letter keeper takes from P.detector.dead / P.notifier.dead, and event rows the detector
-- refused itself (stored directly, in the transaction that applied the rest of their message).

CREATE TABLE dead_letters (
    id                bigserial PRIMARY KEY,
    queue             text NOT NULL,             -- the dead-letter queue (or where it would have gone)
    exchange          text NOT NULL,             -- where it was published: a replay publishes there
    routing_key       text NOT NULL,
    reason            text NOT NULL,
    message_id        text,
    project_id        bigint,                    -- when the message names exactly one project
    body              bytea NOT NULL,            -- as received: bytea keeps what jsonb would refuse
    headers           jsonb NOT NULL DEFAULT '{}',
    deaths            int NOT NULL DEFAULT 1,
    first_dead_at     timestamptz NOT NULL DEFAULT now(),
    last_dead_at      timestamptz NOT NULL DEFAULT now(),
    replayed_at       timestamptz,
    replay_message_id text
);
-- A keeper that stored a message but died before acking it stores it again: one row.
CREATE UNIQUE INDEX dead_letters_message ON dead_letters (queue, message_id) WHERE message_id IS NOT NULL;
CREATE INDEX dead_letters_queue ON dead_letters (queue, id DESC);
