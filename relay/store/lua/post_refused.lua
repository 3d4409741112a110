-- Glider proved the POST in doubt was never processed: count it refused.
-- KEYS[1] request record.
-- ARGV[1] posts field, ARGV[2] refused field, ARGV[3] doubt field.
-- Returns 1 counted, 0 nothing in doubt (or not queued).
-- Invariant: refused never exceeds posts; the doubt mark goes when none is in doubt.
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return 0 end
local posts = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
local refused = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
if refused >= posts then return 0 end
redis.call('HSET', KEYS[1], ARGV[2], refused + 1)
if refused + 1 >= posts then redis.call('HDEL', KEYS[1], ARGV[3]) end
return 1
