-- Take one of a response_url's uses if any is left.
-- KEYS[1] request record.
-- ARGV[1] the uses field, ARGV[2] how many uses Slack allows.
-- Returns 1 taken, 0 none left.
-- Invariant: the count never passes the limit, whatever number of notifiers race.
if tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0') >= tonumber(ARGV[2]) then return 0 end
redis.call('HINCRBY', KEYS[1], ARGV[1], 1)
return 1
