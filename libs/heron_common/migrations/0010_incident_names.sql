-- The name of the monitor an incident is about, kept with it (a heartbeat's or trigger's name; an
-- event stream's event name), so alerts can say what broke without a join.
ALTER TABLE incidents ADD COLUMN name text;
UPDATE incidents i SET name = coalesce(m.name, m.event_name) FROM monitors m WHERE m.id = i.monitor_id;
