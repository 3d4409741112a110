-- Glider answered 429: no slot of the shared budget opens before now + Retry-After.
-- KEYS[1] the bucket; ARGV[1] now (µs) or '', ARGV[2] Retry-After (µs). Returns 1.
-- Invariant: the TAT only moves forward; a shorter Retry-After never shortens a wait.
--! include now_us.lua
local until_tat = now + tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < until_tat then
  redis.call('SET', KEYS[1], string.format('%d', until_tat), 'PX',
             math.ceil((until_tat - now) / 1000) + 1000)
end
return 1
