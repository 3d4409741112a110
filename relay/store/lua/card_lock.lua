-- The render lock of a Slack message kept current, a job card or an on-call alert
-- (relay/store/render_lock.py): renew it, or settle what was rendered.
-- KEYS[1] the message's hash, KEYS[2] its lock.
-- ARGV[1] op ('renew' | 'release' | 'settle'), ARGV[2] the holder's token, ARGV[3] lock TTL (ms);
-- for 'settle': ARGV[4] version rendered ('' for none), ARGV[5] via, ARGV[6] channel,
-- ARGV[7] ts ('' keeps the stored ones).
-- Returns {1 still ours / 0 lost, latest version, version rendered}.
-- Invariant: only the lock's holder writes; the rendered version never goes down, and
-- a settle releases the lock only when nothing newer than what was rendered is waiting
-- (otherwise the holder keeps it and renders again), so no update is left unrendered.
if redis.call('GET', KEYS[2]) ~= ARGV[2] then
  return {0, tonumber(redis.call('HGET', KEYS[1], 'v') or '0'),
          tonumber(redis.call('HGET', KEYS[1], 'r') or '0')}
end
if ARGV[1] == 'release' then
  redis.call('DEL', KEYS[2])
  return {1, tonumber(redis.call('HGET', KEYS[1], 'v') or '0'),
          tonumber(redis.call('HGET', KEYS[1], 'r') or '0')}
end
if ARGV[1] == 'renew' then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
  return {1, tonumber(redis.call('HGET', KEYS[1], 'v') or '0'),
          tonumber(redis.call('HGET', KEYS[1], 'r') or '0')}
end
local rendered = tonumber(redis.call('HGET', KEYS[1], 'r') or '0')
if ARGV[4] ~= '' and tonumber(ARGV[4]) > rendered then
  rendered = tonumber(ARGV[4])
  redis.call('HSET', KEYS[1], 'r', rendered)
end
if ARGV[5] ~= '' then redis.call('HSET', KEYS[1], 'via', ARGV[5]) end
if ARGV[7] ~= '' then redis.call('HSET', KEYS[1], 'ch', ARGV[6], 'ts', ARGV[7]) end
local latest = tonumber(redis.call('HGET', KEYS[1], 'v') or '0')
if latest > rendered then
  redis.call('PEXPIRE', KEYS[2], ARGV[3])
else
  redis.call('DEL', KEYS[2])
end
return {1, latest, rendered}
