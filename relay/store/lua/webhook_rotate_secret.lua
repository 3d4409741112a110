-- Rotate a subscription's signing secret; earlier ones keep signing through their grace.
-- KEYS[1] the subscription hash, KEYS[2] the audit log.
-- ARGV[1] new secret, ARGV[2] the replaced one's grace end (ms), ARGV[3] now (ms),
-- ARGV[4] most earlier secrets that may still sign, ARGV[5] the rotation's audit entry.
-- Returns 1 rotated, 0 no such subscription, -1 refused (that many still sign).
-- Invariant: a secret in its grace is never dropped to make room.
local old = redis.call('HGET', KEYS[1], 'secret')
if not old then return 0 end
local kept = {}
for _, pair in ipairs(cjson.decode(redis.call('HGET', KEYS[1], 'prevSecrets') or '[]')) do
  if tonumber(pair[2]) > tonumber(ARGV[3]) then table.insert(kept, pair) end
end
-- a subscription rotated before prevSecrets existed keeps its one previous secret
local legacy = redis.call('HMGET', KEYS[1], 'prevSecret', 'prevSecretUntil')
if legacy[1] and tonumber(legacy[2] or 0) > tonumber(ARGV[3]) then
  table.insert(kept, {legacy[1], legacy[2]})
end
if #kept >= tonumber(ARGV[4]) then return -1 end
table.insert(kept, {old, ARGV[2]})
redis.call('HSET', KEYS[1], 'secret', ARGV[1], 'prevSecrets', cjson.encode(kept),
           'updatedAt', ARGV[3])
redis.call('HDEL', KEYS[1], 'prevSecret', 'prevSecretUntil')
redis.call('XADD', KEYS[2], '*', 'entry', ARGV[5])
return 1
