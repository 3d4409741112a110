-- Acknowledge an open on-call incident once, and queue its PagerDuty `acknowledge`.
-- KEYS[1] the audit log, then the webhook layout (webhook_keys.lua) from KEYS[2], with the
-- incident's open marker, the on-call targets and the new deliveries.
-- ARGV[1] layout JSON, ARGV[2] the incident marker (dedup key), ARGV[3] who and when (JSON),
-- ARGV[4] now (ms), ARGV[5] rows JSON (as fan-out's), ARGV[6] the `oncall.acknowledged`
-- audit entry (JSON).
-- Returns {n created, ack JSON} when acknowledged now; {-1, ''} if the incident is not open
-- (resolved, or never opened); {-2, the earlier ack JSON} if it was acknowledged already.
-- Invariant: one acknowledge per opening: the open marker holds '1' until acknowledged, then
-- the ack (its TTL kept); a new failure sets it back to '1', a resolve deletes it. Rows for
-- a target that is not configured (no subscription hash) are not created. The audit entry is
-- appended with the acknowledge, and only then.
--! include webhook_keys.lua
local marker = known(K.open, ARGV[2], 'marker')
local held = redis.call('GET', marker)
if not held then return {-1, ''} end
if held ~= '1' then return {-2, held} end
redis.call('SET', marker, ARGV[3], 'KEEPTTL')
local rows = configured(ARGV[5])
redis.call('XADD', KEYS[1], '*', 'entry', ARGV[6])
return {create_all(rows, ARGV[4]), ARGV[3]}
