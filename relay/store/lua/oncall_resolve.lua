-- Close an open on-call incident from outside the event stream (a subscription re-enabled).
-- KEYS: the webhook layout (webhook_keys.lua) from KEYS[1], with the incident's open marker,
-- the on-call targets and the new deliveries.
-- ARGV[1] layout JSON, ARGV[2] now (ms), ARGV[3] rows JSON (as fan-out's, mode 'close').
-- Returns the number of deliveries created (0: the incident was not open).
-- Invariant: the same close as fan-out's (create_all): the marker is deleted and the close
-- deliveries exist only if it was open, so a second re-enable sends nothing. Rows for a
-- target that is not configured (no subscription hash) are not created.
--! include webhook_keys.lua
local rows = configured(ARGV[3])
return create_all(rows, ARGV[2])
