-- What a declared kind keeps between observations (a heartbeat's last ping and run in progress, a
-- trigger's last check-in…), beside the event stream's learned cadence.
ALTER TABLE monitors ADD COLUMN data jsonb NOT NULL DEFAULT '{}';
