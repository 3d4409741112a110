-- Reserve the next slot of the shared Glider budget (GCRA).
-- KEYS[1] the bucket (its theoretical arrival time, µs)
-- ARGV[1] now (µs) or '', ARGV[2] emission interval (µs), ARGV[3] tolerance (µs)
-- Returns the wait (µs) before this slot opens.
-- Invariant: slots are handed out one interval apart (burst: tolerance), first come first
-- served, across every worker; the key expires once its TAT is past.
--! include now_us.lua
local interval, tolerance = tonumber(ARGV[2]), tonumber(ARGV[3])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local wait = tat - tolerance - now
if wait < 0 then wait = 0 end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX',
           math.ceil((next_tat - now) / 1000) + 1000)
return string.format('%d', wait)
