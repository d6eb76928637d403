-- restore: put jobs the log says are in flight back into the in-flight set with
-- the lease the log recorded, unless Redis already holds them (idempotent).
-- Used by recover after Redis lost its keys; an expired lease is then reaped.
--
-- KEYS[1]  ready     sorted set
-- KEYS[2]  delayed   sorted set
-- KEYS[3]  inflight  sorted set (score: lease deadline, ms)
-- ARGV[…]  pairs: job id, lease deadline in ms
-- Returns the number of jobs restored.
local restored = 0
for i = 1, #ARGV, 2 do
    local id = ARGV[i]
    if not redis.call('ZSCORE', KEYS[1], id) and not redis.call('ZSCORE', KEYS[2], id)
        and not redis.call('ZSCORE', KEYS[3], id) then
        redis.call('ZADD', KEYS[3], tonumber(ARGV[i + 1]), id)
        restored = restored + 1
    end
end
return restored
