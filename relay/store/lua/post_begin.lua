-- Before a Glider POST that must not run twice: note that it leaves, and count it.
-- KEYS[1] request record.
-- ARGV[1] first-post field, ARGV[2] posts field, ARGV[3] refused field, ARGV[4] doubt
-- field, ARGV[5] now (ms).
-- Returns {1} send it, {0} an earlier POST is in doubt (posts > refused), {} not queued.
-- Invariant: the check and the count are one step, so two workers never both send.
if redis.call('HGET', KEYS[1], 'state') ~= 'queued' then return {} end
local posts = tonumber(redis.call('HGET', KEYS[1], ARGV[2]) or '0')
local refused = tonumber(redis.call('HGET', KEYS[1], ARGV[3]) or '0')
if posts > refused then return {0} end
redis.call('HSETNX', KEYS[1], ARGV[1], ARGV[5])
redis.call('HSET', KEYS[1], ARGV[2], posts + 1, ARGV[4], ARGV[5])
return {1}
