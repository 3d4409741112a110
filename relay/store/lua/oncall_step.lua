-- Note a retry or pause started from an open on-call alert: shown on it, and audited.
-- KEYS[1] the audit log, then the webhook layout (webhook_keys.lua) from KEYS[2], with the
-- incident's open marker and alert, the on-call Slack target and the new delivery.
-- ARGV[1] layout JSON, ARGV[2] the incident marker, ARGV[3] now (ms), ARGV[4] rows JSON
-- (as fan-out's, each carrying its alert change), ARGV[5] the audit entry (JSON).
-- Returns the deliveries created (0 when the Slack target is not configured), or -1 when
-- the incident is no longer open (nothing written, not even the audit entry).
-- Invariant: the step is shown and audited together, and only on an open incident.
--! include webhook_keys.lua
if redis.call('EXISTS', known(K.open, ARGV[2], 'marker')) == 0 then return -1 end
local rows = configured(ARGV[4])
redis.call('XADD', KEYS[1], '*', 'entry', ARGV[5])
return create_all(rows, ARGV[3])
