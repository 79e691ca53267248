-- The acknowledge-link key is stored sealed like every other secret (secretbox.SEALED_COLUMNS):
-- whoever reads it can forge links that acknowledge any incident and stop its pages.
--
-- Expand step: a text copy (hex of the same 32 bytes) that heron-migrate's re-seal seals and the
-- code now reads. The bytea column stays only because the previous release's replicas read it
-- while the services roll (migrations are additive: docs/operations.md, "Upgrades"); the next
-- release drops it (the contract step), and with it the last copy in the clear.
ALTER TABLE oncall_keys ADD COLUMN sealed_ack_key text;
UPDATE oncall_keys SET sealed_ack_key = encode(ack_key, 'hex');
ALTER TABLE oncall_keys ALTER COLUMN sealed_ack_key SET NOT NULL;
