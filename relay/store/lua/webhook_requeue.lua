-- Queue final or skipped deliveries again (a replay, or a recovery of dead and skipped ones).
-- KEYS[1] the audit log, then the webhook layout (webhook_keys.lua), with each delivery
-- and the subscription it belongs to.
-- ARGV[1] layout JSON, ARGV[2] now (ms), ARGV[3] '1' for dead and skipped ones only,
-- ARGV[4...] ids, ARGV[#ARGV] the audit entry, appended (its detail saying how many) when
-- any was queued.
-- Returns one word per id: queued, passed (neither dead nor skipped, under '1'), missing,
-- not_final, subscription_deleted, subscription_disabled, or changed (its subscription was
-- not declared: the caller read it before the delivery was made; nothing done, ask again).
-- Invariant: only a final or skipped delivery of an enabled subscription is queued, with its
-- status indexes, tries and due set updated in the same step.
--! include webhook_keys.lua
local now, out, queued = ARGV[2], {}, 0
for i = 4, #ARGV - 1 do
  local did = ARGV[i]
  local d = redis.call('HMGET', known(K.dlv, did, 'delivery'), 'status', 'subscriptionId')
  local s = d[2] and K.sub[d[2]]
  if not d[1] then table.insert(out, 'missing')
  elseif ARGV[3] == '1' and d[1] ~= 'dead' and d[1] ~= 'skipped' then
    table.insert(out, 'passed')
  elseif d[1] ~= 'succeeded' and d[1] ~= 'dead' and d[1] ~= 'skipped' then
    table.insert(out, 'not_final')
  elseif not s then table.insert(out, d[2] and 'changed' or 'subscription_deleted')
  else
    local enabled = redis.call('HMGET', s.hash, 'kind', 'enabled')
    if not enabled[1] then table.insert(out, 'subscription_deleted')
    elseif enabled[2] ~= '1' then table.insert(out, 'subscription_disabled')
    else
      set_status(did, d[2], d[1], 'pending')
      redis.call('HSET', K.dlv[did], 'tries', 0)
      redis.call('HDEL', K.dlv[did], 'reason', 'nextAttemptAt')
      redis.call('ZADD', s.due, now, did)
      wake(d[2], now)
      table.insert(out, 'queued')
      queued = queued + 1
    end
  end
end
if queued > 0 and ARGV[#ARGV] ~= '' then
  local entry = cjson.decode(ARGV[#ARGV])
  entry['detail'] = (entry['detail'] or '') .. ': ' .. queued .. ' queued'
  redis.call('XADD', KEYS[1], '*', 'entry', cjson.encode(entry))
end
return out
