-- finish: drop jobs the log says are finished (completed or dead-lettered) from
-- every queue set, and drop their payload cache entries.
--
-- KEYS[1]  ready     sorted set
-- KEYS[2]  delayed   sorted set
-- KEYS[3]  inflight  sorted set
-- KEYS[4…] payload cache key of each job, in the order of ARGV
-- ARGV[…]  job ids
-- Returns the number of jobs that were still in a queue set.
-- redis.call(command, key, values…) in slices: unpack() is bounded by Lua's stack
local function call_in_slices(command, key, values)
    local total = 0
    for i = 1, #values, 4000 do
        total = total + redis.call(command, key, unpack(values, i, math.min(i + 3999, #values)))
    end
    return total
end
local payloads = {}
for i = 4, #KEYS do
    payloads[#payloads + 1] = KEYS[i]
end
local removed = 0
for k = 1, 3 do
    removed = removed + call_in_slices('ZREM', KEYS[k], ARGV)
end
for i = 1, #payloads, 4000 do
    redis.call('DEL', unpack(payloads, i, math.min(i + 3999, #payloads)))
end
return removed
