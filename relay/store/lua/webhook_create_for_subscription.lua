-- Create deliveries for one enabled webhook subscription (a `relay.test` event).
-- KEYS[1] the audit log, then the webhook layout (webhook_keys.lua) from KEYS[2], with this
-- subscription and the new deliveries.
-- ARGV[1] layout JSON, ARGV[2] subscription id, ARGV[3] now (ms), ARGV[4] rows JSON (as
-- fan-out's: {id, subscription, event id, type, webhook id, body, marker, mode, trace}),
-- ARGV[5] the audit entry, appended when a delivery was created ('' for none).
-- Returns 1 created, 0 already there, -1 no such subscription, -2 disabled.
-- Invariant: the same path as fan-out (create_all): claimed, signed, retried and recorded
-- by the dispatcher like any other delivery, and never for a disabled subscription.
--! include webhook_keys.lua
local s = known(K.sub, ARGV[2], 'subscription')
local sub = redis.call('HMGET', s.hash, 'kind', 'enabled')
if sub[1] ~= 'webhook' then return -1 end
if sub[2] ~= '1' then return -2 end
local created = create_all(cjson.decode(ARGV[4]), ARGV[3])
if created > 0 and ARGV[5] ~= '' then redis.call('XADD', KEYS[1], '*', 'entry', ARGV[5]) end
return created
