-- finish: drop jobs the log says are finished (completed or dead-lettered) from
-- every queue set, and drop their payload cache entries.
--
-- KEYS[1]  ready     sorted set
-- KEYS[2]  delayed   sorted set
-- KEYS[3]  inflight  sorted set
-- KEYS[4…] payload cache key of each job, in the order of ARGV
-- ARGV[…]  job ids
-- Returns the number of jobs that were still in a queue set.
local removed = 0
for i = 1, #ARGV do
    removed = removed + redis.call('ZREM', KEYS[1], ARGV[i]) + redis.call('ZREM', KEYS[2], ARGV[i])
        + redis.call('ZREM', KEYS[3], ARGV[i])
    redis.call('DEL', KEYS[i + 3])
end
return removed
