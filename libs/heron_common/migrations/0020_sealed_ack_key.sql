-- The acknowledge-link key is stored sealed like every other secret (secretbox.SEALED_COLUMNS):
-- with it, anyone reading the database could forge links that acknowledge incidents and stop
-- their pages. Text now (hex of the 32 bytes, then sealed by heron-migrate's re-seal); a value
-- not sealed yet is read as it is until then.
ALTER TABLE oncall_keys ALTER COLUMN ack_key TYPE text USING encode(ack_key, 'hex');
