-- Delete final and skipped deliveries (retention), with their index entries.
-- KEYS: the webhook layout (webhook_keys.lua) from KEYS[1], with each delivery and the
-- subscription it belongs to.
-- ARGV[1] layout JSON, ARGV[2...] delivery ids.
-- Returns how many went (an id with no hash left counts, its index entry goes).
-- Invariant: pending and failed deliveries are kept; one whose subscription was not
-- declared (made after the caller read it) is kept for the next sweep.
--! include webhook_keys.lua
local removed = 0
for i = 2, #ARGV do
  local did = ARGV[i]
  local d = redis.call('HMGET', known(K.dlv, did, 'delivery'), 'status', 'subscriptionId')
  local s = d[2] and K.sub[d[2]]
  if not d[1] then
    redis.call('ZREM', K.all, did)
    removed = removed + 1
  elseif (d[1] == 'succeeded' or d[1] == 'dead' or d[1] == 'skipped') and s then
    redis.call('ZREM', K.all, did)
    redis.call('ZREM', known(K.bystatus, d[1], 'status'), did)
    redis.call('ZREM', s.dlvs, did)
    redis.call('ZREM', known(s.by, d[1], 'status'), did)
    redis.call('DEL', K.dlv[did])
    removed = removed + 1
  end
end
return removed
